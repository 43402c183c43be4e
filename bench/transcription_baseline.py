"""Transcription cost of our pipeline against the bare libraries on the same file (issue 2: goal ≤ 1.10×).

(a) bare: faster-whisper with the same model and settings, then one resemblyzer embedding per Whisper
    segment and AgglomerativeClustering — the least a script could do to get speaker-labelled text.
(b) ours: asr.transcribe + diarization.assign_speakers (per-word, smoothed) + paragraphs.build_paragraphs.

Models are loaded and warmed up before timing (a worker keeps them loaded); each figure is the median
wall time of RUNS interleaved runs. Run:

    PYTHONPATH=services/sessions/src .venv-transcriber/bin/python bench/transcription_baseline.py [seconds]
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "support"))
sys.path.insert(0, str(ROOT / "services" / "sessions" / "src"))

from dialogue import TWO_SPEAKER_SCRIPT, make_dialogue  # noqa: E402

from therascript_sessions.transcription import asr, diarization  # noqa: E402
from therascript_sessions.transcription.paragraphs import build_paragraphs  # noqa: E402

RUNS = 3


def bare_pipeline_seconds(path: Path, num_speakers: int, config: asr.AsrConfig | None = None) -> float:
    """Wall time (s) of bare faster-whisper + one resemblyzer embedding per segment + clustering on `path`.
    Uses the already loaded Whisper model and voice encoder (as a warm worker would)."""
    import numpy as np
    from faster_whisper import decode_audio
    from sklearn.cluster import AgglomerativeClustering

    config = config or asr.AsrConfig()
    model, encoder = asr.load_model(config), diarization.load_encoder("auto")
    started = time.perf_counter()
    segments, _ = model.transcribe(str(path), beam_size=config.beam_size, language=config.language,
                                   vad_filter=config.vad_filter, word_timestamps=True,
                                   condition_on_previous_text=config.condition_on_previous_text)
    segments = list(segments)
    samples = decode_audio(str(path), sampling_rate=16000)
    embeddings = np.array([encoder.embed_utterance(samples[int(s.start * 16000) : int(s.end * 16000)])
                           for s in segments])
    if num_speakers >= 2 and len(segments) >= num_speakers:
        AgglomerativeClustering(n_clusters=num_speakers, metric="cosine", linkage="average").fit_predict(embeddings)
    return time.perf_counter() - started


def pipeline_seconds(path: Path, num_speakers: int, config: asr.AsrConfig | None = None) -> dict[str, float]:
    """Wall time (s) of our pipeline on `path`, per stage ("asr", "diarization", "paragraphs") and "total"."""
    config = config or asr.AsrConfig()
    marks = [time.perf_counter()]
    result = asr.transcribe(path, config)
    marks.append(time.perf_counter())
    words = diarization.assign_speakers(path, result.words, num_speakers)
    marks.append(time.perf_counter())
    build_paragraphs(words)
    marks.append(time.perf_counter())
    stages = dict(zip(("asr", "diarization", "paragraphs"), (b - a for a, b in zip(marks, marks[1:]))))
    return {**stages, "total": marks[-1] - marks[0]}


def long_dialogue(path: Path, target_s: float) -> float:
    """Write a two-voice dialogue of at least `target_s` seconds (the script repeated); return its length."""
    script = list(TWO_SPEAKER_SCRIPT)
    turns = make_dialogue(path, script)
    repeats = max(1, round(target_s / turns[-1][1] + 0.5))
    return make_dialogue(path, script * repeats)[-1][1]


def main(target_s: float = 90.0) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-transcription-") as tmp:
        path = Path(tmp) / "dialogue.wav"
        duration_s = long_dialogue(path, target_s)
        bare_pipeline_seconds(path, 2)  # warm-up: model loads, librosa's numba compilation
        pipeline_seconds(path, 2)
        bare_runs: list[float] = []
        ours: list[dict[str, float]] = []
        for _ in range(RUNS):  # interleaved, so that load from other processes hits both alike
            bare_runs.append(bare_pipeline_seconds(path, 2))
            ours.append(pipeline_seconds(path, 2))
    bare = statistics.median(bare_runs)
    median = {stage: statistics.median(run[stage] for run in ours) for stage in ours[0]}
    device = asr.resolve_device(asr.AsrConfig().device)
    print(f"audio: {duration_s:.1f} s two-voice espeak dialogue; device {device}; median of {RUNS} runs")
    print(f"(a) bare faster-whisper + segment embeddings + clustering: {bare:.2f} s")
    print(f"(b) pipeline: {median['total']:.2f} s (asr {median['asr']:.2f} s, diarization "
          f"{median['diarization']:.2f} s, paragraphs {median['paragraphs'] * 1000:.1f} ms)")
    print(f"ratio b/a: {median['total'] / bare:.3f} (best runs: {min(r['total'] for r in ours) / min(bare_runs):.3f}); "
          f"real-time factor of (b): {median['total'] / duration_s:.3f}")
    from results import result
    note = f"{duration_s:.0f} s audio, device {device}, median of {RUNS} interleaved runs"
    result(f"pipeline wall time, {duration_s:.0f} s audio", median["total"], "s", baseline=bare,
           baseline_name="bare faster-whisper + embeddings + clustering", goal="<= 1.10x", note=note)
    result(f"pipeline real-time factor, {duration_s:.0f} s audio", median["total"] / duration_s, "x", note=note)
    for stage in ("asr", "diarization", "paragraphs"):
        result(f"pipeline stage share: {stage}", 100 * median[stage] / median["total"], "%", note=note)


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 90.0)
