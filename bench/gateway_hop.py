"""The gateway hop: p50/p99 latency and req/s of two reads through the real gateway → gRPC → sessions, against
the same query answered in-process by a plain FastAPI app reading the same database (issue 13: goal ≤ 1.10×).

- `GET /api/sessions` with 1 000 sessions in the database;
- `GET /api/sessions/:id/transcript` of a session with 2 000 paragraphs (~150 characters each).

Both servers are one uvicorn process each (same loop and HTTP implementation as the gateway), started here;
the baseline (`--serve-baseline`, this file) reads the database with the sessions service's own storage layer
(SessionService.list, TranscriptService.get) and answers the same JSON with `JSONResponse`. The gateway runs with
authentication on (its middleware is part of the hop). Load comes from this process: `--concurrency` threads, each
with its own kept-alive httpx client, issuing requests back to back for `--requests` requests per run; latency is
per request (send → last body byte), req/s = requests / wall time of the run. Runs alternate gateway/baseline
(order flipping each round) and every figure is the median over `--rounds` rounds. Beside the wall-clock figures,
the CPU time the server processes spent per request (gateway + sessions vs the baseline process, /proc/<pid>/stat)
is reported: it is what the hop costs, and it moves far less than latency when the machine is busy.

    .venv/bin/python bench/gateway_hop.py [--rounds 7] [--requests 100] [--concurrency 1 4]
    .venv/bin/python bench/gateway_hop.py --profile bench/results/gateway_hop.profile.txt   (no timing: a second
        gateway under pyinstrument serves the heavy read 300 times; its call tree is written to the file)
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from cpu import cpu_s
from results import result

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "scripts"), str(ROOT / "tests" / "support")]

import therascript_local  # noqa: E402
from servers import free_port, wait_for_port  # noqa: E402

SESSIONS = 1000
PARAGRAPHS = 2000
SPECS = ("redis", "sessions", "gateway")


# --- the baseline server ----------------------------------------------------------------------------------------
def baseline_app(database_url: str):
    """A plain FastAPI app answering the two reads in-process from the sessions database."""
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse

    from therascript_sessions.sessions import SessionService
    from therascript_sessions.storage.database import Database
    from therascript_sessions.transcripts import TranscriptService

    db = Database(database_url)
    sessions = SessionService(db, Path("/nonexistent"), None)  # type: ignore[arg-type]  (no delete here)
    transcripts = TranscriptService(db)
    app = FastAPI()

    @app.get("/api/sessions")
    def list_sessions() -> JSONResponse:
        return JSONResponse([{
            "id": r.id, "fileName": r.file_name, "clientName": r.client_name, "sessionName": r.session_name,
            "date": r.date, "sessionType": r.session_type, "therapy": r.therapy, "audioPath": r.audio_path,
            "status": r.status, "whisperJobId": r.whisper_job_id, "transcriptTokenCount": r.transcript_token_count,
            "duration": r.duration_s, "errorMessage": r.error_message, "showSpeakers": r.show_speakers,
        } for r in sessions.list()])

    @app.get("/api/sessions/{session_id}/transcript")
    def transcript(session_id: int) -> JSONResponse:
        out = []
        for p in transcripts.get(session_id):
            item = {"id": p.paragraph_index, "timestamp": p.timestamp_ms, "text": p.text}
            if p.speaker is not None:
                item["speaker"] = p.speaker
            out.append(item)
        return JSONResponse(out)

    return app


def serve_baseline(port: int, database_url: str) -> None:
    import uvicorn
    uvicorn.run(baseline_app(database_url), host="127.0.0.1", port=port, log_level="warning",
                timeout_keep_alive=5)


# --- seeding and load --------------------------------------------------------------------------------------------
def seed(database_url: str) -> int:
    """1 000 completed sessions; the newest has 2 000 paragraphs. Returns that session's id."""
    from therascript_sessions.storage.database import Database
    from therascript_sessions.storage.tables import ParagraphRow, SessionRow

    db = Database(database_url)
    sentence = "so I noticed that when the week gets busy I stop sleeping well and then everything feels heavier"
    words = sentence.split(" ")
    with db.transaction() as session:
        rows = [SessionRow(file_name=f"session-{i}.wav", client_name=f"Client {i % 40}", session_name=f"Session {i}",
                           date=f"20{20 + i % 6}-{1 + i % 12:02d}-{1 + i % 28:02d}T12:00:00.000Z",
                           session_type="Individual", therapy="CBT", status="completed", duration_s=3000 + i,
                           transcript_token_count=12_000 + i, show_speakers=1, num_speakers=2,
                           audio_path=f"{i}.wav", created_at_ms=1_700_000_000_000 + i)
                for i in range(SESSIONS)]
        session.add_all(rows)
        session.flush()
        heavy = rows[-1].id
        session.add_all(ParagraphRow(session_id=heavy, paragraph_index=i, timestamp_ms=i * 7_500,
                                     text=" ".join(words[(i + k) % len(words)] for k in range(28)),
                                     speaker=f"SPEAKER_{i % 2:02d}") for i in range(PARAGRAPHS))
    db.dispose()
    return heavy


