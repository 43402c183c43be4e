"""Alembic environment: migrates the URL given by therascript_common.db.migrate."""

from alembic import context
from sqlalchemy import create_engine

from therascript_chat.storage.tables import Base

config = context.config
engine = create_engine(config.get_main_option("sqlalchemy.url") or "")
with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
