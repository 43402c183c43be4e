"""Session chat over a transcript longer than the context window (issue 9), on the real llm-manager (packaged
SmolLM2 loaded with its full 8192-token context, the default now) and the real sessions service: the prompt holds
the paragraphs that match the question, in time order, and the reply says that only part of the transcript was
used (`context_note` in the done event) instead of answering from nothing."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest

from therascript.chat.v1 import chat_pb2, chat_pb2_grpc
from therascript_chat.chats import get_chat
from therascript_chat.conversation import (
    build_prompt,
    count_conversation,
    history_turns,
    load_conversation,
    paragraph_counter,
    paragraph_scorer,
)
from therascript_chat.testing import ChatStack, start_chat_stack
from therascript_chat.windowing import plan_window

FILLER = ("We went over the week in general terms: the commute, the weather, a film they watched, what the "
          "neighbours were doing and how the garden looked after the rain. ")
DOG = {37: "The client says their dog Biscuit has been limping and the vet visit made them anxious.",
       121: "They took Biscuit to the park again; walking the dog calms them down after work.",
       188: "Biscuit the dog slept on their bed all week, which helped them fall asleep."}
QUESTION = "What did the client say about their dog Biscuit?"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[ChatStack]:
    # counting 200 paragraphs one by one takes a while on a loaded CI machine: a longer deadline than 10 s
    running = start_chat_stack(tmp_path_factory.mktemp("chat-long"), redis_url, context_size=8192,
                               max_reply_tokens=12, rpc_timeout_s=60)
    yield running
    running.stop()


def test_a_transcript_over_the_context_is_answered_from_its_relevant_paragraphs(stack: ChatStack) -> None:
    paragraphs = [(f"SPEAKER_0{i % 2}", DOG.get(i, f"Paragraph {i}. " + FILLER * 2)) for i in range(200)]
    session_id = stack.seed_session(paragraphs)
    stub = chat_pb2_grpc.ChatServiceStub(grpc.insecure_channel(stack.chat.target))
    chat = stub.CreateChat(chat_pb2.CreateChatRequest(session_id=session_id))

    # the prompt the reply is built from: the same planning calls as replies.py, with the real token counts
    deps = stack.chat.deps
    convo = load_conversation(deps, get_chat(deps.db, chat.id, session_id))
    counts = count_conversation(deps.llm, convo, QUESTION)
    assert counts.transcript and counts.transcript > 10_000 and counts.context_size == 8192
    plan = plan_window(counts.context_size, deps.settings.reserved_output_tokens, counts.system, counts.message,
                       counts.transcript, history_turns(convo, counts), paragraph_counter(deps.llm, convo),
                       paragraph_scorer(convo, QUESTION))
    prompt = build_prompt(convo, QUESTION, plan)[-1].content
    positions = [prompt.index(text) for text in DOG.values()]
    assert positions == sorted(positions)  # all three dog paragraphs are there, in time order
    assert plan.kept_paragraphs is not None and set(DOG) <= set(plan.kept_paragraphs)
    assert plan.omitted_paragraphs > 0 and "left out" in prompt

    events = list(stub.SendMessage(chat_pb2.SendMessageRequest(chat_id=chat.id, session_id=session_id,
                                                               text=QUESTION), timeout=600))
    done = events[-1].done
    assert events[-1].WhichOneof("event") == "done"
    assert done.transcript_paragraphs_omitted == plan.omitted_paragraphs
    assert done.HasField("context_note") and "most relevant to the question" in done.context_note
    assert done.prompt_tokens > 4096  # most of the 8192-token window carries transcript, not nothing
    assert done.prompt_tokens + deps.settings.reserved_output_tokens <= 8192
    # the notice the original UI shows (it reads only the text): the first chunk, and stored with the reply
    chunks = [e.chunk for e in events if e.WhichOneof("event") == "chunk"]
    assert chunks and done.context_note in chunks[0]
    stored = stub.GetChat(chat_pb2.ChatRef(chat_id=chat.id, session_id=session_id)).messages[-1]
    assert stored.text.startswith(f"({done.context_note})") and len(stored.text) > len(chunks[0].strip())
