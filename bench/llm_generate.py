"""Tokens/s and time-to-first-token through llm-manager's Generate (gRPC) vs straight from the runtime's
HTTP stream (llama.cpp /v1/chat/completions), same prompt, same seed, same run, interleaved.

Usage: .venv/bin/python bench/llm_generate.py [--runs 7] [--max-tokens 256]
Starts a real llm-manager (packaged SmolLM2 GGUF, llama.cpp via xllamacpp) in a temp folder.
tokens/s = completion tokens / (last token time - request start); TTFT = first token - request start.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import grpc
import httpx

from therascript.llm.v1 import llm_pb2, llm_pb2_grpc
from therascript_llm_manager.testing import start_llm_manager_with_parts

PROMPT = "Write a detailed story about a lighthouse keeper who finds a message in a bottle."


def via_grpc(stub: llm_pb2_grpc.LlmManagerServiceStub, max_tokens: int) -> tuple[float, float, int]:
    """(tokens/s, TTFT s, completion tokens) through Generate."""
    request = llm_pb2.GenerateRequest(messages=[llm_pb2.ChatMessage(role=llm_pb2.ROLE_USER, content=PROMPT)],
                                      max_tokens=max_tokens, temperature=0.0, seed=42)
    start = time.perf_counter()
    first = last = None
    tokens = 0
    for chunk in stub.Generate(request, timeout=300):
        if chunk.HasField("content"):
            last = time.perf_counter()
            first = first or last
        elif chunk.HasField("usage"):
            tokens = chunk.usage.completion_tokens
    return tokens / (last - start), first - start, tokens


def via_http(base_url: str, max_tokens: int) -> tuple[float, float, int]:
    """(tokens/s, TTFT s, completion tokens) straight from the runtime's streaming HTTP API."""
    payload = {"messages": [{"role": "user", "content": PROMPT}], "max_tokens": max_tokens, "temperature": 0.0,
               "seed": 42, "top_p": 0.9, "repeat_penalty": 1.1, "stream": True,
               "stream_options": {"include_usage": True}}
    start = time.perf_counter()
    first = last = None
    tokens = 0
    with httpx.stream("POST", f"{base_url}/v1/chat/completions", json=payload, timeout=300) as response:
        for line in response.iter_lines():
            if not line.startswith("data:") or line.endswith("[DONE]"):
                continue
            chunk = json.loads(line[5:])
            if any((c.get("delta") or {}).get("content") for c in chunk.get("choices") or ()):
                last = time.perf_counter()
                first = first or last
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
    return tokens / (last - start), first - start, tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--max-tokens", type=int, default=256)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        target, stop, manager = start_llm_manager_with_parts(Path(tmp))
        stub = llm_pb2_grpc.LlmManagerServiceStub(grpc.insecure_channel(target))
        http = manager.models.loaded_runtime().base_url
        via_grpc(stub, 16), via_http(http, 16)  # warm-up both paths
        grpc_runs, http_runs = [], []
        for run in range(args.runs):  # interleaved, order alternating, so load drift hits both alike
            pair = [lambda: http_runs.append(via_http(http, args.max_tokens)),
                    lambda: grpc_runs.append(via_grpc(stub, args.max_tokens))]
            for measure in pair if run % 2 == 0 else reversed(pair):
                measure()
        stop()
    report(grpc_runs, http_runs, args)


def report(grpc_runs: list, http_runs: list, args: argparse.Namespace) -> None:
    g_tps, g_ttft = (statistics.median(r[i] for r in grpc_runs) for i in (0, 1))
    h_tps, h_ttft = (statistics.median(r[i] for r in http_runs) for i in (0, 1))
    print(f"model: SmolLM2-135M-Instruct Q4_1 (packaged), runs: {args.runs}, max_tokens: {args.max_tokens}, "
          f"completion tokens per run: grpc {sorted({r[2] for r in grpc_runs})}, http {sorted({r[2] for r in http_runs})}")
    print(f"runtime HTTP stream : {h_tps:8.1f} tokens/s   TTFT {h_ttft * 1000:7.1f} ms   (median)")
    print(f"Generate via gRPC   : {g_tps:8.1f} tokens/s   TTFT {g_ttft * 1000:7.1f} ms   (median)")
    print(f"ratio gRPC/HTTP     : tokens/s {g_tps / h_tps:.3f}x   TTFT {g_ttft / h_ttft:.3f}x "
          f"(+{(g_ttft - h_ttft) * 1000:.1f} ms)")


if __name__ == "__main__":
    main()
