"""A real system for the ops tests (fixtures in conftest.py), in this process: Redis (its own, append-only,
restartable), the real sessions, chat and llm-manager gRPC servers (each with its Admin servicer and its own
SQLite database and files), the analysis server (no worker),
the ops server, and the gateway app on top (FastAPI TestClient). No transcriber runs: uploaded sessions stay queued."""

from __future__ import annotations

import io
import math
import struct
import uuid
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from fastapi.testclient import TestClient
from servers import free_port, start_redis

from therascript_analysis.testing import RunningAnalysis, start_analysis
from therascript_chat.testing import RunningChatService, start_chat_service
from therascript_common.grpc_server import build_server
from therascript_gateway.app import create_app
from therascript_gateway.settings import GatewaySettings
from therascript_llm_manager.server import LlmManager
from therascript_llm_manager.testing import start_llm_manager_with_parts
from therascript_ops.server import OpsApp, build, registrations
from therascript_ops.settings import OpsSettings
from therascript_sessions.testing import RunningSessions, start_sessions


def wav_bytes(seconds: float, frequency: float = 440.0, rate: int = 16000) -> bytes:
    """A mono 16-bit PCM WAV of a sine tone."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        frames = int(seconds * rate)
        out.writeframes(b"".join(struct.pack("<h", int(12000 * math.sin(2 * math.pi * frequency * i / rate)))
                                 for i in range(frames)))
    return buffer.getvalue()


class RestartableRedis:
    """A redis-server on a fixed port with an append-only file, stopped and started again by tests."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = None
        self.start()

    def start(self) -> None:
        self.process, _ = start_redis(self.directory, self.port, appendonly=True)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


@dataclass
class Stack:
    root: Path
    redis: RestartableRedis
    sessions: RunningSessions
    chat: RunningChatService
    llm: LlmManager
    analysis: RunningAnalysis
    ops: OpsApp
    ops_target: str
    api: TestClient
    gateway_settings: GatewaySettings

    @property
    def uploads(self) -> Path:
        return self.sessions.app.settings.uploads_dir


def start_stack(root: Path, elasticsearch_url: str | None = None, **ops_overrides) -> Iterator[Stack]:
    """The stack in `root`. With `elasticsearch_url`, sessions and chat index into that server (indexes of their
    own, named after `root`) and ops checks it; without, their search goes to an unreachable address."""
    redis = RestartableRedis(root / "redis")
    search: dict[str, str] = {}
    if elasticsearch_url:
        search = {"elasticsearch_url": elasticsearch_url}
        ops_overrides.setdefault("elasticsearch_url", elasticsearch_url)
    tag = uuid.uuid4().hex[:10]
    sessions = start_sessions(root / "sessions", redis.url, reconcile_interval_s=3600,
                              elasticsearch_index=f"ops-test-{tag}-transcripts", **search)
    chat = start_chat_service(root / "chat", sessions_target=sessions.target,
                              elasticsearch_index=f"ops-test-{tag}-messages", **search)
    llm_target, stop_llm, llm = start_llm_manager_with_parts(root / "llm", wait_loaded=False,
                                                             install_packaged_model=False, load_on_start=False)
    analysis = start_analysis(root / "analysis", redis.url, sessions.target, llm_target, with_worker=False)
    analysis_port = analysis.target.rsplit(":", 1)[1]
    settings = OpsSettings(data_dir=root / "ops", grpc_port=0, sessions_target=sessions.target,
                           chat_target=chat.target, llm_target=llm_target,
                           analysis_target=f"127.0.0.1:{analysis_port}", redis_url=redis.url,
                           **{"docker_host": "unix://" + str(root / "no-docker.sock"), **ops_overrides})
    ops = build(settings)
    ops_server, _, ops_port = build_server(registrations(ops), "127.0.0.1:0")
    ops_server.start()
    gateway = GatewaySettings(sessions_target=sessions.target, chat_target=chat.target, llm_target=llm_target,
                              analysis_target=f"127.0.0.1:{analysis_port}", ops_target=f"127.0.0.1:{ops_port}",
                              grpc_timeout_s=30)
    try:
        with TestClient(create_app(gateway)) as api:
            yield Stack(root, redis, sessions, chat, llm, analysis, ops, f"127.0.0.1:{ops_port}", api, gateway)
    finally:
        ops_server.stop(0)
        ops.close()
        analysis.stop()
        stop_llm()
        chat.stop()
        sessions.stop()
        redis.stop()
