"""Analysis job wall time for N = 1, 2, 4 sessions, map concurrency 2 against the baseline map concurrency 1, in the
same run, interleaved (c1 c2, c2 c1, ...), medians.

Usage: .venv/bin/python bench/analysis.py [--runs 3] [--map-tokens 48] [--reduce-tokens 48]
Starts real servers in a temp folder: Redis, llm-manager in this process (packaged SmolLM2, 2 parallel slots, so two
map calls can really run at once), sessions with seeded transcripts (~250 tokens each), and two analysis services
with their worker processes (ANALYSIS_MAP_CONCURRENCY 1 and 2, each on its own queue). Wall time = CreateJob until
the stream's `completed` event. On a CPU-only machine the two slots share the same cores, so the gain from
concurrency is bounded by how well llama.cpp batches the two sequences there; on a GPU it is larger.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "support"))
from results import result
from servers import start_redis

from therascript.analysis.v1 import analysis_pb2 as pb
from therascript_analysis.testing import RunningAnalysis, start_analysis
from therascript_llm_manager.testing import start_llm_manager
from therascript_sessions.testing import seed_completed_session, start_sessions

PROMPT = "How has the client's sleep changed over these sessions?"
TOPICS = ["sleep", "work", "family", "exercise", "mood"]


def transcript(n: int) -> list[tuple[str | None, str]]:
    return [(f"SPEAKER_0{i % 2}", f"In session {n}, part {i}: the client talks about {TOPICS[(n + i) % 5]} and how "
             f"their sleep was {['worse', 'better', 'the same'][(n + i) % 3]} this week, waking up {i % 4} times.")
            for i in range(6)]


_jobs = itertools.count(1)


def timed_job(analysis: RunningAnalysis, session_ids: list[int]) -> float:
    """Seconds from CreateJob to the `completed` event. Every job's question is unique (it comes first in every
    prompt), so no job reuses another's cached prompt in llama.cpp's slots."""
    prompt = f"{PROMPT} (run {next(_jobs)})"
    started = time.perf_counter()
    job_id = analysis.stub.CreateJob(pb.CreateJobRequest(prompt=prompt, session_ids=session_ids)).job_id
    last = None
    for event in analysis.stub.StreamJob(pb.StreamJobRequest(job_id=job_id), timeout=1800):
        if not event.HasField("snapshot"):
            last = json.loads(event.payload_json)
    elapsed = time.perf_counter() - started
    if not last or last.get("status") != "completed":
        raise RuntimeError(f"job {job_id} ended {last}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--map-tokens", type=int, default=48)
    parser.add_argument("--reduce-tokens", type=int, default=48)
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="bench-analysis-"))
    redis, redis_url = start_redis(root / "redis")
    llm_target, stop_llm = start_llm_manager(root / "llm", default_context_size=2048, parallel_slots=2)
    sessions = start_sessions(root / "sessions", redis_url)
    ids = [seed_completed_session(sessions.app, transcript(n), session_name=f"S{n}", date=f"2026-0{n + 1}-01")
           for n in range(4)]
    common = {"map_max_tokens": args.map_tokens, "reduce_max_tokens": args.reduce_tokens, "temperature": 0.0}
    instances = {c: start_analysis(root / f"analysis-c{c}", redis_url, sessions.target, llm_target,
                                   map_concurrency=c, **common) for c in (1, 2)}
    try:
        timed_job(instances[1], ids[:1])  # warm-up: prompt cache, connections
        rows = []
        for n in (1, 2, 4):
            times: dict[int, list[float]] = {1: [], 2: []}
            for run in range(args.runs):
                for c in ((1, 2) if run % 2 == 0 else (2, 1)):  # ABBA: neither always goes first
                    times[c].append(timed_job(instances[c], ids[:n]))
            base, value = statistics.median(times[1]), statistics.median(times[2])
            rows.append((n, base, value))
            result(f"analysis job wall time, {n} session(s), map concurrency 2", value, "s", baseline=base,
                   baseline_name="map concurrency 1",
                   note=f"medians of {args.runs} interleaved runs; map {args.map_tokens} / reduce "
                        f"{args.reduce_tokens} tokens max; llm-manager 2 parallel slots, CPU")
        print("\n sessions | concurrency 1 (s) | concurrency 2 (s) | ratio")
        for n, base, value in rows:
            print(f" {n:8d} | {base:17.2f} | {value:17.2f} | {value / base:5.2f}")
    finally:
        for instance in instances.values():
            instance.stop()
        sessions.stop()
        stop_llm()
        redis.terminate()


if __name__ == "__main__":
    main()
