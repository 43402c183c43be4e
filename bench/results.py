"""The figures convention every bench/*.py follows, so `bench/run_all.py` can collect them into bench/RESULTS.md.

A bench prints its human-readable report as it likes, and in addition one line per figure on stdout:

    RESULT {"name": "...", "value": 1.23, "unit": "ms", "baseline": 1.10, "baseline_name": "...",
            "ratio": 1.118, "goal": "<= 1.10x", "note": "..."}

i.e. the literal word `RESULT`, one space, then one JSON object on the same line. Keys:
- name (str, required): unique within the bench, e.g. "GET /api/sessions p50".
- value (number, required) and unit (str, required: "ms", "tokens/s", "MB", "x", "s", "req/s", ...).
- baseline (number, optional): the same figure for the baseline measured in the same run; baseline_name
  (str, optional) says what that baseline is.
- ratio (number, optional): value / baseline (or whatever ratio the goal is about).
- goal (str, optional): `<op> <number>` optionally followed by `x` (then it applies to `ratio`) or a unit (then to
  `value`), op one of <=, <, >=, >: e.g. "<= 1.10x", ">= 0.95x", "<= 64 MB". run_all marks it met / not met.
- note (str, optional): anything a reader needs beside the figure (runs, sizes, load).

Use `result(...)` below rather than printing by hand. It is importable from any bench run as
`python bench/<name>.py` (Python puts bench/ first on sys.path).
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any

PREFIX = "RESULT "
_GOAL = re.compile(r"^\s*(<=|>=|<|>|≤|≥)\s*([0-9.]+)\s*(x|×)?")


def result(name: str, value: float, unit: str, *, baseline: float | None = None, baseline_name: str | None = None,
           ratio: float | None = None, goal: str | None = None, note: str | None = None) -> dict[str, Any]:
    """Prints one `RESULT {json}` line (see the module docstring) and returns the figure as a dict.
    `ratio` defaults to value / baseline when a baseline is given."""
    if ratio is None and baseline:
        ratio = value / baseline
    figure: dict[str, Any] = {"name": name, "value": round(float(value), 4), "unit": unit}
    extras = {"baseline": baseline, "baseline_name": baseline_name, "ratio": ratio, "goal": goal, "note": note}
    for key, extra in extras.items():
        if extra is not None:
            figure[key] = round(float(extra), 4) if isinstance(extra, (int, float)) else extra
    print(PREFIX + json.dumps(figure, ensure_ascii=False), flush=True)
    return figure


def parse(line: str) -> dict[str, Any] | None:
    """The figure on a `RESULT {json}` line, or None for any other line (or a malformed one)."""
    if not line.startswith(PREFIX):
        return None
    try:
        figure = json.loads(line[len(PREFIX):])
    except ValueError:
        return None
    if not isinstance(figure, dict) or not {"name", "value", "unit"} <= figure.keys():
        return None
    return figure


def goal_met(figure: dict[str, Any]) -> bool | None:
    """Whether the figure meets its goal: True/False, or None when there is no (parsable) goal or no ratio for a
    ratio goal."""
    match = _GOAL.match(figure.get("goal") or "")
    if not match:
        return None
    op, bound, on_ratio = match.group(1), float(match.group(2)), bool(match.group(3))
    subject = figure.get("ratio") if on_ratio else figure.get("value")
    if subject is None:
        return None
    return {"<=": subject <= bound, "≤": subject <= bound, "<": subject < bound,
            ">=": subject >= bound, "≥": subject >= bound, ">": subject > bound}[op]


if __name__ == "__main__":  # a self-check: `python bench/results.py`
    example = result("example", 1.05, "x", baseline=1.0, goal="<= 1.10x")
    assert goal_met(example) is True and parse(PREFIX + json.dumps(example)) == example
    sys.exit(0)
