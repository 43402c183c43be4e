"""The streamed reply to a user message (original §2.1, ui-contract §3.1), one code path for session and
standalone chats.

Before the stream (errors here are ordinary RPC errors → JSON error responses): validate the text, load
the chat and its conversation, count tokens and plan the window (windowing.py), store the user message.
Then the events, one key family each: `user_message_id` (→ X-User-Message-Id header), `status:thinking`,
`usage`, `thinking_chunk`…, `status:responding` (once, before the first chunk), `chunk`…, `done`.
`keep_alive` events stand for llm-manager's "model still loading" chunks.

Ending: the assistant message is stored (messages.record_message) whenever any text arrived — also when
the client goes away (marked cancelled + truncated, partial text) or generation fails: llama.cpp or
llm-manager died mid-stream (marked truncated, not cancelled, partial text; the stream ends with the
error event, never `done`, so neither the store nor the client takes a cut-off reply as complete). A
client disconnect cancels the Generate stream upstream, so llm-manager stops generating (§10: the
original's stop unloaded the whole model). Error events: "Stream processing failed…" then the stream
ends; an empty reply sends the empty-response error and then `done` (original §2.1 / ui-contract §1.A.1).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import grpc

from therascript.chat.v1 import chat_pb2
from therascript.llm.v1 import llm_pb2
from therascript_common.errors import Unavailable

from . import chats, messages
from .context_usage import ModelWindow, model_window, usage_from_counts
from .conversation import (
    Conversation,
    ConversationCounts,
    build_prompt,
    count_conversation,
    history_turns,
    load_conversation,
    paragraph_counter,
    paragraph_scorer,
)
from .deps import ChatDeps
from .messages import NewMessage
from .windowing import WindowPlan, plan_window

log = logging.getLogger(__name__)

STREAM_FAILED = "Stream processing failed on server during LLM interaction."
EMPTY_REPLY = "The model returned an empty response. Try again or reduce the context size."

#: `on_end(callback)`: registers a callback run when the RPC ends for any reason (gRPC context.add_callback).
OnEnd = Callable[[Callable[[], None]], None]


class ReplySlots:
    """The deliberate limit on replies streaming at once (CHAT_MAX_CONCURRENT_REPLIES). Each reply holds a
    gRPC worker thread for its whole stream, so without a limit the replies beyond the thread pool waited,
    silently, for a thread (20 concurrent replies: 4 waited 35–79 s for their first byte)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._free = threading.BoundedSemaphore(limit)

    def take(self) -> Callable[[], None]:
        """Takes a slot and returns its release (idempotent: call it on every way the reply can end).
        Raises Unavailable at once when all `limit` slots are streaming."""
        if not self._free.acquire(blocking=False):
            raise Unavailable(f"The chat service is already streaming {self.limit} replies, its configured "
                              "limit (CHAT_MAX_CONCURRENT_REPLIES). Please retry in a moment.")
        once = threading.Lock()

        def release() -> None:
            if once.acquire(blocking=False):
                self._free.release()

        return release


@dataclass
class _Reply:
    """What arrived from Generate so far. The pieces are kept in lists and joined when the reply is stored
    (appending to a str copied the whole reply for every token)."""

    text_parts: list[str] = field(default_factory=list)
    thinking_parts: list[str] = field(default_factory=list)
    notice: str = ""                   # the context notice streamed and stored before the model's text
    responding: bool = False           # REPLY_PHASE_RESPONDING sent
    usage: llm_pb2.Usage | None = None  # once the stream finished normally
    cancelled: bool = False
    failed: bool = False
    started: float = 0.0               # time.monotonic() when Generate was called

    @property
    def text(self) -> str:
        return "".join(self.text_parts)

    @property
    def thinking(self) -> str:
        return "".join(self.thinking_parts)


@dataclass(frozen=True)
class _Prepared:
    chat_id: int
    question: str
    convo: Conversation
    counts: ConversationCounts
    model: ModelWindow
    plan: WindowPlan
    context_size: int


def _prepare(deps: ChatDeps, chat_id: int, session_id: int | None, text: str) -> _Prepared:
    """Everything before the user message is stored; raises InvalidArgument/NotFound/Unavailable."""
    question = messages.clean_text(text)
    chat = chats.get_chat(deps.db, chat_id, session_id)
    convo = load_conversation(deps, chat)
    counts = count_conversation(deps.llm, convo, question)
    model = model_window(deps.llm)
    context_size = counts.context_size or model.effective or deps.settings.fallback_context_size
    plan = plan_window(
        context_size, deps.settings.reserved_output_tokens, counts.system, counts.message,
        counts.transcript or 0, history_turns(convo, counts), paragraph_counter(deps.llm, convo),
        paragraph_scorer(convo, question),
    )
    return _Prepared(chat.id, question, convo, counts, model, plan, context_size)


def _max_tokens(deps: ChatDeps, prepared: _Prepared) -> int:
    """What the window leaves for the reply (≥ the reserved output), capped by CHAT_MAX_REPLY_TOKENS."""
    room = prepared.context_size - prepared.plan.prompt_tokens
    cap = deps.settings.max_reply_tokens
    return min(room, cap) if cap else room


