"""Test helper for other services: a real llm-manager gRPC server in-process, packaged model loaded.

    from therascript_llm_manager.testing import start_llm_manager

    target, stop = start_llm_manager(tmp_path)      # "127.0.0.1:PORT", model loaded
    channel = grpc.insecure_channel(target)
    ...
    stop()

The model store, database and runtime log live under `tmp_path`. Keyword arguments override
LlmManagerSettings fields (e.g. `default_context_size=4096`). Start-up takes about 1-2 s (it copies
or hard-links the 98 MB packaged GGUF and starts the llama.cpp child process).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from therascript_common.admin import admin_registration
from therascript_common.grpc_server import build_server

from .models import LoadState
from .server import LlmManager, build, grpc_registration
from .settings import LlmManagerSettings


def start_llm_manager(tmp_path: Path, wait_loaded: bool = True, **overrides: object
                      ) -> tuple[str, Callable[[], None]]:
    """Starts llm-manager on a free loopback port; returns (target "host:port", stop()).

    With `wait_loaded` (default) it returns only once the packaged model is loaded, and raises
    RuntimeError if it failed to load."""
    target, stop, _ = start_llm_manager_with_parts(tmp_path, wait_loaded, **overrides)
    return target, stop


def start_llm_manager_with_parts(tmp_path: Path, wait_loaded: bool = True, **overrides: object
                                 ) -> tuple[str, Callable[[], None], LlmManager]:
    """As start_llm_manager, also returning the LlmManager (store, models, pulls) for white-box tests."""
    values = {"data_dir": Path(tmp_path), "grpc_host": "127.0.0.1", "grpc_port": 0, "grpc_workers": 8}
    values.update(overrides)
    settings = LlmManagerSettings(**values)  # type: ignore[arg-type]
    manager = build(settings)
    server, _, port = build_server([grpc_registration(manager.servicer), admin_registration(manager.admin)],
                                   "127.0.0.1:0", settings.grpc_workers)
    server.start()

    def stop() -> None:
        server.stop(0).wait()
        manager.close()

    if wait_loaded:
        snap = manager.models.wait_until_settled(settings.load_timeout_s)
        if snap.state is not LoadState.LOADED:
            stop()
            raise RuntimeError(f"llm-manager did not load its model: {snap.error}")
    return f"127.0.0.1:{port}", stop, manager


class ScriptedRuntime:
    """A real OpenAI-compatible HTTP server on a free loopback port, for llm-manager's `remote` runtime
    (`start_llm_manager(tmp, runtime="remote", remote_base_url=scripted.base_url)`), whose replies follow a
    script: for tests and benches that need to say WHEN tokens arrive (llama.cpp cannot be asked to send
    several at once, or to pause).

    `script` is a list of steps (delay in s, tokens): each step waits its delay, then writes the SSE events of its
    tokens in ONE socket write (each event its own HTTP chunk, as llama.cpp sends them); after the last step, the
    usage event (completion_tokens = the script's token count) and `[DONE]`. `writes` records, per step of every
    reply, (time.monotonic() right after the write, its tokens). `/tokenize` answers 404, so llm-manager
    estimates token counts; `/v1/models` answers 200 (the remote runtime's health check)."""

    def __init__(self, script: list[tuple[float, list[str]]]) -> None:
        import http.server
        import threading

        self.script = script
        self.writes: list[tuple[float, list[str]]] = []
        runtime = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # kept-alive connections and chunked replies, as llama.cpp

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                body = b'{"object":"list","data":[{"id":"scripted","object":"model"}]}'
                status = 200 if self.path == "/v1/models" else 404
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path != "/v1/chat/completions":
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                runtime._stream(self.wfile)

        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="scripted-runtime", daemon=True)
        self._thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def _stream(self, out) -> None:
        import json
        import time

        def chunk(payload: dict | str) -> bytes:
            data = payload if isinstance(payload, str) else json.dumps(payload)
            event = f"data: {data}\n\n".encode()
            return b"%x\r\n%s\r\n" % (len(event), event)

        count = 0
        for delay_s, tokens in self.script:
            time.sleep(delay_s)
            out.write(b"".join(chunk({"choices": [{"index": 0, "delta": {"content": token}, "finish_reason": None}]})
                               for token in tokens))
            out.flush()
            self.writes.append((time.monotonic(), tokens))
            count += len(tokens)
        out.write(chunk({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                         "usage": {"prompt_tokens": 1, "completion_tokens": count}})
                  + chunk("[DONE]") + b"0\r\n\r\n")
        out.flush()

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
