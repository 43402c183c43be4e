"""Chat messages. `record_message` is THE write path for messages: every message (user or assistant)
is stored through it, so the search outbox (search issue) is added in exactly one place."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from therascript_common.errors import InvalidArgument

from . import search
from .clock import now_ms
from .storage.tables import MessageRow

TEXT_MAX_CHARS = 10_000   # original chat text limit (a zod-only 500 there; a 400 here)

Sender = Literal["user", "ai", "system"]


@dataclass(frozen=True)
class NewMessage:
    """A message to store. Token counts are tokens, `duration_ms` milliseconds; None = unknown."""

    chat_id: int
    sender: Sender
    text: str
    thinking: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    duration_ms: int | None = None
    is_truncated: bool = False
    cancelled: bool = False


def clean_text(text: str) -> str:
    """The user's text trimmed; InvalidArgument unless 1..10000 characters (original §1.2, §2.1 step 1)."""
    text = text.strip()
    if not text or len(text) > TEXT_MAX_CHARS:
        raise InvalidArgument(f"Message text must be 1 to {TEXT_MAX_CHARS} characters.",
                              [{"field": "text", "message": f"1 to {TEXT_MAX_CHARS} characters after trimming"}])
    return text


def record_message(db: sessionmaker[Session], message: NewMessage) -> MessageRow:
    """Stores one message in its own transaction, with its search-outbox entry, and returns the row (with id
    and timestamp)."""
    row = MessageRow(
        chat_id=message.chat_id, sender=message.sender, text=message.text, thinking=message.thinking,
        timestamp_ms=now_ms(), prompt_tokens=message.prompt_tokens, completion_tokens=message.completion_tokens,
        duration_ms=message.duration_ms, is_truncated=message.is_truncated, cancelled=message.cancelled,
    )
    with db.begin() as tx:
        tx.add(row)
        tx.flush()
        search.record(tx, f"m:{row.id}")
    return row


def list_messages(db: sessionmaker[Session], chat_id: int) -> list[MessageRow]:
    """A chat's messages ordered by id (original §1.2)."""
    with db() as tx:
        return list(tx.scalars(select(MessageRow).where(MessageRow.chat_id == chat_id).order_by(MessageRow.id)))
