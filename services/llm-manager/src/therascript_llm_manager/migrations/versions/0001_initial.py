"""llm-manager tables: persisted model settings, durable pull jobs, recorded model digests.

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
        "llm_settings",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("active_model", sa.String(255), nullable=True),
        sa.Column("context_size", sa.Integer, nullable=True),
        sa.Column("temperature", sa.Float, nullable=False),
        sa.Column("top_p", sa.Float, nullable=False),
        sa.Column("repeat_penalty", sa.Float, nullable=False),
        sa.Column("num_gpu_layers", sa.Integer, nullable=True),
        sa.Column("thinking_budget", sa.Integer, nullable=True),
    )
    op.create_table(
        "pull_jobs",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("source_url", sa.Text, nullable=False),
        sa.Column("model_name", sa.String(255), nullable=False),
        sa.Column("status", sa.String(16), nullable=False, index=True),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("completed_bytes", sa.BigInteger, nullable=False),
        sa.Column("total_bytes", sa.BigInteger, nullable=True),
        sa.Column("expected_sha256", sa.String(64), nullable=True),
        sa.Column("sha256", sa.String(64), nullable=True),
        sa.Column("start_time_ms", sa.BigInteger, nullable=False),
        sa.Column("end_time_ms", sa.BigInteger, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
    )
    op.create_table(
        "model_digests",
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("size_bytes", sa.BigInteger, nullable=False),
        sa.Column("mtime_ns", sa.BigInteger, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("model_digests")
    op.drop_table("pull_jobs")
    op.drop_table("llm_settings")
