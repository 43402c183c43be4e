"""Meta endpoints: /api/health (public), /api/status/readiness, /api/schema (original §1.12)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import grpc
from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, RedirectResponse
from grpc_health.v1 import health_pb2

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


@public_router.get("/health", summary="Check API, database and search health")
async def health(clients: ServiceClients = Depends(get_clients)) -> JSONResponse:
    """200 `{status:'OK', database, elasticsearch, timestamp}` when the database owner (sessions) is up,
    else 503 `DEGRADED`. The search server is reported but not yet required (search issue)."""
    database = await _serving(clients, "sessions")
    body = {
        "status": "OK" if database else "DEGRADED",
        "database": _state(database),
        "elasticsearch": "disconnected",
        "timestamp": _now_iso(),
    }
    return JSONResponse(body, status_code=200 if database else 503)


@router.get("/status/readiness", summary="Readiness of the backend services")
async def readiness(clients: ServiceClients = Depends(get_clients)) -> JSONResponse:
    """`{ready, services:{database, elasticsearch, llm, whisper, chat, analysis, ops}, timestamp}`.
    `ready` follows the database only, as the original, so other outages do not block the UI; 200 when
    ready, else 503 with the same body (ui-contract.md §2 accepts both)."""
    names = ["sessions", "llm", "chat", "analysis", "ops"]
    states = dict(zip(names, await asyncio.gather(*(_serving(clients, n) for n in names)), strict=True))
    services = {
        "database": _state(states["sessions"]),
        "elasticsearch": "disconnected",
        "llm": _state(states["llm"]),
        "whisper": _state(states["sessions"]),
        "chat": _state(states["chat"]),
        "analysis": _state(states["analysis"]),
        "ops": _state(states["ops"]),
    }
    ready = states["sessions"]
    body = {"ready": ready, "services": services, "timestamp": _now_iso()}
    return JSONResponse(body, status_code=200 if ready else 503)


@public_router.get("/schema", summary="Redirects to the Swagger UI", include_in_schema=True)
async def schema() -> RedirectResponse:
    return RedirectResponse("/api/docs", status_code=307)
