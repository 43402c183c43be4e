"""Transcripts longer than the context, advanced mode, and failures, on real components (llm-manager with the
packaged SmolLM2, sessions, Redis, the worker as its own process). Each case gets an analysis instance with the
settings it needs (its own queue, so instances never take each other's jobs)."""

from __future__ import annotations

import json
import math
import time

import grpc
import pytest

from conftest import Backends
from therascript.analysis.v1 import analysis_pb2 as pb
from therascript.llm.v1 import llm_pb2, llm_pb2_grpc
from therascript_analysis.testing import start_analysis

PROMPT = "What does the client say about their sleep and their work?"
TOPICS = ["sleep", "work", "family", "exercise", "mood", "friends"]


def long_transcript(paragraphs: int) -> list[tuple[str | None, str]]:
    return [(f"SPEAKER_0{i % 2}", f"Part {i}. We talk about {TOPICS[i % len(TOPICS)]} again: the client says that "
             f"on day {i} the {TOPICS[(i + 1) % len(TOPICS)]} went a little differently than planned, and that "
             f"they want to keep a diary about it for the next {i % 5 + 2} weeks.") for i in range(paragraphs)]


def events_of(stub, job_id: int, timeout: float = 600) -> list[dict]:
    return [json.loads(e.payload_json) for e in stub.StreamJob(pb.StreamJobRequest(job_id=job_id), timeout=timeout)
            if not e.HasField("snapshot")]


def test_long_transcripts_are_chunked_and_reduced_hierarchically(backends: Backends, redis_url: str, tmp_path):
    # A 384-token window: the transcript (~800 tokens) needs several map calls, and a final reduce that may answer
    # with up to 200 tokens leaves too little room for all chunk answers at once, so they are combined first.
    context, map_max = 384, 16
    analysis = start_analysis(tmp_path / "a", redis_url, backends.sessions.target, backends.llm_target,
                              context_limit_tokens=context, map_max_tokens=map_max, reduce_max_tokens=200)
    try:
        paragraphs = long_transcript(16)
        ids = [backends.seed("Long", "2026-01-01", paragraphs)]
        counts = llm_pb2_grpc.LlmManagerServiceStub(grpc.insecure_channel(backends.llm_target)).CountTokens(
            llm_pb2.CountTokensRequest(texts=[f"{s}: {t}" for s, t in paragraphs])).counts
        at_least = math.ceil(sum(counts) / (context - map_max))  # chunks even with no prompt overhead at all
        assert at_least >= 2, "the test transcript must not fit the context"

        job_id = analysis.stub.CreateJob(pb.CreateJobRequest(prompt=PROMPT, session_ids=ids)).job_id
        events = events_of(analysis.stub, job_id)
        assert events[-1] == {**events[-1], "type": "status", "status": "completed"}, events[-1]
        detail = analysis.stub.GetJob(pb.JobRef(job_id=job_id))
        chunks = [s.chunk_count for s in detail.summaries]
        assert all(c >= at_least for c in chunks), (chunks, at_least)
        answers = analysis.app.jobs.answers(job_id)
        maps = [a for a in answers if a.kind == "map"]
        reduces = [a for a in answers if a.kind == "reduce"]
        # one map call per chunk, every one stored; one start event per map call
        assert len(maps) == sum(chunks)
        assert len([e for e in events if e["phase"] == "map" and e["type"] == "start"]) == sum(chunks)
        # the chunk answers did not fit one reduce prompt: group reduces, then the final one
        grouping = [e["message"] for e in events if e["phase"] == "reduce" and e["type"] == "log"
                    and "groups" in e["message"]]
        assert grouping, "expected a hierarchical reduce"
        groups = sum(int(m.split(" in ")[1].split(" groups")[0]) for m in grouping)
        assert len(reduces) == groups + 1 and [a.key for a in reduces][-1] == "final"
        assert all(s.summary_text.startswith("Part 1 of") for s in detail.summaries)
    finally:
        analysis.stop()


