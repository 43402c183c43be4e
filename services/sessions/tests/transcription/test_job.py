"""The transcription job end to end inside the worker process: real faster-whisper, real speaker
embeddings, a real SQLite database — the espeak dialogue from tests/support/dialogue.py."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from dialogue import TWO_SPEAKER_SCRIPT, make_dialogue, words_match
from sqlalchemy import select

from therascript_sessions.clock import now_ms
from therascript_sessions.jobs import TranscriptionJobs
from therascript_sessions.storage.database import Database
from therascript_sessions.storage.tables import ParagraphRow, SessionRow, TranscriptionJobRow
from therascript_sessions.transcription import asr, diarization
from therascript_sessions.transcription.job import TranscriptionRun, WorkerContext

SCRIPT = TWO_SPEAKER_SCRIPT[:4]


@pytest.fixture(scope="module")
def recording(tmp_path_factory) -> tuple[Path, list]:
    path = tmp_path_factory.mktemp("audio") / "dialogue.wav"
    return path, make_dialogue(path, SCRIPT)


@pytest.fixture
def context(tmp_path, recording) -> WorkerContext:
    db = Database(f"sqlite:///{tmp_path / 'sessions.sqlite'}")
    db.migrate()
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    shutil.copy(recording[0], uploads / "1-1.wav")
    return WorkerContext(db, uploads, asr.AsrConfig(cpu_threads=2), heartbeat_interval_s=0.5)


def _new_job(context: WorkerContext, num_speakers: int = 2) -> str:
    with context.db.transaction() as session:
        row = SessionRow(file_name="dialogue.wav", client_name="C", session_name="S", date="2026-01-01T12:00:00.000Z",
                         session_type="I", therapy="T", status="queued", audio_path="1-1.wav", show_speakers=1,
                         num_speakers=num_speakers, created_at_ms=now_ms())
        session.add(row)
        session.flush()
        job = TranscriptionJobs.new_job(row.id, num_speakers)
        session.add(job)
        return job.id


def _state(context: WorkerContext, job_id: str):
    with context.db.transaction() as session:
        job = session.get(TranscriptionJobRow, job_id)
        row = session.get(SessionRow, job.session_id)
        paragraphs = session.scalars(select(ParagraphRow).where(ParagraphRow.session_id == row.id)
                                     .order_by(ParagraphRow.paragraph_index)).all()
        return job, row, paragraphs


def test_job_transcribes_labels_speakers_and_is_idempotent(context, recording):
    job_id = _new_job(context)
    TranscriptionRun(context, job_id, 1).run()
    job, row, paragraphs = _state(context, job_id)
    assert (job.status, job.progress, row.status, row.error_message) == ("completed", 100.0, "completed", None)
    assert set(job.stage_seconds) >= {"asr", "diarization", "paragraphs"} and job.device == "cpu"
    assert job.asr_result and row.duration_s == round(job.duration_s) > 0
    text = " ".join(p.text for p in paragraphs)
    assert words_match(" ".join(t for _, t in SCRIPT), text) >= 0.8
    labels = [p.speaker for p in paragraphs]
    assert len(paragraphs) == len(SCRIPT)
    assert labels[0] != labels[1] and labels[0::2] == [labels[0]] * len(labels[0::2])
    assert labels[1::2] == [labels[1]] * len(labels[1::2])
    # Each paragraph stores its words (issue 11): in order, inside the audio, spelling out its text.
    for paragraph in paragraphs:
        assert paragraph.words and " ".join(w["text"] for w in paragraph.words) == paragraph.text
        starts = [w["start_ms"] for w in paragraph.words]
        assert starts == sorted(starts) and starts[0] == paragraph.timestamp_ms
        assert all(0 <= w["start_ms"] <= w["end_ms"] <= job.duration_s * 1000 + 50 for w in paragraph.words)

    # A retry of the same job (e.g. after a crash at the very end) replaces, never duplicates, and
    # reuses the saved ASR result instead of recognising the audio again.
    with context.db.transaction() as session:
        stored = session.get(TranscriptionJobRow, job_id)
        stored.status, stored.attempt = "queued", 2
    TranscriptionRun(context, job_id, 2).run()
    job, row, again = _state(context, job_id)
    assert job.status == "completed" and "asr" not in job.stage_seconds
    assert [(p.paragraph_index, p.text, p.speaker) for p in again] == \
        [(p.paragraph_index, p.text, p.speaker) for p in paragraphs]


def test_diarization_failure_keeps_the_transcript(context, monkeypatch):
    """Fault injection: the embedding stage raises. The session still completes, without labels, and says so."""
    def broken(*_args, **_kwargs):
        raise RuntimeError("embedding model exploded")

    monkeypatch.setattr(diarization, "assign_speakers", broken)
    job_id = _new_job(context)
    TranscriptionRun(context, job_id, 1).run()
    job, row, paragraphs = _state(context, job_id)
    assert row.status == "completed" and "Diarization failed" in row.error_message
    assert "exploded" in row.error_message and paragraphs
    assert all(p.speaker is None for p in paragraphs) and job.asr_result


def test_a_superseded_attempt_writes_nothing(context):
    job_id = _new_job(context, num_speakers=1)
    with context.db.transaction() as session:
        session.get(TranscriptionJobRow, job_id).attempt = 2  # retried elsewhere meanwhile
    TranscriptionRun(context, job_id, 1).run()
    job, row, paragraphs = _state(context, job_id)
    assert (job.status, row.status, paragraphs) == ("queued", "queued", [])


def test_unreadable_audio_fails_the_session_with_a_reason(context):
    (context.uploads_dir / "1-1.wav").write_bytes(b"garbage" * 100)
    job_id = _new_job(context, num_speakers=1)
    TranscriptionRun(context, job_id, 1).run()
    job, row, _ = _state(context, job_id)
    assert (job.status, row.status) == ("failed", "failed") and row.error_message.startswith("Transcription failed")
