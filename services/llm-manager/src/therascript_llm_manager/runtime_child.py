"""Entry point of the llama.cpp runtime child process: `python -m therascript_llm_manager.runtime_child SPEC_JSON`.

It starts llama.cpp's HTTP server for one model, prints `LISTENING <base url>` (or `ERROR <reason>`)
on stdout, then serves until its stdin reaches EOF: the parent closing the pipe, or dying, ends it.
So a crash of llama.cpp (or a kill -9 of this process) cannot take llm-manager down, and an
llm-manager that dies leaves no runtime behind. SPEC_JSON is runtime.LaunchSpec as JSON.
"""

from __future__ import annotations

import ctypes
import json
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

_PR_SET_PDEATHSIG = 1

#: Tokens of a prompt evaluated per server loop iteration (llama.cpp n_batch; its default is 2048). The server
#: looks at cancellations only between iterations, so a 4 000-token prompt cancelled 0.3 s in kept the runtime busy
#: through a whole 2048-token batch: the next short reply's first token came 22 s later (median of 3, 2 cores,
#: found by tests/e2e/test_faults.py, issue 13). 512 = llama.cpp's physical batch (n_ubatch): 5.4 s, and the same
#: prompt throughput (59.4 vs 59.8 s for that prompt uncancelled); 256 gave 2.1 s but an 11 % slower prompt.
PROMPT_BATCH_TOKENS = 512


def _serve_xllamacpp(spec: dict) -> None:
    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = spec["model_path"]
    params.n_parallel = spec["parallel_slots"]
    params.n_ctx = spec["context_size"] * spec["parallel_slots"]  # each slot gets the full context
    params.n_gpu_layers = spec["n_gpu_layers"]
    params.n_batch = PROMPT_BATCH_TOKENS
    if spec.get("threads"):
        params.cpuparams.n_threads = spec["threads"]
        params.cpuparams_batch.n_threads = spec["threads"]
    params.port = 0  # a free port, reported by listening_address
    params.endpoint_slots = True
    server = xllamacpp.Server(params)
    print("LISTENING", server.listening_address, flush=True)
    sys.stdin.read()  # until the parent closes the pipe or dies
    del server


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _die_with_parent() -> None:
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _wait_healthy(url: str, process: subprocess.Popen, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as reply:
                if reply.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"llama-server did not become healthy (exit code {process.poll()})")


def _serve_llama_server(spec: dict) -> None:
    port = _free_port()
    args = [spec["binary"], "-m", spec["model_path"], "--host", "127.0.0.1", "--port", str(port),
            "-c", str(spec["context_size"] * spec["parallel_slots"]), "-np", str(spec["parallel_slots"]),
            "-ngl", str(spec["n_gpu_layers"]), "-b", str(PROMPT_BATCH_TOKENS), "--slots"]
    if spec.get("threads"):
        args += ["-t", str(spec["threads"])]
    process = subprocess.Popen(args, stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)
    url = f"http://127.0.0.1:{port}"
    _wait_healthy(url, process, spec["load_timeout_s"])
    print("LISTENING", url, flush=True)
    def stop_when_parent_closes_stdin() -> None:
        sys.stdin.read()
        process.terminate()

    threading.Thread(target=stop_when_parent_closes_stdin, daemon=True).start()
    sys.exit(process.wait())


def main() -> None:
    spec = json.loads(sys.argv[1])
    try:
        if spec["backend"] == "llama-server":
            _serve_llama_server(spec)
        else:
            _serve_xllamacpp(spec)
    except Exception as error:
        print("ERROR", str(error).replace("\n", " "), flush=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
