"""A backend service started as its deployable process (its console script) on a free port, for tests
that check what a deployment sees: health, answers, and a clean stop on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from servers import free_port


@contextmanager
def grpc_service_process(script: str, env_prefix: str, data_dir: Path,
                         extra_env: dict[str, str] | None = None) -> Iterator[tuple[str, subprocess.Popen]]:
    """Runs `<venv>/bin/<script>` with `<PREFIX>GRPC_PORT`, `<PREFIX>DATA_DIR` and `extra_env` set; yields
    (target, process) once grpc.health.v1 answers SERVING (TimeoutError after 30 s); SIGTERM at the end.
    Its stderr goes to a temporary file (its tail is in the error when it fails to start): a pipe nobody reads
    fills up after 64 KiB of log lines, and the service then blocks in its next log call (a long bench run
    with Elasticsearch unreachable did: one warning a second)."""
    port = free_port()
    env = {**os.environ, f"{env_prefix}GRPC_PORT": str(port), f"{env_prefix}DATA_DIR": str(data_dir),
           **(extra_env or {})}
    with tempfile.TemporaryFile() as stderr:
        process = subprocess.Popen([str(Path(sys.executable).parent / script)], env=env,
                                   stdout=subprocess.DEVNULL, stderr=stderr)
        target = f"127.0.0.1:{port}"
        try:
            _wait_serving(target, process, stderr)
            yield target, process
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=20)


def _wait_serving(target: str, process: subprocess.Popen, stderr: IO[bytes], timeout_s: float = 30.0) -> None:
    health = health_pb2_grpc.HealthStub(grpc.insecure_channel(target))
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            stderr.seek(0)
            raise RuntimeError(f"the service exited with {process.returncode}: {stderr.read().decode()[-2000:]}")
        try:
            if health.Check(health_pb2.HealthCheckRequest(), timeout=1).status == health_pb2.HealthCheckResponse.SERVING:
                return
        except grpc.RpcError:
            time.sleep(0.2)
    raise TimeoutError(f"{target} not SERVING after {timeout_s} s")