def test_a_failing_model_call_fails_the_job_and_closes_the_stream(backends: Backends, redis_url: str, tmp_path):
    from therascript_llm_manager.testing import start_llm_manager

    llm_target, stop_llm = start_llm_manager(tmp_path / "llm", default_context_size=1024)
    analysis = start_analysis(tmp_path / "a", redis_url, backends.sessions.target, llm_target, map_max_tokens=400)
    stopped = False
    try:
        session = backends.seed("Doomed", "2026-06-01", long_transcript(4))
        job_id = analysis.stub.CreateJob(pb.CreateJobRequest(prompt=PROMPT, session_ids=[session])).job_id
        stream = analysis.stub.StreamJob(pb.StreamJobRequest(job_id=job_id), timeout=300)
        events = []
        for event in stream:
            payload = json.loads(event.payload_json) if not event.HasField("snapshot") else {"type": "snapshot"}
            events.append((event, payload))
            if payload["type"] == "token" and not stopped:
                stop_llm()  # the runtime goes away in the middle of a generation
                stopped = True
        last, payload = events[-1]
        assert last.terminal and payload["type"] == "status" and payload["status"] == "failed", payload
        assert "model call failed" in payload["message"]
        job = analysis.stub.GetJob(pb.JobRef(job_id=job_id)).job
        assert job.status == pb.JOB_STATUS_FAILED and job.error_message == payload["message"]
    finally:
        analysis.stop()
        if not stopped:
            stop_llm()


@pytest.fixture
def advanced(backends: Backends, redis_url: str, tmp_path):
    running = start_analysis(tmp_path / "adv", redis_url, backends.sessions.target, backends.llm_target,
                             map_max_tokens=16, reduce_max_tokens=16, strategy_max_tokens=96)
    yield running
    running.stop()


def test_advanced_mode_plans_first_and_ends_clearly(advanced, backends: Backends):
    """SmolLM2-135M does not always write the JSON asked for: either the plan parses (and is stored and used) or
    the job fails with a message that says so — never a hang."""
    session = backends.seed("Plan", "2026-07-01", long_transcript(2))
    job_id = advanced.stub.CreateJob(pb.CreateJobRequest(prompt=PROMPT, session_ids=[session],
                                                         use_advanced_strategy=True)).job_id
    events = events_of(advanced.stub, job_id)
    assert events[0]["phase"] == "strategy" and events[0]["status"] == "generating_strategy"
    detail = advanced.stub.GetJob(pb.JobRef(job_id=job_id))
    if events[-1]["status"] == "completed":
        assert detail.HasField("strategy") and detail.strategy.intermediate_question
    else:
        assert events[-1]["status"] == "failed"
        assert detail.job.error_message.startswith("Failed to generate analysis strategy: ")
        assert not detail.HasField("strategy")


def test_cancel_during_planning_takes_effect_within_a_second(advanced, backends: Backends):
    session = backends.seed("Plan 2", "2026-07-02", long_transcript(2))
    job_id = advanced.stub.CreateJob(pb.CreateJobRequest(prompt=PROMPT, session_ids=[session],
                                                         use_advanced_strategy=True)).job_id
    stream = iter(advanced.stub.StreamJob(pb.StreamJobRequest(job_id=job_id), timeout=300))
    for event in stream:
        if not event.HasField("snapshot") and json.loads(event.payload_json)["type"] == "token":
            break
    asked = time.monotonic()
    advanced.stub.CancelJob(pb.JobRef(job_id=job_id))
    rest = [json.loads(e.payload_json) for e in stream]
    elapsed = time.monotonic() - asked
    assert rest[-1]["status"] == "canceled" and elapsed < 1.0, (rest[-1], elapsed)
    assert advanced.stub.GetJob(pb.JobRef(job_id=job_id)).job.status == pb.JOB_STATUS_CANCELED
