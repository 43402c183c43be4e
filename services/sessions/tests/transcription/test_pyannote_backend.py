"""The optional pyannote.audio backend (issue 11), as far as it can be tested without its weights: the
configuration is checked with clear errors, a missing pyannote.audio is reported as unreadiness, and the
output handling (turns → labelled words) runs on a real pyannote.core Annotation. The pipeline itself
(`Pipeline.from_pretrained` on a local config, then inference) needs weights that no registry ships; it is
not exercised here."""

from __future__ import annotations

import importlib.util

import pytest

from therascript_sessions.transcription import diarization, pyannote_backend
from therascript_sessions.transcription.asr import Word
from therascript_sessions.transcription.pyannote_backend import PipelineConfigError


@pytest.fixture
def pipeline_dir(tmp_path):
    folder = tmp_path / "community-1"
    folder.mkdir()
    (folder / "config.yaml").write_text("pipeline:\n  name: pyannote.audio.pipelines.SpeakerDiarization\n")
    yield folder
    diarization.use_pipeline(None)


def test_a_missing_path_is_refused_with_its_name(tmp_path):
    with pytest.raises(PipelineConfigError, match="does not exist") as error:
        diarization.use_pipeline(tmp_path / "nowhere")
    assert "nowhere" in str(error.value)
    assert diarization._pipeline_path is None


def test_a_folder_without_config_yaml_is_refused(tmp_path):
    with pytest.raises(PipelineConfigError, match="no config.yaml"):
        diarization.use_pipeline(tmp_path)


@pytest.mark.skipif(importlib.util.find_spec("pyannote.audio") is not None, reason="pyannote.audio is installed")
def test_without_pyannote_audio_the_backend_is_not_ready_and_says_why(pipeline_dir, dialogue, dialogue_asr):
    diarization.use_pipeline(pipeline_dir)
    ready, reason = diarization.is_available()
    assert not ready and "pyannote.audio" in reason
    with pytest.raises(PipelineConfigError, match="pyannote.audio"):
        diarization.assign_speakers(dialogue[0], dialogue_asr[0].words, 2)
    diarization.use_pipeline("")
    assert diarization.is_available() == (True, None)


def test_pipeline_output_labels_words_by_overlap():
    from pyannote.core import Annotation, Segment

    annotation = Annotation()
    annotation[Segment(0.0, 2.0)] = "B"
    annotation[Segment(2.0, 3.5)] = "A"
    annotation[Segment(3.2, 4.0)] = "B"  # an overlap
    words = [Word(0.1, 0.5, " hi", 0.9), Word(2.1, 2.6, " yes", 0.9), Word(3.3, 3.9, " no", 0.9),
             Word(9.0, 9.2, " far", 0.9)]
    turns = pyannote_backend.annotation_turns(annotation)
    assert turns == [(0.0, 2.0, "B"), (2.0, 3.5, "A"), (3.2, 4.0, "B")]
    found = pyannote_backend.label_words(words, turns)
    assert [w.speaker for w in found.words] == ["SPEAKER_00", "SPEAKER_01", "SPEAKER_00", "SPEAKER_00"]
    assert found.turns[1] == (2.0, 3.5, "SPEAKER_01")
