"""The ops deployable: it starts as its console script, answers grpc.health.v1 and its RPCs (here: the GPU
reading, which on this machine has no NVIDIA device, and readiness with every owner down), and stops cleanly
on SIGTERM."""

from __future__ import annotations

import json

import grpc
from grpc_process import grpc_service_process

from therascript.ops.v1 import ops_pb2, ops_pb2_grpc

DOWN = "127.0.0.1:1"


def test_starts_answers_and_stops_cleanly(tmp_path):
    env = {f"OPS_{name}_TARGET": DOWN for name in ("SESSIONS", "CHAT", "ANALYSIS", "LLM")}
    env["OPS_REDIS_URL"] = "redis://127.0.0.1:1/0"
    with grpc_service_process("therascript-ops", "OPS_", tmp_path, env) as (target, process):
        stub = ops_pb2_grpc.OpsServiceStub(grpc.insecure_channel(target))
        gpu = json.loads(stub.GetGpuStats(ops_pb2.Empty(), timeout=10).json)
        assert set(gpu) >= {"available", "gpus", "summary", "systemMemory"}
        readiness = stub.GetReadiness(ops_pb2.Empty(), timeout=15)
        assert readiness.ready is False
        assert readiness.services["database"] == ops_pb2.COMPONENT_STATE_DISCONNECTED
        assert readiness.services["redis"] == ops_pb2.COMPONENT_STATE_DISCONNECTED
    assert process.returncode == 0
