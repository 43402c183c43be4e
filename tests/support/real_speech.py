"""Real human speech with references, fetched from PyPI sdists, and the scores the quality checks print.

Used by bench/quality.py (the full figures) and services/sessions/tests/transcription/test_quality.py (the CI
subset). Nothing here is committed audio: `fetch()` runs `pip download` of two source distributions into an
ignored cache folder (var/quality-cache, or $THERASCRIPT_QUALITY_CACHE) and unpacks only their test data.

Data and licences (attribution kept as the licences ask):

- pyannote-audio 4.0.7 sdist, `tests/data/`: fourteen 30 s meeting clips (16 kHz mono), with RTTM speaker turns
  and UEM (1–4 speakers, overlapping speech). pyannote.audio is MIT-licensed, Copyright (c) 2020 CNRS
  (Hervé Bredin and contributors); the clips are excerpts of the AMI Meeting Corpus (speaker ids like MEE068),
  which is distributed under CC BY 4.0 (AMI Consortium, University of Edinburgh and partners).
- pocketsphinx 5.1.1 sdist, `test/data/librivox/`: five LibriVox read-speech clips (Jane Austen, "Sense and
  Sensibility", chapter 1) with reference transcripts. LibriVox recordings are in the public domain; the
  package is BSD-2-Clause, Copyright (c) 1999-2016 Carnegie Mellon University.

Scores: WER with jiwer after a light normalisation (lower case, punctuation removed, "mr" → "mister", digits are
left as spoken by the reference); DER and JER with pyannote.metrics against the RTTM inside the UEM, at collar 0
and 0.25 s, with overlapping speech scored or skipped. jiwer and pyannote.metrics come from the
`therascript-sessions[quality]` extra and are imported lazily.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tarfile
import unicodedata
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PYANNOTE_SDIST = ("pyannote-audio", "4.0.7", "pyannote_audio-4.0.7")
POCKETSPHINX_SDIST = ("pocketsphinx", "5.1.1", "pocketsphinx-5.1.1")
COLLARS_S = (0.0, 0.25)


def cache_dir() -> Path:
    """Where the data is kept: $THERASCRIPT_QUALITY_CACHE or <repo>/var/quality-cache (ignored by git)."""
    return Path(os.environ.get("THERASCRIPT_QUALITY_CACHE") or ROOT / "var" / "quality-cache")


@dataclass(frozen=True)
class DiarizationClip:
    """A pyannote test clip: uri (as in the RTTM), audio path, reference turns (start_s, end_s, speaker) and
    the scored region (start_s, end_s) from the UEM."""

    uri: str
    audio: Path
    turns: tuple[tuple[float, float, str], ...]
    uem: tuple[float, float]

    @property
    def num_speakers(self) -> int:
        return len({speaker for _, _, speaker in self.turns})


@dataclass(frozen=True)
class AsrClip:
    """A LibriVox clip: name, audio path and reference transcript (lower case words)."""

    name: str
    audio: Path
    reference: str


def _download(name: str, version: str, folder: str, members: str) -> Path:
    """Unpacked `members` (a folder inside the sdist) of `name==version` under the cache; downloads once.
    Raises RuntimeError when pip cannot fetch it."""
    target = cache_dir() / folder
    marker = target / ".complete"
    if marker.is_file():
        return target
    sdists = cache_dir() / "sdists"
    sdists.mkdir(parents=True, exist_ok=True)
    archive = sdists / f"{folder}.tar.gz"
    if not archive.is_file():
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", name,
                   f"{name}=={version}", "-d", str(sdists)]
        done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
        if done.returncode != 0 or not archive.is_file():
            raise RuntimeError(f"pip download {name}=={version} failed: {done.stderr.strip()[-500:]}")
    with tarfile.open(archive) as tar:
        wanted = [m for m in tar.getmembers() if m.name.startswith(f"{folder}/{members}") or
                  m.name == f"{folder}/LICENSE"]
        tar.extractall(cache_dir(), members=wanted, filter="data")
    marker.write_text("ok\n")
    return target


def _ascii_name(name: str) -> str:
    """'trñ00' → 'trn00' (one clip's file name is accented, its RTTM uri is not)."""
    return unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()


def diarization_clips() -> list[DiarizationClip]:
    """The 14 pyannote-audio test clips with their references, sorted by uri (fetched on first use)."""
    data = _download(*PYANNOTE_SDIST, "tests/data") / "tests" / "data"
    turns: dict[str, list[tuple[float, float, str]]] = {}
    for rttm in sorted(data.glob("*.rttm")):
        for line in rttm.read_text(encoding="utf-8").splitlines():
            fields = line.split()
            if len(fields) >= 8 and fields[0] == "SPEAKER":
                start, duration = float(fields[3]), float(fields[4])
                turns.setdefault(fields[1], []).append((start, start + duration, fields[7]))
    uems: dict[str, tuple[float, float]] = {}
    for uem in sorted(data.glob("*.uem")):
        for line in uem.read_text(encoding="utf-8").splitlines():
            fields = line.split()
            if len(fields) == 4:
                uems[fields[0]] = (float(fields[2]), float(fields[3]))
    audio = {_ascii_name(path.stem): path for path in data.glob("*.wav")}
    return [DiarizationClip(uri, audio[uri], tuple(sorted(turns[uri])), uems.get(uri, (0.0, 30.0)))
            for uri in sorted(turns) if uri in audio]


def asr_clips() -> list[AsrClip]:
    """The five LibriVox clips of the pocketsphinx sdist with their reference transcripts (fetched on first use)."""
    data = _download(*POCKETSPHINX_SDIST, "test/data/librivox") / "test" / "data" / "librivox"
    clips = []
    for name in (data / "fileids").read_text().split():
        reference = (data / f"{name}.txt").read_text(encoding="utf-8").strip()
        clips.append(AsrClip(name, data / f"{name}.wav", reference))
    return clips


# --- scores ---------------------------------------------------------------------------------------------

_SPELLED = {"mr": "mister", "mrs": "missus", "dr": "doctor", "st": "saint"}


def normalise_text(text: str) -> str:
    """Lower case, apostrophes kept inside words, other punctuation dropped, a few abbreviations spelled out."""
    text = unicodedata.normalize("NFKC", text).lower().replace("’", "'")
    words = re.findall(r"[a-z0-9]+(?:'[a-z0-9]+)*", text)
    return " ".join(_SPELLED.get(word, word) for word in words)


def word_error_rate(references: list[str], hypotheses: list[str]) -> float:
    """Corpus WER (all clips' errors over all reference words) after `normalise_text`."""
    import jiwer

    return float(jiwer.wer([normalise_text(r) for r in references], [normalise_text(h) for h in hypotheses]))


def hypothesis_turns(words: list, max_gap_s: float = 0.5) -> list[tuple[float, float, str]]:
    """Speaker turns (start_s, end_s, speaker) from speaker-labelled words: consecutive words of one speaker
    merged across pauses shorter than `max_gap_s`. Unlabelled words are skipped."""
    turns: list[tuple[float, float, str]] = []
    for word in words:
        if word.speaker is None:
            continue
        if turns and turns[-1][2] == word.speaker and word.start_s - turns[-1][1] < max_gap_s:
            turns[-1] = (turns[-1][0], max(turns[-1][1], word.end_s), word.speaker)
        else:
            turns.append((word.start_s, word.end_s, word.speaker))
    return turns


def _annotation(uri: str, turns) -> object:
    from pyannote.core import Annotation, Segment

    annotation = Annotation(uri=uri)
    for index, (start, end, speaker) in enumerate(turns):
        if end > start:
            annotation[Segment(start, end), index] = speaker
    return annotation


@dataclass
class DiarizationScore:
    """Accumulated DER/JER over clips, one metric object per (metric, collar, skip_overlap)."""

    def __post_init__(self) -> None:
        from pyannote.metrics.diarization import DiarizationErrorRate, JaccardErrorRate

        self.metrics = {}
        for collar in COLLARS_S:
            for skip in (False, True):
                # pyannote's collar is the total width around each boundary: 2 × the ± tolerance.
                self.metrics[("DER", collar, skip)] = DiarizationErrorRate(collar=2 * collar, skip_overlap=skip)
                self.metrics[("JER", collar, skip)] = JaccardErrorRate(collar=2 * collar, skip_overlap=skip)

    def add(self, clip: DiarizationClip, turns: list[tuple[float, float, str]]) -> dict[tuple, float]:
        """Score one clip's hypothesis turns; returns {(metric, collar_s, skip_overlap): value} for the clip."""
        from pyannote.core import Segment, Timeline

        reference, hypothesis = _annotation(clip.uri, clip.turns), _annotation(clip.uri, turns)
        uem = Timeline([Segment(*clip.uem)], uri=clip.uri)
        return {key: float(metric(reference, hypothesis, uem=uem)) for key, metric in self.metrics.items()}

    def totals(self) -> dict[tuple, float]:
        """Each metric over all clips added so far (total errors / total reference speech)."""
        return {key: float(abs(metric)) for key, metric in self.metrics.items()}

    def components(self, collar_s: float = 0.25, skip_overlap: bool = False) -> dict[str, float]:
        """DER's parts over all clips as fractions of the reference speech: missed, false alarm, confusion."""
        accumulated = self.metrics[("DER", collar_s, skip_overlap)].accumulated_
        total = accumulated["total"] or 1.0
        return {name: accumulated[f"{name}"] / total for name in ("missed detection", "false alarm", "confusion")}
