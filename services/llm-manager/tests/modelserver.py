"""A real local HTTP server that serves GGUF files for pull tests: Range requests, throttling, redirects."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class ModelServer:
    """Serves `files` (url path -> file) on 127.0.0.1. `redirects` maps a path to a Location.
    `throttle_bytes_per_s` slows downloads down so tests can cancel or interrupt them mid-way.
    `range_requests` records each Range header received."""

    def __init__(self) -> None:
        self.files: dict[str, Path] = {}
        self.redirects: dict[str, str] = {}
        self.throttle_bytes_per_s: int | None = None
        self.range_requests: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                server._handle(self)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def url(self, path: str) -> str:
        return self.base_url + path

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        if handler.path in self.redirects:
            handler.send_response(302)
            handler.send_header("Location", self.redirects[handler.path])
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        path = self.files.get(handler.path)
        if path is None:
            handler.send_error(404)
            return
        data_size = path.stat().st_size
        start = 0
        range_header = handler.headers.get("Range")
        if range_header:
            self.range_requests.append(range_header)
            start = int(range_header.removeprefix("bytes=").split("-")[0])
            handler.send_response(206)
            handler.send_header("Content-Range", f"bytes {start}-{data_size - 1}/{data_size}")
        else:
            handler.send_response(200)
        handler.send_header("Content-Length", str(data_size - start))
        handler.end_headers()
        self._send_body(handler, path, start)

    def _send_body(self, handler: BaseHTTPRequestHandler, path: Path, start: int) -> None:
        chunk = 256 * 1024
        with path.open("rb") as stream:
            stream.seek(start)
            try:
                while data := stream.read(chunk):
                    handler.wfile.write(data)
                    if self.throttle_bytes_per_s:
                        time.sleep(len(data) / self.throttle_bytes_per_s)
            except (BrokenPipeError, ConnectionResetError):
                pass
