"""Diarization: the real resemblyzer voice encoder + clustering on the two-voice dialogue, and the pure
smoothing rules on hand-made words."""

from __future__ import annotations

import sys
from collections import Counter

import pytest

from therascript_sessions.transcription.asr import Word
from therascript_sessions.transcription.diarization import (
    Window,
    assign_speakers,
    is_available,
    number_by_appearance,
    plan_windows,
    smooth_turns,
    speech_regions,
    warm_up,
)


def turn_of(word: Word, turns) -> int:
    """Index of the turn whose span is nearest to the word's middle."""
    middle = (word.start_s + word.end_s) / 2
    return min(range(len(turns)), key=lambda i: max(turns[i][0] - middle, middle - turns[i][1], 0.0))


@pytest.fixture(scope="module")
def labelled(dialogue, dialogue_asr):
    progress: list[float] = []
    words = assign_speakers(dialogue[0], dialogue_asr[0].words, 2, progress.append)
    return words, progress


def test_the_embedding_model_is_available_here():
    assert is_available() == (True, None)


def test_each_turn_gets_the_label_of_its_voice_alternating(dialogue, labelled):
    turns = dialogue[1]
    words, _ = labelled
    majority = []
    for index in range(len(turns)):
        speakers = Counter(w.speaker for w in words if turn_of(w, turns) == index)
        majority.append(speakers.most_common(1)[0][0])
    assert majority == ["SPEAKER_00", "SPEAKER_01"] * (len(turns) // 2)


def test_at_least_90_percent_of_words_get_their_speaker(dialogue, labelled):
    turns = dialogue[1]
    words, _ = labelled
    expected = {"en+m3": "SPEAKER_00", "en+f3": "SPEAKER_01"}
    right = sum(w.speaker == expected[turns[turn_of(w, turns)][2]] for w in words)
    assert right / len(words) >= 0.9, [(w.text, w.speaker) for w in words]


def test_words_keep_their_text_and_times_and_the_input_is_not_modified(dialogue_asr, labelled):
    original = dialogue_asr[0].words
    words, _ = labelled
    assert [(w.start_s, w.end_s, w.text) for w in words] == [(w.start_s, w.end_s, w.text) for w in original]
    assert all(w.speaker is None for w in original)


def test_progress_is_monotonic_and_ends_at_one(labelled):
    _, progress = labelled
    assert progress == sorted(progress) and progress[-1] == 1.0 and progress[0] >= 0


def test_a_compressed_recording_gets_the_same_speakers(dialogue, dialogue_asr, labelled, tmp_path):
    import subprocess

    m4a = tmp_path / "session.m4a"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(dialogue[0]), "-c:a", "aac", "-b:a", "64k", str(m4a)], check=True)
    words = assign_speakers(m4a, dialogue_asr[0].words, 2)
    same = sum(a.speaker == b.speaker for a, b in zip(words, labelled[0]))
    assert same / len(words) >= 0.9


def test_warm_up_loads_the_encoder_and_runs_it():
    warm_up("cpu")


def test_one_speaker_labels_everything_without_the_model(dialogue, dialogue_asr):
    words = assign_speakers(dialogue[0], dialogue_asr[0].words, 1)
    assert {w.speaker for w in words} == {"SPEAKER_00"}


def test_no_words_gives_no_words(dialogue):
    assert assign_speakers(dialogue[0], [], 2) == []


def test_zero_speakers_is_refused(dialogue, dialogue_asr):
    with pytest.raises(ValueError):
        assign_speakers(dialogue[0], dialogue_asr[0].words, 0)


def test_more_speakers_than_voices_still_labels_every_word(dialogue, dialogue_asr):
    words = assign_speakers(dialogue[0], dialogue_asr[0].words, 3)
    labels = [w.speaker for w in words]
    assert None not in labels and labels[0] == "SPEAKER_00"
    assert set(labels) <= {"SPEAKER_00", "SPEAKER_01", "SPEAKER_02"}


def test_missing_audio_raises_file_not_found(tmp_path, dialogue_asr):
    with pytest.raises(FileNotFoundError):
        assign_speakers(tmp_path / "absent.wav", dialogue_asr[0].words, 2)


