"""GET /api/search (search issue): transcripts from sessions, messages from chat. Until their
Search RPCs exist they answer UNIMPLEMENTED → 501."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Query

from therascript.sessions.v1 import sessions_pb2 as pb

from ..clients import ServiceClients, get_clients
from ..params import SearchFrom

router = APIRouter(tags=["search"])


@router.get("/search", summary="Search chat messages and transcript paragraphs")
async def search(
    q: str = Query("", max_length=1000),
    limit: int = Query(20, ge=1, le=100),
    from_: SearchFrom = 0,
    clientName: str | None = Query(None, max_length=200),
    searchType: Literal["chat", "transcript", "all"] = "all",
    clients: ServiceClients = Depends(get_clients),
) -> dict:
    await clients.sessions.SearchTranscripts(
        pb.SearchTranscriptsRequest(query=q, limit=limit, client_name=clientName, **{"from": from_})
    )
    return {"query": "Search/filter applied", "results": [], "total": 0}
