"""Streamed replies, context usage and windowing against the real llm-manager (llama.cpp + SmolLM2) and
the real sessions service. Assertions are on mechanics (order of events, persistence, token counts), not
on what the small model says."""

from __future__ import annotations

import time
from collections.abc import Iterator

import grpc
import pytest

from therascript.chat.v1 import chat_pb2, chat_pb2_grpc
from therascript.llm.v1 import llm_pb2, llm_pb2_grpc
from therascript_chat.testing import ChatStack, start_chat_stack

PARAGRAPHS = [
    ("SPEAKER_00", "Thanks for coming in today. How has your week been?"),
    ("SPEAKER_01", "Honestly it was hard. I barely slept and work felt overwhelming."),
    ("SPEAKER_00", "What do you notice happening when you lie awake?"),
    ("SPEAKER_01", "My mind keeps replaying the argument with my sister."),
]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[ChatStack]:
    running = start_chat_stack(tmp_path_factory.mktemp("chat-stack"), redis_url, context_size=1024,
                               max_reply_tokens=12)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def stub(stack: ChatStack) -> Iterator[chat_pb2_grpc.ChatServiceStub]:
    channel = grpc.insecure_channel(stack.chat.target)
    yield chat_pb2_grpc.ChatServiceStub(channel)
    channel.close()


@pytest.fixture(scope="module")
def llm(stack: ChatStack) -> Iterator[llm_pb2_grpc.LlmManagerServiceStub]:
    channel = grpc.insecure_channel(stack.llm_target)
    yield llm_pb2_grpc.LlmManagerServiceStub(channel)
    channel.close()


def _kinds(events: list[chat_pb2.ChatEvent]) -> list[str]:
    return [e.WhichOneof("event") for e in events]


def _send(stub, chat_id: int, text: str, session_id: int | None = None) -> list[chat_pb2.ChatEvent]:
    request = chat_pb2.SendMessageRequest(chat_id=chat_id, session_id=session_id, text=text)
    return list(stub.SendMessage(request, timeout=300))


def test_session_chat_reply_streams_events_in_order_and_persists_tokens(stack, stub) -> None:
    session_id = stack.seed_session(PARAGRAPHS)
    chat = stub.CreateChat(chat_pb2.CreateChatRequest(session_id=session_id))
    events = _send(stub, chat.id, "  How did the client sleep?  ", session_id)
    kinds = [k for k in _kinds(events) if k != "keep_alive"]
    assert kinds[:3] == ["user_message_id", "status", "usage"]
    assert events[1].status == chat_pb2.REPLY_PHASE_THINKING
    responding = kinds.index("status", 3)
    assert events[responding].status == chat_pb2.REPLY_PHASE_RESPONDING
    assert set(kinds[3:responding]) <= {"thinking_chunk"}
    assert kinds[responding + 1:-1] == ["chunk"] * (len(kinds) - responding - 2) and len(kinds) - responding - 2 >= 2
    assert kinds[-1] == "done"
    done = events[-1].done
    assert done.completion_tokens > 0 and done.prompt_tokens > 0 and done.duration_ms > 0
    assert not done.history_windowed

    detail = stub.GetChat(chat_pb2.ChatRef(chat_id=chat.id, session_id=session_id))
    user, ai = detail.messages
    assert user.id == events[0].user_message_id and user.text == "How did the client sleep?"
    assert ai.sender == chat_pb2.SENDER_AI
    assert ai.text == "".join(e.chunk for e in events if e.WhichOneof("event") == "chunk").strip()
    assert (ai.prompt_tokens, ai.completion_tokens, ai.duration_ms) == (done.prompt_tokens, done.completion_tokens,
                                                                        done.duration_ms)
    assert ai.is_truncated == done.is_truncated and not ai.cancelled


def test_standalone_chat_reply_keeps_history_across_turns(stub) -> None:
    chat = stub.CreateChat(chat_pb2.CreateChatRequest())
    first = _send(stub, chat.id, "Name one breathing exercise.")
    second = _send(stub, chat.id, "Say it again in one word.")
    assert _kinds(first)[-1] == "done" and _kinds(second)[-1] == "done"
    assert second[-1].done.prompt_tokens > first[-1].done.prompt_tokens  # the first turn is in the prompt
    senders = [m.sender for m in stub.GetChat(chat_pb2.ChatRef(chat_id=chat.id)).messages]
    assert senders == [chat_pb2.SENDER_USER, chat_pb2.SENDER_AI] * 2


