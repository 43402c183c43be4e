"""The deliberate limit on replies streaming at once (issue 7 item 9): each SendMessage holds a gRPC worker
thread for its whole stream, so with more replies than threads the extra ones waited silently (20 concurrent
replies: 4 waited 35–79 s for their first byte). Now one beyond CHAT_MAX_CONCURRENT_REPLIES is refused at
once with UNAVAILABLE (the gateway's 503), the other RPCs keep answering, and a slot frees when a reply ends.
Real chat and llm-manager servers (packaged model, llama.cpp on CPU)."""

from __future__ import annotations

import time

import grpc
import pytest
from pydantic import ValidationError

from therascript.chat.v1 import chat_pb2, chat_pb2_grpc
from therascript_chat.settings import ChatSettings
from therascript_chat.testing import start_chat_service
from therascript_llm_manager.testing import start_llm_manager

LIMIT = 2
PROMPT = "Write a very long story about a lighthouse keeper."


@pytest.fixture
def stub(tmp_path):
    llm_target, stop_llm = start_llm_manager(tmp_path / "llm", default_context_size=1024)
    service = start_chat_service(tmp_path / "chat", llm_target=llm_target, max_reply_tokens=400,
                                 max_concurrent_replies=LIMIT, grpc_workers=LIMIT + 8)
    channel = grpc.insecure_channel(service.target)
    yield chat_pb2_grpc.ChatServiceStub(channel)
    channel.close()
    service.stop()
    stop_llm()


def _open_reply(stub, chat_id: int):
    """A SendMessage stream that has started (its first event, the user message id, has arrived)."""
    call = stub.SendMessage(chat_pb2.SendMessageRequest(chat_id=chat_id, text=PROMPT), timeout=120)
    assert next(call).WhichOneof("event") == "user_message_id"
    return call


def test_a_reply_beyond_the_limit_is_refused_at_once_and_a_slot_frees_when_one_ends(stub) -> None:
    chats = [stub.CreateChat(chat_pb2.CreateChatRequest()).id for _ in range(LIMIT + 1)]
    streaming = [_open_reply(stub, chat_id) for chat_id in chats[:LIMIT]]
    try:
        started = time.monotonic()
        with pytest.raises(grpc.RpcError) as refused:
            next(stub.SendMessage(chat_pb2.SendMessageRequest(chat_id=chats[LIMIT], text=PROMPT), timeout=60))
        assert time.monotonic() - started < 2.0, "refused, but only after waiting"
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "CHAT_MAX_CONCURRENT_REPLIES" in refused.value.details()
        assert list(stub.GetChat(chat_pb2.ChatRef(chat_id=chats[LIMIT])).messages) == []  # nothing stored
        # the other RPCs still answer while every reply slot streams
        started = time.monotonic()
        stub.ListStandaloneChats(chat_pb2.ListStandaloneChatsRequest(), timeout=5)
        assert time.monotonic() - started < 2.0

        streaming.pop(0).cancel()  # a reply ends (the client went away): its slot is free again
        deadline = time.monotonic() + 10
        while True:
            try:
                streaming.append(_open_reply(stub, chats[LIMIT]))
                break
            except grpc.RpcError as error:  # the cancelled stream's end may take a moment to arrive
                assert error.code() == grpc.StatusCode.UNAVAILABLE and time.monotonic() < deadline
                time.sleep(0.2)
    finally:
        for call in streaming:
            call.cancel()


def test_the_worker_threads_must_leave_room_beyond_the_reply_limit() -> None:
    with pytest.raises(ValidationError, match="CHAT_GRPC_WORKERS"):
        ChatSettings(max_concurrent_replies=16, grpc_workers=16)
    assert ChatSettings().grpc_workers >= ChatSettings().max_concurrent_replies + 8
