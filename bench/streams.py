"""Timing of token streams, shared by the LLM benches (bench/llm_generate.py, bench/chat_sse.py).

Each function returns a Run: (tokens/s, time-to-first-token in s, completion tokens), where
tokens/s = completion tokens / (last token − request start) and TTFT = first token − request start.
"""

from __future__ import annotations

import json
import time

import httpx

from therascript.llm.v1 import llm_pb2, llm_pb2_grpc

Run = tuple[float, float, int]  # tokens/s, TTFT seconds, completion tokens


def timed(start: float, first: float | None, last: float | None, tokens: int) -> Run:
    if first is None or last is None:
        raise RuntimeError("the stream produced no token")
    return tokens / (last - start), first - start, tokens


def via_generate(stub: llm_pb2_grpc.LlmManagerServiceStub, request: llm_pb2.GenerateRequest) -> Run:
    """llm-manager's Generate (one gRPC hop above llama.cpp)."""
    start = time.perf_counter()
    first = last = None
    tokens = 0
    for chunk in stub.Generate(request, timeout=300):
        if chunk.HasField("content"):
            last = time.perf_counter()
            first = first or last
        elif chunk.HasField("usage"):
            tokens = chunk.usage.completion_tokens
    return timed(start, first, last, tokens)


def via_llama(client: httpx.Client, payload: dict) -> Run:
    """llama.cpp's own streaming HTTP API (/v1/chat/completions) on a kept-alive client; `payload` without
    the streaming flags, which are added here."""
    payload = {**payload, "stream": True, "stream_options": {"include_usage": True}}
    start = time.perf_counter()
    first = last = None
    tokens = 0
    with client.stream("POST", "/v1/chat/completions", json=payload, timeout=300) as response:
        for line in response.iter_lines():
            if not line.startswith("data:") or line.endswith("[DONE]"):
                continue
            chunk = json.loads(line[5:])
            if any((c.get("delta") or {}).get("content") for c in chunk.get("choices") or ()):
                last = time.perf_counter()
                first = first or last
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
    return timed(start, first, last, tokens)


def llama_client(base_url: str) -> httpx.Client:
    """A client for llama.cpp's HTTP API that opens a fresh loopback connection per request: llama.cpp may
    close a kept-alive connection between streams ("Server disconnected without sending a response"), and
    a loopback connect costs far less than a millisecond, unlike a new client per request (tens of ms)."""
    return httpx.Client(base_url=base_url, limits=httpx.Limits(max_keepalive_connections=0))
