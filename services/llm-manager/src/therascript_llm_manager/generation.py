"""Streaming chat completions and token counting against the runtime's OpenAI-compatible HTTP API.

`Generator.generate` yields `Text` chunks (content or thinking) as llama.cpp streams them
(`POST /v1/chat/completions`, `stream: true`), `Loading` keep-alives while a model loads or while the request
waits for one of the runtime's parallel slots, and one final `Usage`. Requests beyond the slots queue HERE, not in
llama.cpp: a request queued inside llama.cpp sends nothing, so the HTTP read timeout (meant for a runtime that
stopped producing tokens) fired on a healthy but busy runtime (issue 13's load test: 7 of 20 replies failed).
Cancelling (`Cancellation.cancel()`, wired to the gRPC call's termination) closes the HTTP stream, which makes
llama.cpp stop that generation and free its slot at once.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import httpx

from therascript_common.errors import InvalidArgument, Unavailable

from .db import ModelSettings, UsageRepository
from .models import ActiveModel
from .runtime import Runtime

log = logging.getLogger(__name__)

ROLES = ("system", "user", "assistant")
CHARS_PER_TOKEN = 4  # the estimate used when no tokenizer is loaded


@dataclass(frozen=True)
class Message:
    role: str  # one of ROLES
    content: str


@dataclass(frozen=True)
class GenerationRequest:
    """One chat completion. None values fall back to the active model settings."""

    messages: list[Message]
    max_tokens: int | None = None  # completion cap, tokens
    temperature: float | None = None
    top_p: float | None = None
    repeat_penalty: float | None = None
    seed: int | None = None
    purpose: str = ""  # for the usage record: session_chat, analysis_map, ...


@dataclass(frozen=True)
class Text:
    text: str
    thinking: bool = False  # reasoning content, kept apart from the answer


@dataclass(frozen=True)
class Loading:
    """Keep-alive while the model loads."""


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    duration_ms: int  # request sent → last token
    time_to_first_token_ms: int  # request sent → first token (content or thinking)
    truncated: bool  # stopped by max_tokens / the context window
    model: str


Event = Text | Loading | Usage


def coalesce(events: list[Event]) -> list[Event]:
    """`events` that arrived together, as few as can carry them, order kept: each run of Text of one kind
    (answer or thinking) joined into one Text, each run of Loading keep-alives into one; Usage left alone.
    E.g. [Text("Once"), Text(" upon"), Text(" a"), Usage] → [Text("Once upon a"), Usage]."""
    out: list[Event] = []
    texts: list[str] = []  # the run of Text that ends `out` (joined when the run ends)
    for event in events:
        last = out[-1] if out else None
        if isinstance(event, Text) and isinstance(last, Text) and event.thinking == last.thinking:
            texts.append(event.text)
        elif not (isinstance(event, Loading) and isinstance(last, Loading)):
            _close_run(out, texts)
            texts = [event.text] if isinstance(event, Text) else []
            out.append(event)
    _close_run(out, texts)
    return out


def _close_run(out: list[Event], texts: list[str]) -> None:
    last = out[-1] if out else None
    if len(texts) > 1 and isinstance(last, Text):
        out[-1] = Text("".join(texts), last.thinking)


@dataclass
class Cancellation:
    """Set by the transport when the caller goes away; closes whatever stream is registered."""

    event: threading.Event = field(default_factory=threading.Event)
    _closers: list[Callable[[], None]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def cancel(self) -> None:
        with self._lock:
            self.event.set()
            closers, self._closers = self._closers, []
        for close in closers:
            try:
                close()
            except Exception:
                pass

    def on_cancel(self, close: Callable[[], None]) -> None:
        with self._lock:
            if not self.event.is_set():
                self._closers.append(close)
                return
        close()

    @property
    def cancelled(self) -> bool:
        return self.event.is_set()


def abort_stream(response: httpx.Response) -> None:
    """Stops a streaming response from another thread at once. `response.close()` alone does not
    reliably wake a thread blocked reading the socket (it may wait for the read timeout), so the
    socket is shut down first; llama.cpp then sees the disconnect and stops generating."""
    stream = response.extensions.get("network_stream")
    sock = stream.get_extra_info("socket") if stream is not None else None
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
    response.close()


@dataclass
class _Progress:
    started: float
    first_token: float | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    chunks: int = 0
    finish_reason: str | None = None


class Generator:
    """Runs chat completions and token counts on the active model's runtime."""

    def __init__(self, models: ActiveModel, idle_timeout_s: float = 120.0, usage: UsageRepository | None = None,
                 parallel_slots: int = 1) -> None:
        """`idle_timeout_s`: seconds without a byte from a generating runtime before it counts as failed;
        `parallel_slots`: generations the runtime runs at once (LLM_PARALLEL_SLOTS); more wait for a slot here."""
        self._models = models
        self._idle_timeout_s = idle_timeout_s
        self._usage = usage  # every finished generation is recorded here (ops' usage figures)
        self._slots = threading.BoundedSemaphore(parallel_slots)

    def generate(self, request: GenerationRequest, cancellation: Cancellation) -> Iterator[Event]:
        """Streams one completion: Text chunks, Loading keep-alives, then exactly one Usage.

        Raises InvalidArgument (no messages, bad role, prompt larger than the context window) and
        Unavailable (no model can be loaded, the runtime failed or died mid-stream). Ends quietly,
        without Usage, when cancelled."""
        _validate(request)
        while (runtime := self._models.ensure_loaded(wait_s=1.0)) is None:
            if cancellation.cancelled:
                return
            yield Loading()
        while not self._slots.acquire(timeout=1.0):  # a keep-alive a second while the slots are busy
            if cancellation.cancelled:
                return
            yield Loading()
        try:
            yield from self._generate_in_slot(request, runtime, cancellation)
        finally:
            self._slots.release()

    def _generate_in_slot(self, request: GenerationRequest, runtime: Runtime,
                          cancellation: Cancellation) -> Iterator[Event]:
        snap = self._models.snapshot()
        payload = self._payload(request, snap.settings, runtime)
        progress = _Progress(started=time.perf_counter())
        try:
            try:
                yield from self._stream(runtime, payload, progress, cancellation)
            except (httpx.RemoteProtocolError, httpx.ConnectError):
                if progress.chunks or cancellation.cancelled or not runtime.alive():
                    raise
                log.info("runtime closed a pooled connection; retrying once")  # nothing was streamed yet
                yield from self._stream(runtime, payload, progress, cancellation)
        except httpx.HTTPError as error:
            if cancellation.cancelled:
                return
            self._models.snapshot()  # notices a dead runtime, so status reports it
            raise Unavailable(f"The LLM runtime failed during generation: {error.__class__.__name__}") from error
        if cancellation.cancelled:
            return
        usage = _usage(progress, snap.loaded_model or "")
        if self._usage is not None:
            try:
                self._usage.record(request.purpose, usage.model, usage.prompt_tokens, usage.completion_tokens,
                                   usage.duration_ms, round(time.time() * 1000))
            except Exception:
                log.exception("could not record the usage of a generation")
        yield usage

    def count_tokens(self, texts: list[str]) -> tuple[list[int], bool, int | None]:
        """Token counts for `texts` with the loaded model's tokenizer (llama.cpp `/tokenize`).

        Returns (counts, used_tokenizer, loaded context size); when no model is loaded, or the
        runtime has no /tokenize, counts are ceil(chars / 4) and used_tokenizer is False."""
        snap = self._models.snapshot()
        runtime = snap.runtime if snap.runtime is not None and snap.loaded_model else None
        if runtime is not None:
            try:
                return [self._tokenize(runtime, text) for text in texts], True, snap.loaded_context_size
            except (httpx.HTTPError, KeyError, ValueError) as error:
                log.warning("tokenizer unavailable (%s); estimating", error)
        return [math.ceil(len(text) / CHARS_PER_TOKEN) for text in texts], False, snap.loaded_context_size

    # ---- internals ------------------------------------------------------------------------
    @staticmethod
    def _tokenize(runtime: Runtime, text: str) -> int:
        if not text:
            return 0
        reply = runtime.client.post("/tokenize", json={"content": text, "add_special": False})
        reply.raise_for_status()
        return len(reply.json()["tokens"])

    @staticmethod
    def _payload(request: GenerationRequest, settings: ModelSettings, runtime: Runtime) -> dict:
        payload: dict = {
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
            "stream": True,
            "stream_options": {"include_usage": True},
            "temperature": _pick(request.temperature, settings.temperature),
            "top_p": _pick(request.top_p, settings.top_p),
            "repeat_penalty": _pick(request.repeat_penalty, settings.repeat_penalty),
        }
        if getattr(runtime, "model", None):  # a remote server serves several models
            payload["model"] = runtime.model  # type: ignore[attr-defined]
        if request.max_tokens:
            payload["max_tokens"] = request.max_tokens
        if request.seed is not None:
            payload["seed"] = request.seed
        if settings.thinking_budget == 0:
            payload["chat_template_kwargs"] = {"enable_thinking": False}
        return payload

    def _stream(self, runtime: Runtime, payload: dict, progress: _Progress,
                cancellation: Cancellation) -> Iterator[Text]:
        timeout = httpx.Timeout(connect=5.0, read=self._idle_timeout_s, write=30.0, pool=30.0)
        with runtime.client.stream("POST", "/v1/chat/completions", json=payload, timeout=timeout) as response:
            cancellation.on_cancel(lambda: abort_stream(response))
            if response.status_code != 200:
                _raise_for_runtime_error(response)
            for data in _sse_data(response):
                if cancellation.cancelled or data == b"[DONE]":
                    return
                yield from _parse_chunk(json.loads(data), progress)


