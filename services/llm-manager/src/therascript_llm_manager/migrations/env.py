"""Alembic environment for the llm-manager database (run by therascript_common.db.migrate)."""

from therascript_common.db import run_alembic_env

run_alembic_env()
