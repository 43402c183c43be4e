"""Readiness and health through the gateway on the real services: 503 with the structured body when Redis
stops, 200 again when it returns.

Stand-in (said here, as the brief asks): no transcriber process runs (it needs the torch venv and loads
Whisper); its readiness report is published with the worker's own ReadinessReporter.publish (the code the real
transcriber runs every 10 s), with the state a worker whose models loaded reports."""

from __future__ import annotations

import time

from ops_stack import start_stack
from redis import Redis

from therascript_sessions.worker import ReadinessReporter, ReadinessState

REQUIRED = ("database", "redis", "llm", "whisper", "sessions", "chat", "llm-manager", "analysis")


def _publish_transcriber_ready(redis_url: str) -> None:
    reporter = ReadinessReporter(Redis.from_url(redis_url), asr_config=None, ttl_s=600)  # type: ignore[arg-type]
    reporter.state = ReadinessState(asr_ready=True, diarization_ready=True, device="cpu")
    reporter.publish()


def _wait_for(api, status: int, timeout_s: float = 20.0):
    deadline = time.monotonic() + timeout_s
    while True:
        reply = api.get("/api/status/readiness")
        if reply.status_code == status or time.monotonic() > deadline:
            return reply
        time.sleep(0.3)


def test_readiness_flips_to_503_when_redis_stops_and_back_when_it_returns(tmp_path):
    for stack in start_stack(tmp_path):
        api = stack.api
        before = api.get("/api/status/readiness")
        assert before.status_code == 503 and before.json()["services"]["whisper"] == "disconnected"
        assert "whisper" in before.json()["details"]          # says why: no transcriber reported

        _publish_transcriber_ready(stack.redis.url)
        ready = _wait_for(api, 200)
        assert ready.status_code == 200, ready.text
        body = ready.json()
        assert body["ready"] is True
        for name in REQUIRED:
            assert body["services"][name] == "connected", (name, body)
        assert body["services"]["elasticsearch"] == "disconnected"   # not configured here: reported, not required
        health = api.get("/api/health")
        assert health.status_code == 200 and health.json()["status"] == "OK", health.text
        assert set(health.json()) >= {"status", "database", "elasticsearch", "timestamp"}

        stack.redis.stop()
        down = _wait_for(api, 503)
        assert down.status_code == 503, down.text
        body = down.json()
        assert body["ready"] is False and body["services"]["redis"] == "disconnected"
        assert set(body["services"]) >= {"database", "elasticsearch", "llm", "whisper"}
        assert body["details"]["redis"]

        stack.redis.start()      # the append-only file brings the transcriber's report back with the data
        back = _wait_for(api, 200)
        assert back.status_code == 200, back.text
        assert back.json()["services"]["redis"] == "connected"


def test_health_and_readiness_with_ops_down_are_503_not_500(tmp_path):
    """The gateway alone (every backend down): health and readiness still answer with their bodies."""
    from fastapi.testclient import TestClient

    from therascript_gateway.app import create_app
    from therascript_gateway.settings import GatewaySettings

    down = "127.0.0.1:1"
    settings = GatewaySettings(sessions_target=down, chat_target=down, llm_target=down, analysis_target=down,
                               ops_target=down, grpc_timeout_s=2)
    with TestClient(create_app(settings)) as api:
        readiness = api.get("/api/status/readiness")
        assert readiness.status_code == 503
        assert readiness.json()["ready"] is False and readiness.json()["services"]["ops"] == "disconnected"
        health = api.get("/api/health")
        assert health.status_code == 503 and health.json()["status"] == "DEGRADED"
