"""Peak RSS of the gateway and the sessions service while a 500 MB recording is uploaded through the
gateway (issue 2: growth ≤ 64 MB each — the original buffered the whole body twice, §10 security 7).

The system runs with Redis, sessions and the gateway only (no transcriber: the job just stays queued).
RSS is sampled every 20 ms from /proc/<pid>/status. The upload's throughput is set against a plain
disk copy of the same file in the same run (the floor for "streamed to disk").

    .venv/bin/python bench/upload_memory.py [size MB, default 500]
"""

from __future__ import annotations

import secrets
import shutil
import sys
import tempfile
import threading
import time
import wave
from pathlib import Path

import httpx
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


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class PeakSampler:
    """Samples the RSS (kB) of the given pids every 20 ms on a thread; `peaks` after `stop()`."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.peaks = {name: rss_kb(pid) for name, pid in pids.items()}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            for name, pid in self.pids.items():
                self.peaks[name] = max(self.peaks[name], rss_kb(pid))

    def __enter__(self) -> "PeakSampler":
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def main(size_mb: int = 500) -> None:
    specs = tuple(s for s in therascript_local.PROCESSES if s.name in ("redis", *WATCHED))
    with tempfile.TemporaryDirectory(prefix="bench-upload-") as tmp:
        audio = silent_wav(Path(tmp) / "long.wav", size_mb)
        started = time.perf_counter()
        shutil.copyfile(audio, Path(tmp) / "copy.wav")
        copy_s = time.perf_counter() - started
        (Path(tmp) / "copy.wav").unlink()
        token = secrets.token_urlsafe(16)
        ports = {name: free_port() for name in therascript_local.DEFAULT_PORTS}
        system = therascript_local.start_system(ROOT, Path(tmp) / "system", ports=ports, specs=specs,
                                                env_overrides={"THERASCRIPT_API_TOKEN": token})
        try:
            pids = {name: system.running[name].popen.pid for name in WATCHED}
            with httpx.Client(base_url=system.base_url, headers={"Authorization": f"Bearer {token}"},
                              timeout=600) as client:
                client.get("/sessions")  # warm the connection paths before the baseline
                before = {name: rss_kb(pid) for name, pid in pids.items()}
                with PeakSampler(pids) as sampler, audio.open("rb") as file:
                    started = time.perf_counter()
                    response = client.post("/sessions/upload", data=FORM, files={"audioFile": ("long.wav", file)})
                    upload_s = time.perf_counter() - started
                response.raise_for_status()
                client.post("/jobs/reset-transcription")
        finally:
            system.stop()
    print(f"upload of a {size_mb} MB WAV through the gateway → sessions (gRPC client stream) → disk")
    for name in WATCHED:
        growth = (sampler.peaks[name] - before[name]) / 1024
        print(f"{name:9s} RSS before {before[name] / 1024:7.1f} MB, peak {sampler.peaks[name] / 1024:7.1f} MB, "
              f"growth {growth:6.1f} MB  (goal ≤ 64 MB)")
        result(f"{name} peak RSS growth, {size_mb} MB upload", growth, "MB", goal="<= 64 MB")
    print(f"upload {upload_s:.2f} s = {size_mb / upload_s:.0f} MB/s; plain disk copy {copy_s:.2f} s = "
          f"{size_mb / copy_s:.0f} MB/s; upload/copy time ratio {upload_s / copy_s:.1f}x")
    result(f"upload time, {size_mb} MB", upload_s, "s", baseline=copy_s, baseline_name="plain disk copy")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 500)
