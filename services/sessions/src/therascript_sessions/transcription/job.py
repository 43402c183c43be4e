"""The transcription job, run by the transcriber worker (RQ queue `transcription`).

Stages and progress (percent of the job): model loading 0–2, ASR 2–80 (fraction of audio decoded),
diarization 80–98, saving 98–100. The ASR result is saved in the job row BEFORE diarization runs, so
a diarization failure never throws the transcript away: the session completes without speaker labels
and says so in `errorMessage`; a retry after a crash reuses the saved ASR result. Paragraphs are
replaced, never appended (idempotent). Every write is fenced by `attempt`: a stale run (superseded by
a retry or a queue reset) stops at its next write. Each stage's wall time and the device are recorded
in the job row (`stage_seconds`, `device`).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from therascript_common.logging import request_id_var

from ..audio import resolve_in
from ..clock import now_ms
from ..storage.database import Database
from ..storage.tables import SessionRow, TranscriptionJobRow
from ..transcripts import estimate_tokens, replace_paragraphs
from . import asr
from .paragraphs import build_paragraphs

log = logging.getLogger(__name__)


class Superseded(Exception):
    """This run's attempt is no longer the job's current one (retried elsewhere, or reset)."""


@dataclass
class WorkerContext:
    """Process-wide state of a transcriber: set once by worker.main, used by every job."""

    db: Database
    uploads_dir: Path
    asr_config: asr.AsrConfig
    heartbeat_interval_s: float


_context: WorkerContext | None = None


def configure(context: WorkerContext) -> None:
    global _context
    _context = context


def run_transcription_job(job_id: str, attempt: int, request_id: str = "-") -> None:
    """RQ entry point. Never raises for a failed transcription: the failure is recorded on the job and
    its session (a deterministic failure would fail again; crashes are retried by the reconciler).
    `request_id`: the upload's request id (or the reconciler's), put on every log line of the run."""
    if _context is None:
        raise RuntimeError("transcriber not configured (worker.main sets it up)")
    token = request_id_var.set(request_id if request_id != "-" else f"job-{job_id}")
    try:
        TranscriptionRun(_context, job_id, attempt).run()
    finally:
        request_id_var.reset(token)


class TranscriptionRun:
    def __init__(self, context: WorkerContext, job_id: str, attempt: int) -> None:
        self.ctx = context
        self.job_id = job_id
        self.attempt = attempt
        self.stage_seconds: dict[str, float] = {}

    # --- fenced writes --------------------------------------------------------------------------
    @contextmanager
    def _job(self):
        """The job row in a transaction, only if this run is still current (else Superseded)."""
        with self.ctx.db.transaction() as session:
            job = session.get(TranscriptionJobRow, self.job_id)
            if job is None or job.attempt != self.attempt or job.status in ("completed", "failed"):
                raise Superseded(self.job_id)
            yield session, job
            job.updated_at_ms = now_ms()
            job.heartbeat_at = time.time()

    def _update(self, status: str | None = None, progress: float | None = None, message: str | None = None) -> None:
        with self._job() as (session, job):
            if status:
                job.status = status
            if progress is not None:
                job.progress = round(progress, 1)
            if message:
                job.message = message

    # --- the job ---------------------------------------------------------------------------------
    def run(self) -> None:
        stop_heartbeat = self._start_heartbeat()
        try:
            self._run_stages()
        except Superseded:
            log.info("job %s attempt %s superseded; stopping", self.job_id, self.attempt)
        except Exception as error:
            log.exception("job %s failed", self.job_id)
            self._fail(f"Transcription failed: {error}")
        finally:
            stop_heartbeat()

    def _run_stages(self) -> None:
        with self._job() as (session, job):
            row = session.get(SessionRow, job.session_id)
            audio = resolve_in(self.ctx.uploads_dir, row.audio_path or "")
            num_speakers, saved_asr = job.num_speakers, job.asr_result
            row.status, row.error_message = "transcribing", None
            job.status, job.message = "model_loading", "Loading the speech model"
        result = asr.AsrResult.from_json(json.dumps(saved_asr)) if saved_asr else self._asr(audio)
        diarization_error = None
        if num_speakers >= 2:
            result.words, diarization_error = self._diarize(audio, result.words, num_speakers)
        self._save(result, diarization_error)

    def _asr(self, audio: Path) -> asr.AsrResult:
        with self._timed("model_load"):
            asr.load_model(self.ctx.asr_config)
        self._update(status="transcribing", progress=2, message="Transcribing")
        throttle = _Throttle(lambda f: self._update(progress=2 + 78 * f, message=f"Transcribing ({f:.0%} of audio)"))
        with self._timed("asr"):
            result = asr.transcribe(audio, self.ctx.asr_config, throttle)
        with self._job() as (_, job):
            job.asr_result = json.loads(result.to_json())
            job.device = result.device
            job.duration_s = result.duration_s
            job.progress, job.message = 80.0, "Speech recognised"
            job.stage_seconds = dict(self.stage_seconds)
        return result

    def _diarize(self, audio: Path, words: list[asr.Word], num_speakers: int) -> tuple[list[asr.Word], str | None]:
        """Speaker labels per word; on failure, the words unlabelled and the reason."""
        self._update(status="diarizing", progress=80, message="Labelling speakers")
        throttle = _Throttle(lambda f: self._update(progress=80 + 18 * f, message=f"Labelling speakers ({f:.0%})"))
        try:
            from . import diarization

            with self._timed("diarization"):
                return diarization.assign_speakers(audio, words, num_speakers, throttle), None
        except Superseded:
            raise
        except Exception as error:
            log.exception("diarization failed for job %s", self.job_id)
            return words, str(error) or type(error).__name__

    def _save(self, result: asr.AsrResult, diarization_error: str | None) -> None:
        with self._timed("paragraphs"):
            drafts = build_paragraphs(result.words)
        with self._job() as (session, job):
            row = session.get(SessionRow, job.session_id)
            replace_paragraphs(session, row.id, drafts)
            row.status = "completed"
            row.duration_s = round(result.duration_s)
            row.transcript_token_count = estimate_tokens([d.text for d in drafts])
            row.error_message = (f"Diarization failed; the transcript was saved without speaker labels. "
                                 f"Detail: {diarization_error}") if diarization_error else None
            job.status, job.progress, job.message = "completed", 100.0, "Transcription complete"
            job.device = result.device
            job.stage_seconds = dict(self.stage_seconds)
            job.error = row.error_message

    def _fail(self, message: str) -> None:
        try:
            with self._job() as (session, job):
                job.status, job.error, job.message = "failed", message, message
                job.stage_seconds = dict(self.stage_seconds)
                row = session.get(SessionRow, job.session_id)
                row.status, row.error_message = "failed", message
        except Superseded:
            pass

    # --- helpers ---------------------------------------------------------------------------------
    @contextmanager
    def _timed(self, stage: str):
        started = time.perf_counter()
        try:
            yield
        finally:
            self.stage_seconds[stage] = round(time.perf_counter() - started, 3)

    def _start_heartbeat(self) -> Callable[[], None]:
        """A thread that stamps `heartbeat_at` every interval while the job runs (the reconciler's
        evidence that this worker is alive)."""
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(self.ctx.heartbeat_interval_s):
                try:
                    with self._job():
                        pass
                except Superseded:
                    return
                except Exception:
                    log.warning("heartbeat failed for job %s", self.job_id, exc_info=True)

        thread = threading.Thread(target=beat, name=f"heartbeat-{self.job_id}", daemon=True)
        thread.start()
        return stop.set


class _Throttle:
    """Calls `report(fraction)` at most every 0.5 s (and always for 1.0), to keep progress writes cheap."""

    def __init__(self, report: Callable[[float], None], min_interval_s: float = 0.5) -> None:
        self._report = report
        self._min_interval_s = min_interval_s
        self._last = 0.0

    def __call__(self, fraction: float) -> None:
        now = time.monotonic()
        if fraction >= 1.0 or now - self._last >= self._min_interval_s:
            self._last = now
            self._report(min(max(fraction, 0.0), 1.0))
