"""Fixtures of the analysis tests: a real llm-manager (packaged SmolLM2 loaded), a real sessions service with
seeded transcripts, and real analysis services with their worker processes, on a real Redis."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

# When pytest's rootdir is this service, the repository's conftest.py is not loaded: take the shared real-server
# fixtures from tests/support directly.
sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tests" / "support"))
from servers import redis_url  # noqa: F401

from therascript_sessions.testing import RunningSessions, seed_completed_session, start_sessions


@dataclass
class Backends:
    """llm-manager and sessions, shared by the module's analysis instances."""

    llm_target: str
    sessions: RunningSessions

    def seed(self, name: str, date: str, paragraphs: list[tuple[str | None, str]]) -> int:
        return seed_completed_session(self.sessions.app, paragraphs, session_name=name, date=date)


@pytest.fixture(scope="module")
def backends(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[Backends]:  # noqa: F811
    from therascript_llm_manager.testing import start_llm_manager

    root = tmp_path_factory.mktemp("analysis-backends")
    llm_target, stop_llm = start_llm_manager(root / "llm", default_context_size=2048)
    sessions = start_sessions(root / "sessions", redis_url)
    try:
        yield Backends(llm_target, sessions)
    finally:
        sessions.stop()
        stop_llm()
