"""The sessions database: engine, transactions, migrations."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from therascript_common.db import make_engine, migrate, wait_until_migrated

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


class Database:
    """Owns the engine; `transaction()` yields an ORM session committed on exit, rolled back on error."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def migrate(self) -> None:
        """Upgrades the schema to the newest revision (idempotent). Only the sessions service calls it."""
        migrate(self.url, MIGRATIONS_DIR)

    def wait_until_migrated(self, timeout_s: float = 120.0, poll_s: float = 0.5) -> None:
        """Blocks until the sessions service has migrated the schema (the transcriber shares the database);
        TimeoutError after `timeout_s` seconds."""
        wait_until_migrated(self.engine, MIGRATIONS_DIR, timeout_s, poll_s)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        with self._sessions.begin() as session:
            yield session

    def dispose(self) -> None:
        self.engine.dispose()