def test_cancelled_reply_is_stored_partial_and_generation_stops(stack, stub) -> None:
    stack.chat.deps.settings.max_reply_tokens = 600   # would run for a long while if not stopped
    try:
        chat = stub.CreateChat(chat_pb2.CreateChatRequest())
        call = stub.SendMessage(chat_pb2.SendMessageRequest(
            chat_id=chat.id, text="Write a very long story about a lighthouse keeper."), timeout=300)
        received = ""
        for event in call:
            received += event.chunk
            if received and sum(1 for _ in received.split()) >= 3:
                break
        call.cancel()
        ai = _wait_for_ai_message(stub, chat.id)
    finally:
        stack.chat.deps.settings.max_reply_tokens = 12
    assert ai.cancelled and ai.is_truncated
    assert ai.text and received.strip().startswith(ai.text[: len(received.strip())])
    assert ai.completion_tokens is not None and ai.completion_tokens < 600
    started = time.monotonic()
    follow_up = stub.SendMessage(chat_pb2.SendMessageRequest(chat_id=chat.id, text="Thanks."), timeout=300)
    first_chunk = next(e for e in follow_up if e.WhichOneof("event") == "chunk")
    assert first_chunk.chunk and time.monotonic() - started < 30  # the runtime is free, not busy with 600 tokens
    follow_up.cancel()


def _wait_for_ai_message(stub, chat_id: int, timeout_s: float = 30.0) -> chat_pb2.Message:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        ai = [m for m in stub.GetChat(chat_pb2.ChatRef(chat_id=chat_id)).messages if m.sender == chat_pb2.SENDER_AI]
        if ai:
            return ai[0]
        time.sleep(0.1)
    raise AssertionError("the partial assistant message was not stored")


def test_context_usage_equals_the_tokenizer_counts(stack, stub, llm) -> None:
    session_id = stack.seed_session(PARAGRAPHS)
    chat = stub.CreateChat(chat_pb2.CreateChatRequest(session_id=session_id))
    _send(stub, chat.id, "Summarise the session in one line.", session_id)
    usage = stub.GetContextUsage(chat_pb2.ContextUsageRequest(chat_id=chat.id, session_id=session_id,
                                                              input_draft="What next?"))
    system = next(t.text for t in stub.ListTemplates(chat_pb2.ListTemplatesRequest()).templates
                  if t.title == "system_prompt")
    transcript = "\n\n".join(f"{speaker}: {text}" for speaker, text in PARAGRAPHS)
    history = [m.text for m in stub.GetChat(chat_pb2.ChatRef(chat_id=chat.id, session_id=session_id)).messages]
    counted = llm.CountTokens(llm_pb2.CountTokensRequest(texts=[system, transcript, "What next?", *history]))
    assert counted.method == llm_pb2.TOKEN_COUNT_METHOD_TOKENIZER and usage.token_count_method == "tokenizer"
    b = usage.breakdown
    assert (b.system_tokens, b.transcript_tokens, b.input_draft_tokens) == tuple(counted.counts[:3])
    assert b.chat_history_tokens == sum(counted.counts[3:])
    assert usage.totals.prompt_tokens == sum(counted.counts)
    assert usage.model.effective_context_size == counted.context_size
    assert usage.totals.percent_used == pytest.approx(sum(counted.counts) / counted.context_size)
    assert usage.reserved_output_tokens == 512 and (usage.warn_at, usage.danger_at) == (0.75, 0.9)


def test_long_transcript_and_history_are_windowed_to_fit_the_context(stack, stub) -> None:
    long_paragraphs = [(f"SPEAKER_0{i % 2}", f"Paragraph {i}: " + "we talked about sleep, work and family. " * 4)
                       for i in range(60)]                        # ≈ 2700 tokens, the context is 1024
    session_id = stack.seed_session(long_paragraphs)
    chat = stub.CreateChat(chat_pb2.CreateChatRequest(session_id=session_id))
    events = _send(stub, chat.id, "What was discussed?", session_id)
    assert _kinds(events)[-1] == "done"
    done = events[-1].done
    assert done.history_windowed and done.transcript_paragraphs_omitted > 0
    context = events[2].usage.model.effective_context_size
    assert done.prompt_tokens + stack.chat.deps.settings.reserved_output_tokens <= context


def test_bad_input_is_rejected_before_anything_is_stored(stack, stub) -> None:
    chat = stub.CreateChat(chat_pb2.CreateChatRequest())
    for text in ["   ", "x" * 10_001]:
        with pytest.raises(grpc.RpcError) as caught:
            _send(stub, chat.id, text)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as caught:
        _send(stub, 987654, "hello")
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as caught:
        stub.CreateChat(chat_pb2.CreateChatRequest(session_id=987654))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert list(stub.GetChat(chat_pb2.ChatRef(chat_id=chat.id)).messages) == []
