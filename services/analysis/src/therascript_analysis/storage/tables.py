"""Tables owned by the analysis service (original §3 `analysis_jobs` / `intermediate_summaries`, plus one row per
intermediate answer so a restarted worker never redoes finished work). Ids are never reused (AUTOINCREMENT).

Sessions live in another service: a summary keeps the session's id, name and date as they were when the job was
created (no foreign key), so deleting the session leaves the job readable."""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Boolean, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class AnalysisJobRow(Base):
    """One analysis job. `attempt` fences stale worker runs: only the current attempt may write."""

    __tablename__ = "analysis_jobs"
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    original_prompt: Mapped[str] = mapped_column(Text)
    short_prompt: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(32), index=True)  # pending, generating_strategy, mapping, ...
    final_result: Mapped[str | None] = mapped_column(Text)
    error_message: Mapped[str | None] = mapped_column(Text)
    model_name: Mapped[str | None] = mapped_column(String(255))
    context_size: Mapped[int | None] = mapped_column(Integer)       # tokens the job ran with
    use_advanced_strategy: Mapped[bool] = mapped_column(Boolean, default=False)
    strategy_json: Mapped[dict | None] = mapped_column(JSON)        # {intermediate_question, final_synthesis_instructions}
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    heartbeat_at: Mapped[float | None] = mapped_column(Float)       # epoch seconds, stamped by the running worker
    created_at_ms: Mapped[int] = mapped_column(BigInteger)
    updated_at_ms: Mapped[int] = mapped_column(BigInteger)
    completed_at_ms: Mapped[int | None] = mapped_column(BigInteger)


class SummaryRow(Base):
    """One session of a job: its map answer (`summary_text`, all chunks' answers joined) and status
    (pending → processing → completed | failed)."""

    __tablename__ = "intermediate_summaries"
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("analysis_jobs.id", ondelete="CASCADE"), index=True)
    session_id: Mapped[int] = mapped_column(BigInteger)
    session_name: Mapped[str] = mapped_column(String(255))
    session_date: Mapped[str] = mapped_column(String(32))
    summary_text: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    error_message: Mapped[str | None] = mapped_column(Text)
    chunk_count: Mapped[int] = mapped_column(Integer, default=0)


class AnswerRow(Base):
    """One model call's answer: a map call over one chunk of one session (`map:<summary>:<chunk>`), a reduce over
    one group (`reduce:<level>:<group>`), the final reduce (`final`) or the strategy (`strategy`). Status:
    processing → completed | failed. A completed answer is reused as-is when the job resumes."""

    __tablename__ = "intermediate_answers"
    __table_args__ = (UniqueConstraint("job_id", "key", name="uq_answer_job_key"), {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("analysis_jobs.id", ondelete="CASCADE"), index=True)
    summary_id: Mapped[int | None] = mapped_column(ForeignKey("intermediate_summaries.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))                   # map | reduce | strategy
    status: Mapped[str] = mapped_column(String(16))
    text: Mapped[str | None] = mapped_column(Text)
    error_message: Mapped[str | None] = mapped_column(Text)
    prompt_tokens: Mapped[int | None] = mapped_column(Integer)
    completion_tokens: Mapped[int | None] = mapped_column(Integer)
    duration_ms: Mapped[int | None] = mapped_column(Integer)
    attempt: Mapped[int] = mapped_column(Integer)                    # the job attempt that produced it
    updated_at_ms: Mapped[int] = mapped_column(BigInteger)
