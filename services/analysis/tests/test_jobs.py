"""Analysis jobs end to end on real components: llm-manager running the packaged SmolLM2 through llama.cpp,
the sessions service with seeded transcripts, Redis, and the analysis service with its worker as a separate
process. The stream is read over gRPC as the gateway reads it."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import grpc
import pytest

from conftest import Backends
from therascript.analysis.v1 import analysis_pb2 as pb
from therascript.sessions.v1 import sessions_pb2
from therascript_analysis.testing import RunningAnalysis, start_analysis

PROMPT = "How has the client's sleep changed over these sessions?"
SESSIONS = [
    ("Intake", "2026-03-01", [("SPEAKER_00", "How have you been sleeping this month?"),
                              ("SPEAKER_01", "Badly. I wake at 3 am most nights and cannot fall asleep again."),
                              ("SPEAKER_00", "What goes through your mind when you wake up?")]),
    ("Week 4", "2026-03-29", [("SPEAKER_00", "Last time we talked about your sleep. Any change?"),
                              ("SPEAKER_01", "A bit better. The wind-down routine helps; I wake up twice a week now."),
                              ("SPEAKER_00", "That is real progress.")]),
    ("Week 8", "2026-04-26", [("SPEAKER_00", "How is your sleep these days?"),
                              ("SPEAKER_01", "Mostly fine. I sleep through the night unless work is stressful.")]),
]


@pytest.fixture(scope="module")
def session_ids(backends: Backends) -> list[int]:
    return [backends.seed(name, date, paragraphs) for name, date, paragraphs in SESSIONS]


@pytest.fixture(scope="module")
def analysis(backends: Backends, redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningAnalysis]:
    running = start_analysis(tmp_path_factory.mktemp("analysis"), redis_url, backends.sessions.target,
                             backends.llm_target, map_max_tokens=24, reduce_max_tokens=24, strategy_max_tokens=96,
                             heartbeat_interval_s=0.5, heartbeat_timeout_s=3, reconcile_interval_s=0.5)
    yield running
    running.stop()


def stream(analysis: RunningAnalysis, job_id: int, last_event_id: str | None = None, timeout: float = 240):
    """(id, event) pairs of the job's stream until it ends; the snapshot as ("snapshot", JobDetail)."""
    request = pb.StreamJobRequest(job_id=job_id, last_event_id=last_event_id)
    out = []
    for event in analysis.stub.StreamJob(request, timeout=timeout):
        out.append((event.id, event.snapshot if event.HasField("snapshot") else json.loads(event.payload_json)))
    return out


def create(analysis: RunningAnalysis, session_ids: list[int], **extra) -> int:
    return analysis.stub.CreateJob(pb.CreateJobRequest(prompt=PROMPT, session_ids=session_ids, **extra)).job_id


def wait_for(events_iter, predicate, timeout_s: float = 120):
    deadline = time.monotonic() + timeout_s
    for item in events_iter:
        if predicate(item):
            return item
        assert time.monotonic() < deadline, "timed out waiting for an event"
    raise AssertionError("the stream ended before the awaited event")


def payloads(events) -> list[dict]:
    return [e for _, e in events if isinstance(e, dict)]


