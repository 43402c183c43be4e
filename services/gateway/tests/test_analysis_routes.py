"""The six /api/analysis-jobs endpoints through the real gateway (uvicorn on a loopback port, real HTTP) against
the real analysis service and its worker process, real sessions (seeded transcripts), real llm-manager (llama.cpp +
SmolLM2) and real Redis. The SSE stream is parsed as the original UI's EventSource reads it (ui-contract §3.2):
`id:` and `data:` lines, events separated by a blank line, no `event:` names."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
import uvicorn

from therascript_analysis.testing import RunningAnalysis, start_analysis
from therascript_gateway.app import create_app
from therascript_gateway.settings import GatewaySettings
from therascript_sessions.testing import RunningSessions, seed_completed_session, start_sessions

PROMPT = "How has the client's sleep changed over these sessions?"


@dataclass
class Stack:
    sessions: RunningSessions
    analysis: RunningAnalysis
    session_ids: list[int]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[Stack]:
    from therascript_llm_manager.testing import start_llm_manager

    root = tmp_path_factory.mktemp("gateway-analysis")
    llm_target, stop_llm = start_llm_manager(root / "llm", default_context_size=2048)
    sessions = start_sessions(root / "sessions", redis_url)
    ids = [seed_completed_session(sessions.app, [("SPEAKER_01", text)], session_name=name, date=date)
           for name, date, text in [("First", "2026-03-01", "I wake at 3 am most nights."),
                                    ("Second", "2026-04-01", "I sleep through the night now.")]]
    analysis = start_analysis(root / "analysis", redis_url, sessions.target, llm_target, map_max_tokens=16,
                              reduce_max_tokens=16)
    yield Stack(sessions, analysis, ids)
    analysis.stop()
    sessions.stop()
    stop_llm()


@pytest.fixture(scope="module")
def api(stack: Stack) -> Iterator[httpx.Client]:
    settings = GatewaySettings(sessions_target=stack.sessions.target, analysis_target=stack.analysis.target,
                               chat_target="127.0.0.1:1", llm_target="127.0.0.1:1", ops_target="127.0.0.1:1")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
        yield client
    server.should_exit = True
    thread.join(timeout=10)


def read_event_source(response: httpx.Response) -> list[dict]:
    """EventSource framing: lines until a blank line make one event; `id:` sets its id, `data:` its data,
    `:` lines are comments, any `event:` name is recorded (the UI's onmessage would drop it)."""
    import json

    events, current, carry = [], {}, ""
    for text in response.iter_text():
        carry += text
        *lines, carry = carry.split("\n")
        for line in lines:
            if line == "":
                if "data" in current:
                    current["json"] = json.loads(current["data"])
                    events.append(current)
                current = {}
            elif line.startswith(":"):
                current.setdefault("comments", 0)
            elif ":" in line:
                field, _, value = line.partition(":")
                current[field] = value[1:] if value.startswith(" ") else value
    return events


def assert_error(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert isinstance(body["error"], str) and isinstance(body["message"], str)
    return body


def test_create_stream_get_list_and_replay(api: httpx.Client, stack: Stack):
    created = api.post("/api/analysis-jobs/", json={"sessionIds": stack.session_ids, "prompt": PROMPT,
                                                    "useAdvancedStrategy": False})
    assert created.status_code == 202, created.text
    job_id = created.json()["jobId"]

    with api.stream("GET", f"/api/analysis-jobs/{job_id}/stream") as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = read_event_source(response)
    assert all("event" not in e and e.get("id") for e in events)  # unnamed, every one with an id
    snapshot = events[0]["json"]
    assert snapshot["type"] == "snapshot" and snapshot["job"]["id"] == job_id
    assert [s["sessionName"] for s in snapshot["summaries"]] == ["First", "Second"]
    body = [e["json"] for e in events]
    assert body[-1]["type"] == "status" and body[-1]["status"] == "completed"
    map_starts = [e for e in body if e["phase"] == "map" and e["type"] == "start"]
    assert len(map_starts) == 2 and all(e["summaryId"] and e["promptTokens"] for e in map_starts)
    reduce_text = "".join(e["delta"] for e in body if e["phase"] == "reduce" and e["type"] == "token")

    job = api.get(f"/api/analysis-jobs/{job_id}").json()
    assert job["status"] == "completed" and job["final_result"].strip() == reduce_text.strip()
    assert job["strategy"] is None and job["completed_at"] >= job["created_at"]
    assert [(s["sessionName"], s["status"]) for s in job["summaries"]] == [("First", "completed"),
                                                                           ("Second", "completed")]
    assert all(s["summary_text"] and s["analysis_job_id"] == job_id for s in job["summaries"])
    rows = api.get("/api/analysis-jobs").json()
    row = next(r for r in rows if r["id"] == job_id)
    assert set(row) == {"id", "original_prompt", "short_prompt", "status", "final_result", "error_message",
                        "created_at", "completed_at", "model_name", "context_size"}
    assert row["original_prompt"] == PROMPT and row["status"] == "completed" and row["model_name"]

    # a reconnect with Last-Event-ID gets exactly the events after it (no snapshot), then the stream closes
    cut = len(events) // 2
    with api.stream("GET", f"/api/analysis-jobs/{job_id}/stream",
                    headers={"Last-Event-ID": events[cut]["id"]}) as response:
        replay = read_event_source(response)
    assert [(e["id"], e["json"]) for e in replay] == [(e["id"], e["json"]) for e in events[cut + 1:]]

    # a finished job's stream: the snapshot and its terminal status, then it closes
    with api.stream("GET", f"/api/analysis-jobs/{job_id}/stream") as response:
        again = read_event_source(response)
    assert [e["json"]["type"] for e in again] == ["snapshot", "status"]
    assert again[-1]["json"]["status"] == "completed"

    assert_error(api.post(f"/api/analysis-jobs/{job_id}/cancel"), 409)
    deleted = api.delete(f"/api/analysis-jobs/{job_id}")
    assert deleted.status_code == 200 and str(job_id) in deleted.json()["message"]
    assert_error(api.get(f"/api/analysis-jobs/{job_id}"), 404)


def test_cancel_through_the_gateway_closes_the_stream_as_canceled(api: httpx.Client, stack: Stack):
    job_id = api.post("/api/analysis-jobs", json={"sessionIds": stack.session_ids, "prompt": PROMPT}).json()["jobId"]
    accepted = api.post(f"/api/analysis-jobs/{job_id}/cancel")
    assert accepted.status_code == 202 and accepted.json()["message"] == f"Cancellation request for job {job_id} accepted."
    with api.stream("GET", f"/api/analysis-jobs/{job_id}/stream") as response:
        events = read_event_source(response)
    assert events[-1]["json"]["type"] == "status" and events[-1]["json"]["status"] == "canceled"
    assert api.get(f"/api/analysis-jobs/{job_id}").json()["status"] == "canceled"


@pytest.mark.parametrize("body, status", [
    ({"sessionIds": [1], "prompt": "123456789"}, 400),                          # prompt of 9 characters
    ({"sessionIds": [], "prompt": PROMPT}, 400),                                # 0 sessions
    ({"sessionIds": list(range(1, 52)), "prompt": PROMPT}, 400),                # 51 sessions
    ({"sessionIds": [1], "prompt": PROMPT, "contextSize": 4096}, 400),         # unknown field
    ({"sessionIds": [0], "prompt": PROMPT}, 400),                               # non-positive id
    ({"sessionIds": [999_999], "prompt": PROMPT}, 404),                         # unknown session
    ({"prompt": PROMPT}, 400),                                                  # missing sessionIds
])
def test_bad_bodies_are_400_or_404_with_the_error_body(api: httpx.Client, stack: Stack, body: dict, status: int):
    before = len(api.get("/api/analysis-jobs").json())
    assert_error(api.post("/api/analysis-jobs", json=body), status)
    assert len(api.get("/api/analysis-jobs").json()) == before


def test_unknown_jobs_are_404_everywhere(api: httpx.Client):
    for method, path in [("GET", "/api/analysis-jobs/999999"), ("GET", "/api/analysis-jobs/999999/stream"),
                         ("POST", "/api/analysis-jobs/999999/cancel"), ("DELETE", "/api/analysis-jobs/999999")]:
        assert_error(api.request(method, path), 404)
    assert_error(api.get("/api/analysis-jobs/abc"), 400)
