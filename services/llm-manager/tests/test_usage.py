"""Every finished Generate is recorded (purpose, model, tokens, duration) and served by Admin.ListUsage, with
its time filter. Real llama.cpp runtime with the packaged SmolLM2 model."""

from __future__ import annotations

import time

import grpc
from llm_fixtures import PACKAGED_NAME, Running, user

from therascript.common.v1 import admin_pb2, admin_pb2_grpc
from therascript.llm.v1 import llm_pb2


def test_each_generation_is_recorded_with_its_purpose(llm: Running) -> None:
    admin = admin_pb2_grpc.AdminStub(grpc.insecure_channel(llm.target))
    before = {r.id for r in admin.ListUsage(admin_pb2.UsageQuery(), timeout=10).records}
    started = int(time.time() * 1000)
    chunks = list(llm.stub.Generate(llm_pb2.GenerateRequest(messages=[user("Say hi.")], max_tokens=4, seed=1,
                                                            purpose="analysis_map"), timeout=60))
    usage = chunks[-1].usage
    records = [r for r in admin.ListUsage(admin_pb2.UsageQuery(start_ms=started), timeout=10).records
               if r.id not in before]
    assert len(records) == 1
    record = records[0]
    assert (record.type, record.source, record.model) == ("llm", "analysis_map", PACKAGED_NAME)
    assert (record.prompt_tokens, record.completion_tokens) == (usage.prompt_tokens, usage.completion_tokens)
    assert record.prompt_tokens > 0 and record.completion_tokens > 0
    assert abs(record.duration_s - usage.duration_ms / 1000) < 0.002
    assert started <= record.timestamp_ms <= int(time.time() * 1000)
    assert not admin.ListUsage(admin_pb2.UsageQuery(end_ms=started), timeout=10).records or all(
        r.timestamp_ms < started for r in admin.ListUsage(admin_pb2.UsageQuery(end_ms=started), timeout=10).records)
