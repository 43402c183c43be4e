"""The token and the body cap are checked before a request body is read (issue 7 item 8), through the real
gateway under uvicorn and raw sockets (TestClient would read the whole body before the app runs).

Before: the token was a route dependency, which FastAPI solves after reading and parsing the JSON body, so a
300 MB body without a token was read whole (95 → 830 MB RSS). After: 401 arrives while the body is still
unsent, and a body over `json_body_max_bytes` is 413 after at most that many bytes."""

from __future__ import annotations

import json
import select
import socket

import pytest

from therascript_gateway.settings import GatewaySettings
from therascript_gateway.testing import read_response, serve_gateway

TOKEN = "edge-token"
CAP = 1024 * 1024


@pytest.fixture(scope="module")
def gateway():
    settings = GatewaySettings(api_token=TOKEN, json_body_max_bytes=CAP, chat_target="127.0.0.1:1",
                               sessions_target="127.0.0.1:1", grpc_timeout_s=2)
    with serve_gateway(settings) as address:
        yield address


def _send_head(address: tuple[str, int], head: str) -> socket.socket:
    sock = socket.create_connection(address)
    sock.sendall(head.encode())
    return sock


def _json_body(raw: bytes) -> dict:
    return json.loads(raw.partition(b"\r\n\r\n")[2])


def test_401_arrives_before_any_of_a_300_mb_body_is_sent(gateway):
    host, port = gateway
    sock = _send_head(gateway, f"POST /api/templates HTTP/1.1\r\nHost: {host}:{port}\r\n"
                               "Content-Type: application/json\r\nContent-Length: 314572800\r\n\r\n")
    try:
        status, raw = read_response(sock, 3)  # not one byte of the body has been sent
    finally:
        sock.close()
    assert status == 401 and _json_body(raw)["error"] == "UnauthorizedError"


def test_a_declared_oversized_body_is_413_before_it_is_sent(gateway):
    host, port = gateway
    sock = _send_head(gateway, f"PUT /api/templates/1 HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {TOKEN}"
                               f"\r\nContent-Type: application/json\r\nContent-Length: {300 * 1024 * 1024}\r\n\r\n")
    try:
        status, raw = read_response(sock, 3)
    finally:
        sock.close()
    assert status == 413 and _json_body(raw)["error"] == "PayloadTooLargeError"


def test_a_chunked_body_is_cut_off_at_the_cap(gateway):
    """No Content-Length: the body is counted as it arrives; the 413 comes after about CAP bytes, long before the
    64 MB this client would send (before: the whole body was buffered, and no answer came until its end)."""
    host, port = gateway
    sock = _send_head(gateway, f"POST /api/templates HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {TOKEN}"
                               "\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
    chunk = b"[" + b" " * (64 * 1024 - 1)
    frame = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
    sent = 0
    try:
        while sent < 64 * 1024 * 1024:
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:
                break
            try:
                sock.sendall(frame)
            except OSError:
                break  # the gateway answered and closed
            sent += len(chunk)
        status, raw = read_response(sock, 5)
    finally:
        sock.close()
    assert status == 413 and _json_body(raw)["error"] == "PayloadTooLargeError"
    assert b"\r\nconnection: close\r\n" in raw.lower()  # the rest of the body is never read as a request
    assert sent < 16 * CAP, f"{sent} bytes went in before the 413"


def test_a_body_under_the_cap_reaches_the_route(gateway):
    """A small body with the token passes the guard (the chat service is down here: 503, not 401/413)."""
    host, port = gateway
    body = json.dumps({"title": "T", "text": "x"}).encode()
    sock = _send_head(gateway, f"POST /api/templates HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {TOKEN}"
                               f"\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")
    try:
        sock.sendall(body)
        status, raw = read_response(sock, 10)
    finally:
        sock.close()
    assert status == 503, raw
