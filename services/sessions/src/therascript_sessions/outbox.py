"""Transactional outbox: side effects outside the database (deleting files, asking the chat service to
delete a session's chats) are recorded in the same transaction as the change that causes them, then
delivered after commit — at once, and again by a background loop until they succeed. So a session
delete is atomic for the user, and nothing it owes elsewhere is forgotten if a process dies
(ARCHITECTURE.md: writes that must reach another store are recorded)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from therascript_common.background import Periodic

from .clock import now_ms
from .storage.database import Database
from .storage.tables import OutboxRow

log = logging.getLogger(__name__)

DELETE_FILE = "delete_file"                    # payload {"path": absolute path}
DELETE_SESSION_CHATS = "delete_session_chats"  # payload {"session_id": int, "deleted_at_ms": epoch ms}
REINDEX_SESSION_CHATS = "reindex_session_chats"  # payload {"session_id": int}: its client name changed
# (entries written before deleted_at_ms existed have none: chat then deletes all of the session's chats)

Handler = Callable[[dict], None]


def record(session: Session, kind: str, payload: dict) -> None:
    """Adds an outbox entry inside the caller's transaction."""
    session.add(OutboxRow(kind=kind, payload=payload, attempts=0, created_at_ms=now_ms()))


def delete_file(payload: dict) -> None:
    """Handler for DELETE_FILE: a missing file counts as deleted."""
    Path(payload["path"]).unlink(missing_ok=True)


class OutboxDispatcher:
    """Delivers outbox entries with the registered handlers; failed ones stay and are retried."""

    def __init__(self, db: Database, handlers: dict[str, Handler], interval_s: float = 2.0) -> None:
        self._db = db
        self._handlers = handlers
        self._interval_s = interval_s
        self._lock = threading.Lock()

    def deliver_pending(self) -> int:
        """Tries every pending entry once, oldest first; returns how many were delivered."""
        delivered = 0
        with self._lock:
            with self._db.transaction() as session:
                rows = session.scalars(select(OutboxRow).order_by(OutboxRow.id).limit(100)).all()
            for row in rows:
                delivered += self._deliver(row)
        return delivered

    def _deliver(self, row: OutboxRow) -> int:
        try:
            self._handlers[row.kind](row.payload)
        except Exception as error:
            log.warning("outbox %s #%s failed (attempt %s): %s", row.kind, row.id, row.attempts + 1, error)
            with self._db.transaction() as session:
                stored = session.get(OutboxRow, row.id)
                if stored is not None:
                    stored.attempts += 1
                    stored.last_error = str(error)[:500]
            return 0
        with self._db.transaction() as session:
            stored = session.get(OutboxRow, row.id)
            if stored is not None:
                session.delete(stored)
        return 1

    def run_in_background(self) -> Periodic:
        """Starts `deliver_pending()` every interval in the background (what failed is retried there)."""
        return Periodic("outbox", self._interval_s, self.deliver_pending).start()
