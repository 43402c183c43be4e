"""The event log of each job: a Redis stream `therascript:analysis:job:<id>:events` (XADD with stream ids).

Every event is one JSON object (ui-contract §3.2: `{jobId, timestamp, phase, type, ...}`) stored under the field
`data`. A reader replays with XRANGE after a given id and then follows with XREAD BLOCK, so a client that
reconnects with Last-Event-ID gets exactly what it missed, from any gateway replica. When the job ends the log
expires `retention_s` seconds later; while it runs it is trimmed to about `max_len` events.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import cast

from redis import Redis

TERMINAL_STATUSES = ("completed", "failed", "canceled")
_STREAM_ID = re.compile(r"^\d{1,20}-\d{1,20}$")


def is_stream_id(value: str) -> bool:
    """True for a Redis stream id "<ms>-<seq>" (what Last-Event-ID carries back)."""
    return bool(_STREAM_ID.match(value))


def is_terminal(payload: dict) -> bool:
    """The event that ends a stream: `{type:'status', status: completed|failed|canceled}`."""
    return payload.get("type") == "status" and payload.get("status") in TERMINAL_STATUSES


@dataclass(frozen=True)
class Event:
    id: str          # Redis stream id
    payload: dict


class EventLog:
    """Appends and reads the per-job event streams. Thread-safe (redis-py's connection pool)."""

    def __init__(self, redis: Redis, retention_s: int, max_len: int) -> None:
        self._redis = redis
        self._retention_s = retention_s
        self._max_len = max_len

    @staticmethod
    def key(job_id: int) -> str:
        return f"therascript:analysis:job:{job_id}:events"

    def append(self, job_id: int, phase: str, type_: str, **fields: object) -> str:
        """Adds `{jobId, timestamp (ms), phase, type, **fields}`; returns its stream id. A terminal status event
        also sets the log's expiry."""
        payload = {"jobId": job_id, "timestamp": int(time.time() * 1000), "phase": phase, "type": type_, **fields}
        key = self.key(job_id)
        event_id = self._redis.xadd(key, {"data": json.dumps(payload, separators=(",", ":"), ensure_ascii=False)},
                                    maxlen=self._max_len, approximate=True)
        if is_terminal(payload):
            self._redis.expire(key, self._retention_s)
        return event_id.decode() if isinstance(event_id, bytes) else str(event_id)

    def last_id(self, job_id: int) -> str:
        """The newest event's id, or "0-0" when the log is empty (or expired)."""
        newest = cast(list, self._redis.xrevrange(self.key(job_id), count=1))
        return _decode(newest[0][0]) if newest else "0-0"

    def after(self, job_id: int, event_id: str, count: int = 500) -> list[Event]:
        """Events strictly after `event_id`, oldest first (at most `count`)."""
        entries = cast(list, self._redis.xrange(self.key(job_id), min=f"({event_id}", count=count))
        return [_event(entry) for entry in entries]

    def wait_after(self, job_id: int, event_id: str, block_ms: int) -> list[Event]:
        """Events after `event_id`, waiting up to `block_ms` ms for the first one (empty list on timeout)."""
        reply = cast(list, self._redis.xread({self.key(job_id): event_id}, block=block_ms, count=500))
        return [_event(entry) for _, entries in reply or [] for entry in entries]

    def follow(self, job_id: int, event_id: str, block_ms: int = 1000) -> Iterator[list[Event]]:
        """Replays everything after `event_id`, then yields batches of new events as they come (an empty batch
        every `block_ms` ms of silence, so the caller can check whether its client is still there)."""
        cursor = event_id
        while True:
            batch = self.after(job_id, cursor)
            if not batch:
                break
            cursor = batch[-1].id
            yield batch
        while True:
            batch = self.wait_after(job_id, cursor, block_ms)
            if batch:
                cursor = batch[-1].id
            yield batch

    def expire_soon(self, job_id: int, seconds: int = 60) -> None:
        """Lets the log go `seconds` from now (a deleted job: open streams still see its last event)."""
        self._redis.expire(self.key(job_id), seconds)


def _decode(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _event(entry) -> Event:
    event_id, fields = entry
    raw = fields.get(b"data") or fields.get("data") or b"{}"
    return Event(_decode(event_id), json.loads(raw))