def test_importing_the_other_pipeline_modules_does_not_import_torch():
    import subprocess

    code = ("import sys; import therascript_sessions.transcription.paragraphs, "
            "therascript_sessions.transcription.asr, therascript_sessions.transcription.audio, "
            "therascript_sessions.transcription.diarization; "
            "print(sorted(m for m in ('torch', 'resemblyzer', 'sklearn', 'faster_whisper') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


# --- pure rules -------------------------------------------------------------------------------------------


def words_at(*spans: tuple[float, float]) -> list[Word]:
    return [Word(start, end, f" w{i}", 1.0) for i, (start, end) in enumerate(spans)]


def steady(count: int, start_s: float = 0.0, length_s: float = 0.3, gap_s: float = 0.05) -> list[tuple[float, float]]:
    return [(start_s + i * (length_s + gap_s), start_s + i * (length_s + gap_s) + length_s) for i in range(count)]


def test_regions_merge_words_across_short_pauses_only():
    words = words_at((0.0, 0.5), (0.6, 1.0), (2.0, 2.5))
    assert speech_regions(words) == [Window(0.0, 1.0), Window(2.0, 2.5)]


def test_windows_cover_a_long_region_end_to_end():
    windows = plan_windows([Window(10.0, 15.0)], window_s=1.6, hop_s=0.5)
    assert windows[0].start_s == 10.0 and windows[-1].end_s == pytest.approx(15.0)
    assert all(w.duration_s == pytest.approx(1.6) for w in windows)
    assert all(0 < b.start_s - a.start_s <= 0.5 + 1e-9 for a, b in zip(windows, windows[1:]))


def test_a_short_region_is_one_window_of_its_own_length():
    assert plan_windows([Window(3.0, 3.8)]) == [Window(3.0, 3.8)]


def test_a_one_word_flicker_inside_a_turn_takes_the_turn_label():
    words = words_at(*steady(9))
    assert smooth_turns(words, [0, 0, 0, 0, 1, 0, 0, 0, 0]) == [0] * 9


def test_a_two_word_flicker_inside_a_turn_takes_the_turn_label():
    words = words_at(*steady(9))
    assert smooth_turns(words, [1, 1, 1, 0, 0, 1, 1, 1, 1]) == [1] * 9


def test_a_short_reply_set_apart_by_pauses_is_kept():
    spans = steady(4) + [(3.0, 3.4)] + steady(4, start_s=4.6)
    labels = [0, 0, 0, 0, 1, 0, 0, 0, 0]
    assert smooth_turns(words_at(*spans), labels) == labels


def test_a_turn_change_snaps_to_the_longest_pause_nearby():
    # the real turn change is the 0.8 s pause before word 5; the clustering put it one word late
    spans = steady(5) + steady(5, start_s=1.75 + 0.8)
    assert smooth_turns(words_at(*spans), [0, 0, 0, 0, 0, 0, 1, 1, 1, 1]) == [0] * 5 + [1] * 5
    assert smooth_turns(words_at(*spans), [0, 0, 0, 0, 1, 1, 1, 1, 1, 1]) == [0] * 5 + [1] * 5


def test_a_turn_change_without_a_clearer_pause_stays_put():
    words = words_at(*steady(10))
    labels = [0] * 5 + [1] * 5
    assert smooth_turns(words, labels) == labels


def test_labels_are_numbered_by_first_appearance():
    assert number_by_appearance([3, 3, 1, 3, 0, 1]) == [0, 0, 1, 0, 2, 1]


# --- issue 11: turns, count estimation, resegmentation (pure numpy/sklearn, no audio) ---------------------


def _voices(counts: list[int], seed: int = 0):
    """Unit embeddings around len(counts) random voice directions, counts[i] windows each, in that order."""
    import numpy as np

    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(len(counts), 256))
    rows = [centres[i] + 0.35 * rng.normal(size=(n, 256)) * np.linalg.norm(centres[i]) / 16
            for i, n in enumerate(counts)]
    embeddings = np.concatenate(rows).astype(np.float32)
    return embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)


def _contiguous_windows(count: int) -> list[Window]:
    return [Window(i * 0.5, i * 0.5 + 1.6) for i in range(count)]


def test_the_speaker_count_is_estimated_from_the_embeddings():
    from therascript_sessions.transcription.diarization import estimate_speakers

    assert estimate_speakers(_voices([30, 25, 20])) == 3
    assert estimate_speakers(_voices([40])) == 1


def test_a_given_speaker_count_gives_exactly_that_many_clusters():
    from therascript_sessions.transcription.diarization import cluster_windows

    embeddings = _voices([40, 30, 20, 6])  # a fourth voice that speaks little
    labels = cluster_windows(embeddings, _contiguous_windows(len(embeddings)), 4)
    assert len(set(labels.tolist())) == 4


def test_resegmentation_removes_an_isolated_flip():
    import numpy as np

    from therascript_sessions.transcription.diarization import resegment

    embeddings = _voices([20, 20])
    labels = np.array([0] * 20 + [1] * 20)
    noisy = labels.copy()
    mixed = 0.45 * embeddings[3] + 0.55 * embeddings[30]  # an ambiguous window, a bit nearer the other voice
    embeddings[7] = mixed / np.linalg.norm(mixed)
    noisy[7] = 1  # so the nearest centroid gives it away, once
    windows = _contiguous_windows(40)
    assert resegment(embeddings, windows, noisy).tolist() == labels.tolist()


def test_window_turns_split_overlapping_windows_halfway_between_centres():
    from therascript_sessions.transcription.diarization import window_turns

    windows = [Window(0.0, 1.6), Window(0.5, 2.1), Window(1.0, 2.6), Window(5.0, 5.4)]
    assert window_turns(windows, [0, 0, 1, 1]) == [(0.0, 1.55, 0), (1.55, 2.6, 1), (5.0, 5.4, 1)]
