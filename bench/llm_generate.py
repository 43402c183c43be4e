"""Tokens/s and time-to-first-token through llm-manager's Generate (gRPC) vs straight from the runtime's
HTTP stream (llama.cpp /v1/chat/completions), same prompt, same seed, same run, interleaved.

Usage: .venv/bin/python bench/llm_generate.py [--runs 7] [--max-tokens 256]
Starts a real llm-manager (packaged SmolLM2 GGUF, llama.cpp via xllamacpp) in a temp folder.
tokens/s = completion tokens / (last token time - request start); TTFT = first token - request start.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import grpc
from results import result
from streams import Run, llama_client, via_generate, via_llama

from therascript.llm.v1 import llm_pb2, llm_pb2_grpc
from therascript_llm_manager.testing import start_llm_manager_with_parts

PROMPT = "Write a detailed story about a lighthouse keeper who finds a message in a bottle."


def generate_request(max_tokens: int) -> llm_pb2.GenerateRequest:
    return llm_pb2.GenerateRequest(messages=[llm_pb2.ChatMessage(role=llm_pb2.ROLE_USER, content=PROMPT)],
                                   max_tokens=max_tokens, temperature=0.0, seed=42)


def llama_payload(max_tokens: int) -> dict:
    """The same request as generate_request, in llama.cpp's OpenAI-compatible form (llm-manager's defaults)."""
    return {"messages": [{"role": "user", "content": PROMPT}], "max_tokens": max_tokens, "temperature": 0.0,
            "seed": 42, "top_p": 0.9, "repeat_penalty": 1.1}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--max-tokens", type=int, default=256)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        target, stop, manager = start_llm_manager_with_parts(Path(tmp))
        stub = llm_pb2_grpc.LlmManagerServiceStub(grpc.insecure_channel(target))
        http = llama_client(manager.models.loaded_runtime().base_url)
        via_generate(stub, generate_request(16)), via_llama(http, llama_payload(16))  # warm-up both paths
        grpc_runs: list[Run] = []
        http_runs: list[Run] = []
        for run in range(args.runs):  # interleaved, order alternating, so load drift hits both alike
            pair = [lambda: http_runs.append(via_llama(http, llama_payload(args.max_tokens))),
                    lambda: grpc_runs.append(via_generate(stub, generate_request(args.max_tokens)))]
            for measure in pair if run % 2 == 0 else reversed(pair):
                measure()
        http.close()
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
    note = f"{args.runs} interleaved runs, max_tokens {args.max_tokens}, medians"
    result("Generate tokens/s", g_tps, "tokens/s", baseline=h_tps, baseline_name="llama.cpp HTTP stream", note=note)
    result("Generate TTFT", g_ttft * 1000, "ms", baseline=h_ttft * 1000, baseline_name="llama.cpp HTTP stream",
           note=note)


if __name__ == "__main__":
    main()
