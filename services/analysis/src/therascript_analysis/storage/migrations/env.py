"""Alembic environment: migrates the URL given by therascript_common.db.migrate."""

from therascript_analysis.storage.tables import Base
from therascript_common.db import run_alembic_env

run_alembic_env(Base.metadata)
