"""Opens the chat database: migrates it to the newest revision and returns a session factory."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from therascript_common.db import make_engine, migrate

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def open_database(url: str) -> sessionmaker[Session]:
    """Runs the Alembic migrations on `url` (SQLite file or PostgreSQL) and returns a session factory."""
    migrate(url, MIGRATIONS_DIR)
    return sessionmaker(make_engine(url), expire_on_commit=False)
