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


M_ARENA_MAX = -8  # glibc mallopt parameter


def limit_malloc_arenas(arenas: int = 2) -> None:
    """Caps glibc's malloc arenas before the gRPC threads start. With one arena per thread, the 1 MiB pieces
    that streams pass between threads left memory in many arenas: ops' RSS grew by ~150 MB during a 1 GB
    export, ~26 MB with two arenas (bench/export_import.py). No-op where libc is not glibc."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(M_ARENA_MAX, arenas)
    except (OSError, AttributeError):
        pass


def main() -> None:
    limit_malloc_arenas()
    app = build(OpsSettings())
    try:
        run("ops", app.settings, registrations(app))
    finally:
        app.close()


if __name__ == "__main__":
    main()
