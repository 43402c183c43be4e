#!/usr/bin/env bash
# Builds every Therascript image from its Dockerfile with podman (or docker: ENGINE=docker), base first:
#   therascript/base-build, therascript/base-runtime   deploy/images/base.Dockerfile (the one shared base)
#   therascript/{gateway,sessions,transcriber,chat,analysis,llm-manager,ops}:$TAG
# Prints each image's build time, size and the disk left after it (the transcriber, ~7 GB, is built right after
# the base, while the least else is on disk: committing its one big layer needs about twice its size free).
# Environment: ENGINE (podman), TAG (dev), PULL (--pull=never: CI has no registry and uses the stand-ins of
# local-images.sh; set PULL= on a machine that can pull), SKIP_TRANSCRIBER=1 (skip the torch image, several GB).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
ENGINE="${ENGINE:-podman}"
TAG="${TAG:-dev}"
PULL="${PULL---pull=never}"
export CONTAINERS_CONF="${CONTAINERS_CONF:-$PWD/deploy/ci/containers.conf}"

# build IMAGE DOCKERFILE [TARGET]: one image, timed.
build() {
  local image="$1" file="$2" target="${3:-}" start=$SECONDS
  local args=(build $PULL --network=host -f "$file" -t "$image" --build-arg "BASE_BUILD=therascript/base-build:$TAG"
              --build-arg "BASE_RUNTIME=therascript/base-runtime:$TAG")
  [ -n "$target" ] && args+=(--target "$target")
  [ "$ENGINE" = podman ] && args+=(--format docker)   # OCI image config has no HEALTHCHECK: podman drops it
  printf '[build-images] %-34s ' "$image"
  if ! nice "$ENGINE" "${args[@]}" . > "${LOG_DIR:-/tmp}/build-${image//[\/:]/_}.log" 2>&1; then
    echo "FAILED (log: ${LOG_DIR:-/tmp}/build-${image//[\/:]/_}.log)"
    tail -20 "${LOG_DIR:-/tmp}/build-${image//[\/:]/_}.log"
    return 1
  fi
  printf '%5d s  %6s  (disk free: %s)\n' $((SECONDS - start)) \
    "$("$ENGINE" image inspect --format '{{.Size}}' "$image" | numfmt --to=iec)" "$(df -h --output=avail . | tail -1 | tr -d ' ')"
}

total=$SECONDS
build "therascript/base-build:$TAG" deploy/images/base.Dockerfile build
build "therascript/base-runtime:$TAG" deploy/images/base.Dockerfile runtime
if [ "${SKIP_TRANSCRIBER:-0}" != 1 ]; then
  build "therascript/transcriber:$TAG" services/sessions/Dockerfile transcriber
fi
build "therascript/gateway:$TAG" services/gateway/Dockerfile
build "therascript/sessions:$TAG" services/sessions/Dockerfile sessions
build "therascript/chat:$TAG" services/chat/Dockerfile
build "therascript/analysis:$TAG" services/analysis/Dockerfile
build "therascript/llm-manager:$TAG" services/llm-manager/Dockerfile
build "therascript/ops:$TAG" services/ops/Dockerfile
echo "[build-images] all built in $((SECONDS - total)) s"
