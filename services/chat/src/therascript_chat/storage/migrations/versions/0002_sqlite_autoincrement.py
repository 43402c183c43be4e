"""Ids are never reused: SQLite tables with generated integer ids get AUTOINCREMENT (issue 7 item 1).

Without AUTOINCREMENT SQLite hands out max(id)+1, so deleting the newest chat (or message, template) gave
its id to the next one, and a clean-up or a client still naming the old id acted on the new row. PostgreSQL
(SERIAL / identity sequences) never reuses an id, so this revision changes nothing there.

On SQLite each table is recreated in batch mode (copy, drop, rename) with `sqlite_autoincrement`; the copy
keeps every id, so the sequence starts at the current max(id) (an id above it that was deleted before
this upgrade can be handed out once more: SQLite kept no record of it). Alembic's connection does not enable
foreign keys, so dropping the old `chats` table does not cascade into its messages.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# Parents first: children are recreated after the table they reference is back under its name.
TABLES = ("chats", "messages", "templates")


def _recreate(autoincrement: bool) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for table in TABLES:
        with op.batch_alter_table(table, recreate="always",
                                  table_kwargs={"sqlite_autoincrement": autoincrement}):
            pass


def upgrade() -> None:
    _recreate(True)


def downgrade() -> None:
    _recreate(False)
