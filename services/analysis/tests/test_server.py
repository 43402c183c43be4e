"""The analysis deployable (console script `therascript-analysis`): it migrates its own database, answers
grpc.health.v1, its RPCs and the Admin RPCs (ops' backup/reset), and stops cleanly on SIGTERM."""

from __future__ import annotations

import grpc
from grpc_process import grpc_service_process

from therascript.analysis.v1 import analysis_pb2, analysis_pb2_grpc
from therascript.common.v1 import admin_pb2, admin_pb2_grpc


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
        admin = admin_pb2_grpc.AdminStub(grpc.insecure_channel(target)).Describe(admin_pb2.AdminEmpty(), timeout=5)
        assert admin.service == "analysis" and admin.schema_version == "0001"
        assert admin.counts["analysis_jobs"] == 0
    assert process.returncode == 0
    assert (tmp_path / "analysis.sqlite").exists()
