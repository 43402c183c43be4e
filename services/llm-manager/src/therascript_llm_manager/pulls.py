"""Model pull jobs: download a GGUF into the store, durably, with progress, resume, sha256 and cancel.

A job is a row in `pull_jobs` (so a restart shows it, never a 404) and runs on a small thread pool:
queued → downloading → verifying → completed, or failed; cancel: canceling → canceled. Bytes go to
`<store>/.partial/<job id>.part`; only a complete, verified GGUF is renamed into the store. Jobs that
were running when the process stopped resume at start-up with an HTTP Range request.
"""

from __future__ import annotations

import enum
import hashlib
import logging
import re
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields, replace
from pathlib import Path
from urllib.parse import unquote, urljoin

import httpx
import sqlalchemy as sa

from therascript_common.errors import DomainError, FailedPrecondition, InvalidArgument, NotFound

from .db import pull_jobs
from .gguf_header import GgufError, read_header
from .netpolicy import UrlPolicy
from .settings import LlmManagerSettings
from .store import ModelStore, validate_model_name

log = logging.getLogger(__name__)

MAX_REDIRECTS = 5
_PROGRESS_EVERY_S = 0.5
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_REPO_FILE = re.compile(r"^(?P<repo>[A-Za-z0-9._-]+/[A-Za-z0-9._-]+)/(?P<file>[A-Za-z0-9._-]+\.gguf)$")


class PullState(enum.Enum):
    QUEUED = "queued"
    DOWNLOADING = "downloading"
    VERIFYING = "verifying"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELING = "canceling"
    CANCELED = "canceled"


TERMINAL = {PullState.COMPLETED, PullState.FAILED, PullState.CANCELED}
RESUMABLE = {PullState.QUEUED, PullState.DOWNLOADING, PullState.VERIFYING}


@dataclass(frozen=True)
class PullJob:
    """One pull job, as stored."""

    id: str
    source_url: str
    model_name: str
    status: PullState
    message: str
    completed_bytes: int
    total_bytes: int | None
    expected_sha256: str | None
    sha256: str | None
    start_time_ms: int
    end_time_ms: int | None
    error: str | None

    @property
    def progress(self) -> float | None:
        """Percent 0..100, when the size is known (100 once completed)."""
        if self.status is PullState.COMPLETED:
            return 100.0
        if self.total_bytes:
            return round(min(100.0, 100.0 * self.completed_bytes / self.total_bytes), 1)
        return None


def _now_ms() -> int:
    return int(time.time() * 1000)


class PullJobRepository:
    """pull_jobs rows ⇄ PullJob."""

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine

    def insert(self, job: PullJob) -> None:
        with self._engine.begin() as conn:
            conn.execute(sa.insert(pull_jobs).values(**self._row(job)))

    def get(self, job_id: str) -> PullJob | None:
        with self._engine.connect() as conn:
            row = conn.execute(sa.select(pull_jobs).where(pull_jobs.c.id == job_id)).mappings().first()
        return self._job(row) if row else None

    def update(self, job: PullJob) -> None:
        with self._engine.begin() as conn:
            conn.execute(sa.update(pull_jobs).where(pull_jobs.c.id == job.id).values(**self._row(job)))

    def with_status(self, states: set[PullState]) -> list[PullJob]:
        query = sa.select(pull_jobs).where(pull_jobs.c.status.in_([s.value for s in states]))
        with self._engine.connect() as conn:
            return [self._job(row) for row in conn.execute(query).mappings()]

    @staticmethod
    def _row(job: PullJob) -> dict:
        row = {f.name: getattr(job, f.name) for f in fields(PullJob)}
        row["status"] = job.status.value
        return row

    @staticmethod
    def _job(row) -> PullJob:
        values = {f.name: row[f.name] for f in fields(PullJob)}
        values["status"] = PullState(values["status"])
        return PullJob(**values)


class _Stopped(Exception):
    """The download loop stopped early: `canceled` True for a cancel, False for a shutdown."""

    def __init__(self, canceled: bool) -> None:
        super().__init__("canceled" if canceled else "shutdown")
        self.canceled = canceled


