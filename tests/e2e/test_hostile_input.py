"""Hostile input against the running system (issue 13, "Hostile input"), through the real gateway process with
authentication on:

- every route of the gateway's own OpenAPI document (/api/docs/json) but health and docs answers 401 with the
  contract's error body without the token, with a wrong one, or with a wrong scheme — and path tricks
  (dot segments, encoded slashes, case) do not reach a protected route through a public prefix;
- ids in paths are positive integers: for every integer path parameter the document declares, non-integers, zero,
  negatives and values past 2^62 are 400 `ValidationError` (API-CONTRACT.md Part B), never 404 or 500;
- string path parameters cannot escape (no file contents come back for `../` names);
- a set of malformed requests (broken or deeply nested JSON, wrong types, bad UTF-8, garbage multipart, bad ranges,
  odd methods) is refused (4xx; 501 only for a route not built yet) with the error body, odd queries never break,
  heads over 64 KiB are refused (431), and no response body carries a stack trace or a source path;
- CORS answers only the configured UI origins (the gateway's default list, http://localhost:3002), never `*`.
"""

from __future__ import annotations

import http.client
import json
import re
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest

PUBLIC = ("/api/health", "/api/docs", "/api/schema")
CONFIGURED_ORIGIN = "http://localhost:3002"  # GatewaySettings.cors_origins' default; the e2e system keeps it
TRACE_MARKERS = re.compile(r'Traceback \(most recent call last\)|File "[^"]+", line \d+|\.py", line|/site-packages/|'
                           r"therascript_\w+/\w+\.py|grpc\._channel|_InactiveRpcError|StatusCode\.")
BAD_INTEGERS = ["abc", "1.5", "1e3", "-1", "0", str(2**63), "9" * 40, "0x10", "1;2", "1 2", "+-1", "١"]


@pytest.fixture(scope="module")
def openapi(system) -> dict:
    response = httpx.get(f"{system.base_url}/docs/json", timeout=30)  # the docs are public
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture(scope="module")
def anonymous(system) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=system.base_url.removesuffix("/api"), timeout=30) as http:
        yield http


@pytest.fixture(scope="module")
def authed(system) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=system.base_url.removesuffix("/api"), timeout=30,
                      headers={"Authorization": f"Bearer {system.token}"}) as http:
        yield http


def operations(openapi: dict) -> list[tuple[str, str, dict]]:
    """(METHOD, path template, operation) for every operation in the document."""
    return [(method.upper(), path, op) for path, ops in openapi["paths"].items() for method, op in ops.items()
            if method in ("get", "post", "put", "patch", "delete")]


def concrete(path: str) -> str:
    """The template with every {param} filled with a valid-looking value (1 for every parameter)."""
    return re.sub(r"\{[^}]+\}", "1", path)


def assert_error_body(response: httpx.Response, *, status: int | None = None, kind: str | None = None) -> None:
    where = f"{response.request.method} {response.request.url.raw_path.decode()} → {response.status_code}"
    assert not TRACE_MARKERS.search(response.text), f"{where}: a stack trace or source path in the body: " \
                                                    f"{response.text[:500]}"
    if status is not None:
        assert response.status_code == status, f"{where}: {response.text[:300]}"
    body = response.json()
    assert isinstance(body, dict) and isinstance(body.get("error"), str) and isinstance(body.get("message"), str), \
        f"{where}: not the contract's error body: {response.text[:300]}"
    if kind is not None:
        assert body["error"] == kind, f"{where}: {body}"


