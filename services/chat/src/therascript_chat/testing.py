"""Starts a real chat gRPC server for tests of this and other services (e.g. sessions, gateway).

    server = start_chat_service(tmp_path, sessions_target="127.0.0.1:1234", llm_target="127.0.0.1:5678")
    ... server.target ...
    server.stop()
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import grpc
from therascript_common.grpc_server import build_server

from .deps import ChatDeps
from .server import build_deps, registrations
from .settings import ChatSettings


@dataclass
class RunningChatService:
    """A started server: `target` is "127.0.0.1:<port>"; `deps` gives tests the same database and clients."""

    server: grpc.Server
    target: str
    deps: ChatDeps

    def stop(self) -> None:
        self.server.stop(grace=1).wait()
        self.deps.sessions.close()
        self.deps.llm.close()


def start_chat_service(data_dir: Path, sessions_target: str = "127.0.0.1:1", llm_target: str = "127.0.0.1:1",
                       database_url: str | None = None, **overrides: object) -> RunningChatService:
    """A chat server on a free loopback port with its database in `data_dir` (or at `database_url`).
    `overrides` are further ChatSettings fields (e.g. max_reply_tokens=64)."""
    settings = ChatSettings(data_dir=data_dir, sessions_target=sessions_target, llm_target=llm_target,
                            database_url=database_url, grpc_port=0, **overrides)
    deps = build_deps(settings)
    server, _, port = build_server(registrations(deps), "127.0.0.1:0", workers=8)
    server.start()
    return RunningChatService(server, f"127.0.0.1:{port}", deps)
