# CI stand-in for docker.io/library/redis:7.4 (no registry reachable): Debian bookworm's redis-server (7.0),
# run as its `redis` user with /data for the append-only file, as the official image does. The official image
# is built with protected mode off (its network is the container's); Debian's is not, so the entry point adds
# `--protected-mode no` to a redis-server command (compose and k8s pass their own arguments).
FROM docker.io/library/python:3.11-slim-bookworm
RUN apt-get update && apt-get install -y --no-install-recommends redis-server \
    && rm -rf /var/lib/apt/lists/* && mkdir -p /data && chown redis:redis /data \
    && printf '%s\n' '#!/bin/sh' 'if [ "$1" = redis-server ]; then shift; exec redis-server "$@" --protected-mode no; fi' \
       'exec "$@"' > /usr/local/bin/redis-entrypoint && chmod +x /usr/local/bin/redis-entrypoint
USER redis
WORKDIR /data
EXPOSE 6379
ENTRYPOINT ["redis-entrypoint"]
CMD ["redis-server"]
