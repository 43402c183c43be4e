#!/usr/bin/env python3
"""Container health probe of every Therascript image (HEALTHCHECK, compose healthcheck, k8s exec probes).

    therascript-healthcheck grpc PORT              grpc.health.v1 Check("") on 127.0.0.1:PORT is SERVING
    therascript-healthcheck http URL               GET URL answers 2xx
    therascript-healthcheck rq-worker QUEUE ENV    an RQ worker of this host is registered on QUEUE in the Redis at
                                                   $ENV (e.g. SESSIONS_REDIS_URL)

Exit 0 healthy, 1 not (the reason on stderr). Timeouts 3 s. Runs with the image's /opt/venv Python.
"""

from __future__ import annotations

import os
import socket
import sys
import urllib.request


def grpc_ok(port: str) -> str | None:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=3)
    return None if reply.status == health_pb2.HealthCheckResponse.SERVING else f"status {reply.status}"


def http_ok(url: str) -> str | None:
    with urllib.request.urlopen(url, timeout=3) as reply:
        return None if 200 <= reply.status < 300 else f"HTTP {reply.status}"


def rq_worker_ok(queue: str, env: str) -> str | None:
    import redis

    client = redis.Redis.from_url(os.environ[env], socket_timeout=3)
    host = socket.gethostname().encode()
    workers = client.smembers(f"rq:workers:{queue}")
    return None if any(client.hget(key, "hostname") == host for key in workers) else f"no worker on {queue!r}"


def main(argv: list[str]) -> int:
    checks = {"grpc": grpc_ok, "http": http_ok, "rq-worker": rq_worker_ok}
    if not argv or argv[0] not in checks:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        problem = checks[argv[0]](*argv[1:])
    except Exception as error:  # any failure to probe is "unhealthy", said on stderr
        problem = f"{type(error).__name__}: {error}"
    if problem:
        print(f"unhealthy: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
