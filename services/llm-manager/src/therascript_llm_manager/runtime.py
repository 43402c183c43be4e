"""The LLM runtime: a llama.cpp HTTP server (OpenAI-compatible) for one model, or a remote server.

Local runtimes run in a child process (runtime_child.py): xllamacpp's in-process server by default,
or the `llama-server` binary. A crash or kill of the child is observable (`alive()`, `exit_code()`)
and survivable: models.ActiveModel starts a new one on the next request.
"""

from __future__ import annotations

import json
import logging
import os
import select
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

import httpx

log = logging.getLogger(__name__)


class RuntimeStartError(RuntimeError):
    """The runtime could not be started (bad model file, out of memory, timeout)."""


@dataclass(frozen=True)
class LaunchSpec:
    """How to start a local runtime."""

    backend: str  # "xllamacpp" | "llama-server"
    model_path: str
    context_size: int  # tokens per slot (llama.cpp n_ctx = context_size * parallel_slots)
    parallel_slots: int
    n_gpu_layers: int  # -1 = all
    threads: int | None
    load_timeout_s: float
    binary: str | None = None  # llama-server path


class Runtime(Protocol):
    """What the rest of the service needs from a runtime."""

    kind: str
    base_url: str
    client: httpx.Client  # base_url and auth preset; no default timeout on streams

    def alive(self) -> bool: ...
    def exit_code(self) -> int | None: ...
    def stop(self) -> None: ...


def _client(base_url: str, headers: dict[str, str] | None = None) -> httpx.Client:
    return httpx.Client(base_url=base_url, headers=headers, timeout=httpx.Timeout(30.0, connect=5.0),
                        limits=httpx.Limits(max_connections=64, max_keepalive_connections=16,
                                            keepalive_expiry=2.0))  # < llama.cpp's 5 s idle close


class ChildProcessRuntime:
    """A llama.cpp server running in a child process of llm-manager."""

    def __init__(self, kind: str, process: subprocess.Popen, base_url: str) -> None:
        self.kind = kind
        self.process = process
        self.base_url = base_url
        self.client = _client(base_url)

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def exit_code(self) -> int | None:
        return self.process.poll()

    def stop(self, grace_s: float = 5.0) -> None:
        """Asks the child to exit (closes its stdin), then terminates and kills it if it lingers."""
        self.client.close()
        if self.process.stdin and not self.process.stdin.closed:
            self.process.stdin.close()
        for action in (None, self.process.terminate, self.process.kill):
            if action:
                action()
            try:
                self.process.wait(grace_s)
                break
            except subprocess.TimeoutExpired:
                continue
        if self.process.stdout:
            self.process.stdout.close()


def _read_ready_line(process: subprocess.Popen, timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    assert process.stdout is not None
    while time.monotonic() < deadline:
        ready, _, _ = select.select([process.stdout], [], [], 0.2)
        if ready:
            return process.stdout.readline().decode("utf-8", errors="replace").strip()
        if process.poll() is not None:
            return f"ERROR runtime exited with code {process.returncode} while loading"
    return f"ERROR model load timed out after {timeout_s:.0f} s"


def start_local(spec: LaunchSpec, log_path: Path) -> ChildProcessRuntime:
    """Starts a runtime child for `spec` and waits until it serves. Raises RuntimeStartError.

    llama.cpp's own log goes to `log_path` (truncated at each start)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "therascript_llm_manager.runtime_child", json.dumps(asdict(spec))],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log_file, env=os.environ.copy(),
        )
    line = _read_ready_line(process, spec.load_timeout_s)
    if not line.startswith("LISTENING "):
        ChildProcessRuntime(spec.backend, process, "http://127.0.0.1:0").stop(grace_s=2)
        raise RuntimeStartError(line.removeprefix("ERROR ").strip() or "runtime failed to start")
    runtime = ChildProcessRuntime(spec.backend, process, line.split(" ", 1)[1].rstrip("/"))
    log.info("runtime %s started (pid %d) at %s for %s", spec.backend, process.pid, runtime.base_url,
             Path(spec.model_path).name)
    return runtime


class RemoteRuntime:
    """An operator-configured OpenAI-compatible server; the bearer token stays inside this object."""

    kind = "remote"

    def __init__(self, base_url: str, token: str | None, model: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model  # the name sent in each request
        self.client = _client(self.base_url, {"Authorization": f"Bearer {token}"} if token else None)

    def alive(self) -> bool:
        return True

    def exit_code(self) -> int | None:
        return None

    def stop(self) -> None:
        self.client.close()


def healthy(runtime: Runtime) -> bool:
    """True when the runtime is alive and answers GET /health (or /v1/models for remote) with 200."""
    if not runtime.alive():
        return False
    try:
        path = "/v1/models" if runtime.kind == "remote" else "/health"
        return runtime.client.get(path, timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False
