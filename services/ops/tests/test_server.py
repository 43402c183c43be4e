"""The ops deployable as it stands before the ops issue: it starts, answers grpc.health.v1, says
UNIMPLEMENTED for its RPCs (the gateway's 501) and stops cleanly on SIGTERM."""

from __future__ import annotations

import grpc
import pytest
from grpc_process import grpc_service_process

from therascript.ops.v1 import ops_pb2, ops_pb2_grpc


def test_starts_answers_unimplemented_and_stops_cleanly(tmp_path):
    with grpc_service_process("therascript-ops", "OPS_", tmp_path) as (target, process):
        stub = ops_pb2_grpc.OpsServiceStub(grpc.insecure_channel(target))
        with pytest.raises(grpc.RpcError) as error:
            stub.GetGpuStats(ops_pb2.Empty(), timeout=5)
        assert error.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert process.returncode == 0
