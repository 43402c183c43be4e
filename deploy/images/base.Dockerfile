# The one shared base of every Therascript image (build context: the repository root). Two targets, two tags:
#   docker build -f deploy/images/base.Dockerfile --target build   -t therascript/base-build:dev .
#   docker build -f deploy/images/base.Dockerfile --target runtime -t therascript/base-runtime:dev .
# (deploy/ci/build-images.sh and `docker compose build` via the compose `base-*` services do this first.)
# build:   a venv /opt/venv with the generated gRPC stubs (therascript-proto) and libs/common installed; a service's
#          Dockerfile adds only its own package. grpcio-tools lives in a separate venv that no runtime image copies.
# runtime: the slim Python, a non-root user (uid 10001), /data owned by it, the health probe, no compilers.
# No BuildKit-only syntax (heredocs, COPY --link): buildah 1.28 builds it too.
ARG PYTHON_IMAGE=docker.io/library/python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/tools && /opt/tools/bin/pip install grpcio-tools==1.85.1 "setuptools>=70.1" \
    && python -m venv /opt/venv && /opt/venv/bin/pip install "setuptools>=70.1"
COPY proto/ proto/
RUN /opt/tools/bin/python proto/generate.py
COPY libs/common/ libs/common/
RUN /opt/venv/bin/pip install --no-build-isolation ./proto ./libs/common

FROM ${PYTHON_IMAGE} AS runtime
RUN useradd --system --uid 10001 --user-group --create-home app && mkdir -p /data && chown app:app /data
COPY deploy/images/healthcheck.py /usr/local/bin/therascript-healthcheck
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 HF_HUB_OFFLINE=1
WORKDIR /home/app
