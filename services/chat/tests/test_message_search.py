"""Message search through the real chat gRPC server on a real Elasticsearch, with a real sessions server for
client names: messages recorded through the one write path reach the index; renames, tags, deletes, a
session's client rename and a session's chats deleted all converge; escaped highlights; rebuild."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import grpc
import pytest
from elasticsearch import helpers
from sqlalchemy import select

from therascript.chat.v1 import chat_pb2, chat_pb2_grpc
from therascript_chat import chats, messages
from therascript_chat.admin import rebuild_search
from therascript_chat.messages import NewMessage
from therascript_chat.testing import RunningChatService, start_chat_service
from therascript_sessions import outbox as sessions_outbox
from therascript_sessions.sessions import MetadataUpdate
from therascript_sessions.storage.tables import OutboxRow
from therascript_sessions.testing import RunningSessions, seed_completed_session, start_sessions

CONVERGE_S = 30.0


@pytest.fixture
def stack(tmp_path, redis_url, elasticsearch_url) -> Iterator[tuple[RunningSessions, RunningChatService]]:
    sessions = start_sessions(tmp_path / "sessions", redis_url)
    chat = start_chat_service(tmp_path / "chat", sessions.target, elasticsearch_url=elasticsearch_url,
                              elasticsearch_index=f"test-messages-{uuid.uuid4().hex[:8]}", elasticsearch_timeout_s=3)
    yield sessions, chat
    chat.stop()
    sessions.stop()


def _indexed(chat: RunningChatService) -> dict[str, dict]:
    index = chat.deps.search.index
    index.refresh()
    return {hit["_id"]: hit["_source"] for hit in helpers.scan(index.client, index=index.alias)}


def _expected(chat: RunningChatService) -> dict[str, dict]:
    with chat.deps.db.begin() as session:
        return {a["_id"]: a["_source"] for a in chat.deps.search._all_actions(session)}


def _converge(chat: RunningChatService) -> dict[str, dict]:
    deadline = time.monotonic() + CONVERGE_S
    while True:
        indexed, expected = _indexed(chat), _expected(chat)
        if indexed == expected and chat.deps.search.indexer.pending() == 0:
            return indexed
        if time.monotonic() > deadline:
            assert indexed == expected, "the message index did not converge to the database"
        time.sleep(0.3)


def _say(chat: RunningChatService, chat_id: int, text: str, sender: str = "user") -> int:
    return messages.record_message(chat.deps.db, NewMessage(chat_id=chat_id, sender=sender, text=text)).id


def _search(chat: RunningChatService, query: str, client: str | None = None) -> chat_pb2.SearchMessagesResponse:
    stub = chat_pb2_grpc.ChatServiceStub(grpc.insecure_channel(chat.target))
    return stub.SearchMessages(chat_pb2.SearchMessagesRequest(query=query, limit=20, client_name=client,
                                                              **{"from": 0}))


def test_messages_are_searchable_with_chat_and_client_fields(stack) -> None:
    sessions, chat = stack
    sid = seed_completed_session(sessions.app, [("A", "hello")], client_name="Ann Smith")
    session_chat = chats.create_chat(chat.deps.db, sid).id
    standalone = chats.create_chat(chat.deps.db, None).id
    asked = _say(chat, session_chat, "Which coping strategies did we discuss?")
    answered = _say(chat, session_chat, "You discussed <b>breathing</b> & grounding strategies.", "ai")
    loose = _say(chat, standalone, "A standalone note about strategy")
    chats.update_chat_details(chat.deps.db, standalone, "Ideas", ["work", "Sleep"])
    docs = _converge(chat)
    assert docs[str(asked)]["client_name"] == "Ann Smith" and docs[str(asked)]["session_id"] == sid
    assert docs[str(loose)]["tags"] == ["Sleep", "work"] and docs[str(loose)]["chat_name"] == "Ideas"

    reply = _search(chat, "strategy")                 # stems: strategies → strategy
    assert {h.id for h in reply.hits} == {str(asked), str(answered), str(loose)} and reply.total == 3
    by_id = {h.id: h for h in reply.hits}
    assert by_id[str(answered)].sender == chat_pb2.SENDER_AI and by_id[str(answered)].chat_id == session_chat
    assert "&lt;b&gt;breathing&lt;" in by_id[str(answered)].snippet and "&amp; grounding" in by_id[str(answered)].snippet
    assert "<b>" not in by_id[str(answered)].snippet
    assert list(by_id[str(loose)].tags) == ["Sleep", "work"] and not by_id[str(loose)].HasField("client_name")
    assert {h.id for h in _search(chat, "strategy", client="ann smith").hits} == {str(asked), str(answered)}


def test_renames_tags_deletes_and_client_changes_converge(stack) -> None:
    sessions, chat = stack
    sid = seed_completed_session(sessions.app, [("A", "hello")], client_name="Bea")
    first = chats.create_chat(chat.deps.db, sid).id
    second = chats.create_chat(chat.deps.db, sid).id
    standalone = chats.create_chat(chat.deps.db, None).id
    kept = _say(chat, first, "first chat words")
    _say(chat, second, "second chat words")
    _say(chat, standalone, "standalone words")
    _converge(chat)

    chats.rename_chat(chat.deps.db, first, sid, "Renamed chat")
    chats.delete_chat(chat.deps.db, standalone, None)
    # The client's name changes in sessions: it records the re-index for chat in its outbox, same transaction.
    sessions.app.servicer.sessions.update_metadata(sid, MetadataUpdate(client_name="Bea Lee"))
    with sessions.app.db.transaction() as session:
        kinds = [row.kind for row in session.scalars(select(OutboxRow))]
    assert sessions_outbox.REINDEX_SESSION_CHATS in kinds
    stub = chat_pb2_grpc.ChatServiceStub(grpc.insecure_channel(chat.target))
    assert stub.ReindexSessionChats(chat_pb2.ReindexSessionChatsRequest(session_id=sid)).chats_queued == 2
    docs = _converge(chat)
    assert {d["client_name"] for d in docs.values()} == {"Bea Lee"}
    assert docs[str(kept)]["chat_name"] == "Renamed chat"
    assert all(d["chat_id"] != standalone for d in docs.values())

    chats.delete_session_chats(chat.deps.db, sid)
    assert _converge(chat) == {}


def test_rebuild_reports_counts(stack) -> None:
    sessions, chat = stack
    cid = chats.create_chat(chat.deps.db, None).id
    for n in range(30):
        _say(chat, cid, f"message number {n}")
    _converge(chat)
    before = chat.deps.search.index.concrete()
    reply = rebuild_search(chat.deps.search)
    assert reply.configured and reply.messages_indexed == 30 and not reply.errors
    assert chat.deps.search.index.concrete() != before
    assert _search(chat, "message").total == 30
