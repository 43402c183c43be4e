"""Makes the repository's test helpers (tests/support: `dialogue`) importable when these tests are run on
their own (pytest then does not load the repository's root conftest.py)."""

import sys
from pathlib import Path

SUPPORT = Path(__file__).resolve().parents[4] / "tests" / "support"
if str(SUPPORT) not in sys.path:
    sys.path.insert(0, str(SUPPORT))

import pytest  # noqa: E402
from dialogue import TWO_SPEAKER_SCRIPT, Turn, make_dialogue  # noqa: E402

from therascript_sessions.transcription.asr import AsrConfig, AsrResult, transcribe  # noqa: E402


@pytest.fixture(scope="session")
def dialogue(tmp_path_factory) -> tuple[Path, list[Turn]]:
    """The two-voice espeak-ng dialogue (TWO_SPEAKER_SCRIPT) as a WAV, with its turn timings."""
    path = tmp_path_factory.mktemp("dialogue") / "two_speakers.wav"
    return path, make_dialogue(path, TWO_SPEAKER_SCRIPT)


@pytest.fixture(scope="session")
def dialogue_asr(dialogue) -> tuple[AsrResult, list[float]]:
    """The dialogue transcribed with the default (packaged tiny.en) config, and the progress reported."""
    progress: list[float] = []
    return transcribe(dialogue[0], AsrConfig(), progress.append), progress