def load(base_url: str, path: str, headers: dict[str, str], concurrency: int, requests: int,
         pids: list[int]) -> dict[str, float]:
    """`requests` GETs of `path`, `concurrency` at a time: p50/p99 latency (ms), req/s, and the CPU ms per request
    the server processes `pids` spent (less sensitive to other load on the machine than wall-clock figures)."""
    latencies: list[float] = []
    per_thread = [requests // concurrency + (i < requests % concurrency) for i in range(concurrency)]
    clients = [httpx.Client(base_url=base_url, headers=headers, timeout=60) for _ in range(concurrency)]
    for client in clients:  # connect before timing
        client.get(path).raise_for_status()
    barrier = threading.Barrier(concurrency + 1)
    lock = threading.Lock()

    def worker(client: httpx.Client, count: int) -> None:
        mine = []
        barrier.wait()
        for _ in range(count):
            started = time.perf_counter()
            response = client.get(path)
            response.raise_for_status()
            mine.append(time.perf_counter() - started)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker, args=(c, n)) for c, n in zip(clients, per_thread)]
    for thread in threads:
        thread.start()
    cpu_before = [cpu_s(pid) for pid in pids]
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    cpu = [cpu_s(pid) - before for pid, before in zip(pids, cpu_before)]
    for client in clients:
        client.close()
    latencies.sort()
    return {"p50": 1000 * latencies[len(latencies) // 2],
            "p99": 1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
            "rps": len(latencies) / wall, "cpu": 1000 * sum(cpu) / len(latencies),
            "cpu_first": 1000 * cpu[0] / len(latencies)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--profile", type=Path, help="write a pyinstrument profile of the gateway instead")
    parser.add_argument("--serve-baseline", nargs=2, metavar=("PORT", "DATABASE_URL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_baseline:
        serve_baseline(int(args.serve_baseline[0]), args.serve_baseline[1])
        return
    specs = tuple(s for s in therascript_local.PROCESSES if s.name in SPECS)
    with tempfile.TemporaryDirectory(prefix="bench-hop-") as tmp:
        token = secrets.token_urlsafe(16)
        ports = {name: free_port() for name in therascript_local.DEFAULT_PORTS}
        system = therascript_local.start_system(ROOT, Path(tmp) / "system", ports=ports, specs=specs,
                                                env_overrides={"THERASCRIPT_API_TOKEN": token})
        baseline = None
        try:
            database_url = f"sqlite:///{system.data_dir / 'sessions' / 'sessions.sqlite'}"
            if not (system.data_dir / "sessions" / "sessions.sqlite").exists():
                raise SystemExit(f"no sessions database under {system.data_dir}: {sorted(system.data_dir.iterdir())}")
            heavy = seed(database_url)
            port = free_port()
            baseline = subprocess.Popen([sys.executable, __file__, "--serve-baseline", str(port), database_url],
                                        cwd=ROOT, env={**os.environ, **system.env}, stdout=subprocess.DEVNULL)
            wait_for_port(port)
            targets = {"gateway": (system.base_url.removesuffix("/api"), {"Authorization": f"Bearer {token}"},
                                   [system.running[name].popen.pid for name in ("gateway", "sessions")]),
                       "baseline": (f"http://127.0.0.1:{port}", {}, [baseline.pid])}
            reads = {"GET /api/sessions": "/api/sessions", "GET /api/sessions/:id/transcript":
                     f"/api/sessions/{heavy}/transcript"}
            check_same_answers(targets, reads)
            if args.profile:
                profile_gateway(system, token, reads, args.profile)
                return
            runs = measure(targets, reads, args)
        finally:
            if baseline is not None:
                baseline.send_signal(signal.SIGTERM)
                baseline.wait(timeout=20)
            system.stop()
    report(runs, args)


def profile_gateway(system: therascript_local.System, token: str, reads: dict[str, str], out: Path) -> None:
    """A second gateway process (same settings as the system's, its own port) under pyinstrument, serving each
    read 300 times; stopped with SIGINT so pyinstrument writes its text report to `out`."""
    port = free_port()
    out.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pyinstrument", "-i", "0.0005", "-r", "text", "--show-all", "-o", str(out),
               "-m", "therascript_gateway.main"]
    gateway = subprocess.Popen(command, cwd=ROOT, env={**system.env, "THERASCRIPT_PORT": str(port)})
    try:
        wait_for_port(port)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {token}"},
                          timeout=60) as client:
            for path in reads.values():
                for _ in range(300):
                    client.get(path).raise_for_status()
    finally:
        gateway.send_signal(signal.SIGINT)
        gateway.wait(timeout=60)
    print(f"pyinstrument profile of the gateway: {out}")


def check_same_answers(targets: dict, reads: dict[str, str]) -> None:
    """Both servers must answer the same JSON, or the comparison means nothing."""
    for path in reads.values():
        answers = [httpx.get(base + path, headers=headers, timeout=60).json() for base, headers, _ in targets.values()]
        if answers[0] != answers[1]:
            raise SystemExit(f"gateway and baseline answer {path} differently: "
                             f"{str(answers[0])[:300]} … vs {str(answers[1])[:300]} …")


def measure(targets: dict, reads: dict[str, str], args: argparse.Namespace) -> dict:
    """{(read, concurrency, target): [ {p50, p99, rps} per round ]}"""
    runs: dict = {}
    for read, path in reads.items():
        for concurrency in args.concurrency:
            for base, headers, pids in targets.values():  # warm-up
                load(base, path, headers, concurrency, max(20, args.requests // 10), pids)
            for round_ in range(args.rounds):
                order = list(targets) if round_ % 2 == 0 else list(reversed(targets))
                for name in order:
                    base, headers, pids = targets[name]
                    runs.setdefault((read, concurrency, name), []).append(
                        load(base, path, headers, concurrency, args.requests, pids))
    return runs


def report(runs: dict, args: argparse.Namespace) -> None:
    load_avg = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    note = f"{args.rounds} interleaved rounds of {args.requests} requests, medians; load avg {load_avg}"
    print(f"gateway → gRPC → sessions vs in-process FastAPI on the same database ({SESSIONS} sessions, "
          f"{PARAGRAPHS} paragraphs); {note}")
    keys = sorted({(read, c) for read, c, _ in runs})
    for read, concurrency in keys:
        median = {name: {k: statistics.median(r[k] for r in runs[(read, concurrency, name)])
                         for k in ("p50", "p99", "rps", "cpu", "cpu_first")} for name in ("gateway", "baseline")}
        g, b = median["gateway"], median["baseline"]
        print(f"{read} (concurrency {concurrency}): gateway p50 {g['p50']:.2f} ms p99 {g['p99']:.2f} ms "
              f"{g['rps']:.0f} req/s | baseline p50 {b['p50']:.2f} ms p99 {b['p99']:.2f} ms {b['rps']:.0f} req/s | "
              f"p50 {g['p50'] / b['p50']:.2f}x, req/s {g['rps'] / b['rps']:.2f}x | CPU per request: gateway + "
              f"sessions {g['cpu']:.2f} ms (gateway {g['cpu_first']:.2f} ms), baseline {b['cpu']:.2f} ms "
              f"({g['cpu'] / b['cpu']:.2f}x)")
        label = f"{read}, concurrency {concurrency}"
        for key in ("p50", "p99"):
            result(f"{label}: {key}", g[key], "ms", baseline=b[key], baseline_name="in-process FastAPI",
                   goal="<= 1.10x", note=note)
        # for throughput the goal is the mirror image: at most 10 % fewer requests per second
        result(f"{label}: req/s", g["rps"], "req/s", baseline=b["rps"], baseline_name="in-process FastAPI",
               goal=">= 0.91x", note=note)
        result(f"{label}: server CPU per request", g["cpu"], "ms", baseline=b["cpu"],
               baseline_name="in-process FastAPI", note=note + "; gateway + sessions processes vs the baseline's one")


if __name__ == "__main__":
    main()