# --- authentication ------------------------------------------------------------------------------------------
def test_every_route_but_health_and_docs_needs_the_token(openapi: dict, anonymous: httpx.Client,
                                                        system) -> None:
    ops = operations(openapi)
    assert len(ops) >= 40, f"the document lists only {len(ops)} operations"
    checked = []
    wrong = {"none": {}, "wrong token": {"Authorization": "Bearer not-the-token"},
             "prefix of the token": {"Authorization": f"Bearer {system.token[:-1]}"},
             "token plus a byte": {"Authorization": f"Bearer {system.token}x"},
             "wrong scheme": {"Authorization": f"Basic {system.token}"},
             "bare token": {"Authorization": system.token}, "empty bearer": {"Authorization": "Bearer"}}
    for method, path, _ in ops:
        if path.startswith(PUBLIC):
            continue
        url = concrete(path)
        for label, headers in wrong.items():
            # a body, so a route that reads one would fail on it if auth came after the body
            response = anonymous.request(method, url, headers={**headers, "Content-Type": "application/json"},
                                         content=b'{"x": 1}' if method in ("POST", "PUT", "PATCH") else None)
            assert response.status_code == 401, f"{method} {url} with {label}: {response.status_code} " \
                                                f"{response.text[:200]}"
            assert_error_body(response, kind="UnauthorizedError")
        checked.append(f"{method} {path}")
    assert len(checked) >= 35, checked
    for path in ("/api/health", "/api/docs", "/api/docs/json"):  # and the public ones stay public
        assert anonymous.get(path).status_code in (200, 503), path


@pytest.mark.parametrize("raw_path", [
    "/api/docs/assets/../../api/sessions", "/api/docs/assets/%2e%2e/%2e%2e/api/sessions",
    "/api/docs/assets/..%2f..%2fapi%2fsessions", "/api/health/../sessions", "/api/docs/json/../../api/sessions",
    "/API/sessions", "/api//sessions", "/api/sessions;/api/health", "/api/sessions%00/api/health",
    "/api/health%2f..%2fsessions",
])
def test_path_tricks_do_not_reach_a_protected_route_without_the_token(system, raw_path: str) -> None:
    """Sent raw (http.client does not normalise dot segments, unlike httpx)."""
    url = urlsplit(system.base_url)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    try:
        connection.request("GET", raw_path)
        response = connection.getresponse()
        body = response.read().decode(errors="replace")
    finally:
        connection.close()
    assert response.status in (400, 401, 404), f"{raw_path}: {response.status} {body[:200]}"
    assert '"clientName"' not in body and not TRACE_MARKERS.search(body), f"{raw_path}: {body[:300]}"


# --- path parameters ------------------------------------------------------------------------------------------
def integer_path_operations(openapi: dict) -> list[tuple[str, str, list[str]]]:
    out = []
    for method, path, op in operations(openapi):
        names = [p["name"] for p in op.get("parameters", [])
                 if p["in"] == "path" and p.get("schema", {}).get("type") == "integer"]
        if names:
            out.append((method, path, names))
    return out


def test_integer_path_ids_refuse_anything_but_a_positive_integer(openapi: dict, authed: httpx.Client) -> None:
    ops = integer_path_operations(openapi)
    assert len(ops) >= 20, ops
    failures = []
    for method, path, names in ops:
        for name in names:
            for bad in BAD_INTEGERS:
                if bad == "0" and "index" in name:  # a paragraph index is 0-based
                    continue
                url = re.sub(r"\{[^}]+\}", lambda m, bad=bad, name=name: bad if m.group(0) == f"{{{name}}}" else "1",
                             path)
                response = authed.request(method, url.replace(" ", "%20").replace(";", "%3B"),
                                          json={} if method in ("POST", "PUT", "PATCH") else None)
                if response.status_code != 400:
                    failures.append(f"{method} {url} → {response.status_code} {response.text[:120]}")
                    continue
                try:
                    assert_error_body(response, kind="ValidationError")
                except AssertionError as error:
                    failures.append(str(error))
    assert not failures, "ids that are not positive integers (≤ 2^62) must be 400:\n" + "\n".join(failures)


@pytest.mark.parametrize("path", [
    "/api/docker/logs/..%2F..%2F..%2Fetc%2Fpasswd", "/api/docker/logs/..", "/api/docker/logs/%2Fetc%2Fpasswd",
    "/api/llm/models/..%2F..%2F..%2Fetc%2Fpasswd/estimate-vram", "/api/llm/pull-status/..%2F..%2Fetc%2Fpasswd",
    "/api/transcription/status/..%2F..%2Fetc%2Fpasswd",
])
def test_string_path_parameters_cannot_escape(authed: httpx.Client, path: str) -> None:
    response = authed.get(path)
    assert response.status_code in (400, 404, 501), f"{path}: {response.status_code} {response.text[:200]}"
    assert "root:" not in response.text
    if response.headers.get("content-type", "").startswith("application/json"):
        assert_error_body(response)


