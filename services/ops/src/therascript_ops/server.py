"""Wires the ops gRPC server. Its RPCs answer UNIMPLEMENTED (the generated base class) until the
ops issue builds them; the server already answers grpc.health.v1."""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import SettingsConfigDict

from therascript.ops.v1 import ops_pb2, ops_pb2_grpc
from therascript_common.grpc_server import registration, run
from therascript_common.settings import ServiceSettings


class OpsSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="OPS_", extra="ignore")
    grpc_port: int = 50055
    data_dir: Path = Path("var/ops")


def main() -> None:
    servicer = ops_pb2_grpc.OpsServiceServicer()
    run("ops", OpsSettings(), [registration(ops_pb2, ops_pb2_grpc, "OpsService", servicer)])


if __name__ == "__main__":
    main()
