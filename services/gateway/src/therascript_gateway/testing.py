"""The real gateway served by uvicorn on a free loopback port, in a thread of the calling process, for tests
that need what the in-process TestClient cannot give: a body that arrives slowly or never ends, a client
that stalls, a raw socket (TestClient reads a request's whole body before the app sees it). And the chat
reply's SSE read the way the original UI reads it (`read_sse_as_the_ui_does`)."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import uvicorn

from .app import create_app
from .http_protocol import BoundedHeadHttpToolsProtocol
from .settings import GatewaySettings

if TYPE_CHECKING:  # the tests' HTTP client, not a dependency of the gateway
    import httpx


@contextmanager
def serve_gateway(settings: GatewaySettings) -> Iterator[tuple[str, int]]:
    """Yields ("127.0.0.1", port) once uvicorn accepts connections (TimeoutError after 20 s); stops it after."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(create_app(settings), log_config=None, timeout_keep_alive=5,
                            h11_max_incomplete_event_size=64 * 1024, http=BoundedHeadHttpToolsProtocol)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise TimeoutError("the gateway did not start")
        time.sleep(0.05)
    try:
        yield "127.0.0.1", port
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()


def read_response(sock: socket.socket, timeout_s: float, body: bool = True) -> tuple[int, bytes]:
    """(status, raw bytes so far) of the HTTP response arriving on `sock` within `timeout_s` seconds (with
    `body=False`, stops reading once the head is in); TimeoutError if no status line came."""
    sock.settimeout(timeout_s)
    data = b""
    deadline = time.monotonic() + timeout_s
    while b"\r\n\r\n" not in data:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            raise TimeoutError(f"no response within {timeout_s} s") from None
        if not chunk:
            break
        data += chunk
    if not data.startswith(b"HTTP/1.1 "):
        raise TimeoutError(f"no response within {timeout_s} s (got {data[:80]!r})")
    head, _, rest = data.partition(b"\r\n\r\n")
    length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), None)
    while body and length is not None and len(rest) < length and time.monotonic() < deadline:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return int(data.split(b" ", 2)[1]), head + b"\r\n\r\n" + rest


def read_sse_as_the_ui_does(response: httpx.Response, stop_after_chunks: int | None = None
                            ) -> list[tuple[float, dict]]:
    """(time.monotonic() of arrival, event) for each `data:` line of a chat reply, parsed as the original UI does
    (ui-contract §3.1): decode, split on \\n with carry-over, JSON.parse; stops after `stop_after_chunks` chunks."""
    events, carry, chunks = [], "", 0
    for text in response.iter_text():
        carry += text
        *lines, carry = carry.split("\n")
        for line in lines:
            if not line.startswith("data:"):
                continue
            event = json.loads(line[5:].strip())
            events.append((time.monotonic(), event))
            chunks += "chunk" in event
            if stop_after_chunks is not None and chunks >= stop_after_chunks:
                return events
    return events
