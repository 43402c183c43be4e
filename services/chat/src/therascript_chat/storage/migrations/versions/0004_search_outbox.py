"""Search outbox: changes to indexed message content, recorded in the same transaction as the write (search
issue). `target` is "m:<message id>" (one message), "c:<chat id>" (every message of a chat: rename, tags,
delete) or "S:<session id>" (every chat of a session: its client name changed, or its chats were deleted);
the search indexer applies and deletes them once Elasticsearch accepted them.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "search_outbox",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("target", sa.String(64), nullable=False),
        sa.Column("created_at_ms", sa.BigInteger, nullable=False),
        sqlite_autoincrement=True,
    )
    # Every chat already stored is indexed once.
    op.execute("INSERT INTO search_outbox (target, created_at_ms) SELECT 'c:' || id, timestamp_ms FROM chats")


def downgrade() -> None:
    op.drop_table("search_outbox")