# --- malformed requests ------------------------------------------------------------------------------------------
NESTED = b"[" * 100_000 + b"]" * 100_000
MALFORMED: list[tuple[str, str, dict]] = [
    ("POST", "/api/chats/1/messages", {"content": b'{"text": ', "headers": {"Content-Type": "application/json"}}),
    ("POST", "/api/chats/1/messages", {"content": NESTED, "headers": {"Content-Type": "application/json"}}),
    ("POST", "/api/templates", {"content": b'{"title": "\xff\xfe", "text": "x"}',
                                "headers": {"Content-Type": "application/json"}}),
    ("POST", "/api/templates", {"content": b"title=x&text=y",
                                "headers": {"Content-Type": "application/x-www-form-urlencoded"}}),
    ("POST", "/api/templates", {"json": {"title": ["x"], "text": {"a": 1}}}),
    ("POST", "/api/templates", {"json": {"title": "x" * 100_000, "text": "y"}}),
    ("POST", "/api/templates", {"json": None}),
    ("PUT", "/api/sessions/1/metadata", {"json": []}),
    ("PUT", "/api/sessions/1/metadata", {"json": "clientName"}),
    ("PUT", "/api/sessions/1/metadata", {"json": {"clientName": 5}}),
    ("PUT", "/api/sessions/1/metadata", {"json": {"audioPath": "/etc/passwd"}}),
    ("PUT", "/api/sessions/1/metadata", {"json": {"date": "2026-13-45"}}),
    ("PATCH", "/api/sessions/1/transcript", {"content": b'{"paragraphIndex": NaN, "newText": "x"}',
                                             "headers": {"Content-Type": "application/json"}}),
    ("PATCH", "/api/sessions/1/transcript", {"json": {"paragraphIndex": 10**40, "newText": "x"}}),
    ("PATCH", "/api/sessions/1/transcript", {"json": {"paragraphIndex": 1.5, "newText": "x"}}),
    ("PATCH", "/api/sessions/1/speakers", {"json": [{"from": "A"}]}),
    ("PATCH", "/api/sessions/1/speakers", {"json": {"from": "A", "to": "B"}}),
    ("POST", "/api/sessions/upload", {"content": b"not multipart at all", "headers": {"Content-Type": "text/plain"}}),
    ("POST", "/api/sessions/upload", {"content": b"--x\r\nContent-Disposition: form-data\r\n\r\nzz",
                                      "headers": {"Content-Type": "multipart/form-data"}}),  # no boundary
    ("POST", "/api/sessions/upload", {"content": b"--b\r\nContent-Dispo", "headers": {
        "Content-Type": "multipart/form-data; boundary=b"}}),  # truncated
    ("POST", "/api/sessions/upload", {"data": {"clientName": "x"}, "files": {"audioFile": ("a.exe", b"MZ\x90\x00")}}),
    ("GET", "/api/sessions/1/audio", {"headers": {"Range": "bytes=abc-def"}}),
    ("GET", "/api/sessions/1/audio", {"headers": {"Range": "bytes=999999999999-1"}}),
    ("DELETE", "/api/sessions", {}),
    ("PUT", "/api/chats", {}),
    ("GET", "/api/sessions/1/chats/1/messages", {}),
    ("POST", "/api/llm/set-model", {"json": {"modelName": "../../../../etc/passwd"}}),
    ("POST", "/api/llm/pull-model", {"json": {"modelName": "http://169.254.169.254/latest"}}),
]


# Odd but not necessarily wrong: a route may ignore a query parameter it does not declare, or answer a strange
# query with no hits. These must only never break (< 500, no trace, the error body when refused).
ODD: list[tuple[str, str, dict]] = [
    ("GET", "/api/sessions", {"params": {"limit": "abc"}}),
    ("GET", "/api/sessions", {"params": {"limit": str(10**30), "offset": "-5"}}),
    ("GET", "/api/search", {"params": {"q": "\x00" * 10}}),
    ("GET", "/api/search", {"params": {"q": "x" * 20_000}}),
    ("GET", "/api/search", {"params": {"q": "\" OR 1=1 --", "limit": "-1"}}),
    ("GET", "/api/usage/logs", {"params": {"start": "yesterday", "limit": "1e9"}}),
]


