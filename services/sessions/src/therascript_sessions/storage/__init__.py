"""Storage of the sessions service: its own database (SQLite by default, PostgreSQL via DATABASE_URL)."""
