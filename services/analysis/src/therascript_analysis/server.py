"""Wires the analysis gRPC server. Its RPCs answer UNIMPLEMENTED (the generated base class) until the
analysis issue builds them; the server already answers grpc.health.v1."""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import SettingsConfigDict

from therascript.analysis.v1 import analysis_pb2, analysis_pb2_grpc
from therascript_common.grpc_server import registration, run
from therascript_common.settings import ServiceSettings


class AnalysisSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="ANALYSIS_", extra="ignore")
    grpc_port: int = 50053
    data_dir: Path = Path("var/analysis")


def main() -> None:
    servicer = analysis_pb2_grpc.AnalysisServiceServicer()
    run("analysis", AnalysisSettings(), [registration(analysis_pb2, analysis_pb2_grpc, "AnalysisService", servicer)])


if __name__ == "__main__":
    main()
