"""The analysis service's clients of other services: sessions (session metadata, transcript) and llm-manager
(status, CountTokens, Generate). A failed call becomes a domain error once, here. Never reads another
service's database (ARCHITECTURE.md)."""

from __future__ import annotations

from dataclasses import dataclass

import grpc

from therascript.llm.v1 import llm_pb2, llm_pb2_grpc
from therascript.sessions.v1 import sessions_pb2, sessions_pb2_grpc
from therascript_common.grpc_client import domain_error, sync_channel


class SessionsClient:
    """Sessions calls. Errors: NotFound (unknown session), Unavailable (sessions down)."""

    def __init__(self, target: str, timeout_s: float) -> None:
        self._channel = sync_channel(target, timeout_s)
        self._stub = sessions_pb2_grpc.SessionsServiceStub(self._channel)

    def get_session(self, session_id: int) -> sessions_pb2.Session:
        try:
            return self._stub.GetSession(sessions_pb2.SessionRef(session_id=session_id))
        except grpc.RpcError as error:
            raise domain_error("sessions", error) from error

    def get_transcript(self, session_id: int) -> list[sessions_pb2.Paragraph]:
        """Paragraphs in index order (empty unless transcribed)."""
        try:
            return list(self._stub.GetTranscript(sessions_pb2.SessionRef(session_id=session_id)).paragraphs)
        except grpc.RpcError as error:
            raise domain_error("sessions", error) from error

    def close(self) -> None:
        self._channel.close()


@dataclass(frozen=True)
class TokenCounts:
    """Tokens per text in request order; `context_size`: the loaded n_ctx (tokens) when a model is loaded."""

    counts: list[int]
    context_size: int | None


class LlmClient:
    """llm-manager calls. Errors: Unavailable (runtime down), InvalidArgument."""

    def __init__(self, target: str, timeout_s: float, generate_timeout_s: float) -> None:
        self._channel = sync_channel(target, timeout_s)
        self._stub = llm_pb2_grpc.LlmManagerServiceStub(self._channel)
        self._generate_timeout_s = generate_timeout_s

    def status(self) -> llm_pb2.LlmStatus:
        try:
            return self._stub.GetStatus(llm_pb2.GetStatusRequest())
        except grpc.RpcError as error:
            raise domain_error("llm-manager", error) from error

    def count_tokens(self, texts: list[str]) -> TokenCounts:
        """Counts each text with the loaded model's tokenizer (chars/4 when none is loaded)."""
        if not texts:
            return TokenCounts([], None)
        try:
            reply = self._stub.CountTokens(llm_pb2.CountTokensRequest(texts=texts))
        except grpc.RpcError as error:
            raise domain_error("llm-manager", error) from error
        return TokenCounts(list(reply.counts), reply.context_size if reply.HasField("context_size") else None)

    def generate(self, messages: list[llm_pb2.ChatMessage], max_tokens: int, temperature: float, purpose: str):
        """Starts a Generate stream: an iterator of GenerateChunk with `.cancel()` (which stops the generation
        in the runtime). Iterating raises grpc.RpcError on failure or cancellation."""
        request = llm_pb2.GenerateRequest(messages=messages, max_tokens=max_tokens, temperature=temperature,
                                          purpose=purpose)
        return self._stub.Generate(request, timeout=self._generate_timeout_s)

    def close(self) -> None:
        self._channel.close()
