"""Word-level timing per paragraph: `transcript_paragraphs.words` (JSON, nullable; issue 11).

Each paragraph keeps the words it was built from, `[{"start_ms", "end_ms", "text", "probability"}, …]`, for
word-level exports and editors. The speaker is not repeated per word: paragraphs never mix speakers, so a
word's speaker is its paragraph's (and stays right when speakers are renamed). NULL for paragraphs made before
this revision and for paragraphs whose text was edited (the words no longer match the text).

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("transcript_paragraphs") as batch:
        batch.add_column(sa.Column("words", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("transcript_paragraphs") as batch:
        batch.drop_column("words")
