"""A backend service started as its deployable process (its console script) on a free port, for tests
that check what a deployment sees: health, answers, and a clean stop on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from servers import free_port


@contextmanager
def grpc_service_process(script: str, env_prefix: str, data_dir: Path,
                         extra_env: dict[str, str] | None = None) -> Iterator[tuple[str, subprocess.Popen]]:
    """Runs `<venv>/bin/<script>` with `<PREFIX>GRPC_PORT`, `<PREFIX>DATA_DIR` and `extra_env` set; yields
    (target, process) once grpc.health.v1 answers SERVING (TimeoutError after 30 s); SIGTERM at the end."""
    port = free_port()
    env = {**os.environ, f"{env_prefix}GRPC_PORT": str(port), f"{env_prefix}DATA_DIR": str(data_dir),
           **(extra_env or {})}
    process = subprocess.Popen([str(Path(sys.executable).parent / script)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    target = f"127.0.0.1:{port}"
    try:
        _wait_serving(target, process)
        yield target, process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=20)


def _wait_serving(target: str, process: subprocess.Popen, timeout_s: float = 30.0) -> None:
    health = health_pb2_grpc.HealthStub(grpc.insecure_channel(target))
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the service exited with {process.returncode}: {process.stderr.read().decode()[-2000:]}")
        try:
            if health.Check(health_pb2.HealthCheckRequest(), timeout=1).status == health_pb2.HealthCheckResponse.SERVING:
                return
        except grpc.RpcError:
            time.sleep(0.2)
    raise TimeoutError(f"{target} not SERVING after {timeout_s} s")
