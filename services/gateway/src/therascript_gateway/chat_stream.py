"""The chat reply as Server-Sent Events (original §2.1, ui-contract §3.1), framed by sse-starlette.

The chat service's SendMessage stream is relayed event by event: one JSON object per `data:` line, one
key family per event (the UI dispatches on the first matching key), `: keep-alive` comments while the model
loads and every 15 s of silence. A `chunk` event's text is whatever one chat event carried: one token, or
several that arrived together upstream (llm-manager and chat coalesce while they send, read_ahead.py); the UI
appends each chunk's text, so the reply reads the same. Events are encoded to bytes here, once (a chunk event
by string concatenation around the JSON-escaped text), not through sse-starlette's ServerSentEvent, whose
per-line splitting is spent on JSON that never holds a line break.

The first gRPC event (`user_message_id`) is read before the response starts, so errors before the stream (bad
chat, text, llm-manager down) are ordinary JSON error responses and the id can go into the `X-User-Message-Id`
header. A client disconnect cancels the gRPC call, which
cancels generation upstream; the chat service stores the partial reply.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from json.encoder import encode_basestring  # json.dumps' own encoder of a str (C), ensure_ascii=False

import grpc
from sse_starlette import EventSourceResponse, ServerSentEvent

from therascript.chat.v1 import chat_pb2

log = logging.getLogger(__name__)

KEEP_ALIVE_S = 15          # seconds of silence before a `: keep-alive` comment
REPLY_DEADLINE_S = 30 * 60  # a reply stream may run this long, seconds
STREAM_FAILED = "Stream processing failed on server during LLM interaction."
_PHASES = {chat_pb2.REPLY_PHASE_THINKING: "thinking", chat_pb2.REPLY_PHASE_RESPONDING: "responding"}


def _opt(message, field: str):
    return getattr(message, field) if message.HasField(field) else None


def usage_json(u: chat_pb2.ContextUsage) -> dict:
    """The original §4 context-usage object (plus the additive `tokenCountMethod`)."""
    m, b, t = u.model, u.breakdown, u.totals
    return {
        "model": {"name": m.name, "configuredContextSize": _opt(m, "configured_context_size"),
                  "defaultContextSize": _opt(m, "default_context_size"),
                  "effectiveContextSize": _opt(m, "effective_context_size")},
        "breakdown": {"systemTokens": _opt(b, "system_tokens"), "transcriptTokens": _opt(b, "transcript_tokens"),
                      "chatHistoryTokens": _opt(b, "chat_history_tokens"),
                      "inputDraftTokens": _opt(b, "input_draft_tokens")},
        "reserved": {"outputTokens": u.reserved_output_tokens},
        "totals": {"promptTokens": _opt(t, "prompt_tokens"), "percentUsed": _opt(t, "percent_used"),
                   "remainingForPrompt": _opt(t, "remaining_for_prompt"),
                   "remainingForOutput": _opt(t, "remaining_for_output")},
        "thresholds": {"warnAt": u.warn_at, "dangerAt": u.danger_at},
        "tokenCountMethod": u.token_count_method,
    }


def done_json(d: chat_pb2.ReplyDone) -> dict:
    """`{done, promptTokens?, completionTokens, thinkingTokens, duration (ms), isTruncated}` + windowing (additive)."""
    body: dict = {"done": True}
    if d.HasField("prompt_tokens"):
        body["promptTokens"] = d.prompt_tokens
    body.update(completionTokens=d.completion_tokens, thinkingTokens=d.thinking_tokens, duration=d.duration_ms,
                isTruncated=d.is_truncated, historyWindowed=d.history_windowed,
                historyTurnsDropped=d.history_turns_dropped,
                transcriptParagraphsOmitted=d.transcript_paragraphs_omitted)
    if d.HasField("context_note"):
        body["contextNote"] = d.context_note  # the transcript did not fit whole: what the answer rests on
    return body


def event_payload(event: chat_pb2.ChatEvent) -> dict | None:
    """The JSON object of one chat event; None for keep-alives (sent as comments)."""
    kind = event.WhichOneof("event")
    if kind == "status":
        return {"status": _PHASES.get(event.status, "thinking")}
    if kind == "usage":
        return {"usage": usage_json(event.usage)}
    if kind == "thinking_chunk":
        return {"thinkingChunk": event.thinking_chunk}
    if kind == "chunk":
        return {"chunk": event.chunk}
    if kind == "done":
        return done_json(event.done)
    if kind == "error":
        return {"error": event.error}
    return None


KEEP_ALIVE = b": keep-alive\n\n"


def _sse(payload: dict | None) -> bytes:
    """`data: <one-line JSON>\n\n`, or the comment `: keep-alive\n\n` for None (plain \n line ends). The JSON
    is compact UTF-8 (json.dumps escapes every control character, so it is always one line)."""
    if payload is None:
        return KEEP_ALIVE
    return b"data: " + json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode() + b"\n\n"


def event_sse(event: chat_pb2.ChatEvent) -> bytes:
    """One chat event as its SSE bytes. `chunk` and `thinkingChunk`, nearly every event of a reply, are written
    around the escaped text directly (the same bytes `_sse` gives, without building and walking a dict)."""
    kind = event.WhichOneof("event")
    if kind == "chunk":
        return b'data: {"chunk":' + encode_basestring(event.chunk).encode() + b"}\n\n"
    if kind == "thinking_chunk":
        return b'data: {"thinkingChunk":' + encode_basestring(event.thinking_chunk).encode() + b"}\n\n"
    return _sse(event_payload(event))


async def _relay(call) -> AsyncIterator[bytes]:
    """Relays the rest of the gRPC stream; cancels it when the client goes away (or on any exit)."""
    try:
        while (event := await call.read()) is not grpc.aio.EOF:
            yield event_sse(event)
    except grpc.RpcError as error:
        log.warning("chat stream failed: %s %s", error.code().name, error.details())
        yield _sse({"error": STREAM_FAILED})
    finally:
        call.cancel()


async def open_reply_stream(call) -> EventSourceResponse:
    """Reads the first event (raising the call's gRPC error before any byte is sent), then streams."""
    first = await call.read()
    user_message_id = first.user_message_id if first is not grpc.aio.EOF and first.HasField("user_message_id") else -1
    headers = {"Cache-Control": "no-cache", "X-User-Message-Id": str(user_message_id)}
    return EventSourceResponse(_relay(call), headers=headers, sep="\n", ping=KEEP_ALIVE_S,
                               ping_message_factory=lambda: ServerSentEvent(comment="keep-alive", sep="\n"),
                               media_type="text/event-stream; charset=utf-8")
