"""Usage figures (original §1.14) from the owners' records (Admin.ListUsage): LLM calls recorded by
llm-manager at its one door (Generate: model, prompt/completion tokens, duration, purpose) and transcriptions
from sessions' job rows (audio seconds, wall seconds, model, device). Costs are estimates for comparison with
hosted services, in USD: LLM per 1M tokens, Whisper per audio minute (the original's defaults).

Shapes:
- history(weeks): `{weeks: [{weekStart, weekEnd (epoch ms; ISO weeks, Monday 00:00 UTC), llm: {totalPromptTokens,
  totalCompletionTokens, estimatedCost, callCount}, whisper: {totalDuration (audio s), estimatedCost, callCount},
  totalCost}] (oldest first), pricing: {llm: {<model>: {promptCostPer1M, completionCostPer1M}},
  whisper: {<model>: {costPerMinute}}}}`
- stats(): `{llm: {totalPromptTokens, totalCompletionTokens, estimatedCost, callCount, callsByModel, callsBySource},
  whisper: {totalDuration, estimatedCost, callCount, callsByModel}, totalEstimatedCost}`
- logs(...): `{items: [{id, type, source, model, promptTokens|null, completionTokens|null, duration|null (s),
  wallSeconds|null, device|null, timestamp (ms), estimatedCost}], total, limit, offset}` newest first.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc

from therascript.common.v1 import admin_pb2

from .owners import Owners, owner_error

log = logging.getLogger(__name__)

LLM_PROMPT_PER_1M = 0.15
LLM_COMPLETION_PER_1M = 0.60
WHISPER_PER_MINUTE = 0.011
WEEK_MS = 7 * 24 * 3600 * 1000
USAGE_OWNERS = ("llm-manager", "sessions")


def _cost(record: admin_pb2.UsageRecord) -> float:
    if record.type == "whisper":
        return (record.duration_s or 0) / 60 * WHISPER_PER_MINUTE
    return (record.prompt_tokens * LLM_PROMPT_PER_1M + record.completion_tokens * LLM_COMPLETION_PER_1M) / 1e6


def week_start_ms(moment: datetime) -> int:
    monday = (moment - timedelta(days=moment.weekday())).replace(hour=0, minute=0, second=0, microsecond=0)
    return int(monday.timestamp() * 1000)


class Usage:
    def __init__(self, owners: Owners, timeout_s: float) -> None:
        self._owners = owners
        self._timeout_s = timeout_s

    def records(self, start_ms: int | None = None, end_ms: int | None = None) -> list[admin_pb2.UsageRecord]:
        """Every owner's records in [start_ms, end_ms), newest first. An owner that is down raises (503);
        one without the Admin contract contributes nothing."""
        query = admin_pb2.UsageQuery(start_ms=start_ms, end_ms=end_ms)
        found: list[admin_pb2.UsageRecord] = []
        for name in USAGE_OWNERS:
            try:
                found.extend(self._owners.by_name[name].admin.ListUsage(query, timeout=self._timeout_s).records)
            except grpc.RpcError as error:
                if error.code() == grpc.StatusCode.UNIMPLEMENTED:
                    continue
                raise owner_error(name, error) from None
        found.sort(key=lambda r: (r.timestamp_ms, r.id), reverse=True)
        return found

    def history(self, weeks: int, now: datetime | None = None) -> dict[str, Any]:
        weeks = max(1, min(52, weeks or 12))
        current = week_start_ms(now or datetime.now(UTC))
        first = current - (weeks - 1) * WEEK_MS
        buckets: list[dict[str, Any]] = [{"weekStart": first + i * WEEK_MS, "weekEnd": first + (i + 1) * WEEK_MS - 1,
                    "llm": {"totalPromptTokens": 0, "totalCompletionTokens": 0, "estimatedCost": 0.0, "callCount": 0},
                    "whisper": {"totalDuration": 0.0, "estimatedCost": 0.0, "callCount": 0}, "totalCost": 0.0}
                   for i in range(weeks)]
        records = self.records(first, current + WEEK_MS)
        for record in records:
            bucket = buckets[(record.timestamp_ms - first) // WEEK_MS]
            cost = _cost(record)
            if record.type == "whisper":
                bucket["whisper"]["totalDuration"] += record.duration_s or 0
                bucket["whisper"]["estimatedCost"] += cost
                bucket["whisper"]["callCount"] += 1
            else:
                bucket["llm"]["totalPromptTokens"] += record.prompt_tokens
                bucket["llm"]["totalCompletionTokens"] += record.completion_tokens
                bucket["llm"]["estimatedCost"] += cost
                bucket["llm"]["callCount"] += 1
            bucket["totalCost"] += cost
        for bucket in buckets:
            for key in ("llm", "whisper"):
                bucket[key]["estimatedCost"] = round(bucket[key]["estimatedCost"], 6)
            bucket["whisper"]["totalDuration"] = round(bucket["whisper"]["totalDuration"], 3)
            bucket["totalCost"] = round(bucket["totalCost"], 6)
        return {"weeks": buckets, "pricing": self._pricing(records)}

    @staticmethod
    def _pricing(records: list[admin_pb2.UsageRecord]) -> dict[str, Any]:
        llm_models = sorted({r.model for r in records if r.type == "llm"})
        whisper_models = sorted({r.model for r in records if r.type == "whisper"})
        return {"llm": {m: {"promptCostPer1M": LLM_PROMPT_PER_1M, "completionCostPer1M": LLM_COMPLETION_PER_1M}
                        for m in llm_models or ["default"]},
                "whisper": {m: {"costPerMinute": WHISPER_PER_MINUTE} for m in whisper_models or ["default"]}}

    def stats(self) -> dict[str, Any]:
        records = self.records()
        llm = [r for r in records if r.type == "llm"]
        whisper = [r for r in records if r.type == "whisper"]
        llm_cost = sum(_cost(r) for r in llm)
        whisper_cost = sum(_cost(r) for r in whisper)
        return {
            "llm": {"totalPromptTokens": sum(r.prompt_tokens for r in llm),
                    "totalCompletionTokens": sum(r.completion_tokens for r in llm),
                    "estimatedCost": round(llm_cost, 6), "callCount": len(llm),
                    "callsByModel": dict(Counter(r.model for r in llm)),
                    "callsBySource": dict(Counter(r.source for r in llm))},
            "whisper": {"totalDuration": round(sum(r.duration_s or 0 for r in whisper), 3),
                        "estimatedCost": round(whisper_cost, 6), "callCount": len(whisper),
                        "callsByModel": dict(Counter(r.model for r in whisper))},
            "totalEstimatedCost": round(llm_cost + whisper_cost, 6),
        }

    def logs(self, start_ms: int | None, end_ms: int | None, kind: str | None, model: str | None,
             source: str | None, limit: int, offset: int) -> dict[str, Any]:
        limit = max(1, min(200, limit or 50))
        offset = max(0, offset)
        records = [r for r in self.records(start_ms, end_ms)
                   if (not kind or r.type == kind) and (not model or r.model == model)
                   and (not source or r.source == source)]
        page = records[offset:offset + limit]
        items = [{"id": r.id, "type": r.type, "source": r.source, "model": r.model,
                  "promptTokens": r.prompt_tokens if r.HasField("prompt_tokens") else None,
                  "completionTokens": r.completion_tokens if r.HasField("completion_tokens") else None,
                  "duration": r.duration_s if r.HasField("duration_s") else None,
                  "wallSeconds": r.wall_s if r.HasField("wall_s") else None,
                  "device": r.device or None, "timestamp": r.timestamp_ms, "estimatedCost": round(_cost(r), 6)}
                 for r in page]
        return {"items": items, "total": len(records), "limit": limit, "offset": offset}
