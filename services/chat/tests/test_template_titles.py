"""Template titles as people read them (issue 7 item 13), on SQLite and PostgreSQL: NFC + trim, no control,
bidi-override or zero-width characters (400), and uniqueness regardless of case and whitespace (409).

Before: "Intake", "intake" and "Intake\u00a0notes"/"Intake notes" were distinct templates, and a title with a
NUL, CR/LF or U+202E was stored as sent."""

from __future__ import annotations

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, text

from therascript_chat import templates
from therascript_chat.storage.database import MIGRATIONS_DIR, open_database
from therascript_common.errors import Conflict, InvalidArgument


@pytest.mark.parametrize(("first", "second"), [
    ("Intake notes", "intake NOTES"),
    ("Intake notes", "Intake\u00a0notes"),
    ("Intake notes", "  Intake   notes "),
    ("Stra\u00dfe", "STRASSE"),
    ("Cafe\u0301", "caf\u00e9"),
])
def test_look_alike_titles_conflict(db, first: str, second: str) -> None:
    created = templates.create_template(db, first, "text")
    with pytest.raises(Conflict):
        templates.create_template(db, second, "other text")
    other = templates.create_template(db, "Something else", "text")
    with pytest.raises(Conflict):
        templates.update_template(db, other.id, second, "text")
    assert templates.update_template(db, created.id, second, "text").title == second.strip()  # its own title


@pytest.mark.parametrize("title", ["Bad\x00title", "Two\r\nlines", "Tab\there", "Rev\u202eersed", "Iso\u2066late",
                                   "Zero\u200bwidth", "Join\u200dER", "\ufeffBOM", "Word\u2060joiner"])
def test_titles_with_control_bidi_or_zero_width_characters_are_invalid(db, title: str) -> None:
    with pytest.raises(InvalidArgument):
        templates.create_template(db, title, "text")
    assert templates.list_templates(db) == []


def test_titles_are_stored_nfc(db) -> None:
    assert templates.create_template(db, "Cafe\u0301", "text").title == "Caf\u00e9"


def test_migration_backfills_keys_and_keeps_existing_look_alikes(database_url: str) -> None:
    """Rows stored before 0003 get their key; of two existing look-alikes the older keeps it, the newer stays."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    command.upgrade(config, "0002")
    engine = create_engine(database_url)
    with engine.begin() as connection:
        for title in ("Plan", "plan", "Other"):
            connection.execute(text("INSERT INTO templates (title, text, created_at_ms) VALUES (:t, 'x', 1)"),
                               {"t": title})
    engine.dispose()
    db = open_database(database_url)
    try:
        assert sorted(t.title for t in templates.list_templates(db)) == ["Other", "Plan", "plan"]
        with pytest.raises(Conflict):
            templates.create_template(db, "PLAN", "x")
        with pytest.raises(Conflict):
            templates.create_template(db, "other", "x")
    finally:
        db.kw["bind"].dispose()
