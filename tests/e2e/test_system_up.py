"""Smoke test: the whole system starts as the runner starts it and answers through the gateway."""

from __future__ import annotations

import time

import httpx
import therascript_local

RECONNECT_TIMEOUT_S = 15.0  # the gateway's gRPC channel retries with backoff (about 1 s after one failure)


def test_health_answers_200_without_a_token(system) -> None:
    reply = httpx.get(f"{system.base_url}/health", timeout=10)
    assert reply.status_code == 200, reply.text
    assert reply.json()["status"] == "OK"


def test_readiness_reports_the_database_connected(client) -> None:
    reply = client.get("/status/readiness")
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["ready"] is True
    assert body["services"]["database"] == "connected"


def test_request_without_a_token_gets_401_with_the_error_body(system) -> None:
    reply = httpx.get(f"{system.base_url}/sessions", timeout=10)
    assert reply.status_code == 401, reply.text
    body = reply.json()
    assert isinstance(body.get("error"), str) and body["error"]
    assert isinstance(body.get("message"), str) and body["message"]


def test_wrong_token_gets_401(system) -> None:
    reply = httpx.get(f"{system.base_url}/sessions", headers={"Authorization": "Bearer wrong"}, timeout=10)
    assert reply.status_code == 401, reply.text


def test_schema_redirects_to_the_docs(client) -> None:
    reply = client.get("/schema", follow_redirects=False)
    assert reply.is_redirect, reply.status_code
    assert reply.headers["location"].endswith("/api/docs")
    docs = client.get("/schema", follow_redirects=True)
    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()


def test_every_backend_service_is_connected(client) -> None:
    services = client.get("/status/readiness").json()["services"]
    for name in ("database", "llm", "chat", "analysis", "ops"):
        assert services[name] == "connected", services


def test_a_killed_service_is_restarted_healthy(system, client) -> None:
    system.kill("ops")
    assert client.get("/status/readiness").json()["services"]["ops"] == "disconnected"
    system.restart("ops")
    deadline = time.monotonic() + RECONNECT_TIMEOUT_S
    while (state := client.get("/status/readiness").json()["services"]["ops"]) != "connected":
        assert time.monotonic() < deadline, f"ops still {state} {RECONNECT_TIMEOUT_S} s after its restart"
        time.sleep(0.2)


def test_a_crashed_service_is_restarted_by_the_supervisor(system, client) -> None:
    """Issue 7 item 10: before, a child that died stayed dead (and `scripts/up` stopped everything)."""
    restarts = system.system.restarts.get("ops", 0)
    system.crash("ops")
    deadline = time.monotonic() + RECONNECT_TIMEOUT_S + therascript_local.RESTART_BACKOFF_S[0]
    while (state := client.get("/status/readiness").json()["services"]["ops"]) != "connected" \
            or system.system.restarts.get("ops", 0) == restarts:
        assert time.monotonic() < deadline, f"ops still {state}: not restarted by the supervisor\n{system.log('ops')}"
        time.sleep(0.2)
    assert "supervisor: ops exited with code -9; restarting in" in system.log("ops")
