"""The chat service's own database: tables, Alembic migrations (files), and the engine/session factory."""
