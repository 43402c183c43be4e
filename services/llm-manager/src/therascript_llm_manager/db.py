"""The llm-manager's own database: table definitions and small repositories (SQLAlchemy Core).

Schema changes are Alembic migrations in `migrations/`; these Table objects mirror them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path

import sqlalchemy as sa

from therascript_common.db import make_engine, migrate

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
metadata = sa.MetaData()

llm_settings = sa.Table(
    "llm_settings", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("active_model", sa.String(255)),
    sa.Column("context_size", sa.Integer),
    sa.Column("temperature", sa.Float, nullable=False),
    sa.Column("top_p", sa.Float, nullable=False),
    sa.Column("repeat_penalty", sa.Float, nullable=False),
    sa.Column("num_gpu_layers", sa.Integer),
    sa.Column("thinking_budget", sa.Integer),
)

pull_jobs = sa.Table(
    "pull_jobs", metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("source_url", sa.Text, nullable=False),
    sa.Column("model_name", sa.String(255), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("completed_bytes", sa.BigInteger, nullable=False),
    sa.Column("total_bytes", sa.BigInteger),
    sa.Column("expected_sha256", sa.String(64)),
    sa.Column("sha256", sa.String(64)),
    sa.Column("start_time_ms", sa.BigInteger, nullable=False),
    sa.Column("end_time_ms", sa.BigInteger),
    sa.Column("error", sa.Text),
)

model_digests = sa.Table(
    "model_digests", metadata,
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("size_bytes", sa.BigInteger, nullable=False),
    sa.Column("mtime_ns", sa.BigInteger, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
)

usage_calls = sa.Table(
    "usage_calls", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("purpose", sa.String(64), nullable=False),
    sa.Column("model", sa.String(255), nullable=False),
    sa.Column("prompt_tokens", sa.Integer, nullable=False),
    sa.Column("completion_tokens", sa.Integer, nullable=False),
    sa.Column("duration_ms", sa.Integer, nullable=False),
    sa.Column("finished_at_ms", sa.BigInteger, nullable=False, index=True),
    sqlite_autoincrement=True,
)


def open_database(url: str) -> sa.Engine:
    """Migrates the database at `url` to the newest revision and returns an engine for it."""
    migrate(url, MIGRATIONS_DIR)
    return make_engine(url)


@dataclass
class ModelSettings:
    """The persisted active-model settings (original §5 `app_settings`, LLM part)."""

    active_model: str | None = None
    context_size: int | None = None  # tokens; None = the default context size
    temperature: float = 0.7
    top_p: float = 0.9
    repeat_penalty: float = 1.1
    num_gpu_layers: int | None = None  # None = the operator's default
    thinking_budget: int | None = None  # tokens; None = unlimited


class SettingsRepository:
    """Reads and writes the single settings row (id 1)."""

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine

    def load(self) -> ModelSettings:
        """The stored settings, or the defaults when none were saved yet."""
        with self._engine.connect() as conn:
            row = conn.execute(sa.select(llm_settings).where(llm_settings.c.id == 1)).mappings().first()
        if row is None:
            return ModelSettings()
        return ModelSettings(**{f.name: row[f.name] for f in fields(ModelSettings)})

    def save(self, settings: ModelSettings) -> None:
        """Replaces the stored settings."""
        with self._engine.begin() as conn:
            conn.execute(sa.delete(llm_settings).where(llm_settings.c.id == 1))
            conn.execute(sa.insert(llm_settings).values(id=1, **asdict(settings)))


class DigestRepository:
    """sha256 digests of store files, valid while the file's size and mtime are unchanged."""

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine

    def get(self, name: str, size_bytes: int, mtime_ns: int) -> str | None:
        """The recorded hex digest of `name`, if it still matches the file's size and mtime."""
        query = sa.select(model_digests.c.sha256).where(
            model_digests.c.name == name, model_digests.c.size_bytes == size_bytes,
            model_digests.c.mtime_ns == mtime_ns,
        )
        with self._engine.connect() as conn:
            return conn.execute(query).scalar()

    def put(self, name: str, size_bytes: int, mtime_ns: int, sha256: str) -> None:
        with self._engine.begin() as conn:
            conn.execute(sa.delete(model_digests).where(model_digests.c.name == name))
            conn.execute(sa.insert(model_digests).values(name=name, size_bytes=size_bytes, mtime_ns=mtime_ns,
                                                         sha256=sha256))

    def forget(self, name: str) -> None:
        with self._engine.begin() as conn:
            conn.execute(sa.delete(model_digests).where(model_digests.c.name == name))


@dataclass(frozen=True)
class UsageCall:
    """One finished Generate call: tokens, wall time in ms, end time in epoch ms."""

    id: int
    purpose: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    duration_ms: int
    finished_at_ms: int


class UsageRepository:
    """Records every finished generation (the one door to the LLM) and lists them for ops."""

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine

    def record(self, purpose: str, model: str, prompt_tokens: int, completion_tokens: int, duration_ms: int,
               finished_at_ms: int) -> None:
        with self._engine.begin() as conn:
            conn.execute(sa.insert(usage_calls).values(
                purpose=purpose or "unknown", model=model, prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens, duration_ms=duration_ms, finished_at_ms=finished_at_ms))

    def list(self, start_ms: int | None = None, end_ms: int | None = None) -> list[UsageCall]:
        """Calls that finished in [start_ms, end_ms), newest first."""
        query = sa.select(usage_calls)
        if start_ms is not None:
            query = query.where(usage_calls.c.finished_at_ms >= start_ms)
        if end_ms is not None:
            query = query.where(usage_calls.c.finished_at_ms < end_ms)
        with self._engine.connect() as conn:
            rows = conn.execute(query.order_by(usage_calls.c.finished_at_ms.desc(), usage_calls.c.id.desc()))
            return [UsageCall(**row) for row in rows.mappings()]
