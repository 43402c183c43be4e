"""The analysis deployable (console script `therascript-analysis`): it migrates its own database, answers
grpc.health.v1 and its RPCs, and stops cleanly on SIGTERM."""

from __future__ import annotations

import grpc
from grpc_process import grpc_service_process

from therascript.analysis.v1 import analysis_pb2, analysis_pb2_grpc


def test_starts_answers_and_stops_cleanly(tmp_path, redis_url):
    env = {"ANALYSIS_REDIS_URL": redis_url}
    with grpc_service_process("therascript-analysis", "ANALYSIS_", tmp_path, env) as (target, process):
        stub = analysis_pb2_grpc.AnalysisServiceStub(grpc.insecure_channel(target))
        assert list(stub.ListJobs(analysis_pb2.ListJobsRequest(), timeout=5).jobs) == []
        assert stub.GetActiveJobCount(analysis_pb2.GetActiveJobCountRequest(), timeout=5).analysis == 0
        try:
            stub.GetJob(analysis_pb2.JobRef(job_id=1), timeout=5)
        except grpc.RpcError as error:
            assert error.code() == grpc.StatusCode.NOT_FOUND
        else:
            raise AssertionError("GetJob of an unknown job answered")
    assert process.returncode == 0
    assert (tmp_path / "analysis.sqlite").exists()
