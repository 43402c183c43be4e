"""llm-manager's Admin RPCs (proto/therascript/common/v1/admin.proto) over its own data: the usage records
(`usage_calls`, one row per finished Generate). The model store, the active-model settings, pull jobs and
digests describe this machine's downloaded models (a cache, not clinical data): they are neither exported
nor reset. `ListUsage` serves the LLM usage records to ops."""

from __future__ import annotations

import sqlalchemy as sa

from therascript.common.v1 import admin_pb2 as pb
from therascript_common.admin import AdminData, AdminServicer

from .db import UsageRepository, usage_calls
from .settings import LlmManagerSettings


def build_admin(settings: LlmManagerSettings, engine: sa.Engine) -> AdminServicer:
    data = AdminData(service="llm-manager", engine=engine, tables=[usage_calls],
                     staging_dir=settings.data_dir / ".admin-staging")
    usage = UsageRepository(engine)

    def list_usage(query: pb.UsageQuery) -> list[pb.UsageRecord]:
        calls = usage.list(query.start_ms if query.HasField("start_ms") else None,
                           query.end_ms if query.HasField("end_ms") else None)
        return [pb.UsageRecord(id=f"llm-{c.id}", type="llm", source=c.purpose, model=c.model,
                               prompt_tokens=c.prompt_tokens, completion_tokens=c.completion_tokens,
                               duration_s=c.duration_ms / 1000, timestamp_ms=c.finished_at_ms) for c in calls]

    return AdminServicer(data, list_usage=list_usage)
