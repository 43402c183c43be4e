"""The chat service's clients of other services: sessions (session + transcript) and llm-manager
(status, CountTokens, Generate). Each maps a failed call to a domain error once, here.

Never reads another service's database (ARCHITECTURE.md): everything comes over gRPC.
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc

from therascript.llm.v1 import llm_pb2, llm_pb2_grpc
from therascript.sessions.v1 import sessions_pb2, sessions_pb2_grpc
from therascript_common.grpc_client import domain_error, sync_channel


class SessionsClient:
    """Sessions service calls used by chat. Errors: NotFound (unknown session), Unavailable."""

    def __init__(self, target: str, timeout_s: float) -> None:
        self._channel = sync_channel(target, timeout_s)
        self._stub = sessions_pb2_grpc.SessionsServiceStub(self._channel)

    def get_session(self, session_id: int) -> sessions_pb2.Session:
        """The session's metadata (show_speakers, status, ...); NotFound if it does not exist."""
        try:
            return self._stub.GetSession(sessions_pb2.SessionRef(session_id=session_id))
        except grpc.RpcError as error:
            raise domain_error("sessions", error) from error

    def get_transcript(self, session_id: int) -> list[sessions_pb2.Paragraph]:
        """Paragraphs ordered by index (empty unless the session is transcribed)."""
        try:
            return list(self._stub.GetTranscript(sessions_pb2.SessionRef(session_id=session_id)).paragraphs)
        except grpc.RpcError as error:
            raise domain_error("sessions", error) from error

    def close(self) -> None:
        self._channel.close()


@dataclass(frozen=True)
class TokenCounts:
    """Token counts of texts, in order; `context_size` is the loaded n_ctx (tokens) when a model is loaded."""

    counts: list[int]
    by_tokenizer: bool
    context_size: int | None


class LlmClient:
    """llm-manager calls used by chat. Errors: Unavailable (runtime down), InvalidArgument."""

    def __init__(self, target: str, timeout_s: float, generate_timeout_s: float) -> None:
        self._channel = sync_channel(target, timeout_s)
        self._stub = llm_pb2_grpc.LlmManagerServiceStub(self._channel)
        self._generate_timeout_s = generate_timeout_s

    def status(self) -> llm_pb2.LlmStatus:
        """Active model, configured/loaded context sizes (tokens)."""
        try:
            return self._stub.GetStatus(llm_pb2.GetStatusRequest())
        except grpc.RpcError as error:
            raise domain_error("llm-manager", error) from error

    def count_tokens(self, texts: list[str]) -> TokenCounts:
        """Counts each text with the loaded model's tokenizer (chars/4 estimate when none is loaded)."""
        try:
            reply = self._stub.CountTokens(llm_pb2.CountTokensRequest(texts=texts))
        except grpc.RpcError as error:
            raise domain_error("llm-manager", error) from error
        return TokenCounts(
            counts=list(reply.counts),
            by_tokenizer=reply.method == llm_pb2.TOKEN_COUNT_METHOD_TOKENIZER,
            context_size=reply.context_size if reply.HasField("context_size") else None,
        )

    def generate(self, messages: list[llm_pb2.ChatMessage], max_tokens: int, purpose: str):
        """Starts a Generate stream: an iterator of GenerateChunk that also has `.cancel()`.
        Iterating raises grpc.RpcError on failure or cancellation (callers handle both: replies.py)."""
        request = llm_pb2.GenerateRequest(messages=messages, max_tokens=max_tokens, purpose=purpose)
        return self._stub.Generate(request, timeout=self._generate_timeout_s)

    def close(self) -> None:
        self._channel.close()
