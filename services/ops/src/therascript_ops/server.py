"""Wires the ops gRPC server: settings → the owners' channels → the domain modules → servicer. Ops owns no
business data (its data dir holds only import staging)."""

from __future__ import annotations

from dataclasses import dataclass

from therascript.ops.v1 import ops_pb2, ops_pb2_grpc
from therascript_common.grpc_server import registration, run

from .backup import Backups
from .containers import Containers
from .gpu import GpuStats
from .health import HealthChecker
from .owners import Owners
from .servicer import OpsServicer
from .settings import OpsSettings
from .usage import Usage


@dataclass
class OpsApp:
    settings: OpsSettings
    owners: Owners
    health: HealthChecker
    servicer: OpsServicer

    def close(self) -> None:
        self.health.close()
        self.owners.close()


def build(settings: OpsSettings) -> OpsApp:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    owners = Owners(settings)
    health = HealthChecker(owners, settings)
    servicer = OpsServicer(Backups(owners, settings), Containers(settings), GpuStats(settings.gpu_cache_s),
                           Usage(owners, settings.rpc_timeout_s), health)
    return OpsApp(settings, owners, health, servicer)


def registrations(app: OpsApp) -> list:
    return [registration(ops_pb2, ops_pb2_grpc, "OpsService", app.servicer)]


def main() -> None:
    app = build(OpsSettings())
    try:
        run("ops", app.settings, registrations(app))
    finally:
        app.close()


if __name__ == "__main__":
    main()
