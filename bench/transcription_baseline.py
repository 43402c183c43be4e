"""Transcription cost of our pipeline against the bare libraries on the same file (issue 2: goal ≤ 1.10×).

(a) bare: faster-whisper with the same model and settings (batched as ours when batch_size > 0), then one
    speaker embedding (the same model as ours, CAM++ by default) per Whisper segment and
    AgglomerativeClustering — the least a script could do to get speaker-labelled text.
(b) ours: asr.transcribe + diarization.assign_speakers (per-word, smoothed) + paragraphs.build_paragraphs.

Models are loaded and warmed up before timing (a worker keeps them loaded); each figure is the median
wall time of RUNS interleaved runs. Then the real-time factor of (b) alone, one run per length, on the same
dialogue repeated to each of LENGTHS_S (1, 10 and 30 minutes by default; issue 13), with each stage's share.
Run:

    PYTHONPATH=services/sessions/src .venv-transcriber/bin/python bench/transcription_baseline.py \
        [seconds, default 90] [--lengths 60,600,1800]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import wave
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "support"))
sys.path.insert(0, str(ROOT / "services" / "sessions" / "src"))

from dialogue import TWO_SPEAKER_SCRIPT, make_dialogue  # noqa: E402

from therascript_sessions.transcription import asr, diarization  # noqa: E402
from therascript_sessions.transcription.paragraphs import build_paragraphs  # noqa: E402

RUNS = 3
LENGTHS_S = (60, 600, 1800)


def bare_pipeline_seconds(path: Path, num_speakers: int, config: asr.AsrConfig | None = None) -> float:
    """Wall time (s) of bare faster-whisper + one speaker embedding per segment + clustering on `path`.
    Uses the already loaded Whisper model and embedding model (as a warm worker would)."""
    import numpy as np
    from faster_whisper import decode_audio
    from sklearn.cluster import AgglomerativeClustering

    config = config or asr.AsrConfig()
    model, embedder = asr.load_model(config), diarization.load_embedder("auto")
    started = time.perf_counter()
    segments, _ = asr.decode(model, config, str(path), config.language)  # the same decoding as ours
    segments = list(segments)
    samples = decode_audio(str(path), sampling_rate=16000)
    embeddings = np.concatenate([embedder.embed(embedder.features(samples[int(s.start * 16000) : int(s.end * 16000)])[None])
                                 for s in segments]) if segments else np.zeros((0, embedder.dim))
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


def repeated(source: Path, path: Path, target_s: float) -> float:
    """Write `source` (a WAV) repeated and cut to `target_s` seconds into `path`, a frame block at a time;
    return the length written (s)."""
    with wave.open(str(source), "rb") as reader:
        params, frames = reader.getparams(), reader.readframes(reader.getnframes())
    wanted = int(target_s * params.framerate) * params.sampwidth * params.nchannels
    with wave.open(str(path), "wb") as writer:
        writer.setparams(params)
        written = 0
        while written < wanted:
            block = frames[: wanted - written]
            writer.writeframes(block)
            written += len(block)
    return target_s


def rtf_by_length(source: Path, lengths_s: list[float], folder: Path) -> None:
    """One warm run of our pipeline per length: prints and records its real-time factor and stage shares."""
    from results import result

    device = asr.resolve_device(asr.AsrConfig().device)
    for length_s in lengths_s:
        path = folder / f"dialogue-{length_s:.0f}s.wav"
        duration_s = repeated(source, path, length_s)
        run = pipeline_seconds(path, 2)
        path.unlink()
        minutes = f"{duration_s / 60:g} min"
        print(f"{minutes} of audio: {run['total']:.1f} s, real-time factor {run['total'] / duration_s:.4f} "
              f"(asr {run['asr']:.1f} s, diarization {run['diarization']:.1f} s)")
        note = f"the dialogue repeated to {minutes}, device {device}, one warm run"
        result(f"pipeline real-time factor, {minutes} audio", run["total"] / duration_s, "x", note=note)
        for stage in ("asr", "diarization"):
            result(f"pipeline stage share at {minutes}: {stage}", 100 * run[stage] / run["total"], "%", note=note)


def main(target_s: float = 90.0, lengths_s: list[float] | None = None) -> None:
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
        report(duration_s, bare_runs, ours)
        rtf_by_length(path, list(LENGTHS_S) if lengths_s is None else lengths_s, Path(tmp))


def report(duration_s: float, bare_runs: list[float], ours: list[dict[str, float]]) -> None:
    """Prints and records the side-by-side figures of `main`'s interleaved runs."""
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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("seconds", nargs="?", type=float, default=90.0, help="length of the side-by-side audio")
    parser.add_argument("--lengths", default=",".join(str(s) for s in LENGTHS_S),
                        help="comma-separated audio lengths (s) for the real-time factor; '' for none")
    arguments = parser.parse_args()
    main(arguments.seconds, [float(s) for s in arguments.lengths.split(",") if s])
