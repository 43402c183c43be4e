"""The progress stream of one job (StreamJob): a snapshot, then the job's event log from Redis.

- Opened without a last event id: the snapshot (the job and its summaries from the database) with the id of the
  newest logged event at that moment, then every event after that id.
- Opened with a last event id (SSE Last-Event-ID): exactly the events after it, then live ones.
- It ends after a terminal status event. A job already finished when the stream opens (or whose terminal event
  is no longer in the log) gets a terminal status event made from its row, so a client always learns the end.
- While the log is silent the database is rechecked every `recheck_s` seconds (a job deleted meanwhile ends the
  stream as canceled), and `is_active()` (the client is still there) is checked at least every second, so a
  client going away frees its server thread within a second and costs nothing upstream.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from therascript_common.errors import NotFound

from .events import TERMINAL_STATUSES, EventLog, is_stream_id, is_terminal
from .jobs import AnalysisJobs, JobView


@dataclass(frozen=True)
class StreamItem:
    """One event to send: `payload` (an event object) or `snapshot` (the job), never both."""

    id: str
    payload: dict | None = None
    snapshot: JobView | None = None
    terminal: bool = False


class JobStreams:
    def __init__(self, jobs: AnalysisJobs, events: EventLog, block_ms: int = 1000, recheck_s: float = 5.0) -> None:
        self._jobs = jobs
        self._events = events
        self._block_ms = block_ms
        self._recheck_s = recheck_s

    def stream(self, job_id: int, last_event_id: str | None, is_active: Callable[[], bool]) -> Iterator[StreamItem]:
        """The events of job `job_id` (see the module doc). NotFound for an unknown job (raised before the first
        item). An unusable `last_event_id` counts as absent."""
        if last_event_id is not None and not is_stream_id(last_event_id):
            last_event_id = None
        if last_event_id is None:
            cursor = self._events.last_id(job_id)
            view = self._jobs.get(job_id)
            yield StreamItem(cursor, snapshot=view)
            if view.job.status in TERMINAL_STATUSES:
                yield self._end(job_id, cursor, view.job.status, view.job.error_message)
                return
        else:
            self._jobs.get(job_id)  # NotFound for an unknown job
            cursor = last_event_id
        checked = time.monotonic()
        for batch in self._events.follow(job_id, cursor, self._block_ms):
            for event in batch:
                cursor = event.id
                terminal = is_terminal(event.payload)
                yield StreamItem(event.id, payload=event.payload, terminal=terminal)
                if terminal:
                    return
            if not is_active():
                return
            if not batch and time.monotonic() - checked >= self._recheck_s:
                checked = time.monotonic()
                status, message = self._status(job_id)
                if status in TERMINAL_STATUSES and not self._events.after(job_id, cursor, count=1):
                    yield self._end(job_id, cursor, status, message)
                    return

    def _status(self, job_id: int) -> tuple[str, str | None]:
        try:
            job = self._jobs.get(job_id).job
        except NotFound:
            return "canceled", "The job was deleted."
        return job.status, job.error_message

    @staticmethod
    def _end(job_id: int, cursor: str, status: str, message: str | None) -> StreamItem:
        payload: dict = {"jobId": job_id, "timestamp": int(time.time() * 1000), "phase": "status", "type": "status",
                         "status": status}
        if message:
            payload["message"] = message
        return StreamItem(cursor, payload=payload, terminal=True)
