"""Optional diarization backend: a pyannote.audio pipeline loaded from a LOCAL path (issue 11).

For operators who have the weights (e.g. pyannote/speaker-diarization-community-1 downloaded once, with its
licence accepted, onto the machine): set `SESSIONS_DIARIZATION_PIPELINE` to the pipeline's folder (holding its
`config.yaml` and the checkpoints it names by relative path) or to the yaml file itself, and install
`pyannote.audio==4.0.7` into the transcriber's environment. The built-in resemblyzer diarization is used
otherwise. Nothing is ever fetched from a hub: HF_HUB_OFFLINE is set before pyannote is imported.

Same interface as the built-in backend: `diarize(path, words, num_speakers)` → `Diarization` (turns and the
words labelled by majority overlap with the turns, "SPEAKER_00", … in order of first appearance).
"""

from __future__ import annotations

import functools
import importlib.util
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - typing only
    from therascript_sessions.transcription.asr import Word
    from therascript_sessions.transcription.diarization import Diarization


class PipelineConfigError(ValueError):
    """The configured pipeline path cannot be used (missing, no config.yaml, pyannote.audio not installed)."""


def config_file(path: str | Path) -> Path:
    """The pipeline's config.yaml for `path` (a folder holding it, or the yaml itself).
    Raises PipelineConfigError naming the path when it does not exist or holds no config.yaml."""
    path = Path(path).expanduser()
    if not path.exists():
        raise PipelineConfigError(f"the diarization pipeline path {str(path)!r} does not exist")
    config = path / "config.yaml" if path.is_dir() else path
    if not config.is_file() or config.suffix not in (".yaml", ".yml"):
        raise PipelineConfigError(f"the diarization pipeline path {str(path)!r} holds no config.yaml")
    return config


def check(path: str | Path) -> tuple[bool, str | None]:
    """(True, None) when `path` is a usable pipeline config and pyannote.audio is installed, else
    (False, the reason). Loads nothing."""
    try:
        config_file(path)
    except PipelineConfigError as error:
        return False, str(error)
    if importlib.util.find_spec("pyannote.audio") is None:
        return False, "the diarization pipeline needs pyannote.audio: pip install 'pyannote.audio==4.0.7'"
    return True, None


@functools.lru_cache(maxsize=1)
def load_pipeline(path: str, device: str = "auto") -> Any:
    """The pyannote Pipeline from the local config (cached per process). Raises PipelineConfigError as
    `check` says, or what pyannote raises for broken checkpoints."""
    available, reason = check(path)
    if not available:
        raise PipelineConfigError(reason)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from pyannote.audio import Pipeline

    pipeline = Pipeline.from_pretrained(config_file(path))
    if pipeline is None:
        raise PipelineConfigError(f"pyannote.audio could not build a pipeline from {path!r}")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    pipeline.to(torch.device(device))
    return pipeline


def annotation_turns(output: Any) -> list[tuple[float, float, str]]:
    """(start_s, end_s, pyannote label) from a pipeline's output: pyannote 4's DiarizeOutput (its
    `speaker_diarization`) or a pyannote.core Annotation, in time order."""
    annotation = getattr(output, "speaker_diarization", output)
    return sorted((float(segment.start), float(segment.end), str(label))
                  for segment, _, label in annotation.itertracks(yield_label=True))


def label_words(words: list[Word], turns: list[tuple[float, float, str]]) -> Diarization:
    """Words labelled by majority overlap with the turns (nearest turn when none overlaps); labels
    renumbered "SPEAKER_00", … by first appearance in the words (then in the turns)."""
    from dataclasses import replace

    from therascript_sessions.transcription.diarization import Diarization, Window, speaker_label, vote_words

    if not turns:
        return Diarization([], [replace(w, speaker=speaker_label(0)) for w in words])
    names = sorted({label for _, _, label in turns})
    numbers = [names.index(label) for _, _, label in turns]
    labels = vote_words(words, [Window(s, e) for s, e, _ in turns], numbers)
    order: dict[int, int] = {}
    for number in labels + numbers:
        order.setdefault(number, len(order))
    return Diarization([(s, e, speaker_label(order[n])) for (s, e, _), n in zip(turns, numbers)],
                       [replace(w, speaker=speaker_label(order[n])) for w, n in zip(words, labels)])


def diarize(pipeline_path: str, path: Path, words: list[Word], num_speakers: int | None,
            device: str = "auto") -> Diarization:
    """Run the configured pipeline on `path` (num_speakers passed on when given) and label the words.
    Raises FileNotFoundError for a missing file, PipelineConfigError for an unusable configuration."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(path)
    pipeline = load_pipeline(str(pipeline_path), device)
    options = {"num_speakers": num_speakers} if num_speakers else {}
    return label_words(words, annotation_turns(pipeline(str(path), **options)))
