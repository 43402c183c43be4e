"""A reply whose generation fails mid-stream (llm-manager goes away, or its llama.cpp child is killed): the
partial reply is stored marked truncated (issue 7 item 2), the stream ends with the error event and no
`done`, nothing hangs; and with llm-manager down, sending fails before the stream."""

from __future__ import annotations

import os
import signal

import grpc

from therascript.chat.v1 import chat_pb2, chat_pb2_grpc
from therascript_chat import replies
from therascript_chat.testing import start_chat_service
from therascript_llm_manager.testing import start_llm_manager, start_llm_manager_with_parts


def test_llm_manager_dying_mid_stream_ends_with_an_error_event_and_keeps_the_partial_reply(tmp_path) -> None:
    llm_target, stop_llm = start_llm_manager(tmp_path / "llm", default_context_size=1024)
    chat_service = start_chat_service(tmp_path / "chat", llm_target=llm_target, max_reply_tokens=600)
    channel = grpc.insecure_channel(chat_service.target)
    stub = chat_pb2_grpc.ChatServiceStub(channel)
    try:
        chat = stub.CreateChat(chat_pb2.CreateChatRequest())
        events, stopped = [], False
        for event in stub.SendMessage(chat_pb2.SendMessageRequest(
                chat_id=chat.id, text="Write a very long story about a lighthouse keeper."), timeout=120):
            events.append(event)
            if event.WhichOneof("event") == "chunk" and not stopped and len([e for e in events if e.chunk]) >= 3:
                stop_llm()
                stopped = True
        assert stopped
        assert events[-1].WhichOneof("event") == "error" and events[-1].error == replies.STREAM_FAILED
        assert "done" not in [e.WhichOneof("event") for e in events]
        ai = [m for m in stub.GetChat(chat_pb2.ChatRef(chat_id=chat.id)).messages if m.sender == chat_pb2.SENDER_AI]
        streamed = "".join(e.chunk for e in events).strip()
        assert len(ai) == 1 and ai[0].text == streamed and not ai[0].cancelled
        assert ai[0].is_truncated  # cut off, not complete (issue 7 item 2: it was stored as if complete)

        second = stub.CreateChat(chat_pb2.CreateChatRequest())
        try:
            list(stub.SendMessage(chat_pb2.SendMessageRequest(chat_id=second.id, text="Hello?"), timeout=60))
            raise AssertionError("sending must fail while llm-manager is down")
        except grpc.RpcError as error:
            assert error.code() == grpc.StatusCode.UNAVAILABLE
        assert list(stub.GetChat(chat_pb2.ChatRef(chat_id=second.id)).messages) == []  # nothing stored
    finally:
        channel.close()
        chat_service.stop()
        if not stopped:
            stop_llm()


def test_llama_cpp_dying_mid_stream_stores_the_partial_reply_as_truncated(tmp_path) -> None:
    """kill -9 of llm-manager's llama.cpp runtime child while it streams: before, the partial reply was
    stored with isTruncated false, as if complete."""
    llm_target, stop_llm, manager = start_llm_manager_with_parts(tmp_path / "llm", default_context_size=1024)
    chat_service = start_chat_service(tmp_path / "chat", llm_target=llm_target, max_reply_tokens=600)
    channel = grpc.insecure_channel(chat_service.target)
    stub = chat_pb2_grpc.ChatServiceStub(channel)
    try:
        chat = stub.CreateChat(chat_pb2.CreateChatRequest())
        runtime = manager.models.snapshot().runtime
        assert runtime is not None
        events, killed = [], False
        for event in stub.SendMessage(chat_pb2.SendMessageRequest(
                chat_id=chat.id, text="Write a very long story about a lighthouse keeper."), timeout=120):
            events.append(event)
            if event.WhichOneof("event") == "chunk" and not killed and len([e for e in events if e.chunk]) >= 3:
                os.kill(runtime.pid, signal.SIGKILL)
                killed = True
        assert killed
        kinds = [e.WhichOneof("event") for e in events]
        assert kinds[-1] == "error" and events[-1].error == replies.STREAM_FAILED and "done" not in kinds
        ai = [m for m in stub.GetChat(chat_pb2.ChatRef(chat_id=chat.id)).messages if m.sender == chat_pb2.SENDER_AI]
        assert len(ai) == 1 and ai[0].text == "".join(e.chunk for e in events).strip() and ai[0].text
        assert ai[0].is_truncated and not ai[0].cancelled
    finally:
        channel.close()
        chat_service.stop()
        stop_llm()
