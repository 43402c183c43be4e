"""Initial chat schema: chats, messages, templates.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "chats",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("session_id", sa.BigInteger, nullable=True),
        sa.Column("timestamp_ms", sa.BigInteger, nullable=False),
        sa.Column("name", sa.String(200), nullable=True),
        sa.Column("tags", sa.JSON, nullable=True),
    )
    op.create_index("ix_chats_session_id", "chats", ["session_id"])
    op.create_index("ix_chats_timestamp_ms", "chats", ["timestamp_ms"])
    op.create_table(
        "messages",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("chat_id", sa.Integer, sa.ForeignKey("chats.id", ondelete="CASCADE"), nullable=False),
        sa.Column("sender", sa.String(8), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("thinking", sa.Text, nullable=True),
        sa.Column("timestamp_ms", sa.BigInteger, nullable=False),
        sa.Column("prompt_tokens", sa.Integer, nullable=True),
        sa.Column("completion_tokens", sa.Integer, nullable=True),
        sa.Column("duration_ms", sa.Integer, nullable=True),
        sa.Column("is_truncated", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("cancelled", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.CheckConstraint("sender IN ('user', 'ai', 'system')", name="ck_messages_sender"),
    )
    op.create_index("ix_messages_chat_id", "messages", ["chat_id"])
    op.create_table(
        "templates",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("title", sa.String(200), nullable=False, unique=True),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("created_at_ms", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_templates_created_at_ms", "templates", ["created_at_ms"])


def downgrade() -> None:
    op.drop_table("messages")
    op.drop_table("templates")
    op.drop_table("chats")
