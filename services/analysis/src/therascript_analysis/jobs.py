"""Analysis jobs: durable rows in the analysis database, executed through the RQ queue `analysis` by the analysis
worker (mapreduce.py). The row is the truth; the RQ job is only the delivery.

Every status change is a conditional UPDATE (`WHERE status IN (...) AND attempt = ...`), so the service
(cancel, delete, reconcile) and a worker never overwrite each other. The reconciler (run by the service) makes
every job end: a running job whose heartbeat stopped (worker killed) is resumed as attempt + 1 up to
`max_attempts` — the new run reuses every answer already stored — then failed; a canceling job without a live
worker becomes canceled; a queued job whose RQ job vanished is enqueued again.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from typing import cast

from redis import Redis
from rq import Queue
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from sqlalchemy import CursorResult, Result, delete, func, select, update

from therascript.sessions.v1 import sessions_pb2
from therascript_common.background import Periodic
from therascript_common.errors import FailedPrecondition, InvalidArgument, NotFound, Unavailable
from therascript_common.logging import request_id_var

from .clients import LlmClient, SessionsClient
from .events import TERMINAL_STATUSES, EventLog
from .storage.database import Database
from .storage.tables import AnalysisJobRow, AnswerRow, SummaryRow

log = logging.getLogger(__name__)

JOB_FUNCTION = "therascript_analysis.mapreduce.run_analysis_job"
WORKING_STATUSES = ("generating_strategy", "mapping", "reducing")   # a worker holds the job
ACTIVE_STATUSES = ("pending", *WORKING_STATUSES, "canceling")
PROMPT_MIN, PROMPT_MAX = 10, 5000
SESSIONS_MIN, SESSIONS_MAX = 1, 50
SHORT_PROMPT_MAX = 60


def updated(result: Result) -> bool:
    """True when an UPDATE/DELETE touched exactly one row."""
    return cast(CursorResult, result).rowcount == 1


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def rq_job_id(job_id: int, attempt: int) -> str:
    return f"analysis-{job_id}-a{attempt}"


def short_prompt(prompt: str) -> str:
    """A title for the job list: the prompt's first words, at most 60 characters (the original asked the model
    for one; a deterministic title costs no model time and never fails)."""
    text = re.sub(r"\s+", " ", prompt).strip()
    if len(text) <= SHORT_PROMPT_MAX:
        return text
    cut = text[:SHORT_PROMPT_MAX].rsplit(" ", 1)[0]
    return cut.rstrip(" ,.;:") + "…"


@dataclass(frozen=True)
class JobView:
    """A job with its summaries (session-date order) as stored."""

    job: AnalysisJobRow
    summaries: list[SummaryRow]


class AnalysisJobs:
    """Create, read, cancel, delete and reconcile jobs. Errors: InvalidArgument, NotFound, FailedPrecondition,
    Unavailable (sessions, llm-manager or Redis down)."""

    def __init__(self, db: Database, redis: Redis, events: EventLog, sessions: SessionsClient, llm: LlmClient,
                 queue_name: str, job_timeout_s: int, max_attempts: int, heartbeat_timeout_s: float) -> None:
        self._db = db
        self._redis = redis
        self._events = events
        self._sessions = sessions
        self._llm = llm
        self.queue = Queue(queue_name, connection=redis)
        self._job_timeout_s = job_timeout_s
        self._max_attempts = max_attempts
        self._heartbeat_timeout_s = heartbeat_timeout_s

    # --- creation -------------------------------------------------------------------------------
    def create(self, prompt: str, session_ids: list[int], model_name: str | None, use_advanced_strategy: bool) -> int:
        """Validates and stores a pending job (one pending summary per session, in session-date order) and
        enqueues it; returns its id. InvalidArgument: prompt outside 10..5000 characters, 0 or > 50 sessions,
        a repeated or non-positive id, a session without a transcript, a model that is not the active one.
        NotFound: an unknown session. Unavailable: sessions or Redis down (nothing is stored then)."""
        prompt = prompt.strip()
        if not PROMPT_MIN <= len(prompt) <= PROMPT_MAX:
            raise InvalidArgument(f"prompt must be {PROMPT_MIN}..{PROMPT_MAX} characters (got {len(prompt)}).")
        if not SESSIONS_MIN <= len(session_ids) <= SESSIONS_MAX:
            raise InvalidArgument(f"sessionIds must list {SESSIONS_MIN}..{SESSIONS_MAX} sessions "
                                  f"(got {len(session_ids)}).")
        if any(sid <= 0 for sid in session_ids) or len(set(session_ids)) != len(session_ids):
            raise InvalidArgument("sessionIds must be distinct positive integers.")
        sessions = []
        for sid in session_ids:
            session = self._sessions.get_session(sid)
            if session.status != sessions_pb2.SESSION_STATUS_COMPLETED:
                raise InvalidArgument(f"Session {sid} has no transcript yet.")
            sessions.append(session)
        model_name = model_name or None
        active = self._active_model()
        if model_name and active and model_name != active:
            raise InvalidArgument(f"Model '{model_name}' is not the active model ('{active}'); an analysis runs on "
                                  "the active model and never switches the model chat uses.")
        sessions.sort(key=lambda s: s.date)  # stable: ties keep the request order
        now = now_ms()
        with self._db.transaction() as tx:
            job = AnalysisJobRow(original_prompt=prompt, short_prompt=short_prompt(prompt), status="pending",
                                 model_name=model_name or active, use_advanced_strategy=use_advanced_strategy,
                                 attempt=1, created_at_ms=now, updated_at_ms=now)
            tx.add(job)
            tx.flush()
            for s in sessions:
                tx.add(SummaryRow(job_id=job.id, session_id=s.id, session_name=s.session_name or s.file_name,
                                  session_date=s.date, status="pending", chunk_count=0))
            job_id = job.id
        try:
            self.enqueue(job_id, 1)
        except Exception as error:
            with self._db.transaction() as tx:
                tx.execute(delete(AnalysisJobRow).where(AnalysisJobRow.id == job_id))
            raise Unavailable(f"The job queue is unavailable ({type(error).__name__}).") from error
        return job_id

    def _active_model(self) -> str | None:
        try:
            return self._llm.status().active_model or None
        except Unavailable:
            return None  # the job runs once llm-manager is back; the worker records the model that answered

    def enqueue(self, job_id: int, attempt: int) -> None:
        """Puts attempt `attempt` of the job on the RQ queue, with the caller's request id (redis errors propagate)."""
        self.queue.enqueue(JOB_FUNCTION, job_id, attempt, request_id_var.get(), job_id=rq_job_id(job_id, attempt),
                            job_timeout=self._job_timeout_s, result_ttl=3600, failure_ttl=86400)

    # --- queries --------------------------------------------------------------------------------
    def list_jobs(self, limit: int = 0, offset: int = 0) -> list[AnalysisJobRow]:
        """Jobs newest first (`limit` 0 = all)."""
        query = select(AnalysisJobRow).order_by(AnalysisJobRow.created_at_ms.desc(), AnalysisJobRow.id.desc())
        if limit > 0:
            query = query.limit(limit)
        if offset > 0:
            query = query.offset(offset)
        with self._db.transaction() as tx:
            return list(tx.scalars(query))

    def get(self, job_id: int) -> JobView:
        """The job and its summaries in session-date order (ties by id). NotFound for an unknown job."""
        with self._db.transaction() as tx:
            job = tx.get(AnalysisJobRow, job_id)
            if job is None:
                raise NotFound(f"Analysis job {job_id} not found.")
            summaries = list(tx.scalars(select(SummaryRow).where(SummaryRow.job_id == job_id)
                                        .order_by(SummaryRow.session_date, SummaryRow.id)))
            return JobView(job, summaries)

    def answers(self, job_id: int) -> list[AnswerRow]:
        """Every stored intermediate answer of the job, in the order they were first written."""
        with self._db.transaction() as tx:
            return list(tx.scalars(select(AnswerRow).where(AnswerRow.job_id == job_id).order_by(AnswerRow.id)))

    def active_count(self) -> int:
        with self._db.transaction() as tx:
            return tx.scalar(select(func.count()).select_from(AnalysisJobRow)
                             .where(AnalysisJobRow.status.in_(ACTIVE_STATUSES))) or 0

    # --- cancel and delete ----------------------------------------------------------------------
    def cancel(self, job_id: int) -> str:
        """A queued job becomes canceled now; a running one canceling (its worker stops the generation in flight
        and marks it canceled within a second). NotFound; FailedPrecondition for a finished job."""
        if self._transition(job_id, ("pending",), "canceled", finished=True):
            self._events.append(job_id, "status", "status", status="canceled")
            return f"Cancellation request for job {job_id} accepted."
        if self._transition(job_id, WORKING_STATUSES, "canceling"):
            self._events.append(job_id, "status", "status", status="canceling")
            return f"Cancellation request for job {job_id} accepted."
        status = self.get(job_id).job.status
        if status == "canceling":
            return f"Cancellation request for job {job_id} accepted."
        raise FailedPrecondition(f"Job {job_id} is already {status} and cannot be canceled.")

    def delete(self, job_id: int) -> str:
        """Deletes the job, its summaries and answers. A job still active is canceled first: its worker sees the
        row gone and stops its generation; open streams get a `canceled` status event. NotFound."""
        with self._db.transaction() as tx:
            status = tx.scalar(select(AnalysisJobRow.status).where(AnalysisJobRow.id == job_id))
            if status is None:
                raise NotFound(f"Analysis job {job_id} not found.")
            tx.execute(delete(AnalysisJobRow).where(AnalysisJobRow.id == job_id))
        if status not in TERMINAL_STATUSES:
            self._events.append(job_id, "status", "status", status="canceled", message="The job was deleted.")
        self._events.expire_soon(job_id)
        return f"Analysis job {job_id} and all associated data deleted."

    def _transition(self, job_id: int, from_statuses: tuple[str, ...], to: str, finished: bool = False,
                    attempt: int | None = None, **values: object) -> bool:
        """Conditional status change; True when it happened."""
        now = now_ms()
        query = (update(AnalysisJobRow)
                 .where(AnalysisJobRow.id == job_id, AnalysisJobRow.status.in_(from_statuses))
                 .values(status=to, updated_at_ms=now, **values))
        if finished:
            query = query.values(completed_at_ms=now)
        if attempt is not None:
            query = query.where(AnalysisJobRow.attempt == attempt)
        with self._db.transaction() as tx:
            return updated(tx.execute(query))

    # --- reconciliation -------------------------------------------------------------------------
    def reconcile(self) -> int:
        """One pass of the reconciler; returns how many jobs it resumed, canceled or failed."""
        with self._db.transaction() as tx:
            jobs = list(tx.scalars(select(AnalysisJobRow).where(AnalysisJobRow.status.in_(ACTIVE_STATUSES))))
        return sum(self._reconcile_one(job) for job in jobs)

    def _reconcile_one(self, job: AnalysisJobRow) -> bool:
        if job.status == "pending":
            problem = self._queued_problem(job)
            return problem is not None and self._resume_or_fail(job, ("pending",), problem)
        beat = job.heartbeat_at or job.updated_at_ms / 1000
        if time.time() - beat <= self._heartbeat_timeout_s:
            return False
        if job.status == "canceling":
            done = self._transition(job.id, ("canceling",), "canceled", finished=True, attempt=job.attempt)
            if done:
                self._events.append(job.id, "status", "status", status="canceled")
            return done
        return self._resume_or_fail(job, WORKING_STATUSES, "The analysis worker stopped responding.")

    def _queued_problem(self, job: AnalysisJobRow) -> str | None:
        try:
            rq_status = Job.fetch(rq_job_id(job.id, job.attempt), connection=self._redis).get_status()
        except NoSuchJobError:
            return "The queued analysis job was lost."
        if rq_status in (JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED, JobStatus.FINISHED):
            return f"The queued analysis job ended as {rq_status.value} without starting."
        return None

    def _resume_or_fail(self, job: AnalysisJobRow, from_statuses: tuple[str, ...], problem: str) -> bool:
        if job.attempt >= self._max_attempts:
            message = f"{problem} Gave up after {job.attempt} attempts."
            if self._fail(job, from_statuses, message):
                log.warning("analysis job %s failed: %s", job.id, message)
                return True
            return False
        new_attempt = job.attempt + 1
        if not self._bump(job, from_statuses, new_attempt):
            return False
        log.warning("analysis job %s: %s — resuming as attempt %s", job.id, problem, new_attempt)
        self._events.append(job.id, "status", "log", message=f"{problem} Resuming (attempt {new_attempt}).")
        self.enqueue(job.id, new_attempt)
        return True

    def _bump(self, job: AnalysisJobRow, from_statuses: tuple[str, ...], new_attempt: int) -> bool:
        query = (update(AnalysisJobRow)
                 .where(AnalysisJobRow.id == job.id, AnalysisJobRow.status.in_(from_statuses),
                        AnalysisJobRow.attempt == job.attempt)
                 .values(status="pending", attempt=new_attempt, heartbeat_at=None, updated_at_ms=now_ms()))
        with self._db.transaction() as tx:
            return updated(tx.execute(query))

    def _fail(self, job: AnalysisJobRow, from_statuses: tuple[str, ...], message: str) -> bool:
        query = (update(AnalysisJobRow)
                 .where(AnalysisJobRow.id == job.id, AnalysisJobRow.status.in_(from_statuses),
                        AnalysisJobRow.attempt == job.attempt)
                 .values(status="failed", error_message=message, attempt=job.attempt + 1,
                         updated_at_ms=now_ms(), completed_at_ms=now_ms()))
        with self._db.transaction() as tx:
            done = updated(tx.execute(query))
        if done:
            self._events.append(job.id, "status", "status", status="failed", message=message)
        return done

    def run_reconciler(self, interval_s: float) -> Periodic:
        """Runs one pass now (jobs left running by a previous life are resumed or failed) and then every
        `interval_s` seconds in the background."""
        try:
            self.reconcile()
        except Exception:
            log.exception("first reconcile pass failed")
        return Periodic("analysis-reconciler", interval_s, self.reconcile).start()
