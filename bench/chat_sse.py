"""Chat reply relay: tokens/s and time-to-first-token of the SSE stream through the gateway (gateway →
chat → llm-manager → llama.cpp) against llama.cpp's own HTTP stream on the same prompt, in the same run,
interleaved; llm-manager's Generate (gRPC) is measured too, to split the added latency by hop.

Usage: .venv/bin/python bench/chat_sse.py [--runs 7] [--max-tokens 128]
Starts real servers in a temp folder: llm-manager in this process (packaged SmolLM2 GGUF, temperature 0 so
every path generates the same tokens; the direct and Generate paths are timed from here), and the chat service
(SQLite) and the gateway as their own processes, as deployed.
Each gateway run uses a fresh standalone chat, so the prompt is identical every time: the chat's system
prompt (system_standalone_prompt) + the question; the direct paths send exactly those two messages.
tokens/s = completion tokens / (last token − request start); TTFT = first token − request start.
Beside the wall-clock figures, the CPU each relay process spent per completion token during the gateway runs
(chat, gateway; llm-manager = this process less its main thread, which runs the clients; a reply's set-up, e.g.
chat's token counting and stores, included) is reported: it is what the relay takes from llama.cpp on a shared
CPU, and it moves far less than tokens/s when the machine is busy.
The report is printed before the servers are stopped, so a slow stop cannot lose the figures.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "support"))
from cpu import cpu_s, thread_cpu_s
from grpc_process import grpc_service_process
from results import result
from servers import free_port, wait_for_port
from streams import Run, llama_client, timed, via_generate, via_llama

from therascript.llm.v1 import llm_pb2, llm_pb2_grpc
from therascript_chat.templates import STANDALONE_SYSTEM_PROMPT
from therascript_gateway.testing import read_sse_as_the_ui_does
from therascript_llm_manager.testing import start_llm_manager_with_parts

QUESTION = "Write a detailed story about a lighthouse keeper who finds a message in a bottle."


def via_gateway(api: httpx.Client) -> Run:
    """POST /api/chats/{id}/messages on a new chat; the SSE parsed as the UI does (data: lines, JSON)."""
    chat_id = api.post("/api/chats").json()["id"]
    start = time.monotonic()  # the clock read_sse_as_the_ui_does stamps arrivals with
    with api.stream("POST", f"/api/chats/{chat_id}/messages", json={"text": QUESTION}) as response:
        events = read_sse_as_the_ui_does(response)
    chunks = [at for at, event in events if "chunk" in event]
    tokens = next((event["completionTokens"] for _, event in events if "done" in event), 0)
    return timed(start, chunks[0] if chunks else None, chunks[-1] if chunks else None, tokens)


def generate_on(stub: llm_pb2_grpc.LlmManagerServiceStub, messages: list[dict], max_tokens: int) -> Run:
    """llm-manager's Generate (one gRPC hop above llama.cpp)."""
    roles = {"system": llm_pb2.ROLE_SYSTEM, "user": llm_pb2.ROLE_USER}
    return via_generate(stub, llm_pb2.GenerateRequest(
        messages=[llm_pb2.ChatMessage(role=roles[m["role"]], content=m["content"]) for m in messages],
        max_tokens=max_tokens))


def llama_on(client: httpx.Client, messages: list[dict], max_tokens: int) -> Run:
    """llama.cpp's own streaming HTTP API, same sampling settings."""
    return via_llama(client, {"messages": messages, "max_tokens": max_tokens, "temperature": 0.0, "top_p": 0.9,
                              "repeat_penalty": 1.1})


def with_cpu(measure: Callable[[], Run], clocks: dict[str, Callable[[], float]], spent: dict[str, float]
             ) -> Callable[[], Run]:
    """`measure`, adding the CPU seconds each of `clocks` advanced during it to `spent[name]`."""
    def measured() -> Run:
        before = {name: clock() for name, clock in clocks.items()}
        run = measure()
        for name, clock in clocks.items():
            spent[name] = spent.get(name, 0.0) + clock() - before[name]
        return run
    return measured


