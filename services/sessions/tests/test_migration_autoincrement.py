"""Migration 0002 (SQLite AUTOINCREMENT, issue 7 item 1) on a database that already holds data: every row
and id survives the table rebuilds, the foreign keys still cascade, and the next id is past the highest
one. SQLite only: on PostgreSQL the revision changes nothing (its sequences never reuse an id)."""

from __future__ import annotations

import sqlite3

from alembic import command
from alembic.config import Config

from therascript_sessions.storage.database import MIGRATIONS_DIR


def _config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url)
    return config


def test_upgrading_a_populated_database_keeps_rows_ids_and_cascades(tmp_path) -> None:
    path = tmp_path / "sessions.sqlite"
    config = _config(f"sqlite:///{path}")
    command.upgrade(config, "0001")
    with sqlite3.connect(path) as db:
        for session_id in (1, 2, 3):
            db.execute("INSERT INTO sessions (id, file_name, client_name, session_name, date, session_type, therapy,"
                       " status, show_speakers, num_speakers, created_at_ms) VALUES (?, 'a.wav', 'C', 'S', 'd', 't',"
                       " 'x', 'completed', 1, 2, 0)", (session_id,))
            db.execute("INSERT INTO transcript_paragraphs (session_id, paragraph_index, timestamp_ms, text)"
                       " VALUES (?, 0, 0, 'words')", (session_id,))
        db.execute("DELETE FROM sessions WHERE id = 3")  # without FK enforcement: its paragraph stays
        db.execute("DELETE FROM transcript_paragraphs WHERE session_id = 3")
    command.upgrade(config, "0002")
    with sqlite3.connect(path) as db:
        assert [r[0] for r in db.execute("SELECT id FROM sessions ORDER BY id")] == [1, 2]
        assert [r[0] for r in db.execute("SELECT session_id FROM transcript_paragraphs ORDER BY id")] == [1, 2]
        schema = dict(db.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table'").fetchall())
        for table in ("sessions", "transcript_paragraphs", "outbox"):
            assert "AUTOINCREMENT" in schema[table], schema[table]
        assert "ON DELETE CASCADE" in schema["transcript_paragraphs"]
        assert "uq_paragraph_session_index" in schema["transcript_paragraphs"]
        db.execute("PRAGMA foreign_keys = ON")
        db.execute("DELETE FROM sessions WHERE id = 2")
        assert [r[0] for r in db.execute("SELECT session_id FROM transcript_paragraphs")] == [1]
        db.execute("DELETE FROM sessions WHERE id = 1")  # every row goes…
        db.execute("INSERT INTO sessions (file_name, client_name, session_name, date, session_type, therapy, status,"
                   " show_speakers, num_speakers, created_at_ms) VALUES ('b.wav', 'C', 'S', 'd', 't', 'x', 'queued',"
                   " 1, 2, 0)")
        # …and the next id is past every id the table held at the upgrade or since (3 was deleted before the
        # upgrade, when SQLite kept no record of it: the one id the migration cannot know about)
        assert db.execute("SELECT max(id) FROM sessions").fetchone()[0] == 3