@pytest.mark.parametrize(("method", "path", "kwargs"), ODD, ids=[f"{m} {p} #{i}" for i, (m, p, _) in enumerate(ODD)])
def test_odd_queries_never_break(authed: httpx.Client, method: str, path: str, kwargs: dict) -> None:
    response = authed.request(method, path, **kwargs)
    assert response.status_code < 500 or response.status_code == 501, \
        f"{method} {path}: {response.status_code} {response.text[:300]}"
    assert not TRACE_MARKERS.search(response.text), response.text[:300]
    if response.status_code >= 400:
        assert_error_body(response)


@pytest.mark.parametrize(("method", "path", "kwargs"), MALFORMED,
                         ids=[f"{m} {p} #{i}" for i, (m, p, _) in enumerate(MALFORMED)])
def test_malformed_requests_get_an_error_body_never_a_500_or_a_trace(authed: httpx.Client, method: str, path: str,
                                                                    kwargs: dict) -> None:
    response = authed.request(method, path, **kwargs)
    assert response.status_code < 500 or response.status_code == 501, \
        f"{method} {path}: {response.status_code} {response.text[:300]}"
    assert response.status_code >= 400, f"{method} {path}: accepted ({response.status_code}) {response.text[:300]}"
    assert_error_body(response)


def test_oversized_headers_and_urls_are_refused_without_a_trace(system) -> None:
    url = urlsplit(system.base_url)
    for target, headers in ((f"/api/sessions/{'1' * 100_000}", {}), ("/api/sessions", {"X-Big": "a" * 100_000})):
        connection = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
        try:
            connection.request("GET", target, headers={"Authorization": f"Bearer {system.token}", **headers})
            response = connection.getresponse()
            body = response.read().decode(errors="replace")
        except (ConnectionError, http.client.HTTPException):
            continue  # dropping the connection is a fine answer to 100 kB of header
        finally:
            connection.close()
        assert 400 <= response.status < 500, f"{target[:40]}…: {response.status} {body[:200]}"  # 431 / 400
        assert not TRACE_MARKERS.search(body), body[:300]


# --- CORS ------------------------------------------------------------------------------------------------------
def test_cors_answers_only_the_configured_origins(authed: httpx.Client) -> None:
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization"}
    allowed = authed.options("/api/sessions", headers={"Origin": CONFIGURED_ORIGIN, **preflight})
    assert allowed.status_code == 200 and allowed.headers["access-control-allow-origin"] == CONFIGURED_ORIGIN
    assert authed.get("/api/sessions", headers={"Origin": CONFIGURED_ORIGIN}).headers[
        "access-control-allow-origin"] == CONFIGURED_ORIGIN
    for origin in ("https://evil.example", "null", "http://localhost:3002.evil.example", "http://localhost:3003",
                   "https://localhost:3002", "http://evil.example/http://localhost:3002"):
        refused = authed.options("/api/sessions", headers={"Origin": origin, **preflight})
        assert refused.headers.get("access-control-allow-origin") is None, (origin, dict(refused.headers))
        assert refused.status_code >= 400, (origin, refused.status_code)
        simple = authed.get("/api/sessions", headers={"Origin": origin})
        assert simple.headers.get("access-control-allow-origin") is None, (origin, dict(simple.headers))
        assert simple.headers.get("access-control-allow-credentials") is None, origin
    for response in (allowed, authed.get("/api/health", headers={"Origin": "https://evil.example"})):
        assert response.headers.get("access-control-allow-origin") != "*"


def test_the_openapi_document_is_json_and_lists_no_internal_route(openapi: dict) -> None:
    """The fuzzing and the auth enumeration read this document; it must describe the API only."""
    assert openapi["openapi"].startswith("3.")
    assert all(path.startswith("/api/") for path in openapi["paths"]), [p for p in openapi["paths"]
                                                                       if not p.startswith("/api/")]
    json.dumps(openapi)
