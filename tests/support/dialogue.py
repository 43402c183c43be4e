"""Synthetic multi-speaker recordings with a known script, for transcription tests and benches.

espeak-ng speaks each turn with a distinct voice (MODELS.md "Test audio"); sox joins the turns with short
silences into one 16 kHz mono WAV. The returned timings say who speaks when, so tests can check the words
(tolerantly) and the speaker labels per turn. Needs the Debian packages espeak-ng and sox.

Every sox call goes through `_sox`, with -R (repeatable): sox dithers when it resamples to 16 bits, from a time-seeded random
generator unless told otherwise, so each test session heard a slightly different recording, and a tight bound
(test_asr's windowed transcription) failed about one session in three. The same script now gives the same file.
"""

from __future__ import annotations

import difflib
import re
import subprocess
import tempfile
import wave
from pathlib import Path

VOICES = {"A": "en+m3", "B": "en+f3"}
"""Voice keys used in scripts → espeak-ng voices (a male and a female voice). Any other key is taken as an
espeak-ng voice name itself (e.g. "en-us+m7")."""

SAMPLE_RATE = 16000

TWO_SPEAKER_SCRIPT: list[tuple[str, str]] = [
    ("A", "Good morning. How have you been feeling since our last session?"),
    ("B", "Honestly, the week was hard. I could not sleep well most nights."),
    ("A", "I am sorry to hear that. What was on your mind at night?"),
    ("B", "Mostly work. My manager keeps changing the plan for the project."),
    ("A", "That sounds stressful. Did you try the breathing exercise we practiced?"),
    ("B", "Yes, twice. It helped a little on Thursday evening."),
    ("A", "Good. Let us talk about what made Thursday different."),
    ("B", "I went for a long walk with my sister before dinner."),
]
"""Eight short alternating turns, about 30 s in all: plain words that Whisper tiny.en gets right."""

Turn = tuple[float, float, str, str]
"""(start_s, end_s, voice, text) of one spoken turn in the joined recording."""


def make_dialogue(path: Path, turns: list[tuple[str, str]], gap_s: float = 0.6) -> list[Turn]:
    """Write a dialogue to `path` (16 kHz mono 16-bit WAV) and return each turn's timing.

    turns: (voice key or espeak voice, text) in speaking order. gap_s: silence between turns (s).
    Raises subprocess.CalledProcessError when espeak-ng or sox fail.
    """
    path = Path(path)
    with tempfile.TemporaryDirectory(prefix="dialogue-") as tmp:
        pieces: list[Path] = []
        timings: list[Turn] = []
        position_s = 0.0
        silence = _silence(Path(tmp) / "gap.wav", gap_s)
        for number, (voice_key, text) in enumerate(turns):
            voice = VOICES.get(voice_key, voice_key)
            speech = _speak(Path(tmp) / f"turn{number:03}.wav", voice, text)
            duration_s = _duration_s(speech)
            if pieces:
                pieces.append(silence)
                position_s += gap_s
            pieces.append(speech)
            timings.append((position_s, position_s + duration_s, voice, text))
            position_s += duration_s
        _sox(*map(str, pieces), str(path))
    return timings


def _speak(path: Path, voice: str, text: str) -> Path:
    """One turn spoken by espeak-ng, converted to 16 kHz mono."""
    raw = path.with_suffix(".raw.wav")
    _run(["espeak-ng", "-v", voice, "-w", str(raw), text])
    _sox(str(raw), "-r", str(SAMPLE_RATE), "-c", "1", "-b", "16", str(path))
    return path


def _silence(path: Path, seconds: float) -> Path:
    _sox("-n", "-r", str(SAMPLE_RATE), "-c", "1", "-b", "16", str(path), "trim", "0", f"{seconds:.3f}")
    return path


def _duration_s(path: Path) -> float:
    with wave.open(str(path), "rb") as reader:
        return reader.getnframes() / reader.getframerate()


def _sox(*arguments: str) -> None:
    """sox in repeatable mode (-R: its dither generator gets a fixed seed, see the module docstring)."""
    _run(["sox", "-R", *arguments])


def _run(command: list[str]) -> None:
    subprocess.run(command, check=True, capture_output=True, timeout=120)


def normalise_words(text: str) -> list[str]:
    """Lower-case words without punctuation: "Hello, World!" → ["hello", "world"]."""
    return re.findall(r"[a-z0-9']+", text.lower().replace("’", "'"))


def words_match(expected: str, actual: str) -> float:
    """How much of `expected` appears in `actual`, in order: matched words / expected words, 0..1.
    Case and punctuation are ignored; 1.0 when nothing was expected."""
    want, got = normalise_words(expected), normalise_words(actual)
    if not want:
        return 1.0
    matcher = difflib.SequenceMatcher(a=want, b=got, autojunk=False)
    return sum(block.size for block in matcher.get_matching_blocks()) / len(want)
