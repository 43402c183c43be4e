"""Job functions for test_rq_worker.py, importable by the worker process it starts (by module path)."""

from __future__ import annotations

import time
from pathlib import Path


def write_after(path: str, seconds: float) -> str:
    """Writes "started" to `path`.started, sleeps `seconds`, then writes "done" to `path` (a job that is mid-way
    when the test kills Redis)."""
    Path(f"{path}.started").write_text("started")
    time.sleep(seconds)
    Path(path).write_text("done")
    return "done"
