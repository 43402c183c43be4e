"""Time helpers: epoch milliseconds and the contract's session-date format."""

from __future__ import annotations

import time
from datetime import date

from therascript_common.errors import InvalidArgument


def now_ms() -> int:
    return int(time.time() * 1000)


def session_date_iso(value: str) -> str:
    """`YYYY-MM-DD` → `YYYY-MM-DDT12:00:00.000Z` (the original pins session dates to noon UTC, §1.1).

    Raises InvalidArgument for anything that is not a real calendar date in that format."""
    try:
        if len(value) != 10:
            raise ValueError(value)
        parsed = date.fromisoformat(value)
    except ValueError:
        raise InvalidArgument("Invalid date: expected YYYY-MM-DD.", {"date": value[:40]}) from None
    return f"{parsed.isoformat()}T12:00:00.000Z"
