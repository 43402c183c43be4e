"""Session chats (/api/sessions/{sessionId}/chats…) and standalone chats (/api/chats…): original §1.2, §1.3;
JSON shapes per ui-contract §2. Both families share one implementation, parametrised by `session_id`
(None = standalone); only the paths and the rename/details bodies differ, as in the contract."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from therascript.chat.v1 import chat_pb2
from therascript.common.v1 import common_pb2

from ..chat_stream import REPLY_DEADLINE_S, open_reply_stream, usage_json
from ..clients import ServiceClients, get_clients
from ..fields import NON_BLANK_PATTERN, ClearableName200, Tag50
from ..params import ChatId, Offset, SessionId

router = APIRouter(tags=["chats"])

_SENDERS = {chat_pb2.SENDER_USER: "user", chat_pb2.SENDER_AI: "ai", chat_pb2.SENDER_SYSTEM: "system"}


# --- JSON shapes --------------------------------------------------------------------------------
def chat_json(c: chat_pb2.Chat, with_tags: bool) -> dict:
    """`{id, sessionId, timestamp (ms), name}`, plus `tags` (array or null) for standalone chats."""
    body = {"id": c.id, "sessionId": c.session_id if c.HasField("session_id") else None,
            "timestamp": c.timestamp_ms, "name": c.name if c.HasField("name") else None}
    if with_tags:
        body["tags"] = list(c.tags) if c.has_tags else None
    return body


def message_json(m: chat_pb2.Message) -> dict:
    """The original Message; an AI reply's reasoning is inlined as `<think>…</think>` before the answer, as
    the UI expects (ui-contract §3.1), and also given apart (`thinking`, additive). `cancelled` is additive."""
    text = f"<think>{m.thinking}</think>\n\n{m.text}" if m.HasField("thinking") else m.text
    return {
        "id": m.id, "chatId": m.chat_id, "sender": _SENDERS.get(m.sender, "system"), "text": text,
        "timestamp": m.timestamp_ms,
        "promptTokens": m.prompt_tokens if m.HasField("prompt_tokens") else None,
        "completionTokens": m.completion_tokens if m.HasField("completion_tokens") else None,
        "duration": m.duration_ms if m.HasField("duration_ms") else None,
        "isTruncated": m.is_truncated,
        "thinking": m.thinking if m.HasField("thinking") else None,
        "cancelled": m.cancelled,
    }


# --- request bodies -----------------------------------------------------------------------------
MessageText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=10_000),
                        Field(json_schema_extra={"pattern": NON_BLANK_PATTERN})]
Name = ClearableName200  # NFC, trimmed, no control/bidi/zero-width characters; blank = no name
Tag = Tag50


class MessageBody(BaseModel):
    """`{text}`: 1..10000 characters after trimming."""

    model_config = ConfigDict(extra="ignore")
    text: MessageText


class RenameBody(BaseModel):
    """`{name?: string|null}`; blank or absent clears the name."""

    name: Name = None


class DetailsBody(BaseModel):
    """`{name?: string|null, tags?: string[]|null}` — a full replacement (absent = cleared)."""

    name: Name = None
    tags: list[Tag] | None = Field(None, max_length=10)


def _ref(chat_id: int, session_id: int | None) -> chat_pb2.ChatRef:
    return chat_pb2.ChatRef(chat_id=chat_id, session_id=session_id)


# --- one implementation for both families -------------------------------------------------------
async def _create(clients: ServiceClients, session_id: int | None) -> dict:
    chat = await clients.chat.CreateChat(chat_pb2.CreateChatRequest(session_id=session_id))
    return chat_json(chat, with_tags=session_id is None)


async def _detail(clients: ServiceClients, chat_id: int, session_id: int | None) -> dict:
    detail = await clients.chat.GetChat(_ref(chat_id, session_id))
    return {**chat_json(detail.chat, with_tags=session_id is None),
            "messages": [message_json(m) for m in detail.messages]}


async def _context_usage(clients: ServiceClients, chat_id: int, session_id: int | None, input_draft: str,
                         reserved_output_tokens: int | None) -> dict:
    request = chat_pb2.ContextUsageRequest(chat_id=chat_id, session_id=session_id, input_draft=input_draft,
                                           reserved_output_tokens=reserved_output_tokens or 0)
    return usage_json(await clients.chat.GetContextUsage(request))


async def _send(clients: ServiceClients, chat_id: int, session_id: int | None, body: MessageBody):
    request = chat_pb2.SendMessageRequest(chat_id=chat_id, session_id=session_id, text=body.text)
    return await open_reply_stream(clients.chat.SendMessage(request, timeout=REPLY_DEADLINE_S))


async def _delete(clients: ServiceClients, chat_id: int, session_id: int | None) -> dict:
    ack: common_pb2.Ack = await clients.chat.DeleteChat(_ref(chat_id, session_id))
    return {"message": ack.message}


InputDraft = Annotated[str, Query(alias="inputDraft", max_length=100_000)]
ReservedOutput = Annotated[int | None, Query(alias="reservedOutputTokens", gt=0, le=1_000_000)]
Clients = Annotated[ServiceClients, Depends(get_clients)]


# --- /api/sessions/{sessionId}/chats ------------------------------------------------------------
@router.post("/sessions/{session_id}/chats", status_code=201, summary="Create a new chat within a session")
async def create_session_chat(session_id: SessionId, clients: Clients) -> dict:
    return await _create(clients, session_id)


@router.get("/sessions/{session_id}/chats/{chat_id}", summary="Get full details for a specific session chat")
async def get_session_chat(session_id: SessionId, chat_id: ChatId, clients: Clients) -> dict:
    return await _detail(clients, chat_id, session_id)


@router.get("/sessions/{session_id}/chats/{chat_id}/context-usage",
            summary="Estimate context usage for this session chat")
async def session_chat_context_usage(session_id: SessionId, chat_id: ChatId, clients: Clients,
                                     input_draft: InputDraft = "", reserved: ReservedOutput = None) -> dict:
    return await _context_usage(clients, chat_id, session_id, input_draft, reserved)


@router.post("/sessions/{session_id}/chats/{chat_id}/messages",
             summary="Add user message and get AI response (SSE stream)")
async def send_session_message(session_id: SessionId, chat_id: ChatId, body: MessageBody, clients: Clients):
    return await _send(clients, chat_id, session_id, body)


@router.patch("/sessions/{session_id}/chats/{chat_id}/name", summary="Rename a session chat")
async def rename_session_chat(session_id: SessionId, chat_id: ChatId, body: RenameBody, clients: Clients) -> dict:
    chat = await clients.chat.RenameChat(chat_pb2.RenameChatRequest(chat_id=chat_id, session_id=session_id,
                                                                    name=body.name))
    return chat_json(chat, with_tags=False)


@router.delete("/sessions/{session_id}/chats/{chat_id}", summary="Delete a session chat and its messages")
async def delete_session_chat(session_id: SessionId, chat_id: ChatId, clients: Clients) -> dict:
    return await _delete(clients, chat_id, session_id)


# --- /api/chats ---------------------------------------------------------------------------------
@router.post("/chats", status_code=201, summary="Create a new standalone chat")
async def create_standalone_chat(clients: Clients) -> dict:
    return await _create(clients, None)


@router.get("/chats", summary="List all standalone chats (metadata only)")
async def list_standalone_chats(clients: Clients, limit: Annotated[int, Query(ge=0, le=1000)] = 0,
                                offset: Offset = 0) -> list[dict]:
    """Newest first; `limit`/`offset` are additive (none = the whole list, as the original)."""
    reply = await clients.chat.ListStandaloneChats(
        chat_pb2.ListStandaloneChatsRequest(page=common_pb2.Page(limit=limit, offset=offset)))
    return [chat_json(c, with_tags=True) for c in reply.chats]


@router.get("/chats/{chat_id}", summary="Get full details for a standalone chat")
async def get_standalone_chat(chat_id: ChatId, clients: Clients) -> dict:
    return await _detail(clients, chat_id, None)


@router.get("/chats/{chat_id}/context-usage", summary="Estimate context usage for this standalone chat")
async def standalone_chat_context_usage(chat_id: ChatId, clients: Clients, input_draft: InputDraft = "",
                                        reserved: ReservedOutput = None) -> dict:
    return await _context_usage(clients, chat_id, None, input_draft, reserved)


@router.post("/chats/{chat_id}/messages", summary="Add message and get AI response (SSE stream)")
async def send_standalone_message(chat_id: ChatId, body: MessageBody, clients: Clients):
    return await _send(clients, chat_id, None, body)


@router.patch("/chats/{chat_id}/details", summary="Update name and tags for a standalone chat")
async def update_standalone_details(chat_id: ChatId, body: DetailsBody, clients: Clients) -> dict:
    request = chat_pb2.UpdateChatDetailsRequest(chat_id=chat_id, name=body.name, tags=body.tags or [],
                                                has_tags=body.tags is not None)
    return chat_json(await clients.chat.UpdateChatDetails(request), with_tags=True)


@router.delete("/chats/{chat_id}", summary="Delete a standalone chat")
async def delete_standalone_chat(chat_id: ChatId, clients: Clients) -> dict:
    return await _delete(clients, chat_id, None)
