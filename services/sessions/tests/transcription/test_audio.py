"""audio.probe / decode_mono on real files made with espeak-ng and ffmpeg."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from dialogue import make_dialogue

from therascript_sessions.transcription.audio import decode_mono, probe


@pytest.fixture(scope="module")
def short_wav(tmp_path_factory) -> tuple[Path, float]:
    path = tmp_path_factory.mktemp("audio") / "short.wav"
    turns = make_dialogue(path, [("A", "Hello there."), ("B", "Hi.")], gap_s=0.5)
    return path, turns[-1][1]


def test_probe_reads_a_wav(short_wav):
    path, duration_s = short_wav
    info = probe(path)
    assert info.has_audio and info.format_name == "wav" and info.codec == "pcm_s16le"
    assert info.duration_s == pytest.approx(duration_s, abs=0.01)


def test_probe_reads_an_mp4_video_container_with_audio(short_wav, tmp_path):
    path, duration_s = short_wav
    mp4 = tmp_path / "clip.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-c:a", "aac", str(mp4)], check=True)
    info = probe(mp4)
    assert info.has_audio and "mp4" in info.format_name and info.codec == "aac"
    assert info.duration_s == pytest.approx(duration_s, abs=0.1)


def test_probe_rejects_text(tmp_path):
    path = tmp_path / "notes.mp3"
    path.write_text("Patient notes, definitely not audio.\n" * 20)
    with pytest.raises(ValueError):
        probe(path)


def test_probe_rejects_random_bytes(tmp_path):
    path = tmp_path / "noise.wav"
    path.write_bytes(bytes(range(256)) * 64)
    with pytest.raises(ValueError):
        probe(path)


def test_probe_refuses_a_playlist_that_points_at_other_files(tmp_path):
    path = tmp_path / "session.m3u8"
    path.write_text("#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\nfile:///etc/passwd\n#EXT-X-ENDLIST\n")
    with pytest.raises(ValueError):
        probe(path)


def test_probe_of_a_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        probe(tmp_path / "absent.wav")


def test_decode_mono_keeps_the_timeline(short_wav):
    path, duration_s = short_wav
    samples = decode_mono(path)
    assert samples.dtype.name == "float32" and samples.ndim == 1
    assert len(samples) / 16000 == pytest.approx(duration_s, abs=0.01)
    assert 0.01 < float(abs(samples).max()) <= 1.0


def test_decode_mono_rejects_text(tmp_path):
    path = tmp_path / "notes.wav"
    path.write_text("not audio")
    with pytest.raises(ValueError):
        decode_mono(path)


def test_streamed_blocks_are_exactly_the_decoded_samples(dialogue):
    import numpy as np

    from therascript_sessions.transcription.audio import stream_mono

    blocks = list(stream_mono(dialogue[0], 1.5))
    assert len(blocks) > 2 and all(len(b) == 24000 for b in blocks[:-1])
    assert np.array_equal(np.concatenate(blocks), decode_mono(dialogue[0]))


def test_streaming_a_text_file_is_a_value_error(tmp_path):
    from therascript_sessions.transcription.audio import stream_mono

    path = tmp_path / "notes.wav"
    path.write_text("not audio at all\n" * 50)
    with pytest.raises(ValueError):
        list(stream_mono(path, 1.0))