def test_job_runs_to_completion_and_streams_every_step(analysis: RunningAnalysis, session_ids: list[int]):
    job_id = create(analysis, session_ids)
    events = stream(analysis, job_id)
    first_id, snapshot = events[0]
    assert isinstance(snapshot, pb.JobDetail) and snapshot.job.id == job_id
    body = payloads(events)
    kinds = [(e["phase"], e["type"]) for e in body]
    assert body[-1]["type"] == "status" and body[-1]["status"] == "completed", body[-1]
    assert ("map", "status") in kinds and ("reduce", "status") in kinds
    starts = [e for e in body if e["phase"] == "map" and e["type"] == "start"]
    ends = [e for e in body if e["phase"] == "map" and e["type"] == "end"]
    assert len(starts) == len(ends) == 3 and all(e["promptTokens"] > 0 and e["summaryId"] for e in starts)
    assert any(e["phase"] == "map" and e["type"] == "token" and e["delta"] for e in body)
    assert [e for e in body if e["phase"] == "reduce" and e["type"] == "start"][0]["promptTokens"] > 0
    assert "".join(e["delta"] for e in body if e["phase"] == "reduce" and e["type"] == "token").strip()
    ids = [event_id for event_id, _ in events[1:]]
    assert len(set(ids)) == len(ids) and all(i > first_id or first_id == "0-0" for i in ids[:1])

    detail = analysis.stub.GetJob(pb.JobRef(job_id=job_id))
    assert detail.job.status == pb.JOB_STATUS_COMPLETED and detail.job.final_result.strip()
    assert detail.job.final_result.strip() == "".join(
        e["delta"] for e in body if e["phase"] == "reduce" and e["type"] == "token").strip()
    assert [s.session_name for s in detail.summaries] == ["Intake", "Week 4", "Week 8"]
    assert all(s.status == "completed" and s.summary_text.strip() and s.chunk_count == 1 for s in detail.summaries)
    answers = analysis.app.jobs.answers(job_id)
    assert sorted(a.kind for a in answers) == ["map", "map", "map", "reduce"]
    assert all(a.status == "completed" for a in answers)


def test_last_event_id_replays_exactly_the_missed_events(analysis: RunningAnalysis, session_ids: list[int]):
    job_id = create(analysis, session_ids[:2])
    call = analysis.stub.StreamJob(pb.StreamJobRequest(job_id=job_id), timeout=240)
    seen = []
    for event in call:  # read until the first map answer's tokens flow, then "lose the connection"
        seen.append(event)
        if not event.HasField("snapshot") and json.loads(event.payload_json)["type"] == "token":
            break
    call.cancel()
    # a second client replaying the whole log ("0-0"), until the end; a plain new client would start at its own
    # snapshot, which on a fast machine already lies after the first client's last event
    full = stream(analysis, job_id, last_event_id="0-0", timeout=240)
    replay = stream(analysis, job_id, last_event_id=seen[-1].id)
    assert not any(isinstance(e, pb.JobDetail) for _, e in full + replay)
    lost = _sid(seen[-1].id)
    expected = [(i, e) for i, e in full if _sid(i) > lost]
    assert replay == expected and replay[-1][1]["status"] == "completed"
    # nothing between the last event seen and the first replayed one is skipped: the full log, read from
    # Redis directly, has no event in that gap either
    log_ids = [e.id for e in analysis.app.jobs._events.after(job_id, "0-0", count=100_000)]
    assert log_ids[log_ids.index(seen[-1].id) + 1] == replay[0][0]


def _sid(event_id: str) -> tuple[int, int]:
    ms, seq = event_id.split("-")
    return int(ms), int(seq)


def test_cancel_mid_map_is_canceled_within_a_second_and_stops_generating(analysis: RunningAnalysis,
                                                                          session_ids: list[int]):
    job_id = create(analysis, session_ids)
    call = analysis.stub.StreamJob(pb.StreamJobRequest(job_id=job_id), timeout=240)
    events = iter(call)
    wait_for(events, lambda e: not e.HasField("snapshot") and json.loads(e.payload_json)["type"] == "token")
    asked = time.monotonic()
    analysis.stub.CancelJob(pb.JobRef(job_id=job_id))
    end = wait_for(events, lambda e: json.loads(e.payload_json).get("status") == "canceled", timeout_s=5)
    elapsed = time.monotonic() - asked
    assert end.terminal and elapsed < 1.0, f"canceled after {elapsed:.2f} s"
    time.sleep(1.5)  # nothing more may be generated or logged for this job
    after = analysis.app.jobs._events.after(job_id, end.id)
    assert after == [], after
    assert analysis.stub.GetJob(pb.JobRef(job_id=job_id)).job.status == pb.JOB_STATUS_CANCELED
    with pytest.raises(grpc.RpcError) as again:
        analysis.stub.CancelJob(pb.JobRef(job_id=job_id))
    assert again.value.code() == grpc.StatusCode.FAILED_PRECONDITION


