"""Starts a real chat gRPC server for tests of this and other services (e.g. sessions, gateway).

    server = start_chat_service(tmp_path, sessions_target="127.0.0.1:1234", llm_target="127.0.0.1:5678")
    ... server.target ...
    server.stop()
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc

from therascript_common.grpc_server import build_server

from .deps import ChatDeps
from .server import build_deps, registrations
from .settings import ChatSettings

if TYPE_CHECKING:  # test-only dependency, imported where used
    from therascript_sessions.testing import RunningSessions


@dataclass
class RunningChatService:
    """A started server: `target` is "127.0.0.1:<port>"; `deps` gives tests the same database and clients."""

    server: grpc.Server
    target: str
    deps: ChatDeps

    def stop(self) -> None:
        self.server.stop(grace=1).wait()
        if self.deps.search is not None:
            self.deps.search.stop()
        self.deps.sessions.close()
        self.deps.llm.close()


def start_chat_service(data_dir: Path, sessions_target: str = "127.0.0.1:1", llm_target: str = "127.0.0.1:1",
                       database_url: str | None = None, **overrides: Any) -> RunningChatService:
    """A chat server on a free loopback port with its database in `data_dir` (or at `database_url`).
    `overrides` are further ChatSettings fields (e.g. max_reply_tokens=64). Its message index goes nowhere (an
    unreachable Elasticsearch) unless `elasticsearch_url` is given: a test never writes into a developer's index."""
    overrides.setdefault("elasticsearch_url", "http://127.0.0.1:1")
    settings = ChatSettings(data_dir=data_dir, sessions_target=sessions_target, llm_target=llm_target,
                            database_url=database_url, grpc_port=0, **overrides)
    deps = build_deps(settings)
    if deps.search is not None:
        deps.search.start()
    server, _, port = build_server(registrations(deps), "127.0.0.1:0", workers=settings.grpc_workers)
    server.start()
    return RunningChatService(server, f"127.0.0.1:{port}", deps)


@dataclass
class ChatStack:
    """Real llm-manager (packaged SmolLM2, loaded), real sessions, and a chat server wired to both.

    `seed_session(paragraphs)` stores a completed session [(speaker, text)] and returns its id."""

    llm_target: str
    sessions: RunningSessions
    chat: RunningChatService
    _stop_llm: Callable[[], None]

    def seed_session(self, paragraphs: list[tuple[str | None, str]]) -> int:
        from therascript_sessions.testing import seed_completed_session  # test-only dependency

        return seed_completed_session(self.sessions.app, paragraphs)

    def stop(self) -> None:
        self.chat.stop()
        self.sessions.stop()
        self._stop_llm()


def start_chat_stack(data_dir: Path, redis_url: str, database_url: str | None = None, context_size: int = 2048,
                     **chat_overrides: object) -> ChatStack:
    """Starts the three real servers under `data_dir` (needs the llm-manager and sessions packages);
    llm-manager loads its packaged model with a `context_size`-token window."""
    from therascript_llm_manager.testing import start_llm_manager  # test-only dependencies
    from therascript_sessions.testing import start_sessions

    llm_target, stop_llm = start_llm_manager(data_dir / "llm", default_context_size=context_size)
    sessions = start_sessions(data_dir / "sessions", redis_url)
    chat = start_chat_service(data_dir / "chat", sessions.target, llm_target, database_url, **chat_overrides)
    return ChatStack(llm_target, sessions, chat, stop_llm)
