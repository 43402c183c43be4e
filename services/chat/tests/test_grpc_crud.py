"""The CRUD RPCs over a real gRPC server (statuses as the gateway will see them)."""

from __future__ import annotations

import grpc
import pytest

from therascript.chat.v1 import chat_pb2, chat_pb2_grpc
from therascript_chat import chats
from therascript_chat.storage.tables import ChatRow
from therascript_chat.testing import start_chat_service


@pytest.fixture
def service(tmp_path):
    running = start_chat_service(tmp_path)
    channel = grpc.insecure_channel(running.target)
    yield running, chat_pb2_grpc.ChatServiceStub(channel)
    channel.close()
    running.stop()


def test_list_and_delete_session_chats_rpcs(service) -> None:
    running, stub = service
    ids = [chats.create_chat(running.deps.db, 42).id for _ in range(2)]
    listed = stub.ListSessionChats(chat_pb2.ListSessionChatsRequest(session_id=42)).chats
    assert [c.id for c in listed] == ids[::-1] and all(c.session_id == 42 and c.timestamp_ms > 0 for c in listed)
    assert stub.DeleteSessionChats(chat_pb2.DeleteSessionChatsRequest(session_id=42)).chats_deleted == 2
    assert stub.DeleteSessionChats(chat_pb2.DeleteSessionChatsRequest(session_id=42)).chats_deleted == 0
    assert list(stub.ListSessionChats(chat_pb2.ListSessionChatsRequest(session_id=42)).chats) == []


def test_delete_session_chats_takes_only_the_chats_created_by_the_cutoff(service) -> None:
    """Issue 7 item 1: a clean-up delivered late (chat was down) must not delete a chat created after the
    session's deletion: it deletes the chats with timestamp_ms <= created_at_or_before_ms, no others."""
    running, stub = service
    old = chats.create_chat(running.deps.db, 43)
    with running.deps.db.begin() as tx:  # the delete happened 5 s after the old chat was made…
        cutoff = old.timestamp_ms + 5000
        later = ChatRow(session_id=43, timestamp_ms=cutoff + 1, name=None, tags=None)  # …this one after it
        tx.add(later)
    request = chat_pb2.DeleteSessionChatsRequest(session_id=43, created_at_or_before_ms=cutoff)
    assert stub.DeleteSessionChats(request).chats_deleted == 1
    listed = stub.ListSessionChats(chat_pb2.ListSessionChatsRequest(session_id=43)).chats
    assert [c.id for c in listed] == [later.id]


def test_duplicate_template_title_is_already_exists(service) -> None:
    _, stub = service
    titles = [t.title for t in stub.ListTemplates(chat_pb2.ListTemplatesRequest()).templates]
    assert "system_prompt" in titles and "system_standalone_prompt" in titles
    stub.CreateTemplate(chat_pb2.TemplateInput(title="Summary", text="Summarise."))
    with pytest.raises(grpc.RpcError) as caught:
        stub.CreateTemplate(chat_pb2.TemplateInput(title="Summary", text="Again."))
    assert caught.value.code() == grpc.StatusCode.ALREADY_EXISTS


def test_unknown_chat_is_not_found_and_session_down_is_unavailable(service) -> None:
    _, stub = service
    with pytest.raises(grpc.RpcError) as caught:
        stub.GetChat(chat_pb2.ChatRef(chat_id=999))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as caught:  # the sessions target of this server answers nothing
        stub.CreateChat(chat_pb2.CreateChatRequest(session_id=1), timeout=30)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


def test_edited_system_template_survives_a_service_restart(tmp_path) -> None:
    first = start_chat_service(tmp_path)
    with grpc.insecure_channel(first.target) as channel:
        stub = chat_pb2_grpc.ChatServiceStub(channel)
        seeded = {t.title: t for t in stub.ListTemplates(chat_pb2.ListTemplatesRequest()).templates}
        stub.UpdateTemplate(chat_pb2.UpdateTemplateRequest(id=seeded["system_prompt"].id, template=chat_pb2.TemplateInput(
            title="system_prompt", text="Answer in bullet points.")))
    first.stop()
    second = start_chat_service(tmp_path)  # same data dir: migrations and seeding run again
    with grpc.insecure_channel(second.target) as channel:
        after = {t.title: t for t in chat_pb2_grpc.ChatServiceStub(channel).ListTemplates(
            chat_pb2.ListTemplatesRequest()).templates}
    second.stop()
    assert after["system_prompt"].text == "Answer in bullet points."
    assert {t.id for t in after.values()} == {t.id for t in seeded.values()}
