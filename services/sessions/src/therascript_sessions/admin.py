"""The sessions service's Admin RPCs (proto/therascript/common/v1/admin.proto) over its own data: the
sessions, transcript paragraphs and transcription jobs tables and the uploaded audio files (`uploads/`).
The outbox is emptied on reset and import, never exported. Before a reset or an import the transcription
queue is emptied and active jobs are failed (a running worker sees its attempt is stale and stops).
Transcription usage records come from the job rows (`ListUsage`)."""

from __future__ import annotations

from sqlalchemy import select

from therascript.common.v1 import admin_pb2 as pb
from therascript_common.admin import AdminData, AdminServicer
from therascript_common.errors import InvalidArgument
from therascript_common.search import SearchUnavailable

from .jobs import TranscriptionJobs
from .search import TranscriptSearch
from .settings import SessionsSettings
from .storage.database import Database
from .storage.tables import OutboxRow, ParagraphRow, SearchOutboxRow, SessionRow, TranscriptionJobRow

WHISPER_SOURCE = "whisper_transcription"


def _check_audio_files(rows: dict[str, list[dict]], files: dict[str, set[str]]) -> None:
    """Every session's `audio_path` must be among the backup's uploads."""
    uploads = files.get("uploads", set())
    missing = [row["id"] for row in rows["sessions"] if row["audio_path"] and row["audio_path"] not in uploads]
    if missing:
        raise InvalidArgument(f"sessions: the backup lacks the audio of sessions {missing[:10]}.")


class SessionsUsage:
    """Transcription usage: one record per completed job (audio seconds, wall seconds, model, device)."""

    def __init__(self, db: Database, model_name: str) -> None:
        self._db = db
        self._model = model_name

    def list(self, query: pb.UsageQuery) -> list[pb.UsageRecord]:
        statement = select(TranscriptionJobRow).where(TranscriptionJobRow.status == "completed")
        if query.HasField("start_ms"):
            statement = statement.where(TranscriptionJobRow.updated_at_ms >= query.start_ms)
        if query.HasField("end_ms"):
            statement = statement.where(TranscriptionJobRow.updated_at_ms < query.end_ms)
        with self._db.transaction() as session:
            jobs = list(session.scalars(statement.order_by(TranscriptionJobRow.updated_at_ms.desc())))
        records = []
        for job in jobs:
            stages = job.stage_seconds or {}
            wall = sum(v for v in stages.values() if isinstance(v, int | float)) if stages else None
            records.append(pb.UsageRecord(
                id=f"whisper-{job.id}", type="whisper", source=WHISPER_SOURCE, model=self._model,
                duration_s=job.duration_s or 0.0, wall_s=wall if wall is not None else
                max(0.0, (job.updated_at_ms - job.created_at_ms) / 1000), device=job.device or "",
                timestamp_ms=job.updated_at_ms))
        return records


def _empty_queue(jobs: TranscriptionJobs) -> None:
    jobs.reset()


def rebuild_search(search: TranscriptSearch) -> pb.RebuildSearchIndexReply:
    """RebuildSearchIndex: the transcript index re-created from the database (new versioned index, alias swap);
    an Elasticsearch failure is reported in `errors`, not raised."""
    try:
        count = search.rebuild()
    except SearchUnavailable as error:
        return pb.RebuildSearchIndexReply(configured=True, message="sessions: transcript index not rebuilt.",
                                          errors=[f"sessions: {error}"])
    return pb.RebuildSearchIndexReply(configured=True, transcripts_indexed=count,
                                      message=f"sessions: {count} transcript paragraphs indexed.")


def build_admin(settings: SessionsSettings, db: Database, jobs: TranscriptionJobs,
                search: TranscriptSearch | None = None) -> AdminServicer:
    data = AdminData(
        service="sessions",
        engine=db.engine,
        tables=[SessionRow.__table__, ParagraphRow.__table__, TranscriptionJobRow.__table__],  # type: ignore[list-item]
        transient_tables=[OutboxRow.__table__, SearchOutboxRow.__table__],  # type: ignore[list-item]
        staging_dir=settings.data_dir / ".admin-staging",
        folders={"uploads": settings.uploads_dir},
        before_change=lambda: _empty_queue(jobs),
        validate_rows=_check_audio_files,
    )
    usage = SessionsUsage(db, settings.whisper_model or "tiny.en")
    return AdminServicer(data, list_usage=usage.list,
                         rebuild_search=(lambda: rebuild_search(search)) if search is not None else None)