def _sse_data(response: httpx.Response) -> Iterator[bytes]:
    """The payloads of the `data:` lines of an SSE body, as they arrive (bytes split by hand: cheaper
    per token than httpx's text line decoder, which matters on a CPU shared with llama.cpp)."""
    pending = b""
    for block in response.iter_raw():
        lines = (pending + block).split(b"\n")
        pending = lines.pop()
        for line in lines:
            if line.startswith(b"data:"):
                yield line[5:].strip()


def _pick(value: float | None, default: float) -> float:
    return default if value is None else value


def _validate(request: GenerationRequest) -> None:
    if not request.messages:
        raise InvalidArgument("At least one message is required.")
    for message in request.messages:
        if message.role not in ROLES:
            raise InvalidArgument(f"Unknown message role '{message.role}'.")
    if request.max_tokens is not None and request.max_tokens < 0:
        raise InvalidArgument("max_tokens must not be negative.")


def _parse_chunk(chunk: dict, progress: _Progress) -> Iterator[Text]:
    if "error" in chunk:
        raise Unavailable(f"The LLM runtime reported an error: {chunk['error'].get('message', chunk['error'])}")
    usage = chunk.get("usage")
    if usage:
        progress.prompt_tokens = int(usage.get("prompt_tokens", 0))
        progress.completion_tokens = int(usage.get("completion_tokens", 0))
    for choice in chunk.get("choices") or ():
        progress.finish_reason = choice.get("finish_reason") or progress.finish_reason
        delta = choice.get("delta") or {}
        for key, thinking in (("reasoning_content", True), ("content", False)):
            text = delta.get(key)
            if text:
                if progress.first_token is None:
                    progress.first_token = time.perf_counter()
                progress.chunks += 1
                yield Text(text, thinking)


def _usage(progress: _Progress, model: str) -> Usage:
    now = time.perf_counter()
    first = progress.first_token or now
    return Usage(
        prompt_tokens=progress.prompt_tokens,
        completion_tokens=progress.completion_tokens or progress.chunks,
        duration_ms=round((now - progress.started) * 1000),
        time_to_first_token_ms=round((first - progress.started) * 1000),
        truncated=progress.finish_reason == "length",
        model=model,
    )


def _raise_for_runtime_error(response: httpx.Response) -> None:
    response.read()
    try:
        error = response.json().get("error", {})
    except ValueError:
        error = {"message": response.text[:200]}
    message = error.get("message", f"HTTP {response.status_code}") if isinstance(error, dict) else str(error)
    if response.status_code == 400 or error.get("type") == "exceed_context_size_error":
        raise InvalidArgument(f"The LLM runtime refused the request: {message}")
    raise Unavailable(f"The LLM runtime answered HTTP {response.status_code}: {message}")
