"""Test helper for other services: a real llm-manager gRPC server in-process, packaged model loaded.

    from therascript_llm_manager.testing import start_llm_manager

    target, stop = start_llm_manager(tmp_path)      # "127.0.0.1:PORT", model loaded
    channel = grpc.insecure_channel(target)
    ...
    stop()

The model store, database and runtime log live under `tmp_path`. Keyword arguments override
LlmManagerSettings fields (e.g. `default_context_size=4096`). Start-up takes about 1-2 s (it copies
or hard-links the 98 MB packaged GGUF and starts the llama.cpp child process).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from therascript_common.admin import admin_registration
from therascript_common.grpc_server import build_server

from .models import LoadState
from .server import LlmManager, build, grpc_registration
from .settings import LlmManagerSettings


def start_llm_manager(tmp_path: Path, wait_loaded: bool = True, **overrides: object
                      ) -> tuple[str, Callable[[], None]]:
    """Starts llm-manager on a free loopback port; returns (target "host:port", stop()).

    With `wait_loaded` (default) it returns only once the packaged model is loaded, and raises
    RuntimeError if it failed to load."""
    target, stop, _ = start_llm_manager_with_parts(tmp_path, wait_loaded, **overrides)
    return target, stop


def start_llm_manager_with_parts(tmp_path: Path, wait_loaded: bool = True, **overrides: object
                                 ) -> tuple[str, Callable[[], None], LlmManager]:
    """As start_llm_manager, also returning the LlmManager (store, models, pulls) for white-box tests."""
    values = {"data_dir": Path(tmp_path), "grpc_host": "127.0.0.1", "grpc_port": 0, "grpc_workers": 8}
    values.update(overrides)
    settings = LlmManagerSettings(**values)  # type: ignore[arg-type]
    manager = build(settings)
    server, _, port = build_server([grpc_registration(manager.servicer), admin_registration(manager.admin)],
                                   "127.0.0.1:0", settings.grpc_workers)
    server.start()

    def stop() -> None:
        server.stop(0).wait()
        manager.close()

    if wait_loaded:
        snap = manager.models.wait_until_settled(settings.load_timeout_s)
        if snap.state is not LoadState.LOADED:
            stop()
            raise RuntimeError(f"llm-manager did not load its model: {snap.error}")
    return f"127.0.0.1:{port}", stop, manager
