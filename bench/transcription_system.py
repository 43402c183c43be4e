"""Transcription wall time through the whole system against the bare libraries, same file, same run.

(a) bare: bench/transcription_baseline.bare_pipeline_seconds — faster-whisper + one resemblyzer
    embedding per segment + clustering, models warm (run in the transcriber's virtualenv);
(b) system: POST /api/sessions/upload through the gateway → RQ → transcriber (models warm) → paragraphs
    in the database → GET /api/sessions/:id says `completed` (polled every 50 ms).
Each figure is the median of RUNS runs after one warm-up; the ratio b/a is the issue's goal (≤ 1.10×).

    .venv/bin/python bench/transcription_system.py [audio seconds, default 90]
"""

from __future__ import annotations

import json
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "scripts"), str(ROOT / "tests" / "support")]

import therascript_local  # noqa: E402
from dialogue import TWO_SPEAKER_SCRIPT, make_dialogue  # noqa: E402
from servers import free_port  # noqa: E402

RUNS = 3
FORM = {"clientName": "Bench", "sessionName": "Bench", "date": "2026-01-01", "sessionType": "Individual",
        "therapy": "CBT", "numSpeakers": "2"}
BARE = """
import json, sys
sys.path.insert(0, "bench")
from pathlib import Path
from transcription_baseline import bare_pipeline_seconds
path, runs = Path(sys.argv[1]), int(sys.argv[2])
times = [bare_pipeline_seconds(path, 2) for _ in range(runs + 1)][1:]
print(json.dumps(times))
"""


def bare_seconds(path: Path) -> list[float]:
    python = ROOT / ".venv-transcriber" / "bin" / "python"
    env = {"PYTHONPATH": str(ROOT / "services" / "sessions" / "src"), "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([str(python), "-c", BARE, str(path), str(RUNS)], cwd=ROOT, env=env, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


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
        try:
            with httpx.Client(base_url=system.base_url, headers={"Authorization": f"Bearer {token}"},
                              timeout=120) as client:
                through = [system_seconds(client, audio) for _ in range(RUNS + 1)][1:]
        finally:
            system.stop()
        bare = bare_seconds(audio)
    b, s = statistics.median(bare), statistics.median(through)
    print(f"audio: {target_s:.0f} s two-voice espeak dialogue, {RUNS} runs each after a warm-up (medians)")
    print(f"bare faster-whisper + embeddings + clustering: {b:6.2f} s   runs {['%.2f' % t for t in bare]}")
    print(f"through the system (upload → completed):       {s:6.2f} s   runs {['%.2f' % t for t in through]}")
    print(f"ratio system / bare: {s / b:.2f}x  (goal ≤ 1.10x)")


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 90.0)
