"""Meta endpoints: /api/health (public), /api/status/readiness, /api/schema (original §1.12)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import grpc
from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, RedirectResponse
from grpc_health.v1 import health_pb2

from therascript.ops.v1 import ops_pb2

from ..clients import ServiceClients, get_clients

public_router = APIRouter(tags=["meta"])
router = APIRouter(tags=["meta"])

_PROBE_TIMEOUT_S = 3.0


async def _serving(clients: ServiceClients, service: str) -> bool:
    """True when the service answers grpc.health.v1 Check with SERVING within 3 s."""
    try:
        reply = await clients.health_stub(service).Check(health_pb2.HealthCheckRequest(), timeout=_PROBE_TIMEOUT_S)
    except grpc.RpcError:
        return False
    return reply.status == health_pb2.HealthCheckResponse.SERVING


def _state(up: bool) -> str:
    return "connected" if up else "disconnected"


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


_STATE_NAMES = {ops_pb2.COMPONENT_STATE_CONNECTED: "connected"}


async def _ops_readiness(clients: ServiceClients) -> ops_pb2.Readiness | None:
    """The ops service's readiness (every component, checked in parallel), or None when ops is down."""
    try:
        return await clients.ops.GetReadiness(ops_pb2.Empty(), timeout=_PROBE_TIMEOUT_S + 2)
    except grpc.RpcError:
        return None


def _components(readiness: ops_pb2.Readiness) -> tuple[dict[str, str], dict[str, str]]:
    states = {c.name: _STATE_NAMES.get(c.state, "disconnected") for c in readiness.components}
    details = {c.name: c.detail for c in readiness.components if c.detail}
    return states, details


_DEGRADED: dict[int | str, dict[str, Any]] = {
    503: {"description": "Degraded: the same body, with the failing parts `disconnected`"}}


@public_router.get("/health", summary="Check API, database and search health", responses=_DEGRADED)
async def health(clients: ServiceClients = Depends(get_clients)) -> JSONResponse:
    """`{status:'OK'|'DEGRADED', database, elasticsearch, redis, services{...}, details{...}, timestamp}` from the
    ops service's checks: 200 when the databases answer and the search server does (or none is configured),
    else 503. With ops down, the database owner (sessions) is probed directly and ops is reported down."""
    readiness = await _ops_readiness(clients)
    if readiness is None:
        database = await _serving(clients, "sessions")
        body = {"status": "OK" if database else "DEGRADED", "database": _state(database),
                "elasticsearch": "disconnected", "services": {"ops": "disconnected"},
                "details": {"ops": "the ops service is not reachable"}, "timestamp": _now_iso()}
        return JSONResponse(body, status_code=200 if database else 503)
    states, details = _components(readiness)
    search_required = any(c.name == "elasticsearch" and c.required for c in readiness.components)
    healthy = states.get("database") == "connected" and (
        states.get("elasticsearch") == "connected" or not search_required)
    body = {"status": "OK" if healthy else "DEGRADED", "database": states.get("database", "disconnected"),
            "elasticsearch": states.get("elasticsearch", "disconnected"),
            "redis": states.get("redis", "disconnected"), "services": states, "details": details,
            "timestamp": _now_iso()}
    return JSONResponse(body, status_code=200 if healthy else 503)


@router.get("/status/readiness", summary="Readiness of the backend services", responses=_DEGRADED)
async def readiness(clients: ServiceClients = Depends(get_clients)) -> JSONResponse:
    """`{ready, services:{database, elasticsearch, llm, whisper, redis, sessions, chat, …}, details, timestamp}`:
    200 when every required component is connected (database, Redis, LLM runtime, transcriber, the owning
    services; the search server once configured), else 503 with the same body (ui-contract.md §2 accepts
    both). With ops down every component is reported disconnected."""
    result = await _ops_readiness(clients)
    if result is None:
        names = ("database", "elasticsearch", "llm", "whisper", "redis", "ops")
        body = {"ready": False, "services": dict.fromkeys(names, "disconnected"),
                "details": {"ops": "the ops service is not reachable"}, "timestamp": _now_iso()}
        return JSONResponse(body, status_code=503)
    states, details = _components(result)
    states["ops"] = "connected"
    body = {"ready": result.ready, "services": states, "details": details, "timestamp": _now_iso()}
    return JSONResponse(body, status_code=200 if result.ready else 503)


@public_router.get("/schema", summary="Redirects to the Swagger UI", include_in_schema=True,
                   response_class=RedirectResponse, status_code=307,
                   responses={307: {"description": "To /api/docs", "content": {}}})
async def schema() -> RedirectResponse:
    return RedirectResponse("/api/docs", status_code=307)
