"""Stored rows → chat.v1 messages (the transport shapes; no logic)."""

from __future__ import annotations

from therascript.chat.v1 import chat_pb2

from .storage.tables import ChatRow, MessageRow, TemplateRow

SENDERS = {"user": chat_pb2.SENDER_USER, "ai": chat_pb2.SENDER_AI, "system": chat_pb2.SENDER_SYSTEM}


def chat(row: ChatRow) -> chat_pb2.Chat:
    return chat_pb2.Chat(id=row.id, session_id=row.session_id, timestamp_ms=row.timestamp_ms, name=row.name,
                         tags=row.tags or [], has_tags=row.tags is not None)


def message(row: MessageRow) -> chat_pb2.Message:
    return chat_pb2.Message(
        id=row.id, chat_id=row.chat_id, sender=SENDERS[row.sender], text=row.text, thinking=row.thinking,
        timestamp_ms=row.timestamp_ms, prompt_tokens=row.prompt_tokens, completion_tokens=row.completion_tokens,
        duration_ms=row.duration_ms, is_truncated=bool(row.is_truncated), cancelled=bool(row.cancelled),
    )


def template(row: TemplateRow) -> chat_pb2.Template:
    return chat_pb2.Template(id=row.id, title=row.title, text=row.text, created_at_ms=row.created_at_ms)
