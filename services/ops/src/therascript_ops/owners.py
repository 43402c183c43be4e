"""The data-owning services ops talks to: their Admin stubs (proto/therascript/common/v1/admin.proto) and
grpc.health.v1 stubs. Ops owns no business data; every admin operation goes through these."""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from therascript.common.v1 import admin_pb2, admin_pb2_grpc
from therascript_common.errors import DomainError
from therascript_common.grpc_client import sync_channel

from .settings import OpsSettings

#: The owners in the order their data goes into (and comes out of) a backup.
OWNER_NAMES = ("sessions", "chat", "llm-manager", "analysis")


@dataclass
class Owner:
    name: str
    target: str
    channel: grpc.Channel
    admin: admin_pb2_grpc.AdminStub
    health: health_pb2_grpc.HealthStub

    def serving(self, timeout_s: float) -> tuple[bool, str]:
        """(SERVING?, why not) by grpc.health.v1 Check("")."""
        try:
            reply = self.health.Check(health_pb2.HealthCheckRequest(), timeout=timeout_s)
        except grpc.RpcError as error:
            return False, f"{self.name} ({self.target}): {error.code().name}"
        serving = reply.status == health_pb2.HealthCheckResponse.SERVING
        return serving, "" if serving else f"{self.name}: {health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)}"

    def describe(self, timeout_s: float) -> admin_pb2.AdminDescription | None:
        """The owner's description; None when it does not implement the Admin contract (yet).
        Other errors raise `owner_error`."""
        try:
            return self.admin.Describe(admin_pb2.AdminEmpty(), timeout=timeout_s)
        except grpc.RpcError as error:
            if error.code() == grpc.StatusCode.UNIMPLEMENTED:
                return None
            raise owner_error(self.name, error) from None


class Owners:
    """One channel per owning service, created once."""

    def __init__(self, settings: OpsSettings) -> None:
        targets = {"sessions": settings.sessions_target, "chat": settings.chat_target,
                   "llm-manager": settings.llm_target, "analysis": settings.analysis_target}
        self.by_name: dict[str, Owner] = {}
        for name in OWNER_NAMES:
            channel = sync_channel(targets[name], default_timeout_s=settings.rpc_timeout_s)
            self.by_name[name] = Owner(name, targets[name], channel, admin_pb2_grpc.AdminStub(channel),
                                       health_pb2_grpc.HealthStub(channel))

    def __iter__(self):
        return iter(self.by_name.values())

    def close(self) -> None:
        for owner in self:
            owner.channel.close()


def owner_error(service: str, error: grpc.RpcError) -> DomainError:
    """A DomainError with the owner's gRPC status and its message prefixed by the service name, so the
    gateway answers the owner's 4xx/503 as such."""
    code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
    details = error.details() if hasattr(error, "details") else str(error)
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        message = f"The {service} service is not reachable ({code.name})."
        code = grpc.StatusCode.UNAVAILABLE
    else:
        message = details if (details or "").startswith(f"{service}:") else f"{service}: {details}"
    domain = DomainError(message)
    domain.code = code
    return domain
