"""Peak RSS of the gateway and the sessions service while recordings of 100 MiB and 1 GB (1000 MiB, just under
the default 1 GiB upload limit) are uploaded through the gateway (issues 2 and 13: growth ≤ 64 MB each — the
original buffered the whole body twice, §10 security 7).

The system runs with Redis, sessions and the gateway only (no transcriber: the job just stays queued).
RSS is sampled every 20 ms from /proc/<pid>/status. The upload's throughput is set against a plain
disk copy of the same file in the same run (the floor for "streamed to disk").

    .venv/bin/python bench/upload_memory.py [size MiB ...]   (default: 100 1000)
"""

from __future__ import annotations

import secrets
import shutil
import sys
import tempfile
import time
import wave
from pathlib import Path

import httpx
from memory import PeakSampler, rss_kb
from results import result

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "scripts"), str(ROOT / "tests" / "support")]

import therascript_local  # noqa: E402
from servers import free_port  # noqa: E402

WATCHED = ("gateway", "sessions")
FORM = {"clientName": "Bench", "sessionName": "Upload", "date": "2026-01-01", "sessionType": "Individual",
        "therapy": "CBT", "numSpeakers": "1"}


def silent_wav(path: Path, size_mb: int) -> Path:
    """A valid 16 kHz mono 16-bit WAV of about `size_mb` MB of silence, written in 1 MB blocks."""
    block = b"\0" * (1024 * 1024)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        for _ in range(size_mb):
            out.writeframesraw(block)
    return path


def upload_once(client: httpx.Client, pids: dict[str, int], audio: Path) -> tuple[dict[str, int], dict[str, int], float]:
    """One upload of `audio`; (RSS before in kB, peak RSS in kB, seconds). The job it queues is reset after."""
    client.get("/sessions")  # warm the connection paths before the baseline
    before = {name: rss_kb(pid) for name, pid in pids.items()}
    with PeakSampler(pids) as sampler, audio.open("rb") as file:
        started = time.perf_counter()
        response = client.post("/sessions/upload", data=FORM, files={"audioFile": (audio.name, file)})
        upload_s = time.perf_counter() - started
    response.raise_for_status()
    client.post("/jobs/reset-transcription")
    return before, sampler.peaks, upload_s


def main(sizes_mb: list[int]) -> None:
    """Uploads each size in turn to one running system (RSS measured from just before each upload)."""
    specs = tuple(s for s in therascript_local.PROCESSES if s.name in ("redis", *WATCHED))
    with tempfile.TemporaryDirectory(prefix="bench-upload-") as tmp:
        token = secrets.token_urlsafe(16)
        ports = {name: free_port() for name in therascript_local.DEFAULT_PORTS}
        system = therascript_local.start_system(ROOT, Path(tmp) / "system", ports=ports, specs=specs,
                                                env_overrides={"THERASCRIPT_API_TOKEN": token})
        try:
            pids = {name: system.running[name].popen.pid for name in WATCHED}
            with httpx.Client(base_url=system.base_url, headers={"Authorization": f"Bearer {token}"},
                              timeout=1800) as client:
                for size_mb in sizes_mb:
                    audio = silent_wav(Path(tmp) / f"upload-{size_mb}.wav", size_mb)
                    started = time.perf_counter()
                    shutil.copyfile(audio, Path(tmp) / "copy.wav")
                    copy_s = time.perf_counter() - started
                    (Path(tmp) / "copy.wav").unlink()
                    before, peaks, upload_s = upload_once(client, pids, audio)
                    audio.unlink()
                    report(size_mb, before, peaks, upload_s, copy_s)
        finally:
            system.stop()


def report(size_mb: int, before: dict[str, int], peaks: dict[str, int], upload_s: float, copy_s: float) -> None:
    print(f"upload of a {size_mb} MiB WAV through the gateway → sessions (gRPC client stream) → disk")
    for name in WATCHED:
        growth = (peaks[name] - before[name]) / 1024
        print(f"{name:9s} RSS before {before[name] / 1024:7.1f} MB, peak {peaks[name] / 1024:7.1f} MB, "
              f"growth {growth:6.1f} MB  (goal ≤ 64 MB)")
        result(f"{name} peak RSS growth, {size_mb} MiB upload", growth, "MB", goal="<= 64 MB",
               note=f"RSS before {before[name] / 1024:.0f} MB, sampled every 20 ms")
    print(f"upload {upload_s:.2f} s = {size_mb / upload_s:.0f} MB/s; plain disk copy {copy_s:.2f} s = "
          f"{size_mb / copy_s:.0f} MB/s; upload/copy time ratio {upload_s / copy_s:.1f}x")
    result(f"upload time, {size_mb} MiB", upload_s, "s", baseline=copy_s, baseline_name="plain disk copy",
           note=f"{size_mb / upload_s:.0f} MB/s through the system")


if __name__ == "__main__":
    main([int(arg) for arg in sys.argv[1:]] or [100, 1000])
