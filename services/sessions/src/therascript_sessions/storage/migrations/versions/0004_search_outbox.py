"""Search outbox: changes to indexed transcript content, recorded in the same transaction as the write
(search issue). `target` is "s:<session id>" (re-sync the whole session) or "p:<session id>:<index>" (one
paragraph); the search indexer applies and deletes them once Elasticsearch accepted them.

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
    # Every session already stored is indexed once: the outbox starts with one entry per session.
    op.execute("INSERT INTO search_outbox (target, created_at_ms) SELECT 's:' || id, created_at_ms FROM sessions")


def downgrade() -> None:
    op.drop_table("search_outbox")
