"""Chats: session-bound (session_id set) or standalone (session_id NULL). Original §1.2, §1.3.

A chat is always addressed with its scope: `session_id` given = it must belong to that session;
`session_id` None = it must be standalone. Any mismatch is NotFound (the original's 404 messages).
"""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from therascript_common import names
from therascript_common.errors import InvalidArgument, NotFound

from . import search
from .clock import now_ms
from .storage.tables import ChatRow

NAME_MAX_CHARS = 200     # original renameChatRequest schema (its zod-only 500 is a 400 here)
TAG_MAX_CHARS = 50       # original §1.3
TAGS_MAX = 10            # original §1.3


def _not_found(chat_id: int, session_id: int | None) -> NotFound:
    if session_id is None:
        return NotFound(f"Standalone Chat {chat_id} not found.")
    return NotFound(f"Chat {chat_id} not found in session {session_id}.")


def _load(db: Session, chat_id: int, session_id: int | None) -> ChatRow:
    chat = db.get(ChatRow, chat_id)
    if chat is None or chat.session_id != session_id:
        raise _not_found(chat_id, session_id)
    return chat


def _forbidding(field: str, value: str) -> str:
    """`value` NFC and trimmed (therascript_common.names); InvalidArgument for control/bidi/zero-width characters."""
    try:
        return names.clean_name(value)
    except ValueError as error:
        raise InvalidArgument(f"Chat {field} {error}.", [{"field": field, "message": str(error)}]) from None


def clean_name(name: str | None) -> str | None:
    """NFC, trimmed name; blank or absent → None. InvalidArgument over 200 characters or for control, bidi or
    zero-width characters."""
    name = _forbidding("name", name or "")
    if len(name) > NAME_MAX_CHARS:
        raise InvalidArgument(f"Chat name must be at most {NAME_MAX_CHARS} characters.",
                              [{"field": "name", "message": f"at most {NAME_MAX_CHARS} characters"}])
    return name or None


def clean_tags(tags: list[str] | None) -> list[str] | None:
    """Trimmed, de-duplicated, sorted case-insensitively; empty → None.

    As the original at bb5fd4d (ui-contract §1.A.4): if any tag is blank after trimming, the whole list
    becomes None (all tags cleared). InvalidArgument for more than 10 tags or a tag over 50 characters.
    """
    if not tags:
        return None
    trimmed = [_forbidding("tags", tag) for tag in tags]
    if not all(trimmed):
        return None
    if len(trimmed) > TAGS_MAX:
        raise InvalidArgument(f"At most {TAGS_MAX} tags are allowed.", [{"field": "tags", "message": "too many"}])
    if any(len(tag) > TAG_MAX_CHARS for tag in trimmed):
        raise InvalidArgument(f"Each tag must be at most {TAG_MAX_CHARS} characters.",
                              [{"field": "tags", "message": f"at most {TAG_MAX_CHARS} characters each"}])
    return sorted(set(trimmed), key=lambda tag: (tag.casefold(), tag))


def create_chat(db: sessionmaker[Session], session_id: int | None) -> ChatRow:
    """A new chat with no name, tags or messages (the caller checked the session exists)."""
    with db.begin() as tx:
        chat = ChatRow(session_id=session_id, timestamp_ms=now_ms(), name=None, tags=None)
        tx.add(chat)
    return chat


def get_chat(db: sessionmaker[Session], chat_id: int, session_id: int | None) -> ChatRow:
    """The chat in that scope; NotFound otherwise."""
    with db() as tx:
        return _load(tx, chat_id, session_id)


def list_session_chats(db: sessionmaker[Session], session_id: int) -> list[ChatRow]:
    """A session's chats, newest first (ties: higher id first)."""
    query = select(ChatRow).where(ChatRow.session_id == session_id)
    with db() as tx:
        return list(tx.scalars(query.order_by(ChatRow.timestamp_ms.desc(), ChatRow.id.desc())))


def list_standalone_chats(db: sessionmaker[Session], limit: int = 0, offset: int = 0) -> list[ChatRow]:
    """Standalone chats, newest first; `limit` 0 = all (original returned the whole list)."""
    query = select(ChatRow).where(ChatRow.session_id.is_(None)).order_by(ChatRow.timestamp_ms.desc(),
                                                                         ChatRow.id.desc())
    if limit > 0:
        query = query.limit(limit)
    if offset > 0:
        query = query.offset(offset)
    with db() as tx:
        return list(tx.scalars(query))


def rename_chat(db: sessionmaker[Session], chat_id: int, session_id: int | None, name: str | None) -> ChatRow:
    """Sets the name (trimmed; blank/absent = None). Original §1.2 PATCH /name."""
    name = clean_name(name)
    with db.begin() as tx:
        chat = _load(tx, chat_id, session_id)
        chat.name = name
        search.record(tx, f"c:{chat_id}")
    return chat


def update_chat_details(db: sessionmaker[Session], chat_id: int, name: str | None,
                        tags: list[str] | None) -> ChatRow:
    """Full replacement of a standalone chat's name and tags (original §1.3 PATCH /details)."""
    name, tags = clean_name(name), clean_tags(tags)
    with db.begin() as tx:
        chat = _load(tx, chat_id, None)
        chat.name, chat.tags = name, tags
        search.record(tx, f"c:{chat_id}")
    return chat


def delete_chat(db: sessionmaker[Session], chat_id: int, session_id: int | None) -> None:
    """Deletes the chat; its messages go with it (FK ON DELETE CASCADE)."""
    with db.begin() as tx:
        tx.delete(_load(tx, chat_id, session_id))
        search.record(tx, f"c:{chat_id}")


def delete_session_chats(db: sessionmaker[Session], session_id: int, created_at_or_before_ms: int | None = None) -> int:
    """Deletes a session's chats (and their messages) — those created at or before `created_at_or_before_ms`
    (epoch ms; None = all) — and returns how many. Idempotent. The cut-off is the session's deletion time, so
    a clean-up delivered late deletes exactly the chats that existed then, never one created afterwards."""
    query = delete(ChatRow).where(ChatRow.session_id == session_id)
    if created_at_or_before_ms is not None:
        query = query.where(ChatRow.timestamp_ms <= created_at_or_before_ms)
    with db.begin() as tx:
        result = tx.execute(query)
        search.record(tx, f"S:{session_id}")
    return getattr(result, "rowcount", 0) or 0  # a DML result (CursorResult) has rowcount