def _relay(call, reply: _Reply) -> Iterator[chat_pb2.ChatEvent]:
    """Generate chunks → chat events, one event per chunk, as each arrives, accumulating the reply. A chunk holds
    every token that reached llm-manager together (it coalesces at the source, where a burst first shows), so a
    burst stays one message to the end; a second read-ahead here would cost a thread hand-off per token and, in
    the A/B runs of issue 13, coalesced nothing more. Raises grpc.RpcError from the stream."""
    for piece in call:
        kind = piece.WhichOneof("chunk")
        if kind == "content" and piece.content:
            if not reply.responding:
                reply.responding = True
                yield chat_pb2.ChatEvent(status=chat_pb2.REPLY_PHASE_RESPONDING)
            reply.text_parts.append(piece.content)
            yield chat_pb2.ChatEvent(chunk=piece.content)
        elif kind == "thinking" and piece.thinking:
            reply.thinking_parts.append(piece.thinking)
            yield chat_pb2.ChatEvent(thinking_chunk=piece.thinking)
        elif kind == "usage":
            reply.usage = piece.usage
        elif kind == "loading":
            yield chat_pb2.ChatEvent(keep_alive=True)


def _notice(plan: WindowPlan, reply: _Reply) -> Iterator[chat_pb2.ChatEvent]:
    """When the transcript did not fit, the reply opens with a short notice line (the original UI shows only
    the text, never the done event's `contextNote`): streamed as the first chunk and stored with the reply."""
    if not plan.context_note:
        return
    reply.notice, reply.responding = f"({plan.context_note})\n\n", True
    yield chat_pb2.ChatEvent(status=chat_pb2.REPLY_PHASE_RESPONDING)
    yield chat_pb2.ChatEvent(chunk=reply.notice)


def _count_or_none(deps: ChatDeps, text: str) -> int | None:
    """Tokens of `text`, or None if llm-manager cannot count now (used only after a stream ended early)."""
    if not text:
        return 0
    try:
        return deps.llm.count_tokens([text]).counts[0]
    except Exception:
        return None


def _store_reply(deps: ChatDeps, chat_id: int, reply: _Reply) -> chat_pb2.ReplyDone:
    """Stores the assistant message if any text arrived; returns the `done` figures (tokens, ms)."""
    usage = reply.usage
    duration = usage.duration_ms if usage is not None else int((time.monotonic() - reply.started) * 1000)
    completion = usage.completion_tokens if usage is not None else _count_or_none(deps, reply.text)
    thinking_tokens = _count_or_none(deps, reply.thinking) if reply.thinking else 0
    truncated = reply.cancelled or reply.failed or (usage is not None and usage.truncated)
    if reply.text or reply.thinking:
        messages.record_message(deps.db, NewMessage(
            chat_id=chat_id, sender="ai", text=(reply.notice + reply.text).strip(), thinking=reply.thinking.strip() or None,
            prompt_tokens=usage.prompt_tokens if usage is not None else None, completion_tokens=completion,
            duration_ms=duration, is_truncated=truncated, cancelled=reply.cancelled,
        ))
    return chat_pb2.ReplyDone(
        prompt_tokens=usage.prompt_tokens if usage is not None else None, completion_tokens=completion or 0,
        thinking_tokens=thinking_tokens, duration_ms=duration, is_truncated=truncated,
    )


def _with_window(done: chat_pb2.ReplyDone, plan: WindowPlan) -> chat_pb2.ReplyDone:
    done.history_windowed = plan.windowed
    done.history_turns_dropped = plan.first_turn
    done.transcript_paragraphs_omitted = plan.omitted_paragraphs
    if plan.context_note:
        done.context_note = plan.context_note
    return done


def stream_reply(deps: ChatDeps, chat_id: int, session_id: int | None, text: str,
                 on_end: OnEnd) -> Iterator[chat_pb2.ChatEvent]:
    """SendMessage: the events above. `on_end` lets the transport cancel Generate when the RPC ends."""
    prepared = _prepare(deps, chat_id, session_id, text)
    user = messages.record_message(deps.db, NewMessage(chat_id=prepared.chat_id, sender="user",
                                                       text=prepared.question))
    yield chat_pb2.ChatEvent(user_message_id=user.id)
    yield chat_pb2.ChatEvent(status=chat_pb2.REPLY_PHASE_THINKING)
    yield chat_pb2.ChatEvent(usage=usage_from_counts(prepared.counts, prepared.model,
                                                     deps.settings.reserved_output_tokens, True))
    ended = threading.Event()
    reply = _Reply(started=time.monotonic())
    call = deps.llm.generate(build_prompt(prepared.convo, prepared.question, prepared.plan),
                             _max_tokens(deps, prepared), prepared.convo.purpose)
    def stop() -> None:
        ended.set()
        call.cancel()

    on_end(stop)
    try:
        yield from _notice(prepared.plan, reply)
        yield from _relay(call, reply)
    except grpc.RpcError as error:
        reply.cancelled = ended.is_set()   # our caller went away (set before Generate is cancelled)
        reply.failed = not reply.cancelled
        if reply.failed:
            log.warning("Generate failed: %s %s", error.code().name, error.details())
    except GeneratorExit:
        reply.cancelled = True
        call.cancel()
        raise
    finally:
        done = _store_reply(deps, prepared.chat_id, reply)
    if reply.failed:
        yield chat_pb2.ChatEvent(error=STREAM_FAILED)
        return
    if reply.cancelled:
        return
    if not reply.text:
        yield chat_pb2.ChatEvent(error=EMPTY_REPLY)
    yield chat_pb2.ChatEvent(done=_with_window(done, prepared.plan))
