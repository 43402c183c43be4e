"""Transcription wall time through the whole system against the bare libraries, same file, same run.

(a) bare: bench/transcription_baseline.bare_pipeline_seconds — faster-whisper + one speaker
    embedding per segment + clustering, models warm (run in the transcriber's virtualenv);
(b) system: POST /api/sessions/upload through the gateway → RQ → transcriber (models warm) → paragraphs
    in the database → GET /api/sessions/:id says `completed` (polled every 50 ms).
Each figure is the median of RUNS interleaved runs after one warm-up each; the ratio b/a is the issue's goal (≤ 1.10×).

    .venv/bin/python bench/transcription_system.py [audio seconds, default 90]
"""

from __future__ import annotations

import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from results import result

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "scripts"), str(ROOT / "tests" / "support")]

import therascript_local  # noqa: E402
from dialogue import TWO_SPEAKER_SCRIPT, make_dialogue  # noqa: E402
from servers import free_port  # noqa: E402

RUNS = 3
FORM = {"clientName": "Bench", "sessionName": "Bench", "date": "2026-01-01", "sessionType": "Individual",
        "therapy": "CBT", "numSpeakers": "2"}
# The baseline runs in the transcriber's virtualenv (torch), as a child that keeps its models warm and
# times one bare run per line it reads, so system and bare runs can be interleaved.
BARE = """
import sys
sys.path.insert(0, "bench")
from pathlib import Path
from transcription_baseline import bare_pipeline_seconds
path = Path(sys.argv[1])
for _ in sys.stdin:
    print(bare_pipeline_seconds(path, 2), flush=True)
"""


class BareBaseline:
    """The bare pipeline in a child process: `run()` → wall seconds of one run (models warm after the first)."""

    def __init__(self, path: Path) -> None:
        python = ROOT / ".venv-transcriber" / "bin" / "python"
        env = {"PYTHONPATH": str(ROOT / "services" / "sessions" / "src"), "HF_HUB_OFFLINE": "1",
               "PATH": "/usr/bin:/bin"}
        self._child = subprocess.Popen([str(python), "-c", BARE, str(path)], cwd=ROOT, env=env, text=True,
                                       stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def run(self) -> float:
        self._child.stdin.write("run\n")
        self._child.stdin.flush()
        return float(self._child.stdout.readline())

    def close(self) -> None:
        self._child.stdin.close()
        self._child.wait(timeout=30)


def system_seconds(client: httpx.Client, path: Path) -> float:
    started = time.perf_counter()
    while True:
        with path.open("rb") as file:
            response = client.post("/sessions/upload", data=FORM, files={"audioFile": (path.name, file, "audio/wav")})
        if response.status_code != 503:
            break
        time.sleep(1)
        started = time.perf_counter()
    response.raise_for_status()
    session_id = response.json()["sessionId"]
    while (status := client.get(f"/sessions/{session_id}").json()["status"]) not in ("completed", "failed"):
        time.sleep(0.05)
    elapsed = time.perf_counter() - started
    if status != "completed":
        raise RuntimeError(f"session {session_id} failed")
    client.delete(f"/sessions/{session_id}")
    return elapsed


def long_dialogue(path: Path, target_s: float) -> Path:
    """A two-voice espeak dialogue of about `target_s` seconds (the test script, repeated)."""
    one = make_dialogue(path, TWO_SPEAKER_SCRIPT)[-1][1]
    make_dialogue(path, TWO_SPEAKER_SCRIPT * max(1, round(target_s / one)))
    return path


def main(target_s: float = 90.0) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        audio = long_dialogue(Path(tmp) / "dialogue.wav", target_s)
        token = secrets.token_urlsafe(16)
        ports = {name: free_port() for name in therascript_local.DEFAULT_PORTS}
        system = therascript_local.start_system(ROOT, Path(tmp) / "system", ports=ports,
                                                env_overrides={"THERASCRIPT_API_TOKEN": token})
        baseline = BareBaseline(audio)
        through, bare = [], []
        try:
            with httpx.Client(base_url=system.base_url, headers={"Authorization": f"Bearer {token}"},
                              timeout=120) as client:
                system_seconds(client, audio), baseline.run()  # warm-ups
                for _ in range(RUNS):  # interleaved, so background load hits both alike
                    through.append(system_seconds(client, audio))
                    bare.append(baseline.run())
        finally:
            baseline.close()
            system.stop()
    b, s = statistics.median(bare), statistics.median(through)
    print(f"audio: {target_s:.0f} s two-voice espeak dialogue, {RUNS} runs each after a warm-up (medians)")
    print(f"bare faster-whisper + embeddings + clustering: {b:6.2f} s   runs {[round(t, 2) for t in bare]}")
    print(f"through the system (upload → completed):       {s:6.2f} s   runs {[round(t, 2) for t in through]}")
    print(f"ratio system / bare: {s / b:.2f}x  (goal ≤ 1.10x)")
    result(f"transcription wall time, {target_s:.0f} s audio", s, "s", baseline=b,
           baseline_name="bare faster-whisper + embeddings + clustering", goal="<= 1.10x",
           note=f"median of {RUNS} interleaved runs after a warm-up")


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 90.0)
