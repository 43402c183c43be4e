"""Export and import of all data through the gateway (GET /api/admin/export-data, POST /api/admin/import-data
with the multipart field `backupFile`) for a data set with about 1 GB of audio: MB/s of each, and the peak
RSS of the ops and sessions services (and the gateway) while they run — memory must stay flat whatever the
data size (the archive is streamed, never held whole).

The system runs as `scripts/up` runs it (therascript_local.start_system) with Redis, sessions, chat,
llm-manager (no model loaded), analysis, ops and the gateway; no transcriber, no search server. The data set:
`--files` sessions whose uploads are random bytes (incompressible) adding up to `--audio-mb` MiB, stored
through the sessions database and uploads folder before the runs.

Baselines, in the same run and interleaved with the system's runs: export against Python's `tarfile` writing
the same uploads folder into a file (the floor for "read every byte and write one archive"), import against
`tarfile` extracting the exported archive with `filter='data'` (the floor for "read the archive and write
every member").

    .venv/bin/python bench/export_import.py [--audio-mb 1024] [--files 8] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import statistics
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import httpx
from memory import PeakSampler, rss_kb
from results import result

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "scripts"), str(ROOT / "tests" / "support")]

import therascript_local  # noqa: E402
from servers import free_port  # noqa: E402

SERVICES = ("redis", "sessions", "chat", "llm-manager", "analysis", "ops", "gateway")
WATCHED = ("ops", "sessions", "gateway")
BLOCK = 1024 * 1024


def populate(system_dir: Path, audio_mb: int, files: int) -> int:
    """Sessions rows with random-byte "recordings" of `audio_mb` MiB in all; returns the bytes written."""
    from therascript_sessions.storage.database import Database
    from therascript_sessions.storage.tables import ParagraphRow, SessionRow

    uploads = system_dir / "sessions" / "uploads"
    uploads.mkdir(parents=True, exist_ok=True)
    database = Database(f"sqlite:///{system_dir / 'sessions' / 'sessions.sqlite'}")
    per_file = audio_mb // files
    written = 0
    with database.transaction() as tx:
        for index in range(files):
            name = f"bench-{index}.wav"
            with (uploads / name).open("wb") as out:
                for _ in range(per_file):
                    out.write(os.urandom(BLOCK))
            written += per_file * BLOCK
            row = SessionRow(file_name=name, client_name=f"Client {index}", session_name=f"Session {index}",
                             date="2026-01-15T12:00:00.000Z", session_type="Individual", therapy="CBT",
                             status="completed", audio_path=name, duration_s=3600, show_speakers=1, num_speakers=2,
                             created_at_ms=int(time.time() * 1000), transcript_token_count=500)
            tx.add(row)
            tx.flush()
            tx.add_all(ParagraphRow(session_id=row.id, paragraph_index=i, timestamp_ms=i * 10_000,
                                    text=f"Paragraph {i} of session {index}.", speaker=f"SPEAKER_0{i % 2}")
                       for i in range(200))
    database.dispose()
    return written


def baseline_export(uploads: Path, target: Path) -> float:
    started = time.perf_counter()
    with tarfile.open(target, "w") as tar:
        tar.add(uploads, arcname="uploads")
    return time.perf_counter() - started


def baseline_import(archive: Path, target: Path) -> float:
    started = time.perf_counter()
    with tarfile.open(archive, "r:") as tar:
        tar.extractall(target, filter="data")
    return time.perf_counter() - started


def system_export(client: httpx.Client, target: Path) -> float:
    started = time.perf_counter()
    with client.stream("GET", "/admin/export-data") as reply, target.open("wb") as out:
        reply.raise_for_status()
        for chunk in reply.iter_bytes(BLOCK):
            out.write(chunk)
    return time.perf_counter() - started


def system_import(client: httpx.Client, archive: Path) -> float:
    started = time.perf_counter()
    with archive.open("rb") as file:
        reply = client.post("/admin/import-data", files={"backupFile": ("backup.tar", file, "application/x-tar")})
    elapsed = time.perf_counter() - started
    if reply.status_code != 200:
        raise RuntimeError(f"import answered {reply.status_code}: {reply.text}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--audio-mb", type=int, default=1024)
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="extra environment for every process (e.g. MALLOC_ARENA_MAX=2)")
    args = parser.parse_args()
    specs = tuple(s for s in therascript_local.PROCESSES if s.name in SERVICES)
    with tempfile.TemporaryDirectory(prefix="bench-export-", dir=ROOT / "var" if (ROOT / "var").is_dir() else None) as tmp:
        work = Path(tmp)
        token = secrets.token_urlsafe(16)
        ports = {name: free_port() for name in therascript_local.DEFAULT_PORTS}
        system_dir = work / "system"
        system = therascript_local.start_system(
            ROOT, system_dir, ports=ports, specs=specs,
            env_overrides={"THERASCRIPT_API_TOKEN": token, "LLM_LOAD_ON_START": "false", "OPS_ELASTICSEARCH_URL": "",
                           "LLM_INSTALL_PACKAGED_MODEL": "false", **dict(e.split("=", 1) for e in args.env)})
        try:
            size = populate(system_dir, args.audio_mb, args.files)
            mb = size / BLOCK
            pids = {name: system.running[name].popen.pid for name in WATCHED}
            times: dict[str, list[float]] = {"export": [], "import": [], "tar": [], "untar": []}
            peaks: dict[str, dict[str, list[int]]] = {"export": {n: [] for n in WATCHED},
                                                      "import": {n: [] for n in WATCHED}}
            idle = {name: rss_kb(pid) for name, pid in pids.items()}
            archive = work / "export.tar"
            with httpx.Client(base_url=system.base_url, headers={"Authorization": f"Bearer {token}"},
                              timeout=3600) as client:
                for run in range(args.runs):
                    times["tar"].append(baseline_export(system_dir / "sessions" / "uploads", work / "baseline.tar"))
                    with PeakSampler(pids) as sampler:
                        times["export"].append(system_export(client, archive))
                    for name in WATCHED:
                        peaks["export"][name].append(sampler.peaks[name])
                    (work / "baseline.tar").unlink()
                    times["untar"].append(baseline_import(archive, work / "untar"))
                    shutil.rmtree(work / "untar")
                    with PeakSampler(pids) as sampler:
                        times["import"].append(system_import(client, archive))
                    for name in WATCHED:
                        peaks["import"][name].append(sampler.peaks[name])
                    print(f"run {run + 1}: export {times['export'][-1]:.2f} s (tarfile {times['tar'][-1]:.2f} s), "
                          f"import {times['import'][-1]:.2f} s (tarfile extract {times['untar'][-1]:.2f} s)",
                          flush=True)
            archive_mb = archive.stat().st_size / BLOCK
        finally:
            system.stop()
    report(mb, archive_mb, args, times, peaks, idle)


def report(mb: float, archive_mb: float, args, times, peaks, idle) -> None:
    med = {k: statistics.median(v) for k, v in times.items()}
    note = f"{args.files} files, {mb:.0f} MiB of audio, archive {archive_mb:.0f} MiB, median of {args.runs} interleaved runs"
    print(f"\nexport/import of {mb:.0f} MiB of audio ({args.files} sessions; archive {archive_mb:.0f} MiB), "
          f"medians of {args.runs} runs")
    for phase, baseline, baseline_name in (("export", "tar", "tarfile writing the uploads folder"),
                                           ("import", "untar", "tarfile extracting the archive (filter='data')")):
        rate, base_rate = archive_mb / med[phase], archive_mb / med[baseline]
        print(f"{phase}: {med[phase]:.2f} s = {rate:.0f} MB/s; {baseline_name}: {med[baseline]:.2f} s = "
              f"{base_rate:.0f} MB/s; time ratio {med[phase] / med[baseline]:.2f}x")
        result(f"{phase} throughput", rate, "MB/s", baseline=base_rate, baseline_name=baseline_name,
               ratio=rate / base_rate, note=note)
        for name in WATCHED:
            peak = statistics.median(peaks[phase][name]) / 1024
            growth = peak - idle[name] / 1024
            print(f"  {name:9s} RSS idle {idle[name] / 1024:6.1f} MB, peak during {phase} {peak:6.1f} MB "
                  f"(growth {growth:5.1f} MB)")
            result(f"{name} peak RSS during {phase}", peak, "MB", goal="<= 200 MB",
                   note=f"idle {idle[name] / 1024:.0f} MB, growth {growth:.0f} MB; sampled every 20 ms")


if __name__ == "__main__":
    main()
