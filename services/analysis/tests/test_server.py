"""The analysis deployable as it stands before the analysis issue: it starts, answers grpc.health.v1,
says UNIMPLEMENTED for its RPCs (the gateway's 501) and stops cleanly on SIGTERM."""

from __future__ import annotations

import grpc
import pytest
from grpc_process import grpc_service_process

from therascript.analysis.v1 import analysis_pb2, analysis_pb2_grpc


def test_starts_answers_unimplemented_and_stops_cleanly(tmp_path):
    with grpc_service_process("therascript-analysis", "ANALYSIS_", tmp_path) as (target, process):
        stub = analysis_pb2_grpc.AnalysisServiceStub(grpc.insecure_channel(target))
        with pytest.raises(grpc.RpcError) as error:
            stub.ListJobs(analysis_pb2.ListJobsRequest(), timeout=5)
        assert error.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert process.returncode == 0
