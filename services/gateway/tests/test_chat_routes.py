"""Chat and template routes through the real gateway (uvicorn on a loopback port, real HTTP), against the
real chat service, real sessions service and real llm-manager (llama.cpp + SmolLM2). The SSE stream is
parsed the way the original UI parses it (ui-contract §3.1): split on newlines, keep `data:` lines, JSON."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn

from therascript_chat.testing import ChatStack, start_chat_stack
from therascript_gateway.app import create_app
from therascript_gateway.settings import GatewaySettings
from therascript_gateway.testing import read_sse_as_the_ui_does

PARAGRAPHS = [
    ("SPEAKER_00", "Welcome back. What would you like to focus on today?"),
    ("SPEAKER_01", "I keep putting off calling my sister after our argument."),
    ("SPEAKER_00", "What goes through your mind when you think about calling her?"),
]
REPLY_TOKENS = 12
EVENT_FAMILIES = ({"status"}, {"usage"}, {"thinkingChunk"}, {"chunk"}, {"error"})


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[ChatStack]:
    running = start_chat_stack(tmp_path_factory.mktemp("gateway-chat"), redis_url, context_size=1024,
                               max_reply_tokens=REPLY_TOKENS)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def api(stack: ChatStack) -> Iterator[httpx.Client]:
    """An HTTP client for a real gateway served by uvicorn in a background thread."""
    settings = GatewaySettings(sessions_target=stack.sessions.target, chat_target=stack.chat.target,
                               llm_target=stack.llm_target, analysis_target="127.0.0.1:1", ops_target="127.0.0.1:1")
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


def assert_error(response: httpx.Response, status: int, kind: str | None = None) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert isinstance(body["error"], str) and isinstance(body["message"], str)
    if kind:
        assert body["error"] == kind
    return body


def wait_for_ai_message(api: httpx.Client, path: str, timeout_s: float = 30) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        ai = [m for m in api.get(path).json()["messages"] if m["sender"] == "ai"]
        if ai:
            return ai[0]
        time.sleep(0.1)
    raise AssertionError("the assistant message was not stored")


def test_session_chat_streams_sse_the_ui_can_parse_and_persists_tokens(stack, api) -> None:
    session_id = stack.seed_session(PARAGRAPHS)
    created = api.post(f"/api/sessions/{session_id}/chats/")
    assert created.status_code == 201
    chat = created.json()
    assert set(chat) == {"id", "sessionId", "timestamp", "name"} and chat["sessionId"] == session_id
    path = f"/api/sessions/{session_id}/chats/{chat['id']}"
    with api.stream("POST", f"{path}/messages", json={"text": " Why is the client avoiding the call? "}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
        assert response.headers["cache-control"] == "no-cache"
        user_message_id = int(response.headers["x-user-message-id"])
        timed = read_sse_as_the_ui_does(response)
    events = [event for _, event in timed]
    assert events[0] == {"status": "thinking"} and set(events[1]) == {"usage"}
    responding = events.index({"status": "responding"})
    chunks = [e["chunk"] for e in events[responding + 1:-1]]
    assert len(chunks) == len(events) - responding - 2 >= 2
    assert all(set(e) in EVENT_FAMILIES for e in events[:-1])
    done = events[-1]
    assert done["done"] is True and done["completionTokens"] > 0 and done["promptTokens"] > 0
    assert {"thinkingTokens", "duration", "isTruncated", "historyWindowed"} <= set(done)
    first_chunk_at, done_at = timed[responding + 1][0], timed[-1][0]
    assert done_at - first_chunk_at > 0.02  # chunks arrived incrementally, not in one burst at the end

    detail = api.get(path).json()
    user, ai = detail["messages"]
    assert (user["id"], user["sender"], user["text"]) == (user_message_id, "user", "Why is the client avoiding the call?")
    assert ai["sender"] == "ai" and ai["text"] == "".join(chunks).strip()
    assert (ai["promptTokens"], ai["completionTokens"], ai["duration"]) == (
        done["promptTokens"], done["completionTokens"], done["duration"])
    assert ai["isTruncated"] == done["isTruncated"] and ai["cancelled"] is False
    usage = events[1]["usage"]
    assert usage["breakdown"]["transcriptTokens"] > 0 and usage["thresholds"] == {"warnAt": 0.75, "dangerAt": 0.9}


def test_disconnect_mid_stream_stores_partial_reply_and_stops_generation(stack, api) -> None:
    chat = api.post("/api/chats").json()
    path = f"/api/chats/{chat['id']}"
    stack.chat.deps.settings.max_reply_tokens = 600  # long enough to notice if generation went on
    try:
        with api.stream("POST", f"{path}/messages",
                        json={"text": "Write a very long story about a lighthouse keeper."}) as response:
            received = read_sse_as_the_ui_does(response, stop_after_chunks=3)
        ai = wait_for_ai_message(api, path)
    finally:
        stack.chat.deps.settings.max_reply_tokens = REPLY_TOKENS
    streamed = "".join(e.get("chunk", "") for _, e in received).strip()
    assert ai["cancelled"] is True and ai["isTruncated"] is True
    assert ai["text"].startswith(streamed) and ai["completionTokens"] < 600
    started = time.monotonic()
    with api.stream("POST", f"{path}/messages", json={"text": "Thanks."}) as response:
        first = read_sse_as_the_ui_does(response, stop_after_chunks=1)
    assert "chunk" in first[-1][1]
    assert time.monotonic() - started < 30  # served at once: the runtime is not still writing the story


def test_standalone_chat_with_tags_and_rename(api) -> None:
    created = api.post("/api/chats/")
    assert created.status_code == 201
    chat = created.json()
    assert chat == {"id": chat["id"], "sessionId": None, "timestamp": chat["timestamp"], "name": None, "tags": None}
    updated = api.patch(f"/api/chats/{chat['id']}/details", json={"name": " Supervision notes ",
                                                                 "tags": ["sleep", "Anxiety", "sleep"]}).json()
    assert (updated["name"], updated["tags"]) == ("Supervision notes", ["Anxiety", "sleep"])
    listed = {c["id"]: c for c in api.get("/api/chats").json()}
    assert listed[chat["id"]]["tags"] == ["Anxiety", "sleep"]
    cleared = api.patch(f"/api/chats/{chat['id']}/details", json={"name": None, "tags": None}).json()
    assert (cleared["name"], cleared["tags"]) == (None, None)
    assert_error(api.patch(f"/api/chats/{chat['id']}/details", json={"tags": [str(i) for i in range(11)]}),
                 400, "ValidationError")
    assert api.delete(f"/api/chats/{chat['id']}").json()["message"]
    assert_error(api.get(f"/api/chats/{chat['id']}"), 404, "NotFoundError")


def test_session_chat_rename_and_delete(stack, api) -> None:
    session_id = stack.seed_session(PARAGRAPHS)
    chat = api.post(f"/api/sessions/{session_id}/chats").json()
    path = f"/api/sessions/{session_id}/chats/{chat['id']}"
    assert api.patch(f"{path}/name", json={"name": "  Intake review "}).json()["name"] == "Intake review"
    assert api.patch(f"{path}/name", json={"name": None}).json()["name"] is None
    assert_error(api.get(f"/api/chats/{chat['id']}"), 404)            # not a standalone chat
    assert_error(api.get(f"/api/sessions/{session_id + 1}/chats/{chat['id']}"), 404)
    assert api.delete(path).status_code == 200
    assert_error(api.get(path), 404, "NotFoundError")


def test_templates_crud_and_duplicate_title_is_409(api) -> None:
    titles = {t["title"] for t in api.get("/api/templates").json()}
    assert {"system_prompt", "system_standalone_prompt", "system_analysis_strategist",
            "system_short_prompt_generator"} <= titles
    created = api.post("/api/templates", json={"title": " Risk check ", "text": " List any risk factors. "})
    assert created.status_code == 201
    template = created.json()
    assert (template["title"], template["text"]) == ("Risk check", "List any risk factors.")
    assert set(template) == {"id", "title", "text", "createdAt"}
    assert_error(api.post("/api/templates", json={"title": "Risk check", "text": "again"}), 409, "ConflictError")
    updated = api.put(f"/api/templates/{template['id']}", json={"title": "Risk review", "text": "List risks."})
    assert updated.json()["title"] == "Risk review"
    assert api.delete(f"/api/templates/{template['id']}").json()["message"]
    assert_error(api.delete(f"/api/templates/{template['id']}"), 404, "NotFoundError")
    assert_error(api.put(f"/api/templates/{template['id']}", json={"title": "x", "text": "y"}), 404)
    assert_error(api.post("/api/templates", json={"title": "t" * 201, "text": "y"}), 400, "ValidationError")
    assert_error(api.post("/api/templates", json={"title": "t", "text": "y" * 10_001}), 400, "ValidationError")
    assert_error(api.post("/api/templates", json={"title": "   ", "text": "y"}), 400, "ValidationError")


def test_context_usage_route_has_the_contract_shape(stack, api) -> None:
    session_id = stack.seed_session(PARAGRAPHS)
    chat = api.post(f"/api/sessions/{session_id}/chats").json()
    usage = api.get(f"/api/sessions/{session_id}/chats/{chat['id']}/context-usage",
                    params={"inputDraft": "How did it go?"}).json()
    breakdown = usage["breakdown"]
    assert breakdown["transcriptTokens"] > 0 and breakdown["inputDraftTokens"] > 0
    assert breakdown["chatHistoryTokens"] == 0 and usage["reserved"] == {"outputTokens": 512}
    assert usage["totals"]["promptTokens"] == sum(breakdown.values())
    assert usage["model"]["effectiveContextSize"] == 1024 and usage["tokenCountMethod"] == "tokenizer"
    standalone = api.post("/api/chats").json()
    usage = api.get(f"/api/chats/{standalone['id']}/context-usage", params={"reservedOutputTokens": "100"}).json()
    assert usage["breakdown"]["transcriptTokens"] is None and usage["reserved"]["outputTokens"] == 100
    assert usage["breakdown"]["systemTokens"] > 0


@pytest.mark.parametrize("text", ["", "   ", "x" * 10_001])
def test_message_text_outside_limits_is_400_before_any_stream(api, text: str) -> None:
    chat = api.post("/api/chats").json()
    assert_error(api.post(f"/api/chats/{chat['id']}/messages", json={"text": text}), 400, "ValidationError")
    assert api.get(f"/api/chats/{chat['id']}").json()["messages"] == []


@pytest.mark.parametrize(("method", "path"), [
    ("get", "/api/chats/abc"), ("get", "/api/chats/0"), ("get", "/api/chats/-3"),
    ("get", "/api/sessions/x/chats/1"), ("delete", "/api/templates/abc"), ("post", "/api/sessions/1.5/chats"),
])
def test_non_numeric_or_non_positive_ids_are_400(api, method: str, path: str) -> None:
    assert_error(api.request(method, path), 400, "ValidationError")


def test_unknown_ids_are_404_with_the_error_body(api) -> None:
    assert_error(api.get("/api/chats/987654"), 404, "NotFoundError")
    assert_error(api.post("/api/chats/987654/messages", json={"text": "hello"}), 404, "NotFoundError")
    assert_error(api.get("/api/chats/987654/context-usage"), 404, "NotFoundError")
    assert_error(api.post("/api/sessions/987654/chats"), 404, "NotFoundError")
    assert_error(api.patch("/api/sessions/987654/chats/1/name", json={"name": "x"}), 404, "NotFoundError")
    assert_error(api.delete("/api/chats/987654"), 404, "NotFoundError")


def test_keep_alive_events_become_sse_comments_the_ui_ignores() -> None:
    from sse_starlette import ServerSentEvent

    from therascript.chat.v1 import chat_pb2
    from therascript_gateway.chat_stream import event_sse

    assert event_sse(chat_pb2.ChatEvent(keep_alive=True)) == b": keep-alive\n\n"
    assert ServerSentEvent(comment="keep-alive", sep="\n").encode() == b": keep-alive\n\n"  # the 15 s ping
    data = event_sse(chat_pb2.ChatEvent(chunk="two\nlines"))
    assert data == b'data: {"chunk":"two\\nlines"}\n\n'  # one JSON object on one data: line
