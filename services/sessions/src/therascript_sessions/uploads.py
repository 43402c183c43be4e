"""Uploads: stream the recording to disk, check it by content, create the session, enqueue its job.

Order (original §1.1, its faults fixed): the bytes go to a temporary file in the uploads folder while
the size limit is enforced (TooLarge as soon as it is passed, never after buffering); the content is
probed with ffprobe (InvalidArgument if it is not audio/video with an audio stream, or that stream holds no
audio at all — a header-only WAV of 0 s would "complete" with no transcript); the diarization
readiness gate runs for num_speakers ≥ 2 (Unavailable + background prefetch); then one transaction
creates the session (status `queued`) and its job row; then the RQ job is enqueued. If any step
fails, the temporary file, the stored file and the rows are all removed.

A process killed mid-upload cannot remove its temporary file: `sweep_partial_uploads()` removes such
orphans (`.upload-*.partial` not written for PARTIAL_STALE_S and not one of this process's live uploads);
the service runs it at start-up and then every PARTIAL_STALE_S (server.py).
"""

from __future__ import annotations

import logging
import os
import re
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from therascript_common.errors import InvalidArgument, TooLarge, Unavailable

from .clock import now_ms, session_date_iso
from .jobs import TranscriptionJobs
from .sessions import clean_text
from .storage.database import Database
from .storage.tables import SessionRow
from .transcription.audio import MediaInfo, has_audio_packets, probe

log = logging.getLogger(__name__)

MIN_SPEAKERS, MAX_SPEAKERS = 1, 10
PARTIAL_PATTERN = ".upload-*.partial"
PARTIAL_STALE_S = 30.0  # a live upload writes more often than this; an older partial file is an orphan

# FFmpeg demuxer (first name of format_name) → the extension the stored file gets.
EXTENSION_BY_FORMAT = {
    "wav": ".wav", "w64": ".wav", "aiff": ".aiff", "mp3": ".mp3", "aac": ".aac", "flac": ".flac",
    "ogg": ".ogg", "mov": ".mp4", "matroska": ".webm", "asf": ".wma", "avi": ".avi", "flv": ".flv",
    "amr": ".amr", "mpegts": ".ts", "mpeg": ".mpg", "caf": ".caf", "au": ".au",
}
# Original extensions kept when they agree with the detected container family.
COMPATIBLE_EXTENSIONS = {
    "mov": {".mp4", ".m4a", ".m4v", ".mov", ".3gp"},
    "matroska": {".webm", ".mkv", ".weba"},
    "asf": {".wma", ".wmv"},
    "ogg": {".ogg", ".oga", ".opus"},
    "mpeg": {".mpg", ".mpeg"},
}


@dataclass(frozen=True)
class UploadRequest:
    file_name: str
    client_name: str
    session_name: str
    date: str                # YYYY-MM-DD
    session_type: str
    therapy: str
    num_speakers: int


def clamp_speakers(value: int) -> int:
    """numSpeakers clamped to 1..10 (API-CONTRACT.md Part A/C)."""
    return max(MIN_SPEAKERS, min(MAX_SPEAKERS, value))


def stored_extension(file_name: str, media: MediaInfo) -> str:
    """The stored file's extension, from its content: the client's own extension only when it agrees."""
    container = media.format_name.split(",")[0]
    default = EXTENSION_BY_FORMAT.get(container, ".bin")
    suffix = Path(file_name).suffix.lower()
    return suffix if suffix in COMPATIBLE_EXTENSIONS.get(container, {default}) else default


def safe_display_name(file_name: str) -> str:
    """The client's file name as shown in the UI: no path, no control characters, ≤ 255 chars."""
    name = re.sub(r"[\x00-\x1f\x7f]", "", os.path.basename(file_name.replace("\\", "/"))).strip()
    return name[:255] or "upload"


