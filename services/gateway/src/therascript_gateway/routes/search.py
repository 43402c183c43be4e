"""GET /api/search: transcript paragraphs from sessions (SearchTranscripts), chat messages from chat
(SearchMessages), each over the index its service owns. The gateway asks each selected owner for its best
`from + limit` hits, merges them by score (ties: type, then id, the order each owner uses), and cuts
`[from, from + limit)` out of the merged list, so pages neither repeat nor skip a hit. The result items have
the shape the original UI reads (ui-contract.md): `snippet` and `highlights.text` are HTML-escaped text with
only `<mark>` tags added."""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query

from therascript.chat.v1 import chat_pb2
from therascript.sessions.v1 import sessions_pb2

from ..clients import ServiceClients, get_clients
from ..errors import ApiError
from ..params import SearchFrom

router = APIRouter(tags=["search"])

#: Elasticsearch's result window: `from + limit` may not pass it (each owner is asked for that many).
MAX_WINDOW = 10_000
_SENDERS = {chat_pb2.SENDER_USER: "user", chat_pb2.SENDER_AI: "ai", chat_pb2.SENDER_SYSTEM: "system"}


def _transcript_item(hit: sessions_pb2.TranscriptHit) -> dict[str, Any]:
    return {
        "id": hit.id, "type": "transcript", "chatId": None, "sessionId": hit.session_id, "sender": None,
        "timestamp": hit.timestamp_ms, "snippet": hit.snippet, "score": hit.score,
        "highlights": {"text": list(hit.highlights)},
        "clientName": hit.client_name if hit.HasField("client_name") else None, "tags": None,
    }


def _message_item(hit: chat_pb2.MessageHit) -> dict[str, Any]:
    return {
        "id": hit.id, "type": "chat", "chatId": hit.chat_id,
        "sessionId": hit.session_id if hit.HasField("session_id") else None,
        "sender": _SENDERS.get(hit.sender), "timestamp": hit.timestamp_ms, "snippet": hit.snippet,
        "score": hit.score, "highlights": {"text": list(hit.highlights)},
        "clientName": hit.client_name if hit.HasField("client_name") else None, "tags": list(hit.tags) or None,
    }


@router.get("/search", summary="Search chat messages and transcript paragraphs")
async def search(
    q: str = Query("", max_length=1000, description="Words, \"quoted phrases\"; English stems match"),
    limit: int = Query(20, ge=1, le=100),
    from_: SearchFrom = 0,
    clientName: str | None = Query(None, max_length=200, description="Exact client name (any case)"),
    searchType: Literal["chat", "transcript", "all"] = "all",
    clients: ServiceClients = Depends(get_clients),
) -> dict:
    """`{query, results[]{id, type, chatId, sessionId, sender, timestamp, snippet, score, highlights{text},
    clientName, tags}, total}`; `timestamp` is the audio offset (ms) for a transcript hit and epoch ms for a
    message. 400 when `from + limit` passes 10 000; 503 when the search server is down."""
    query, client = q.strip(), (clientName or "").strip() or None
    if not query and not client:
        return {"query": "No query or filters provided", "results": [], "total": 0}
    if from_ + limit > MAX_WINDOW:
        raise ApiError(400, f"from + limit must be at most {MAX_WINDOW}.",
                       [{"field": "from", "message": f"from + limit ≤ {MAX_WINDOW}"}], kind="ValidationError")
    window = {"query": query, "limit": from_ + limit, "client_name": client, "from": 0}
    calls = []
    if searchType in ("transcript", "all"):
        calls.append(clients.sessions.SearchTranscripts(sessions_pb2.SearchTranscriptsRequest(**window)))
    if searchType in ("chat", "all"):
        calls.append(clients.chat.SearchMessages(chat_pb2.SearchMessagesRequest(**window)))
    replies = await asyncio.gather(*calls)
    items: list[dict[str, Any]] = []
    total = 0
    for reply in replies:
        total += reply.total
        if isinstance(reply, sessions_pb2.SearchTranscriptsResponse):
            items += [_transcript_item(hit) for hit in reply.hits]
        else:
            items += [_message_item(hit) for hit in reply.hits]
    items.sort(key=lambda item: (-item["score"], item["type"], item["id"]))
    return {"query": "Search/filter applied", "results": items[from_:from_ + limit], "total": total}
