"""Storage of the analysis service: its own database (SQLite by default, PostgreSQL via DATABASE_URL)."""