class UploadService:
    def __init__(self, db: Database, jobs: TranscriptionJobs, uploads_dir: Path, max_bytes: int) -> None:
        self._db = db
        self._jobs = jobs
        self._uploads_dir = uploads_dir
        self._max_bytes = max_bytes
        self._live: set[Path] = set()  # this process's uploads in progress (their temporary files)

    def sweep_partial_uploads(self, stale_after_s: float = PARTIAL_STALE_S) -> int:
        """Deletes orphaned temporary upload files (left by a process killed mid-upload): those not written
        for `stale_after_s` seconds that are not one of this process's live uploads. Returns how many."""
        cutoff, removed = time.time() - stale_after_s, 0
        for path in self._uploads_dir.glob(PARTIAL_PATTERN):
            try:
                if path not in self._live and path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
            except FileNotFoundError:
                continue  # finished or swept meanwhile
        if removed:
            log.warning("removed %d orphaned partial upload file(s) from %s", removed, self._uploads_dir)
        return removed

    def receive(self, request_of: Callable[[], UploadRequest], chunks: Iterable[bytes]) -> tuple[int, str]:
        """Streams `chunks` to disk, then calls `request_of()` for the metadata (it may arrive after the
        file in a multipart body), checks, creates and enqueues. Returns (session id, job id).
        Raises TooLarge, InvalidArgument, Unavailable; nothing is left behind on any error."""
        self._uploads_dir.mkdir(parents=True, exist_ok=True)
        temp = self._uploads_dir / f".upload-{uuid.uuid4().hex}.partial"
        self._live.add(temp)
        try:
            size = self._write(temp, chunks)
            request = self._validated(request_of())
            if size == 0:
                raise InvalidArgument("Uploaded file is empty.")
            media = self._probe(temp)
            self._gate(request.num_speakers)
            return self._create(request, temp, media)
        finally:
            temp.unlink(missing_ok=True)
            self._live.discard(temp)

    def _write(self, temp: Path, chunks: Iterable[bytes]) -> int:
        size = 0
        with temp.open("wb") as file:
            for chunk in chunks:
                size += len(chunk)
                if size > self._max_bytes:
                    raise TooLarge(f"File size exceeds limit of {self._max_bytes} bytes.")
                file.write(chunk)
        return size

    @staticmethod
    def _validated(request: UploadRequest) -> UploadRequest:
        return UploadRequest(
            file_name=safe_display_name(request.file_name),
            client_name=clean_text("clientName", request.client_name),
            session_name=clean_text("sessionName", request.session_name),
            date=session_date_iso(request.date),
            session_type=clean_text("sessionType", request.session_type),
            therapy=clean_text("therapy", request.therapy),
            num_speakers=clamp_speakers(request.num_speakers),
        )

    @staticmethod
    def _probe(path: Path) -> MediaInfo:
        try:
            media = probe(path)
        except ValueError:
            raise InvalidArgument("Invalid file type: the upload is not an audio or video recording.") from None
        if not media.has_audio:
            raise InvalidArgument("Invalid file type: the recording has no audio stream.")
        try:  # a duration of 0 or none: is there audio at all (a browser's WebM has no duration)?
            empty = media.duration_s <= 0 and not has_audio_packets(path)
        except ValueError:
            empty = True
        if empty:
            raise InvalidArgument("The recording has no audio (0 seconds): there is nothing to transcribe.")
        return media

    def _gate(self, num_speakers: int) -> None:
        """Diarization readiness gate (original: GET /diarization/check → 503 + prefetch). 1 speaker: no gate."""
        if num_speakers < 2:
            return
        readiness = self._jobs.readiness()
        if readiness.diarization_ready:
            return
        if readiness.worker_alive:
            self._jobs.request_prefetch()
            raise Unavailable(
                "Diarization is not ready in the transcription worker. A background preparation has been "
                f"started — please retry in a few minutes. Detail: {readiness.error or 'loading'}"
            )
        raise Unavailable(f"Could not verify diarization readiness: {readiness.error}")

    def _create(self, request: UploadRequest, temp: Path, media: MediaInfo) -> tuple[int, str]:
        stored: Path | None = None
        try:
            with self._db.transaction() as session:
                row = SessionRow(file_name=request.file_name, client_name=request.client_name,
                                 session_name=request.session_name, date=request.date,
                                 session_type=request.session_type, therapy=request.therapy, status="queued",
                                 duration_s=round(media.duration_s) or None, show_speakers=1,
                                 num_speakers=request.num_speakers, created_at_ms=now_ms())
                session.add(row)
                session.flush()
                stored = self._uploads_dir / f"{row.id}-{now_ms()}{stored_extension(request.file_name, media)}"
                os.replace(temp, stored)
                row.audio_path = stored.name
                job = self._jobs.new_job(row.id, request.num_speakers)
                job.duration_s = media.duration_s
                session.add(job)
                row.whisper_job_id = job.id
                session_id, job_id = row.id, job.id
            self._enqueue_or_undo(session_id, job_id, stored)
            return session_id, job_id
        except Exception:
            if stored is not None:
                stored.unlink(missing_ok=True)
            raise

    def _enqueue_or_undo(self, session_id: int, job_id: str, stored: Path) -> None:
        try:
            self._jobs.enqueue(job_id, 1)
        except Exception as error:
            log.error("enqueue failed for session %s: %s", session_id, error)
            with self._db.transaction() as session:
                row = session.get(SessionRow, session_id)
                if row is not None:
                    session.delete(row)
            stored.unlink(missing_ok=True)
            raise Unavailable("The transcription queue is unavailable; nothing was stored. Please retry.") from error
