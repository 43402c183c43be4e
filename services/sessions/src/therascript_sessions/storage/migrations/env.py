"""Alembic environment: migrates the URL given by therascript_common.db.migrate."""

from therascript_common.db import run_alembic_env
from therascript_sessions.storage.tables import Base

run_alembic_env(Base.metadata)
