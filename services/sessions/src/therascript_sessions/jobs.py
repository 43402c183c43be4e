"""Transcription jobs: durable rows in the sessions database, executed through the RQ queue
`transcription` by the transcriber worker (transcription/job.py).

The database row is the truth; the RQ job is only the delivery. The reconciler (run by the sessions
service) makes every job end `completed` or `failed` — never stuck (original §10 reliability 3):
- a running job whose heartbeat stopped (worker killed) is retried with attempt + 1, up to
  `max_attempts`, then failed;
- a queued job whose RQ job vanished (Redis restarted without it, or flushed) is enqueued again as the
  same attempt: a delivery that was lost is not an attempt, so it costs the job none.
While Redis cannot be reached, a pass decides nothing (a retry could not be enqueued, and an unreachable
queue says nothing about the job): Redis being away never burns an attempt (issue 7 item 11).
`attempt` fences stale runs: a run only writes while its attempt is the row's current one.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import dataclass

from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rq import Queue
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from sqlalchemy import select

from therascript_common.background import Periodic
from therascript_common.errors import NotFound
from therascript_common.logging import request_id_var

from .clock import now_ms
from .storage.database import Database
from .storage.tables import SessionRow, TranscriptionJobRow

log = logging.getLogger(__name__)

JOB_FUNCTION = "therascript_sessions.transcription.job.run_transcription_job"
ACTIVE_STATUSES = ("queued", "model_loading", "transcribing", "diarizing")
RUNNING_STATUSES = ("model_loading", "transcribing", "diarizing")
READINESS_KEY = "therascript:transcriber:readiness"
PREFETCH_KEY = "therascript:transcriber:prefetch"


def rq_job_id(job_id: str, attempt: int) -> str:
    return f"{job_id}-a{attempt}"


@dataclass(frozen=True)
class Readiness:
    """What the transcriber last reported (JSON in Redis with a TTL, refreshed every ~10 s)."""

    worker_alive: bool
    asr_ready: bool
    diarization_ready: bool
    prefetch_in_progress: bool
    error: str | None
    device: str | None


class TranscriptionJobs:
    def __init__(self, db: Database, redis: Redis, queue_name: str, max_attempts: int,
                 heartbeat_timeout_s: float, job_timeout_s: int) -> None:
        self._db = db
        self._redis = redis
        self._queue = Queue(queue_name, connection=redis)
        self._max_attempts = max_attempts
        self._heartbeat_timeout_s = heartbeat_timeout_s
        self._job_timeout_s = job_timeout_s
        self._redis_away = False  # the last reconciler pass found Redis unreachable

    # --- creation -------------------------------------------------------------------------------
    @staticmethod
    def new_job(session_id: int, num_speakers: int) -> TranscriptionJobRow:
        now = now_ms()
        return TranscriptionJobRow(id=uuid.uuid4().hex, session_id=session_id, status="queued", attempt=1,
                                   num_speakers=num_speakers, progress=0.0, message="Queued",
                                   created_at_ms=now, updated_at_ms=now)

    def enqueue(self, job_id: str, attempt: int) -> None:
        """Puts attempt `attempt` of job `job_id` on the RQ queue (redis errors propagate). The caller's
        request id travels with it, so the worker's log lines carry the upload's request id."""
        self._queue.enqueue(JOB_FUNCTION, job_id, attempt, request_id_var.get(), job_id=rq_job_id(job_id, attempt),
                            job_timeout=self._job_timeout_s, result_ttl=3600, failure_ttl=86400)

    # --- queries --------------------------------------------------------------------------------
    def status(self, job_id: str) -> TranscriptionJobRow:
        with self._db.transaction() as session:
            row = session.get(TranscriptionJobRow, job_id)
            if row is None:
                raise NotFound(f"Transcription job {job_id} not found.")
            return row

    def active_count(self) -> int:
        with self._db.transaction() as session:
            rows = session.scalars(select(TranscriptionJobRow.id).where(TranscriptionJobRow.status.in_(ACTIVE_STATUSES)))
            return len(list(rows))

    def readiness(self) -> Readiness:
        raw = self._redis.get(READINESS_KEY)
        if raw is None:
            return Readiness(False, False, False, bool(self._redis.exists(PREFETCH_KEY)),
                             "No transcription worker is running.", None)
        report = json.loads(raw)
        return Readiness(True, bool(report.get("asr_ready")), bool(report.get("diarization_ready")),
                         bool(report.get("prefetch_in_progress")), report.get("error"), report.get("device"))

    def request_prefetch(self) -> None:
        """Asks a transcriber to load the diarization model in the background (original: /diarization/prefetch)."""
        self._redis.set(PREFETCH_KEY, "1", ex=600)

    # --- reset and reconciliation ---------------------------------------------------------------
    def reset(self) -> tuple[int, int]:
        """Empties the queue and fails every active job and its session (the original left them
        `queued`/`transcribing` forever, §1.11). A running attempt sees it is stale and stops.
        Returns (RQ jobs removed from the queue, sessions failed)."""
        removed = self._queue.count
        self._queue.empty()
        with self._db.transaction() as session:
            query = select(TranscriptionJobRow).where(TranscriptionJobRow.status.in_(ACTIVE_STATUSES))
            active = list(session.scalars(query))
            for job in active:
                _fail(session, job, "Transcription job was cancelled by a queue reset.")
        return removed, len(active)

    def reconcile(self) -> int:
        """One pass of the reconciler; returns how many jobs it retried, enqueued again or failed. While
        Redis is unreachable it does nothing and returns 0 (the next pass after Redis is back decides)."""
        try:
            self._redis.ping()
        except (RedisConnectionError, RedisTimeoutError) as error:
            if not self._redis_away:  # once per outage, not every pass
                log.warning("reconciler: Redis is unreachable (%s); deciding nothing until it is back", error)
            self._redis_away = True
            return 0
        if self._redis_away:
            log.info("reconciler: Redis is back")
            self._redis_away = False
        acted = 0
        with self._db.transaction() as session:
            jobs = list(session.scalars(select(TranscriptionJobRow).where(TranscriptionJobRow.status.in_(ACTIVE_STATUSES))))
        for job in jobs:
            try:
                if job.status == "queued" and self._lost(job):
                    log.warning("job %s: attempt %s was lost from the queue; enqueuing it again", job.id, job.attempt)
                    self.enqueue(job.id, job.attempt)
                    acted += 1
                elif problem := self._problem(job):
                    self._retry_or_fail(job.id, job.attempt, problem)
                    acted += 1
            except (RedisConnectionError, RedisTimeoutError) as error:
                log.warning("reconciler: Redis went away mid-pass (%s); the rest waits for the next pass", error)
                break
        return acted

    def _lost(self, job: TranscriptionJobRow) -> bool:
        """A queued job whose RQ job does not exist: its delivery was lost, it never ran."""
        try:
            Job.fetch(rq_job_id(job.id, job.attempt), connection=self._redis)
        except NoSuchJobError:
            return True
        return False

    def _problem(self, job: TranscriptionJobRow) -> str | None:
        """Why the job cannot make progress as it stands, or None when it is fine."""
        if job.status in RUNNING_STATUSES:
            beat = job.heartbeat_at or job.updated_at_ms / 1000
            if time.time() - beat > self._heartbeat_timeout_s:
                return "The transcription worker stopped responding."
            return None
        try:
            rq_status = Job.fetch(rq_job_id(job.id, job.attempt), connection=self._redis).get_status()
        except NoSuchJobError:
            return None  # lost from the queue: _lost() enqueues it again
        if rq_status in (JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED):
            return f"The transcription job ended as {rq_status.value}."
        return None

    def _retry_or_fail(self, job_id: str, attempt: int, problem: str) -> None:
        with self._db.transaction() as session:
            job = session.get(TranscriptionJobRow, job_id, with_for_update=True)
            if job is None or job.attempt != attempt or job.status not in ACTIVE_STATUSES:
                return  # changed meanwhile
            if job.attempt >= self._max_attempts:
                log.warning("job %s failed after %s attempts: %s", job_id, job.attempt, problem)
                _fail(session, job, f"{problem} Gave up after {job.attempt} attempts.")
                return
            job.attempt += 1
            job.status, job.progress, job.message = "queued", 0.0, f"Retrying: {problem}"
            job.heartbeat_at, job.updated_at_ms = None, now_ms()
            session_row = session.get(SessionRow, job.session_id)
            if session_row is not None:  # a session deleted meanwhile takes its job with it
                session_row.status = "queued"
            new_attempt = job.attempt
        log.warning("job %s: %s — retrying as attempt %s", job_id, problem, new_attempt)
        self.enqueue(job_id, new_attempt)

    def run_reconciler(self, interval_s: float) -> Periodic:
        """Starts `reconcile()` every `interval_s` seconds in the background."""
        return Periodic("reconciler", interval_s, self.reconcile).start()


def _fail(session, job: TranscriptionJobRow, message: str) -> None:
    """Marks the job and its session failed (inside the caller's transaction); bumps the attempt so a
    run still in flight is fenced off."""
    job.status, job.error, job.message = "failed", message, message
    job.attempt += 1
    job.updated_at_ms = now_ms()
    session_row = session.get(SessionRow, job.session_id)
    if session_row is not None:
        session_row.status, session_row.error_message = "failed", message
