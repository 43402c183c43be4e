"""The sessions database: engine, transactions, migrations."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from therascript_common.db import make_engine, migrate

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
        """Blocks until the schema is at the newest revision (the sessions service migrates it);
        TimeoutError after `timeout_s` seconds."""
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        head = ScriptDirectory.from_config(config).get_current_head()
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                with self.engine.connect() as connection:
                    if MigrationContext.configure(connection).get_current_revision() == head:
                        return
            except OperationalError:
                pass  # the database file or server is not there yet
            if time.monotonic() > deadline:
                raise TimeoutError(f"the sessions database is not at revision {head} after {timeout_s} s")
            time.sleep(poll_s)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        with self._sessions.begin() as session:
            yield session

    def dispose(self) -> None:
        self.engine.dispose()
