"""GET /api/search through the real gateway against the real sessions and chat services on a real Elasticsearch:
the UI contract's item shape, the fan-out by searchType, paging across the merge (no duplicates, no gaps),
client filter, inert highlights, and bad parameters → 400 with the error body."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient

from therascript_chat import chats, messages
from therascript_chat.messages import NewMessage
from therascript_chat.testing import RunningChatService, start_chat_service
from therascript_gateway.app import create_app
from therascript_gateway.settings import GatewaySettings
from therascript_sessions.testing import RunningSessions, seed_completed_session, start_sessions

ITEM_KEYS = {"id", "type", "chatId", "sessionId", "sender", "timestamp", "snippet", "score", "highlights",
             "clientName", "tags"}


@dataclass
class World:
    api: TestClient
    sessions: RunningSessions
    chat: RunningChatService
    ann: int          # session of client "Ann"
    bob: int          # session of client "Bob"
    chat_id: int      # a chat on Ann's session
    standalone: int


def _drain(service_search) -> None:
    deadline = time.monotonic() + 30
    while service_search.indexer.pending() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert service_search.indexer.pending() == 0
    service_search.index.refresh()


@pytest.fixture(scope="module")
def world(tmp_path_factory, redis_url, elasticsearch_url) -> Iterator[World]:
    root = tmp_path_factory.mktemp("gateway-search")
    tag = uuid.uuid4().hex[:8]
    sessions = start_sessions(root / "sessions", redis_url, elasticsearch_url=elasticsearch_url,
                              elasticsearch_index=f"test-gw-transcripts-{tag}")
    chat = start_chat_service(root / "chat", sessions.target, elasticsearch_url=elasticsearch_url,
                              elasticsearch_index=f"test-gw-messages-{tag}")
    ann = seed_completed_session(sessions.app, [("T", f"anxiety paragraph {i} about work") for i in range(25)]
                                 + [("C", "<script>alert(1)</script> my anxiety")], client_name="Ann")
    bob = seed_completed_session(sessions.app, [("T", f"Bob talks about anxiety {i}") for i in range(10)],
                                 client_name="Bob")
    chat_id = chats.create_chat(chat.deps.db, ann).id
    standalone = chats.create_chat(chat.deps.db, None).id
    chats.update_chat_details(chat.deps.db, standalone, "Notes", ["anxiety"])
    for i in range(15):
        messages.record_message(chat.deps.db, NewMessage(chat_id=chat_id, sender="user" if i % 2 else "ai",
                                                         text=f"chat message {i} on anxiety"))
    for i in range(5):
        messages.record_message(chat.deps.db, NewMessage(chat_id=standalone, sender="user",
                                                         text=f"standalone anxiety note {i}"))
    _drain(sessions.app.servicer.search)
    _drain(chat.deps.search)
    settings = GatewaySettings(sessions_target=sessions.target, chat_target=chat.target, analysis_target="127.0.0.1:1",
                               llm_target="127.0.0.1:1", ops_target="127.0.0.1:1")
    with TestClient(create_app(settings)) as api:
        yield World(api, sessions, chat, ann, bob, chat_id, standalone)
    chat.stop()
    sessions.stop()


def test_items_have_the_ui_contract_shape(world: World) -> None:
    body = world.api.get("/api/search", params={"q": "anxiety", "limit": 50}).json()
    assert body["query"] == "Search/filter applied" and body["total"] == 26 + 10 + 15 + 5
    assert len(body["results"]) == 50
    for item in body["results"]:
        assert set(item) == ITEM_KEYS
        assert isinstance(item["highlights"]["text"], list) and isinstance(item["score"], float)
        if item["type"] == "transcript":
            session_id, index = item["id"].split("_")
            assert int(session_id) == item["sessionId"] and index.isdigit()
            assert item["chatId"] is None and item["sender"] is None and item["tags"] is None
            assert item["clientName"] in ("Ann", "Bob")
        else:
            assert item["type"] == "chat" and item["id"].isdigit() and item["sender"] in ("user", "ai")
            assert item["chatId"] in (world.chat_id, world.standalone)
            if item["chatId"] == world.standalone:
                assert item["sessionId"] is None and item["clientName"] is None and item["tags"] == ["anxiety"]
            else:
                assert item["sessionId"] == world.ann and item["clientName"] == "Ann" and item["tags"] is None
    scores = [item["score"] for item in body["results"]]
    assert scores == sorted(scores, reverse=True)


def test_paging_across_the_merge_has_no_duplicates_or_gaps(world: World) -> None:
    everything = world.api.get("/api/search", params={"q": "anxiety", "limit": 100}).json()["results"]
    assert len(everything) == 56
    paged = []
    for offset in range(0, 56, 7):
        page = world.api.get("/api/search", params={"q": "anxiety", "limit": 7, "from": offset}).json()
        paged += [(item["type"], item["id"]) for item in page["results"]]
    assert paged == [(item["type"], item["id"]) for item in everything]
    assert len(set(paged)) == 56
    beyond = world.api.get("/api/search", params={"q": "anxiety", "limit": 10, "from": 56}).json()
    assert beyond["results"] == [] and beyond["total"] == 56


def test_search_type_and_client_filter(world: World) -> None:
    transcripts = world.api.get("/api/search", params={"q": "anxiety", "searchType": "transcript", "limit": 100})
    assert {i["type"] for i in transcripts.json()["results"]} == {"transcript"} and transcripts.json()["total"] == 36
    chat_only = world.api.get("/api/search", params={"q": "anxiety", "searchType": "chat", "limit": 100}).json()
    assert {i["type"] for i in chat_only["results"]} == {"chat"} and chat_only["total"] == 20
    bob = world.api.get("/api/search", params={"q": "anxiety", "clientName": "Bob", "limit": 100}).json()
    assert bob["total"] == 10 and {i["sessionId"] for i in bob["results"]} == {world.bob}
    ann_chat = world.api.get("/api/search", params={"q": "message", "clientName": "ann", "searchType": "chat"}).json()
    assert ann_chat["total"] == 15
    only_client = world.api.get("/api/search", params={"clientName": "Bob", "searchType": "transcript"}).json()
    assert only_client["total"] == 10
    nothing = world.api.get("/api/search").json()
    assert nothing == {"query": "No query or filters provided", "results": [], "total": 0}


def test_highlights_are_escaped_html_with_only_mark(world: World) -> None:
    body = world.api.get("/api/search", params={"q": "alert script", "searchType": "transcript"}).json()
    hit = next(i for i in body["results"] if i["id"] == f"{world.ann}_25")
    for html in [hit["snippet"], *hit["highlights"]["text"]]:
        assert "<script>" not in html and "&lt;" in html and "<mark>" in html
        assert html.replace("<mark>", "").replace("</mark>", "").count("<") == 0


@pytest.mark.parametrize("params", [{"q": "x", "limit": 0}, {"q": "x", "limit": 101}, {"q": "x", "from": -1},
                                    {"q": "x", "searchType": "other"}, {"q": "x" * 10_000},
                                    {"q": "x", "limit": 100, "from": 9_950}, {"q": "x", "limit": "many"}])
def test_bad_parameters_are_400_with_the_error_body(world: World, params: dict) -> None:
    response = world.api.get("/api/search", params=params)
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error"] == "ValidationError" and isinstance(body["message"], str) and body["details"]
