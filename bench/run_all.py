"""Runs every benchmark in bench/ (each as its own process, niced, with a time limit) and writes bench/RESULTS.md:
the machine, the date, the commit, and every figure with its baseline, ratio and goal.

    .venv/bin/python bench/run_all.py [--only NAME ...] [--skip NAME ...] [--timeout S] [--out bench/RESULTS.md]
                                      [--args NAME="--runs 3" ...]   (arguments for one benchmark, e.g. a shorter run)

A benchmark is any bench/*.py with an `if __name__ == "__main__":` block, except this file and bench/results.py
(modules without one, like bench/streams.py, are libraries). Benchmarks added later are picked up as they are;
the figures are the `RESULT {json}` lines each prints (the convention is in bench/results.py and bench/README.md).
A benchmark that cannot run here (its interpreter is missing) gets a "not run: <reason>" line; one that fails or
times out keeps the figures it printed before and gets its exit status and the tail of its output.
Each benchmark's whole output is kept in bench/results/<name>.log (git-ignored).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from results import goal_met, parse

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
NOT_BENCHMARKS = {"run_all", "results"}
DEFAULT_TIMEOUT_S = 1800


@dataclass
class Runner:
    """How to run one benchmark: its interpreter (relative to the repository root), arguments, extra environment,
    and time limit."""

    python: str = ".venv/bin/python"
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    timeout_s: int | None = None


# Benchmarks that need something other than the CPU virtualenv with no arguments.
RUNNERS: dict[str, Runner] = {
    "transcription_baseline": Runner(".venv-transcriber/bin/python",
                                     env={"PYTHONPATH": "services/sessions/src", "HF_HUB_OFFLINE": "1"}),
    # issue 11's memory sweep: peak RSS of the whole pipeline on 1, 10, 30 and 60 minutes of audio (~10 min)
    "quality": Runner(".venv-transcriber/bin/python", args=("--memory", "1,10,30,60")),
}


@dataclass
class Outcome:
    name: str
    figures: list[dict[str, Any]]
    status: str  # "ok", "failed (rc N)", "timed out after N s", "not run: <reason>"
    seconds: float = 0.0
    tail: str = ""
    ran_with: str = ""  # the arguments given with --args, if any


def discover() -> list[str]:
    """The benchmark names (file stems) in bench/, sorted."""
    names = []
    for path in sorted(BENCH.glob("*.py")):
        if path.stem in NOT_BENCHMARKS or path.stem.startswith("_"):
            continue
        if re.search(r"^if __name__ == [\"']__main__[\"']:", path.read_text(), re.MULTILINE):
            names.append(path.stem)
    return names


def run_one(name: str, timeout_s: int, log_dir: Path, args: tuple[str, ...] | None = None) -> Outcome:
    """Runs bench/<name>.py under `nice`, in its own process group (with `args` instead of its RUNNERS arguments
    when given); collects its RESULT lines."""
    runner = RUNNERS.get(name, Runner())
    python = ROOT / runner.python
    if not python.exists():
        return Outcome(name, [], f"not run: {runner.python} does not exist (run scripts/bootstrap)")
    limit = runner.timeout_s or timeout_s
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **runner.env}
    log = log_dir / f"{name}.log"
    started = time.monotonic()
    with log.open("w") as out:
        process = subprocess.Popen(["nice", "-n", "10", str(python), str(BENCH / f"{name}.py"),
                                    *(runner.args if args is None else args)],
                                   cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            rc = process.wait(timeout=limit)
            status = "ok" if rc == 0 else f"failed (rc {rc})"
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            status = f"timed out after {limit} s"
    text = log.read_text(errors="replace")
    figures = [figure for line in text.splitlines() if (figure := parse(line)) is not None]
    if status == "ok" and not figures:
        status = "failed (printed no RESULT line)"
    tail = "" if status == "ok" else "\n".join(text.splitlines()[-15:])
    return Outcome(name, figures, status, time.monotonic() - started, tail)


def machine() -> list[str]:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor() or "unknown CPU")
    mem_kb = next((int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal:")), 0)
    return [f"{platform.node()}: {cpu}, {os.cpu_count()} cores, {mem_kb / 1024 / 1024:.1f} GiB RAM",
            f"{platform.system()} {platform.release()}, Python {platform.python_version()}"]


def commit() -> str:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    dirty = " (working tree has uncommitted changes)" if git("status", "--porcelain", "--untracked-files=no") else ""
    return f"{git('rev-parse', '--short', 'HEAD')} {git('log', '-1', '--format=%s')}{dirty}"


def number(value: Any) -> str:
    if value is None:
        return ""
    value = float(value)
    return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"


def render(outcomes: list[Outcome], started: datetime.datetime, loads: tuple[str, str]) -> str:
    lines = ["# Benchmark results", "",
             "Written by `bench/run_all.py` — do not edit by hand; rerun it. Each ratio is against a baseline "
             "measured in the same run (medians of interleaved runs); on a shared machine compare ratios, not "
             "absolute times.", "",
             f"- date: {started:%Y-%m-%d %H:%M} UTC",
             f"- commit: {commit()}",
             *(f"- machine: {line}" for line in machine()),
             f"- load average (1/5/15 min) at start: {loads[0]}; at end: {loads[1]}",
             "- every benchmark ran under `nice -n 10`, one at a time", ""]
    met = [goal_met(f) for o in outcomes for f in o.figures]
    lines += [f"Goals: {met.count(True)} met, {met.count(False)} not met; "
              f"{sum(o.status == 'ok' for o in outcomes)} of {len(outcomes)} benchmarks ran to the end.", ""]
    for outcome in outcomes:
        lines += [f"## {outcome.name}", "",
                  f"`bench/{outcome.name}.py{' ' + outcome.ran_with if outcome.ran_with else ''}` — "
                  f"{outcome.status}" + (f", {outcome.seconds:.0f} s" if outcome.seconds else ""), ""]
        if outcome.figures:
            lines += ["| figure | value | baseline | ratio | goal | met | note |", "|---|---|---|---|---|---|---|"]
            for f in outcome.figures:
                verdict = {True: "yes", False: "**no**", None: ""}[goal_met(f)]
                base = f"{number(f.get('baseline'))} ({f['baseline_name']})" if f.get("baseline_name") else \
                    number(f.get("baseline"))
                lines.append(f"| {f['name']} | {number(f['value'])} {f['unit']} | {base} | "
                             f"{number(f.get('ratio'))}{'x' if f.get('ratio') is not None else ''} | "
                             f"{f.get('goal', '')} | {verdict} | {f.get('note', '')} |")
            lines.append("")
        if outcome.tail:
            lines += ["```", outcome.tail, "```", ""]
    return "\n".join(lines)


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="*", default=None, help="run only these benchmarks (file stems)")
    parser.add_argument("--skip", nargs="*", default=[], help="do not run these (listed as 'not run: skipped')")
    parser.add_argument("--timeout", type=int, default=DEFAULT_TIMEOUT_S, help="seconds per benchmark")
    parser.add_argument("--out", type=Path, default=BENCH / "RESULTS.md")
    parser.add_argument("--args", nargs="*", default=[], metavar='NAME="ARGS"',
                        help="arguments for one benchmark instead of its defaults")
    args = parser.parse_args()
    overrides = {}
    for item in args.args:
        name, _, value = item.partition("=")
        overrides[name] = tuple(shlex.split(value))
    names = discover()
    unknown = set(args.only or ()) - set(names)
    if unknown:
        parser.error(f"no such benchmark: {', '.join(sorted(unknown))} (have: {', '.join(names)})")
    log_dir = BENCH / "results"
    log_dir.mkdir(exist_ok=True)
    started, start_load = datetime.datetime.now(datetime.UTC), loadavg()
    outcomes = []
    for name in names:
        if name in args.skip or (args.only is not None and name not in args.only):
            outcomes.append(Outcome(name, [], "not run: skipped (--only/--skip)"))
            continue
        print(f"== {name} ...", flush=True)
        outcome = run_one(name, args.timeout, log_dir, overrides.get(name))
        if name in overrides:
            outcome.ran_with = " ".join(overrides[name])
        print(f"   {outcome.status}, {len(outcome.figures)} figures, {outcome.seconds:.0f} s", flush=True)
        outcomes.append(outcome)
    args.out.write_text(render(outcomes, started, (start_load, loadavg())) + "\n")
    print(f"wrote {args.out}")
    return 0 if all(o.status == "ok" or o.status.startswith("not run") for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
