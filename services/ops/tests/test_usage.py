"""Usage figures through the gateway (original §1.14 shapes) from the owners' records: LLM calls as
llm-manager's Generate records them (UsageRepository.record, its recording call; test_usage.py of llm-manager
drives a real generation) and transcriptions from sessions' completed job rows (audio s, wall s, device)."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from therascript_llm_manager.db import UsageRepository
from therascript_ops.usage import week_start_ms
from therascript_sessions.storage.tables import TranscriptionJobRow
from therascript_sessions.testing import seed_completed_session

WEEK_MS = 7 * 24 * 3600 * 1000


def test_history_stats_and_paged_filtered_logs(stack):
    now = int(time.time() * 1000)
    last_week = now - WEEK_MS
    calls = UsageRepository(stack.llm.admin.data.engine)
    calls.record("session_chat", "smollm2.gguf", 1000, 200, 1500, now - 1000)
    calls.record("standalone_chat", "smollm2.gguf", 500, 100, 700, now - 2000)
    calls.record("analysis_map", "other.gguf", 2_000_000, 1_000_000, 9000, last_week)
    session_id = seed_completed_session(stack.sessions.app, [(None, "hello")])
    with stack.sessions.app.db.transaction() as tx:
        tx.add(TranscriptionJobRow(id="job-usage-1", session_id=session_id, status="completed", attempt=1,
                                   num_speakers=1, progress=100.0, duration_s=120.0, device="cpu",
                                   stage_seconds={"asr": 10.0, "diarization": 2.5}, created_at_ms=now - 20_000,
                                   updated_at_ms=now - 3000))
        tx.add(TranscriptionJobRow(id="job-usage-2", session_id=session_id, status="queued", attempt=1,
                                   num_speakers=1, created_at_ms=now, updated_at_ms=now))   # not finished: no usage

    stats = stack.api.get("/api/usage/stats").json()
    assert stats["llm"]["callCount"] == 3
    assert stats["llm"]["totalPromptTokens"] == 2_001_500 and stats["llm"]["totalCompletionTokens"] == 1_000_300
    assert stats["llm"]["callsByModel"] == {"smollm2.gguf": 2, "other.gguf": 1}
    assert stats["llm"]["callsBySource"] == {"session_chat": 1, "standalone_chat": 1, "analysis_map": 1}
    assert stats["whisper"] == {"totalDuration": 120.0, "estimatedCost": 0.022, "callCount": 1,
                                "callsByModel": {"tiny.en": 1}}
    llm_cost = (2_001_500 * 0.15 + 1_000_300 * 0.60) / 1e6
    assert abs(stats["llm"]["estimatedCost"] - llm_cost) < 1e-6
    assert abs(stats["totalEstimatedCost"] - (llm_cost + 0.022)) < 1e-6

    history = stack.api.get("/api/usage/history", params={"weeks": 2}).json()
    weeks = history["weeks"]
    assert len(weeks) == 2 and weeks[1]["weekStart"] == week_start_ms(datetime.now(UTC))
    assert weeks[0]["weekEnd"] == weeks[1]["weekStart"] - 1
    assert datetime.fromtimestamp(weeks[1]["weekStart"] / 1000, UTC).weekday() == 0     # ISO weeks: Monday
    assert weeks[1]["llm"]["callCount"] == 2 and weeks[1]["whisper"]["callCount"] == 1
    assert weeks[0]["llm"]["callCount"] == 1 and weeks[0]["llm"]["totalPromptTokens"] == 2_000_000
    assert set(history["pricing"]["llm"]) == {"smollm2.gguf", "other.gguf"}
    assert history["pricing"]["whisper"] == {"tiny.en": {"costPerMinute": 0.011}}

    page = stack.api.get("/api/usage/logs", params={"limit": 2}).json()
    assert page["total"] == 4 and page["limit"] == 2 and page["offset"] == 0 and len(page["items"]) == 2
    assert [i["timestamp"] for i in page["items"]] == sorted([i["timestamp"] for i in page["items"]], reverse=True)
    rest = stack.api.get("/api/usage/logs", params={"limit": 2, "offset": 2}).json()["items"]
    assert {i["id"] for i in page["items"]}.isdisjoint({i["id"] for i in rest}) and len(rest) == 2
    whisper = stack.api.get("/api/usage/logs", params={"type": "whisper"}).json()["items"]
    assert whisper == [{"id": "whisper-job-usage-1", "type": "whisper", "source": "whisper_transcription",
                        "model": "tiny.en", "promptTokens": None, "completionTokens": None, "duration": 120.0,
                        "wallSeconds": 12.5, "device": "cpu", "timestamp": now - 3000, "estimatedCost": 0.022}]
    by_source = stack.api.get("/api/usage/logs", params={"source": "standalone_chat"}).json()
    assert by_source["total"] == 1 and by_source["items"][0]["promptTokens"] == 500
    assert stack.api.get("/api/usage/logs", params={"model": "other.gguf"}).json()["total"] == 1
    window = stack.api.get("/api/usage/logs", params={"start": now - 2500, "end": now}).json()
    assert {i["id"] for i in window["items"]} == {i["id"] for i in page["items"]}
    assert stack.api.get("/api/usage/logs", params={"limit": 1000}).json()["limit"] == 200
    assert stack.api.get("/api/usage/logs", params={"start": -1}).status_code == 400
    assert stack.api.get("/api/usage/logs", params={"type": "gpu"}).status_code == 400
