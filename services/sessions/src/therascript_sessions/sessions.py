"""Session metadata: list, read, update, delete (original §1.1, with §10's faults fixed)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from therascript_common.errors import InvalidArgument, NotFound
from therascript_common.names import clean_name

from . import outbox, search
from .clock import now_ms, session_date_iso
from .storage.database import Database
from .storage.tables import SessionRow

#: Client-editable metadata fields (everything else — audioPath, status, whisperJobId, token count,
#: duration — is server-owned and cannot be set; API-CONTRACT.md Part C).
EDITABLE_TEXT_FIELDS = ("client_name", "session_name", "session_type", "therapy", "file_name")
MAX_TEXT_LENGTH = 200
#: Metadata copied into every paragraph's search document (search.py).
INDEXED_FIELDS = ("client_name", "session_name", "date", "session_type", "therapy")


@dataclass(frozen=True)
class MetadataUpdate:
    """A partial update: None = leave unchanged."""

    client_name: str | None = None
    session_name: str | None = None
    date: str | None = None            # YYYY-MM-DD
    session_type: str | None = None
    therapy: str | None = None
    file_name: str | None = None
    show_speakers: bool | None = None


def require_session(session: Session, session_id: int) -> SessionRow:
    """The session row, or NotFound("Session with ID n not found.") as the original."""
    row = session.get(SessionRow, session_id)
    if row is None:
        raise NotFound(f"Session with ID {session_id} not found.")
    return row


def clean_text(field: str, value: str, max_length: int = MAX_TEXT_LENGTH) -> str:
    """NFC, trimmed, non-empty, at most `max_length` characters, no control/bidi/zero-width characters
    (therascript_common.names); InvalidArgument naming `field` otherwise."""
    try:
        value = clean_name(value)
    except ValueError as error:
        raise InvalidArgument(f"{field} {error}.", {"field": field}) from None
    if not value or len(value) > max_length:
        raise InvalidArgument(f"{field} must be 1..{max_length} characters.", {"field": field})
    return value


class SessionService:
    def __init__(self, db: Database, uploads_dir: Path, dispatcher: outbox.OutboxDispatcher) -> None:
        self._db = db
        self._uploads_dir = uploads_dir
        self._dispatcher = dispatcher

    def list(self, limit: int = 0, offset: int = 0) -> list[SessionRow]:
        """All sessions, `date DESC, id DESC` (original §1.1); limit 0 = all."""
        query = select(SessionRow).order_by(SessionRow.date.desc(), SessionRow.id.desc()).offset(max(offset, 0))
        if limit > 0:
            query = query.limit(limit)
        with self._db.transaction() as session:
            return list(session.scalars(query))

    def get(self, session_id: int) -> SessionRow:
        with self._db.transaction() as session:
            return require_session(session, session_id)

    def update_metadata(self, session_id: int, update: MetadataUpdate) -> SessionRow:
        """Applies the present fields. InvalidArgument if none is present or one is invalid."""
        changes = {f: getattr(update, f) for f in EDITABLE_TEXT_FIELDS if getattr(update, f) is not None}
        changes = {f: clean_text(f, v) for f, v in changes.items()}
        if update.date is not None:
            changes["date"] = session_date_iso(update.date)
        if update.show_speakers is not None:
            changes["show_speakers"] = int(update.show_speakers)
        if not changes:
            raise InvalidArgument("No metadata provided for update.")
        with self._db.transaction() as session:
            row = require_session(session, session_id)
            indexed_change = any(getattr(row, f) != v for f, v in changes.items() if f in INDEXED_FIELDS)
            client_changed = "client_name" in changes and row.client_name != changes["client_name"]
            for field, value in changes.items():
                setattr(row, field, value)
            if indexed_change:
                search.record_session(session, session_id)
            if client_changed:  # the message index holds the session's client name too
                outbox.record(session, outbox.REINDEX_SESSION_CHATS, {"session_id": session_id})
            return row

    def delete(self, session_id: int) -> None:
        """Deletes the session and its paragraphs and jobs in one transaction, and records in the
        outbox what it owes elsewhere (the audio file, the session's chats), delivered after commit."""
        with self._db.transaction() as session:
            row = require_session(session, session_id)
            if row.audio_path:
                outbox.record(session, outbox.DELETE_FILE, {"path": str(self._uploads_dir / row.audio_path)})
            outbox.record(session, outbox.DELETE_SESSION_CHATS, {"session_id": session_id, "deleted_at_ms": now_ms()})
            search.record_session(session, session_id)
            session.delete(row)
        self._dispatcher.deliver_pending()
