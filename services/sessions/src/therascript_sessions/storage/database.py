"""The sessions database: engine, transactions, migrations (the sessions service migrates; the transcriber,
which shares the database, waits until it has)."""

from __future__ import annotations

from pathlib import Path

from therascript_common.db import Database as _Database

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


class Database(_Database):
    """The sessions service's database at `url` (see therascript_common.db.Database)."""

    def __init__(self, url: str) -> None:
        super().__init__(url, MIGRATIONS_DIR)