class PullManager:
    """Starts, tracks, cancels and resumes pull jobs."""

    def __init__(self, repo: PullJobRepository, store: ModelStore, policy: UrlPolicy,
                 config: LlmManagerSettings) -> None:
        self._repo = repo
        self._store = store
        self._policy = policy
        self._config = config
        self._executor = ThreadPoolExecutor(config.pull_workers, thread_name_prefix="pull")
        self._cancels: dict[str, threading.Event] = {}
        self._shutdown = threading.Event()
        self._lock = threading.Lock()
        self._http = httpx.Client(follow_redirects=False, trust_env=False,
                                  timeout=httpx.Timeout(config.pull_timeout_s, connect=10.0))

    # ---- API ------------------------------------------------------------------------------
    def start(self, model_url: str, sha256: str | None = None) -> PullJob:
        """Validates `model_url` (an allowed http(s) URL of a .gguf, or `owner/repo/file.gguf`) and
        queues a job. Raises InvalidArgument (bad URL, host not allowed, internal address, bad name or
        digest). A model already in the store gives a job that is completed at once."""
        url = self._resolve_source(model_url.strip())
        parsed = self._policy.check(url)
        name = validate_model_name(unquote(parsed.path.rsplit("/", 1)[-1]))
        expected = sha256.lower().strip() if sha256 else None
        if expected and not _SHA256.fullmatch(expected):
            raise InvalidArgument("sha256 must be 64 hexadecimal characters.")
        job = PullJob(str(uuid.uuid4()), url, name, PullState.QUEUED, "Queued for download.", 0, None,
                      expected, None, _now_ms(), None, None)
        if self._store.exists(name):
            job = replace(job, status=PullState.COMPLETED, message=f"Model {name} is already downloaded.",
                          end_time_ms=_now_ms())
        self._repo.insert(job)
        if job.status is PullState.QUEUED:
            self._submit(job.id)
        return job

    def get(self, job_id: str) -> PullJob:
        """The job `job_id`. Raises NotFound."""
        job = self._repo.get(job_id)
        if job is None:
            raise NotFound(f"Pull job {job_id} not found.")
        return job

    def cancel(self, job_id: str) -> PullJob:
        """Requests cancellation: the download stops and its partial file is removed.

        Raises NotFound, or FailedPrecondition when the job already finished."""
        with self._lock:
            job = self.get(job_id)
            if job.status in TERMINAL or job.status is PullState.CANCELING:
                raise FailedPrecondition(f"Cannot cancel job {job_id}, status is {job.status.value}.")
            job = replace(job, status=PullState.CANCELING, message="Cancellation requested.")
            self._repo.update(job)
            self._cancels.setdefault(job_id, threading.Event()).set()
        return job

    def resume_unfinished(self) -> int:
        """At start-up: re-queues jobs a previous process left running (they resume from their partial
        file) and finishes interrupted cancellations. Returns how many jobs were re-queued."""
        for job in self._repo.with_status({PullState.CANCELING}):
            self._finish_canceled(job)
        unfinished = self._repo.with_status(RESUMABLE)
        for job in unfinished:
            log.info("resuming pull job %s (%s)", job.id, job.model_name)
            self._submit(job.id)
        return len(unfinished)

    def close(self) -> None:
        """Stops the workers, leaving running jobs resumable by the next start."""
        self._shutdown.set()
        self._executor.shutdown(wait=True, cancel_futures=True)
        self._http.close()

    # ---- worker ---------------------------------------------------------------------------
    def _submit(self, job_id: str) -> None:
        with self._lock:
            self._cancels.setdefault(job_id, threading.Event())
        self._executor.submit(self._run, job_id)

    def _run(self, job_id: str) -> None:
        job = self.get(job_id)
        part = self._store.partial_dir / f"{job.id}.part"
        try:
            self._check_stop(job.id)
            job = self._download(job, part)
            job = self._verify_and_install(job, part)
        except _Stopped as stop:
            if stop.canceled:
                self._finish_canceled(self.get(job_id))
        except (DomainError, httpx.HTTPError, OSError, GgufError) as error:
            self._fail(self.get(job_id), part, _describe(error))
        except Exception as error:
            log.exception("pull job %s crashed", job_id)
            self._fail(self.get(job_id), part, _describe(error))
        finally:
            with self._lock:
                self._cancels.pop(job_id, None)

    def _download(self, job: PullJob, part: Path) -> PullJob:
        offset = part.stat().st_size if part.exists() else 0
        hasher = hashlib.sha256()
        if offset:
            _hash_into(hasher, part)
        response = self._open(job.source_url, offset)
        try:
            if offset and response.status_code != 206:  # the server ignored Range: start over
                offset, hasher = 0, hashlib.sha256()
            total = self._total_bytes(response, offset)
            job = self._save(replace(job, status=PullState.DOWNLOADING, completed_bytes=offset, total_bytes=total,
                                     message=f"Downloading {job.model_name}."))
            with part.open("ab" if offset else "wb") as out:
                job = self._copy(job, response, out, hasher)
        finally:
            response.close()
        return replace(job, sha256=hasher.hexdigest())

    def _open(self, url: str, offset: int) -> httpx.Response:
        """GETs `url` (from byte `offset`), checking every redirect hop against the policy."""
        for _ in range(MAX_REDIRECTS + 1):
            self._policy.check(url)
            headers = {"Range": f"bytes={offset}-"} if offset else {}
            response = self._http.send(self._http.build_request("GET", url, headers=headers), stream=True)
            if not response.is_redirect:
                if response.status_code not in (200, 206):
                    response.close()
                    raise InvalidArgument(f"The model server answered HTTP {response.status_code}.")
                return response
            response.close()
            url = urljoin(url, response.headers.get("location", ""))
        raise InvalidArgument(f"Too many redirects (more than {MAX_REDIRECTS}).")

    def _total_bytes(self, response: httpx.Response, offset: int) -> int | None:
        length = response.headers.get("content-length")
        total = offset + int(length) if length and length.isdigit() else None
        if total is not None and total > self._config.pull_max_bytes:
            raise InvalidArgument(f"The model is larger than the limit of {self._config.pull_max_bytes} bytes.")
        return total

    def _copy(self, job: PullJob, response: httpx.Response, out, hasher) -> PullJob:
        written, last_report = job.completed_bytes, time.monotonic()
        for chunk in response.iter_bytes(1 << 20):
            self._check_stop(job.id)
            out.write(chunk)
            hasher.update(chunk)
            written += len(chunk)
            if written > self._config.pull_max_bytes:
                raise InvalidArgument(f"The model is larger than the limit of {self._config.pull_max_bytes} bytes.")
            if time.monotonic() - last_report >= _PROGRESS_EVERY_S:
                job, last_report = self._progress(job, written), time.monotonic()
        out.flush()
        return self._progress(job, written)

    def _progress(self, job: PullJob, written: int) -> PullJob:
        job = replace(job, completed_bytes=written)
        percent = f" ({job.progress:.0f}%)" if job.progress is not None else ""
        return self._save(replace(job, message=f"Downloading {job.model_name}{percent}."))

    def _verify_and_install(self, job: PullJob, part: Path) -> PullJob:
        job = self._save(replace(job, status=PullState.VERIFYING, message=f"Verifying {job.model_name}."))
        if job.expected_sha256 and job.sha256 != job.expected_sha256:
            raise InvalidArgument(f"sha256 mismatch: expected {job.expected_sha256}, got {job.sha256}.")
        read_header(part)  # a complete, parseable GGUF header, or GgufError
        self._check_stop(job.id)
        self._store.install(part, job.model_name, job.sha256)
        return self._save(replace(job, status=PullState.COMPLETED, message=f"Downloaded {job.model_name}.",
                                  end_time_ms=_now_ms()))

    def _check_stop(self, job_id: str) -> None:
        with self._lock:
            event = self._cancels.get(job_id)
        if event is not None and event.is_set():
            raise _Stopped(canceled=True)
        if self._shutdown.is_set():
            raise _Stopped(canceled=False)

    def _save(self, job: PullJob) -> PullJob:
        """Writes `job`, unless a cancel was recorded meanwhile (then stops the worker)."""
        with self._lock:
            stored = self._repo.get(job.id)
            if stored is not None and stored.status is PullState.CANCELING:
                raise _Stopped(canceled=True)
            self._repo.update(job)
        return job

    def _finish_canceled(self, job: PullJob) -> None:
        (self._store.partial_dir / f"{job.id}.part").unlink(missing_ok=True)
        self._repo.update(replace(job, status=PullState.CANCELED, message=f"Pull of {job.model_name} canceled.",
                                  end_time_ms=_now_ms()))

    def _fail(self, job: PullJob, part: Path, reason: str) -> None:
        part.unlink(missing_ok=True)
        if job.status is PullState.CANCELING:
            self._finish_canceled(job)
            return
        log.warning("pull job %s failed: %s", job.id, reason)
        self._repo.update(replace(job, status=PullState.FAILED, message=f"Pull of {job.model_name} failed.",
                                  error=reason, end_time_ms=_now_ms()))

    def _resolve_source(self, model_url: str) -> str:
        if model_url.startswith(("http://", "https://")):
            return model_url
        match = _REPO_FILE.fullmatch(model_url)
        if not match or ".." in model_url:
            raise InvalidArgument("modelUrl must be an http(s) URL of a .gguf file or 'owner/repo/file.gguf'.")
        return self._config.pull_source_url.format(repo=match["repo"], file=match["file"])


def _hash_into(hasher, path: Path) -> None:
    with path.open("rb") as stream:
        while chunk := stream.read(1 << 20):
            hasher.update(chunk)


def _describe(error: Exception) -> str:
    if isinstance(error, DomainError):
        return error.message
    return f"{error.__class__.__name__}: {error}"[:500]

