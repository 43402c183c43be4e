"""Names at the edge (issue 7 item 13): client, session and chat names, template titles, speaker labels and
tags with a control character (NUL, CR/LF, tab), a bidi override or isolate, or a zero-width character are 400
ValidationError before any backend is called (the backends are unreachable here on purpose: a 503 would
mean the name went on). Before: they were stored as sent."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from therascript_gateway.app import create_app
from therascript_gateway.settings import GatewaySettings

DOWN = "127.0.0.1:1"
BAD = ["A\x00B", "Line\r\nbreak", "Tab\tname", "Rev\u202eersed", "Iso\u2067late", "Zero\u200bwidth", "\ufeffBom",
       "Word\u2060joiner", "Bell\x07"]


@pytest.fixture(scope="module")
def client():
    settings = GatewaySettings(sessions_target=DOWN, chat_target=DOWN, grpc_timeout_s=2)
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def _requests(name: str) -> list[tuple[str, str, object]]:
    return [
        ("PUT", "/api/sessions/1/metadata", {"clientName": name}),
        ("PUT", "/api/sessions/1/metadata", {"sessionName": name}),
        ("PATCH", "/api/sessions/1/transcript/0/speaker", {"speaker": name}),
        ("PATCH", "/api/sessions/1/speakers", [{"from": "A", "to": name}]),
        ("PATCH", "/api/sessions/1/chats/1/name", {"name": name}),
        ("PATCH", "/api/chats/1/details", {"name": name, "tags": ["ok"]}),
        ("PATCH", "/api/chats/1/details", {"name": "ok", "tags": [name]}),
        ("POST", "/api/templates", {"title": name, "text": "x"}),
        ("PUT", "/api/templates/1", {"title": name, "text": "x"}),
    ]


@pytest.mark.parametrize("name", BAD)
def test_names_with_forbidden_characters_are_400(client, name):
    for method, path, body in _requests(name):
        response = client.request(method, path, json=body)
        assert response.status_code == 400, (method, path, response.text)
        assert response.json()["error"] == "ValidationError"


def test_clean_names_pass_the_edge(client):
    """NFC-normalisable, padded names are fine (they reach the unreachable backend: 503)."""
    for method, path, body in _requests("  Cafe\u0301 \u05e9\u05dc\u05d5\u05dd "):
        assert client.request(method, path, json=body).status_code == 503, (method, path)


def test_a_blank_chat_name_still_clears_it(client):
    assert client.patch("/api/sessions/1/chats/1/name", json={"name": "  "}).status_code == 503


def test_a_blank_tag_still_reaches_the_chat_service(client):
    """The chat service clears every tag when one is blank (original behaviour); the edge must not refuse it."""
    assert client.patch("/api/chats/1/details", json={"name": "n", "tags": ["ok", "  "]}).status_code == 503
