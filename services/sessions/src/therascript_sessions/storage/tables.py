"""Tables owned by the sessions service (original §7.1, with the faults of §10 fixed: paragraphs are
UNIQUE per (session, index) so a retried job cannot duplicate them; jobs are durable rows)."""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class SessionRow(Base):
    __tablename__ = "sessions"
    __table_args__ = {"sqlite_autoincrement": True}   # ids are never reused (migration 0002)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    file_name: Mapped[str] = mapped_column(String(255))
    client_name: Mapped[str] = mapped_column(String(200))
    session_name: Mapped[str] = mapped_column(String(200))
    date: Mapped[str] = mapped_column(String(32))            # ISO, T12:00:00.000Z
    session_type: Mapped[str] = mapped_column(String(100))
    therapy: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    whisper_job_id: Mapped[str | None] = mapped_column(String(64))
    audio_path: Mapped[str | None] = mapped_column(String(255))  # bare file name in uploads/
    transcript_token_count: Mapped[int | None] = mapped_column(Integer)
    error_message: Mapped[str | None] = mapped_column(Text)
    duration_s: Mapped[int | None] = mapped_column(Integer)
    show_speakers: Mapped[int] = mapped_column(Integer, default=1)
    num_speakers: Mapped[int] = mapped_column(Integer, default=2)
    created_at_ms: Mapped[int] = mapped_column(BigInteger)


class ParagraphRow(Base):
    __tablename__ = "transcript_paragraphs"
    __table_args__ = (UniqueConstraint("session_id", "paragraph_index", name="uq_paragraph_session_index"),
                      {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"), index=True)
    paragraph_index: Mapped[int] = mapped_column(Integer)
    timestamp_ms: Mapped[int] = mapped_column(BigInteger)
    text: Mapped[str] = mapped_column(Text)
    speaker: Mapped[str | None] = mapped_column(String(100))
    # [{"start_ms", "end_ms", "text", "probability"}, …] (migration 0003); None when unknown or after a text edit.
    words: Mapped[list | None] = mapped_column(JSON, nullable=True)


class TranscriptionJobRow(Base):
    """One transcription job per upload; `attempt` fences stale runs (only the current attempt may write)."""

    __tablename__ = "transcription_jobs"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)   # TranscriptionJobStatus name, lower case
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    num_speakers: Mapped[int] = mapped_column(Integer)
    progress: Mapped[float | None] = mapped_column(Float)            # percent 0..100
    message: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    duration_s: Mapped[float | None] = mapped_column(Float)
    device: Mapped[str | None] = mapped_column(String(16))
    stage_seconds: Mapped[dict | None] = mapped_column(JSON)
    asr_result: Mapped[dict | None] = mapped_column(JSON)           # saved before diarization runs
    heartbeat_at: Mapped[float | None] = mapped_column(Float)       # epoch seconds
    created_at_ms: Mapped[int] = mapped_column(BigInteger)
    updated_at_ms: Mapped[int] = mapped_column(BigInteger)


class OutboxRow(Base):
    """Side effects outside this database (files, other services), written in the same transaction as
    the change that causes them and delivered after commit until they succeed (outbox.py)."""

    __tablename__ = "outbox"
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict] = mapped_column(JSON)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at_ms: Mapped[int] = mapped_column(BigInteger)


class SearchOutboxRow(Base):
    """A change to indexed transcript content (search.py), written in the same transaction as the change:
    `target` "s:<session id>" re-syncs a whole session, "p:<session id>:<index>" one paragraph."""

    __tablename__ = "search_outbox"
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    target: Mapped[str] = mapped_column(String(64))
    created_at_ms: Mapped[int] = mapped_column(BigInteger)
