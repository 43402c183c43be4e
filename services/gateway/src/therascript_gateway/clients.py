"""gRPC stubs of the backend services, created once per process and injected into routes."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import grpc
from fastapi import Request
from grpc_health.v1 import health_pb2_grpc

from therascript.analysis.v1 import analysis_pb2_grpc
from therascript.chat.v1 import chat_pb2_grpc
from therascript.llm.v1 import llm_pb2_grpc
from therascript.ops.v1 import ops_pb2_grpc
from therascript.sessions.v1 import sessions_pb2_grpc
from therascript_common.grpc_client import aio_channel

from .settings import GatewaySettings

log = logging.getLogger(__name__)


@dataclass
class ServiceClients:
    """One channel and stub per backend service. Every call has a deadline (grpc_client)."""

    channels: dict[str, grpc.aio.Channel]
    sessions: sessions_pb2_grpc.SessionsServiceStub
    chat: chat_pb2_grpc.ChatServiceStub
    analysis: analysis_pb2_grpc.AnalysisServiceStub
    llm: llm_pb2_grpc.LlmManagerServiceStub
    ops: ops_pb2_grpc.OpsServiceStub

    @classmethod
    def connect(cls, settings: GatewaySettings) -> "ServiceClients":
        targets = {
            "sessions": settings.sessions_target,
            "chat": settings.chat_target,
            "analysis": settings.analysis_target,
            "llm": settings.llm_target,
            "ops": settings.ops_target,
        }
        channels = {name: aio_channel(target, settings.grpc_timeout_s) for name, target in targets.items()}
        return cls(
            channels=channels,
            sessions=sessions_pb2_grpc.SessionsServiceStub(channels["sessions"]),
            chat=chat_pb2_grpc.ChatServiceStub(channels["chat"]),
            analysis=analysis_pb2_grpc.AnalysisServiceStub(channels["analysis"]),
            llm=llm_pb2_grpc.LlmManagerServiceStub(channels["llm"]),
            ops=ops_pb2_grpc.OpsServiceStub(channels["ops"]),
        )

    def health_stub(self, service: str) -> health_pb2_grpc.HealthStub:
        return health_pb2_grpc.HealthStub(self.channels[service])

    async def close(self) -> None:
        for channel in self.channels.values():
            await channel.close()


# Both dependencies are `async def` so FastAPI calls them on the event loop: a plain `def` dependency is run in the
# thread pool, a thread hop on every request for one attribute read.
async def get_clients(request: Request) -> ServiceClients:
    """FastAPI dependency: the process's ServiceClients (tests build the app with their own)."""
    return request.app.state.clients


async def get_settings(request: Request) -> GatewaySettings:
    return request.app.state.settings


async def optional_call(call, default, what: str):
    """Awaits `call`; when its service is not built yet (UNIMPLEMENTED) or down (UNAVAILABLE), logs it and
    returns `default`, so a composed answer (a session with its chats, job counts) still comes back.
    Any other error propagates."""
    try:
        return await call
    except grpc.aio.AioRpcError as error:
        if error.code() not in (grpc.StatusCode.UNIMPLEMENTED, grpc.StatusCode.UNAVAILABLE):
            raise
        log.warning("%s unavailable (%s); answering without it", what, error.code().name)
        return default
