"""Sessions test fixtures: the service's database on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import create_engine, text

from therascript_sessions.storage.database import Database


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request, tmp_path) -> Database:
    """A freshly migrated sessions database, once on SQLite and once on PostgreSQL (its own schema-free
    database per test, created in the shared throw-away cluster)."""
    if request.param == "sqlite":
        database = Database(f"sqlite:///{tmp_path / 'sessions.sqlite'}")
    else:
        server_url = request.getfixturevalue("postgres_url")
        name = f"sessions_{uuid.uuid4().hex[:12]}"
        admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        database = Database(server_url.rsplit("/", 1)[0] + f"/{name}")
    database.migrate()
    yield database
    database.dispose()
