"""Uploads through UploadService against a real database (SQLite and PostgreSQL), real Redis (RQ) and real
ffprobe: a recording with no audio is refused with nothing left behind (issue 7 item 5), and the partial
files of a process killed mid-upload are swept (issue 7 item 3)."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
import wave
from pathlib import Path

import pytest
from redis import Redis
from sqlalchemy import func, select

from therascript_common.errors import InvalidArgument
from therascript_sessions.jobs import TranscriptionJobs
from therascript_sessions.storage.tables import SessionRow
from therascript_sessions.uploads import PARTIAL_STALE_S, UploadRequest, UploadService

REQUEST = UploadRequest(file_name="rec.wav", client_name="C", session_name="S", date="2026-01-01",
                        session_type="Individual", therapy="CBT", num_speakers=1)  # 1 speaker: no diarization gate


@pytest.fixture
def uploads(db, redis_url, tmp_path) -> UploadService:
    jobs = TranscriptionJobs(db, Redis.from_url(redis_url), f"transcription-{uuid.uuid4().hex[:8]}", max_attempts=2,
                             heartbeat_timeout_s=5, job_timeout_s=60)
    return UploadService(db, jobs, tmp_path / "uploads", max_bytes=10 * 1024 * 1024)


def _wav(path: Path, frames: int) -> Path:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(b"\0\0" * frames)
    return path


def _receive(uploads: UploadService, path: Path) -> tuple[int, str]:
    return uploads.receive(lambda: REQUEST, [path.read_bytes()])


def _session_count(db) -> int:
    with db.transaction() as session:
        return session.scalar(select(func.count()).select_from(SessionRow))


def test_a_header_only_wav_is_refused_and_leaves_nothing(db, uploads, tmp_path) -> None:
    """Before: a WAV of 0 samples was accepted and "completed" with 0 paragraphs and no error."""
    empty = _wav(tmp_path / "empty.wav", 0)
    assert empty.stat().st_size == 44
    with pytest.raises(InvalidArgument, match="no audio"):
        _receive(uploads, empty)
    assert _session_count(db) == 0
    assert list((tmp_path / "uploads").iterdir()) == []


def test_short_recordings_and_ones_without_a_stated_duration_are_accepted(db, uploads, tmp_path) -> None:
    """The check is not over-broad: 0.1 s of audio is audio, and a live WebM (as a browser records it) has
    packets though its container states no duration."""
    session_id, _ = _receive(uploads, _wav(tmp_path / "tenth.wav", 1600))
    webm = tmp_path / "live.webm"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "sine=d=1", "-c:a", "libopus", "-live", "1",
                    "-f", "webm", str(webm)], check=True)
    probe = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0",
                            str(webm)], capture_output=True, text=True, check=True)
    assert probe.stdout.strip() in ("", "N/A")  # really no duration in the container
    other_id, _ = _receive(uploads, webm)
    assert other_id > session_id and _session_count(db) == 2


def test_orphaned_partial_uploads_are_swept_and_live_ones_kept(uploads, tmp_path) -> None:
    """Before: a process killed mid-upload left `.upload-*.partial` behind forever (100 MB seen)."""
    folder = tmp_path / "uploads"
    folder.mkdir()
    orphan = folder / ".upload-0123abcd.partial"
    orphan.write_bytes(b"\0" * 4096)
    old = time.time() - PARTIAL_STALE_S - 5
    os.utime(orphan, (old, old))
    recent = folder / ".upload-4567ef01.partial"   # another writer's upload, still being written
    recent.write_bytes(b"\0")
    stored = folder / "7-123.wav"                 # a stored recording is never touched, however old
    stored.write_bytes(b"RIFF")
    os.utime(stored, (old, old))
    assert uploads.sweep_partial_uploads() == 1
    assert not orphan.exists() and recent.exists() and stored.exists()


def test_the_service_sweeps_partial_uploads_at_start_up(tmp_path, redis_url) -> None:
    """Starting the real sessions service (build + start_background, as main() does) removes an orphan."""
    from therascript_sessions.testing import start_sessions

    folder = tmp_path / "data" / "uploads"
    folder.mkdir(parents=True)
    orphan = folder / ".upload-deadbeef.partial"
    orphan.write_bytes(b"\0" * 1024)
    old = time.time() - PARTIAL_STALE_S - 5
    os.utime(orphan, (old, old))
    running = start_sessions(tmp_path / "data", redis_url)
    try:
        assert not orphan.exists()
    finally:
        running.stop()
