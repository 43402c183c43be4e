"""Template titles are unique as people read them (issue 7 item 13): a `title_key` column — the title
NFKC-normalised, case-folded, whitespace runs (a non-breaking space included) collapsed, trimmed
(therascript_common.names.name_key) — with a unique index. "Intake", "intake" and "Intake\u00a0" were three
templates; now the second and third are 409.

Existing rows are backfilled oldest first; should two already share a key, the newer keeps NULL (a unique index
admits many NULLs on SQLite and PostgreSQL) and stays as it is — nothing is deleted or renamed.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

from therascript_common.names import name_key

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("templates", sa.Column("title_key", sa.String(800), nullable=True))
    bind = op.get_bind()
    seen: set[str] = set()
    for template_id, title in bind.execute(sa.text("SELECT id, title FROM templates ORDER BY id")).all():
        key = name_key(title)
        if key in seen:
            continue
        seen.add(key)
        bind.execute(sa.text("UPDATE templates SET title_key = :key WHERE id = :id"), {"key": key, "id": template_id})
    op.create_index("ix_templates_title_key", "templates", ["title_key"], unique=True)


def downgrade() -> None:
    op.drop_index("ix_templates_title_key", table_name="templates")
    with op.batch_alter_table("templates", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.drop_column("title_key")
