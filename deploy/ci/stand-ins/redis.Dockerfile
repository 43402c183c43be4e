# CI stand-in for docker.io/library/redis:7.4 (no registry reachable): Debian bookworm's redis-server (7.0),
# run as its `redis` user with /data for the append-only file, as the official image does.
FROM docker.io/library/python:3.11-slim-bookworm
RUN apt-get update && apt-get install -y --no-install-recommends redis-server \
    && rm -rf /var/lib/apt/lists/* && mkdir -p /data && chown redis:redis /data
USER redis
WORKDIR /data
EXPOSE 6379
CMD ["redis-server", "--protected-mode", "no"]
