"""Fixtures of the chat service tests: a migrated database on SQLite and on PostgreSQL (a fresh database
per test in the shared throw-away cluster, `postgres_url` from tests/support/servers.py)."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session, sessionmaker

from therascript_chat.storage.database import open_database

# When pytest's rootdir is this service (its pyproject.toml), the repository's conftest.py is not loaded:
# take the shared real-server fixtures from tests/support directly.
sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tests" / "support"))
from servers import postgres_url  # noqa: F401


def _fresh_postgres_database(server_url: str) -> tuple[str, str]:
    name = f"chat_{uuid.uuid4().hex[:12]}"
    engine = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return server_url.rsplit("/", 1)[0] + f"/{name}", name


def _drop_postgres_database(server_url: str, name: str) -> None:
    engine = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    """An empty database URL: a SQLite file, or a new PostgreSQL database (dropped afterwards)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'chat.sqlite'}"
        return
    server_url = request.getfixturevalue("postgres_url")
    url, name = _fresh_postgres_database(server_url)
    yield url
    _drop_postgres_database(server_url, name)


@pytest.fixture
def db(database_url: str) -> Iterator[sessionmaker[Session]]:
    """A migrated chat database (no templates seeded)."""
    factory = open_database(database_url)
    yield factory
    factory.kw["bind"].dispose()
