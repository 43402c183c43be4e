#!/usr/bin/env bash
# The compose stack built and run for real with podman, smoke-tested through Traefik, then removed.
#
#   deploy/ci/compose-smoke.sh          (root, on the Debian machine kind of CI; minutes: see the timings it prints)
#
#   1. tools       Debian podman + buildah + runc + mmdebstrap + netavark with aardvark-dns (service names) + iptables, if missing; podman-compose
#                  1.6.0 (PyPI) in var/ci/tools. podman runs with deploy/ci/containers.conf (runc, ulimits).
#   2. stand-ins   deploy/ci/local-images.sh: python:3.11-slim-bookworm, redis, traefik, elasticsearch, built
#                  locally and tagged with the official names (no registry is reachable).
#   3. images      deploy/ci/build-images.sh: the shared base, then every service image (torch only in the
#                  transcriber), printing build time and size of each.
#   4. up          podman-compose -f deploy/compose.yml -f deploy/ci/compose.ci.yml up -d, project therascript-ci,
#                  Traefik on a free loopback port (the only published port), a random API token.
#   5. smoke       deploy/ci/smoke.py through Traefik: ready → two-voice upload → labelled transcript → chat reply
#                  over SSE → search (when search answers) → 401 without the token. podman 4.3 runs no
#                  healthchecks and ignores depends_on conditions: services start in order and the smoke polls.
#   6. down        podman-compose down -v, and a check that no container, volume or network of the project is
#                  left (always, also after a failure; the logs of every container are printed on failure).
# The last suite of scripts/test (so of CI). Measured on a fresh machine of CI's kind (2 cores, two other jobs
# running): tools 27 s, stand-ins 139 s, images 840 s (transcriber ~480 s of it, 7.8 GB; the others 0.5-1.2 GB on a
# 375 MB base), up 15 s, ready through Traefik 136 s, smoke ~100 s: ~20 min; ~5 min when the images are built.
# Build from a clean checkout (CI's fresh clone): images built from a tree others are editing can mix two versions
# of libs/common and a service.
# Environment: KEEP_UP=1 leaves the stack running (for a look by hand); SKIP_BUILD=1 uses the images present.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
ROOT="$PWD"
export CONTAINERS_CONF="$ROOT/deploy/ci/containers.conf"
PROJECT=therascript-ci
declare -a phases=() durations=()

phase() {
  local name="$1" start=$SECONDS rc=0
  shift
  printf '\n######## compose-smoke: %s\n' "$name"
  "$@" || rc=$?
  phases+=("$name"); durations+=($((SECONDS - start)))
  return $rc
}

tools() {
  local missing=()
  for pkg in podman buildah runc mmdebstrap iptables uidmap netavark aardvark-dns; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  [ -x var/ci/tools/bin/podman-compose ] || {
    python3.11 -m venv var/ci/tools
    var/ci/tools/bin/pip install --quiet --disable-pip-version-check podman-compose==1.6.0
  }
  podman --version
  var/ci/tools/bin/podman-compose --version | head -1
}

compose() {
  var/ci/tools/bin/podman-compose -p "$PROJECT" -f deploy/compose.yml -f deploy/ci/compose.ci.yml "$@"
}

down() {
  if [ "${KEEP_UP:-0}" = 1 ]; then echo "KEEP_UP=1: left running (project $PROJECT)"; return; fi
  compose down -v --timeout 20 >/dev/null 2>&1 || true
  local left
  left="$(podman ps -a --filter "label=io.podman.compose.project=$PROJECT" -q)$(podman volume ls -q \
    --filter "label=io.podman.compose.project=$PROJECT")$(podman network ls -q --filter "label=io.podman.compose.project=$PROJECT")"
  if [ -n "$left" ]; then echo "compose-smoke: left behind: $left"; return 1; fi
  echo "compose-smoke: nothing left behind"
}

logs_on_failure() {
  for name in $(podman ps -a --filter "label=io.podman.compose.project=$PROJECT" --format '{{.Names}}'); do
    printf '\n--- logs of %s (last 40 lines)\n' "$name"
    podman logs --tail 40 "$name" 2>&1 || true
  done
}

report() {
  printf '\n######## compose-smoke timings\n'
  for i in "${!phases[@]}"; do printf '%-12s %6d s\n' "${phases[$i]}" "${durations[$i]}"; done
  podman images --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep -E 'therascript/' | sort || true
}

phase tools tools
phase stand-ins deploy/ci/local-images.sh
if [ "${SKIP_BUILD:-0}" != 1 ]; then
  phase images env LOG_DIR="$(mktemp -d)" deploy/ci/build-images.sh
fi

THERASCRIPT_API_TOKEN="$(python3 -c 'import secrets; print(secrets.token_urlsafe(24))')"
THERASCRIPT_HTTP_PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
THERASCRIPT_HTTP_BIND=127.0.0.1
export THERASCRIPT_API_TOKEN THERASCRIPT_HTTP_PORT THERASCRIPT_HTTP_BIND

rc=0
trap 'down; report' EXIT
phase up compose up -d || rc=$?
if [ $rc -eq 0 ]; then
  # --token=VALUE, not "--token VALUE": one token in 64 starts with "-" and argparse then reads it as an option
  phase smoke .venv/bin/python deploy/ci/smoke.py --base-url "http://127.0.0.1:$THERASCRIPT_HTTP_PORT/api" \
    --token="$THERASCRIPT_API_TOKEN" || rc=$?
fi
if [ $rc -ne 0 ]; then
  logs_on_failure
  echo "compose-smoke: FAILED"
  exit $rc
fi
echo "compose-smoke: passed"