def test_worker_killed_mid_job_resumes_without_redoing_answers(analysis: RunningAnalysis, session_ids: list[int]):
    job_id = create(analysis, session_ids)
    events = iter(analysis.stub.StreamJob(pb.StreamJobRequest(job_id=job_id), timeout=240))
    wait_for(events, lambda e: not e.HasField("snapshot") and json.loads(e.payload_json)["type"] == "end")
    analysis.kill_worker()
    done_before = {a.key for a in analysis.app.jobs.answers(job_id) if a.status == "completed"}
    assert done_before, "no answer was stored before the kill"
    analysis.start_worker()
    end = wait_for(events, lambda e: json.loads(e.payload_json).get("type") == "status"
                   and json.loads(e.payload_json).get("status") in ("completed", "failed", "canceled"), timeout_s=180)
    assert json.loads(end.payload_json)["status"] == "completed", end.payload_json
    job = analysis.app.jobs.get(job_id).job
    assert job.attempt == 2
    answers = analysis.app.jobs.answers(job_id)
    assert sorted(a.kind for a in answers) == ["map", "map", "map", "reduce"]
    for answer in answers:  # answers finished before the kill were kept, not redone
        assert answer.attempt == (1 if answer.key in done_before else 2), (answer.key, answer.attempt)


def test_deleting_a_running_job_cancels_it_and_a_deleted_session_keeps_finished_jobs_readable(
        analysis: RunningAnalysis, backends: Backends, session_ids: list[int]):
    running = create(analysis, session_ids)
    events = iter(analysis.stub.StreamJob(pb.StreamJobRequest(job_id=running), timeout=240))
    wait_for(events, lambda e: not e.HasField("snapshot") and json.loads(e.payload_json)["type"] == "token")
    analysis.stub.DeleteJob(pb.JobRef(job_id=running))
    end = wait_for(events, lambda e: json.loads(e.payload_json).get("type") == "status", timeout_s=5)
    assert json.loads(end.payload_json)["status"] == "canceled"
    with pytest.raises(grpc.RpcError) as gone:
        analysis.stub.GetJob(pb.JobRef(job_id=running))
    assert gone.value.code() == grpc.StatusCode.NOT_FOUND

    doomed = backends.seed("To delete", "2026-05-01", [("SPEAKER_01", "I slept well every night this week.")])
    finished = create(analysis, [doomed])
    assert payloads(stream(analysis, finished))[-1]["status"] == "completed"
    backends.sessions.app.servicer.DeleteSession(sessions_pb2.SessionRef(session_id=doomed), None)
    detail = analysis.stub.GetJob(pb.JobRef(job_id=finished))
    assert detail.summaries[0].session_name == "To delete" and detail.summaries[0].summary_text


def test_unknown_session_and_bad_input_are_clear_errors(analysis: RunningAnalysis, session_ids: list[int]):
    cases = [
        (pb.CreateJobRequest(prompt="short one", session_ids=session_ids[:1]), grpc.StatusCode.INVALID_ARGUMENT),
        (pb.CreateJobRequest(prompt=PROMPT, session_ids=[]), grpc.StatusCode.INVALID_ARGUMENT),
        (pb.CreateJobRequest(prompt=PROMPT, session_ids=list(range(1, 52))), grpc.StatusCode.INVALID_ARGUMENT),
        (pb.CreateJobRequest(prompt=PROMPT, session_ids=[999_999]), grpc.StatusCode.NOT_FOUND),
    ]
    before = len(analysis.app.jobs.list_jobs())
    for request, code in cases:
        with pytest.raises(grpc.RpcError) as error:
            analysis.stub.CreateJob(request)
        assert error.value.code() == code, request
    assert len(analysis.app.jobs.list_jobs()) == before
    with pytest.raises(grpc.RpcError) as missing:
        list(analysis.stub.StreamJob(pb.StreamJobRequest(job_id=999_999), timeout=10))
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
