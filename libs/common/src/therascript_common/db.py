"""SQLAlchemy engine and Alembic migrations for a service's own database."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, MetaData, create_engine, event
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool


def make_engine(url: str) -> Engine:
    """An engine for `url`. SQLite gets WAL, foreign keys and a 5 s busy timeout (as the original)."""
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True)
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 5})

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_connection, _record) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=5000")
        cursor.close()

    return engine


def _alembic_config(migrations_dir: Path, url: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir))
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def migrate(url: str, migrations_dir: Path) -> None:
    """Upgrades the database at `url` to the newest revision in `migrations_dir` (an Alembic script folder)."""
    command.upgrade(_alembic_config(migrations_dir, url), "head")


def run_alembic_env(target_metadata: MetaData | None = None) -> None:
    """The body of every service's `migrations/env.py`: runs the migrations online against the URL that
    `migrate` put in the Alembic config, with batch mode (SQLite ALTERs) and no pooled connection left behind."""
    from alembic import context

    url = context.config.get_main_option("sqlalchemy.url") or ""
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


def wait_until_migrated(engine: Engine, migrations_dir: Path, timeout_s: float = 120.0, poll_s: float = 0.5) -> None:
    """Blocks until the database behind `engine` is at the newest revision in `migrations_dir` (for a process
    that shares a database another one migrates); TimeoutError after `timeout_s` seconds."""
    head = ScriptDirectory.from_config(_alembic_config(migrations_dir)).get_current_head()
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with engine.connect() as connection:
                if MigrationContext.configure(connection).get_current_revision() == head:
                    return
        except OperationalError:
            pass  # the database file or server is not there yet
        if time.monotonic() > deadline:
            raise TimeoutError(f"the database is not at revision {head} after {timeout_s} s")
        time.sleep(poll_s)


class Database:
    """A service's own database at `url` with its Alembic folder `migrations_dir`: `transaction()` yields an ORM
    session committed on exit and rolled back on error; `migrate()` (the owning server) or `wait_until_migrated()`
    (a worker sharing the database) before first use."""

    def __init__(self, url: str, migrations_dir: Path) -> None:
        self.url = url
        self.migrations_dir = migrations_dir
        self.engine = make_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def migrate(self) -> None:
        """Upgrades the schema to the newest revision (idempotent)."""
        migrate(self.url, self.migrations_dir)

    def wait_until_migrated(self, timeout_s: float = 120.0, poll_s: float = 0.5) -> None:
        """Blocks until another process has migrated the schema; TimeoutError after `timeout_s` seconds."""
        wait_until_migrated(self.engine, self.migrations_dir, timeout_s, poll_s)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        with self._sessions.begin() as session:
            yield session

    def dispose(self) -> None:
        self.engine.dispose()
