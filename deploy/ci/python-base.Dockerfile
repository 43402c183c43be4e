# CI only: a stand-in for docker.io/library/python:3.11-slim-bookworm (no registry is reachable), from the
# Debian bookworm minbase that local-images.sh makes with mmdebstrap. Python 3.11 (Debian's) in a venv at
# /usr/local, so `python`, `pip` are on PATH as in the official image. The host's CA bundle is trusted (pip would
# fail with CERTIFICATE_VERIFY_FAILED behind the host's TLS-inspecting egress otherwise).
FROM localhost/therascript-ci/bookworm-minbase:latest
COPY host-ca/ /usr/local/share/ca-certificates/
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
# The official image ships Python's C headers (a C extension without a wheel compiles against them): so do we.
# (Debian's package also brings the static libpython, which the official image does not have: removed.)
RUN apt-get update && apt-get install -y --no-install-recommends libpython3.11-dev && rm -rf /var/lib/apt/lists/* \
    && rm -f /usr/lib/python3.11/config-3.11-x86_64-linux-gnu/*.a /usr/lib/x86_64-linux-gnu/libpython3.11*.a \
    && python3 -m venv /usr/local && ln -sf /usr/local/bin/python3 /usr/local/bin/python
ENV LANG=C.UTF-8 PIP_CERT=/etc/ssl/certs/ca-certificates.crt SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
CMD ["python3"]
