"""Wall-clock time in the unit the API uses (epoch milliseconds)."""

from __future__ import annotations

import time


def now_ms() -> int:
    """The current time, epoch milliseconds."""
    return time.time_ns() // 1_000_000