@contextlib.contextmanager
def gateway_process(chat_target: str, llm_target: str) -> Iterator[tuple[str, int]]:
    """The real gateway (`therascript-gateway`) as its own process on a free port; yields (base URL, pid)."""
    port = free_port()
    env = {**os.environ, "THERASCRIPT_PORT": str(port), "THERASCRIPT_CHAT_TARGET": chat_target,
           "THERASCRIPT_LLM_TARGET": llm_target}
    process = subprocess.Popen([str(Path(sys.executable).parent / "therascript-gateway")], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_for_port(port)
        yield base_url, process.pid
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--max-tokens", type=int, default=128)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        llm_target, stop_llm, manager = start_llm_manager_with_parts(Path(tmp) / "llm")
        stub = llm_pb2_grpc.LlmManagerServiceStub(grpc.insecure_channel(llm_target))
        model = stub.GetStatus(llm_pb2.GetStatusRequest()).active_model
        stub.SetModel(llm_pb2.SetModelRequest(model_name=model, temperature=0.0, top_p=0.9, repeat_penalty=1.1),
                      timeout=300)
        # chat and the gateway run as their own processes (as deployed), not in this one: sharing this
        # process's GIL with the client and llm-manager would charge them for work they do not do.
        # The message index goes nowhere (as in therascript_chat.testing): the default URL is a developer's
        # local Elasticsearch, which the bench must not write into (nor wait for on a busy machine at stop).
        chat_env = {"CHAT_LLM_TARGET": llm_target, "CHAT_MAX_REPLY_TOKENS": str(args.max_tokens),
                    "CHAT_ELASTICSEARCH_URL": "http://127.0.0.1:1"}
        chat = stack.enter_context(grpc_service_process("therascript-chat", "CHAT_", Path(tmp) / "chat", chat_env))
        base_url, gateway_pid = stack.enter_context(gateway_process(chat[0], llm_target))
        api = httpx.Client(base_url=base_url, timeout=300)
        templates = {t["title"]: t["text"] for t in api.get("/api/templates").json()}
        messages = [{"role": "system", "content": templates[STANDALONE_SYSTEM_PROMPT]},
                    {"role": "user", "content": QUESTION}]
        llama = llama_client(manager.models.loaded_runtime().base_url)
        me = os.getpid()
        clocks = {"llm-manager": lambda: cpu_s(me) - thread_cpu_s(me, me), "chat": lambda: cpu_s(chat[1].pid),
                  "gateway": lambda: cpu_s(gateway_pid)}
        relay_cpu: dict[str, float] = {}
        paths = {"llama.cpp HTTP stream": lambda: llama_on(llama, messages, args.max_tokens),
                 "llm-manager Generate": lambda: generate_on(stub, messages, args.max_tokens),
                 "gateway SSE (2 more hops)": with_cpu(lambda: via_gateway(api), clocks, relay_cpu)}
        runs: dict[str, list[Run]] = {name: [] for name in paths}
        for measure in paths.values():
            measure()  # warm-up every path once
        relay_cpu.clear()
        for run in range(args.runs):  # interleaved, order rotating, so load drift hits every path alike
            names = list(paths)[run % 3:] + list(paths)[:run % 3]
            for name in names:
                runs[name].append(paths[name]())
        report(runs, relay_cpu, args)
        api.close(), llama.close()
        stack.close()
        stop_llm()


def report(runs: dict[str, list[Run]], relay_cpu: dict[str, float], args: argparse.Namespace) -> None:
    medians = {name: (statistics.median(r[0] for r in rs), statistics.median(r[1] for r in rs)) for name, rs in runs.items()}
    tokens = {name: sorted({r[2] for r in rs}) for name, rs in runs.items()}
    print(f"model: SmolLM2-135M-Instruct Q4_1 (packaged), temperature 0, runs: {args.runs}, "
          f"max_tokens: {args.max_tokens}, completion tokens per run: {tokens}")
    for name, (tps, ttft) in medians.items():
        print(f"{name:28s}: {tps:8.1f} tokens/s   TTFT {ttft * 1000:7.1f} ms   (median)")
    (base_tps, base_ttft), (gen_tps, gen_ttft), (gw_tps, gw_ttft) = medians.values()
    print(f"gateway SSE / llama.cpp     : tokens/s {gw_tps / base_tps:.3f}x   TTFT +{(gw_ttft - base_ttft) * 1000:.1f} ms")
    print(f"  of which llm-manager hop  : TTFT +{(gen_ttft - base_ttft) * 1000:.1f} ms")
    print(f"  of which chat + gateway   : TTFT +{(gw_ttft - gen_ttft) * 1000:.1f} ms   "
          f"(tokens/s {gw_tps / gen_tps:.3f}x of Generate)")
    gateway_tokens = sum(r[2] for r in runs["gateway SSE (2 more hops)"])
    per_token_us = {name: 1e6 * seconds / gateway_tokens for name, seconds in relay_cpu.items()}
    print("CPU per completion token on the gateway path: " + ", ".join(
        f"{name} {us:.0f} µs" for name, us in per_token_us.items()) + f" (sum of {args.runs} runs, 10 ms ticks)")
    note = f"{args.runs} interleaved runs, max_tokens {args.max_tokens}, medians"
    result("gateway SSE tokens/s", gw_tps, "tokens/s", baseline=base_tps, baseline_name="llama.cpp HTTP stream",
           goal=">= 0.95x", note=note)
    result("gateway SSE TTFT", gw_ttft * 1000, "ms", baseline=base_ttft * 1000,
           baseline_name="llama.cpp HTTP stream", note=note)
    result("gateway SSE tokens/s vs Generate", gw_tps, "tokens/s", baseline=gen_tps,
           baseline_name="llm-manager Generate", note=note)
    for name, us in per_token_us.items():
        result(f"{name} CPU per token, gateway path", us, "µs",
               note=f"{args.runs} runs, {gateway_tokens} completion tokens; /proc CPU ticks")


if __name__ == "__main__":
    main()
