"""The request head (request line + headers) is bounded (http_protocol.BoundedHeadHttpToolsProtocol), through the
real gateway served by uvicorn with httptools as in production (therascript_gateway.testing.serve_gateway).

Before: uvicorn's `h11_max_incomplete_event_size` does nothing with httptools, and a 100 kB — or 8 MB — header was
buffered and answered like any request (health: 200/503). After: past 64 KiB the answer is 431 with the error body
and the connection is closed; ordinary requests, keep-alive and large bodies are untouched."""

from __future__ import annotations

import http.client
import json
import os

import httpx
import pytest

from therascript_gateway.http_protocol import MAX_HEAD_BYTES
from therascript_gateway.settings import GatewaySettings
from therascript_gateway.testing import serve_gateway


@pytest.fixture(scope="module")
def gateway():
    with serve_gateway(GatewaySettings(api_token="t0ken", sessions_target="127.0.0.1:1", grpc_timeout_s=2)) as addr:
        yield addr


def raw_get(gateway, target: str, headers: dict[str, str]) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection(*gateway, timeout=30)
    try:
        connection.request("GET", target, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@pytest.mark.parametrize("size", [MAX_HEAD_BYTES + 1024, 1024 * 1024])
def test_a_head_over_the_limit_is_431_with_the_error_body(gateway, size: int) -> None:
    status, body = raw_get(gateway, "/api/health", {"X-Padding": "a" * size})
    assert status == 431
    assert json.loads(body) == {"error": "RequestHeaderFieldsTooLarge",
                                "message": f"Request line and headers exceed {MAX_HEAD_BYTES} bytes."}


def test_many_headers_adding_up_past_the_limit_are_refused_too(gateway) -> None:
    headers = {f"X-H{i}": "b" * 1000 for i in range(80)}  # 80 kB in small headers
    assert raw_get(gateway, "/api/health", headers)[0] == 431


def test_heads_under_the_limit_keep_alive_and_large_bodies_are_untouched(gateway) -> None:
    status, _ = raw_get(gateway, "/api/health", {"X-Padding": "a" * (MAX_HEAD_BYTES // 2)})
    assert status in (200, 503)  # health answers (503: no backends here)
    with httpx.Client(base_url=f"http://{gateway[0]}:{gateway[1]}", headers={"Authorization": "Bearer t0ken"},
                      timeout=30) as client:
        for _ in range(3):  # one kept-alive connection, several requests
            assert client.get("/api/health").status_code in (200, 503)
        # a 3 MB body in reads far larger than the head limit: an ordinary validation error, not 431
        big = client.post("/api/templates", content=b'"' + os.urandom(1).hex().encode() * 1_500_000 + b'"',
                          headers={"Content-Type": "application/json"})
        assert big.status_code == 400 and big.json()["error"] == "ValidationError", big.text[:200]
        assert client.get("/api/health").status_code in (200, 503)
