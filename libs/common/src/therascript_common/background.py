"""Periodic background work in a daemon thread (reconcilers, outbox delivery, heartbeats)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class Periodic:
    """Calls `task()` every `interval_s` seconds on a daemon thread named `name` until `stop()`.
    An exception in one pass is logged and the next pass runs as planned: a loop that keeps a system
    consistent must not die of one bad pass."""

    def __init__(self, name: str, interval_s: float, task: Callable[[], object]) -> None:
        self._name = name
        self._interval_s = interval_s
        self._task = task
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def start(self) -> Periodic:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                self._task()
            except Exception:
                log.exception("%s: pass failed", self._name)
