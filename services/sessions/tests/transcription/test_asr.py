"""asr.transcribe with the real packaged Whisper tiny.en model on a synthetic two-voice dialogue."""

from __future__ import annotations

import pytest
from dialogue import words_match

from therascript_sessions.transcription.asr import AsrConfig, AsrResult, Word, load_model, transcribe


def spoken_text(turns) -> str:
    return " ".join(text for _, _, _, text in turns)


def test_transcript_matches_the_script(dialogue, dialogue_asr):
    result, _ = dialogue_asr
    recognised = "".join(word.text for word in result.words)
    assert words_match(spoken_text(dialogue[1]), recognised) >= 0.8, recognised


def test_result_describes_the_audio(dialogue, dialogue_asr):
    result, _ = dialogue_asr
    assert result.language == "en"
    assert result.device == "cpu"
    assert result.duration_s == pytest.approx(dialogue[1][-1][1], abs=0.05)
    assert result.segments and all(start <= end for start, end, _ in result.segments)


def test_word_times_are_ordered_and_inside_the_audio(dialogue_asr):
    result, _ = dialogue_asr
    assert len(result.words) > 60
    for previous, word in zip(result.words, result.words[1:]):
        assert previous.start_s <= word.start_s
    assert all(0 <= w.start_s <= w.end_s <= result.duration_s + 0.05 for w in result.words)
    assert all(0 <= w.probability <= 1 and w.speaker is None for w in result.words)


def test_words_fall_in_the_turns_that_spoke_them(dialogue, dialogue_asr):
    result, _ = dialogue_asr
    for start_s, end_s, _, text in dialogue[1]:
        inside = "".join(w.text for w in result.words if start_s - 0.3 <= (w.start_s + w.end_s) / 2 <= end_s + 0.3)
        assert words_match(text, inside) >= 0.6, (text, inside)


def test_progress_is_monotonic_and_reaches_one(dialogue_asr):
    _, progress = dialogue_asr
    assert len(progress) >= 3
    assert progress == sorted(progress)
    assert all(0 <= p <= 1 for p in progress)
    assert progress[-2] > 0.9 and progress[-1] == 1.0


def test_result_survives_a_json_round_trip(dialogue_asr):
    result, _ = dialogue_asr
    labelled = AsrResult([Word(w.start_s, w.end_s, w.text, w.probability, "SPEAKER_00") for w in result.words],
                         result.segments, result.language, result.duration_s, result.device)
    for original in (result, labelled):
        assert AsrResult.from_json(original.to_json()) == original


def test_from_json_rejects_garbage():
    with pytest.raises((ValueError, KeyError)):
        AsrResult.from_json('{"words": []}')
    with pytest.raises(ValueError):
        AsrResult.from_json("not json")


def test_model_is_loaded_once_per_config():
    assert load_model(AsrConfig()) is load_model(AsrConfig())


def test_defaults_guard_against_hallucination_loops():
    config = AsrConfig()
    assert config.vad_filter is True and config.condition_on_previous_text is False


def test_silence_gives_no_words(tmp_path):
    import subprocess

    silence = tmp_path / "silence.wav"
    subprocess.run(["sox", "-n", "-r", "16000", "-c", "1", str(silence), "trim", "0", "5"], check=True)
    result = transcribe(silence, AsrConfig())
    assert result.words == [] and result.duration_s == pytest.approx(5.0, abs=0.01)


def test_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        transcribe(tmp_path / "absent.wav", AsrConfig())


def test_windowed_transcription_keeps_every_word(dialogue, dialogue_asr, monkeypatch):
    """Issue 11: long recordings are transcribed in windows cut at quiet points (memory flat with length).
    With windows of a few seconds on the dialogue, the words are the same as in one pass, in order, with
    their times in seconds of the whole recording."""
    from therascript_sessions.transcription import asr

    # Windows of 4-8 s: the cut is searched in 4 s, longer than one turn of the dialogue (~3.5 s), so it lands in a
    # pause between turns, as production's 20 s search does in real speech. (With a 2 s search the cut fell
    # inside sentences, and tiny.en, restarting mid-sentence, repeated words: match 0.87-0.89, a flaky bound.)
    monkeypatch.setattr(asr, "CHUNK_S", 8.0)
    monkeypatch.setattr(asr, "CUT_SEARCH_S", 4.0)
    windows = []
    real_window = asr._transcribe_window
    monkeypatch.setattr(asr, "_transcribe_window", lambda *a: windows.append(a[3]) or real_window(*a))
    windowed = transcribe(dialogue[0], AsrConfig())
    assert len(windows) >= 3 and windows == sorted(windows)  # several windows, at increasing offsets
    whole = dialogue_asr[0]
    assert windowed.duration_s == pytest.approx(whole.duration_s, abs=0.01)
    assert [w.start_s for w in windowed.words] == sorted(w.start_s for w in windowed.words)
    spoken = [w.text.strip(" .,?!").lower() for w in windowed.words]
    expected = [w.text.strip(" .,?!").lower() for w in whole.words]
    import difflib

    # A lost or repeated window moves 10-20 words. Restarting tiny.en at a cut moves a few: over six renderings of
    # this dialogue that differed only in sox's dither noise (before dialogue.py fixed its seed), the windowed pass
    # had 0-4 words fewer than the whole one (87) and matched it at 0.906-0.953, so bounds of 5 words and 0.85.
    both = f"windows at {windows}:\n{' '.join(expected)}\n{' '.join(spoken)}"
    assert len(spoken) == pytest.approx(len(expected), abs=5), f"{len(spoken)} vs {len(expected)} words, {both}"
    ratio = difflib.SequenceMatcher(a=expected, b=spoken, autojunk=False).ratio()
    assert ratio >= 0.85, f"match {ratio:.3f}, {both}"
    assert windowed.words[-1].end_s > whole.duration_s - 6.0  # the later windows are shifted, not restarted at 0


def test_a_window_ends_at_the_quietest_moment():
    import numpy as np

    from therascript_sessions.transcription.asr import quiet_cut

    samples = np.ones(16000 * 10, dtype=np.float32)
    samples[16000 * 7 : 16000 * 7 + 1600] = 0.0  # 0.1 s of silence at 7.0 s
    assert quiet_cut(samples, 16000 * 5, 16000 * 9) == 16000 * 7 + 800


def test_sequential_decoding_gives_the_words_of_batched_decoding(dialogue, dialogue_asr):
    """batch_size=0 (Whisper's sequential loop) and the default batched pipeline hear the same dialogue, so
    either setting can be chosen by an operator without changing the transcript."""
    import difflib

    assert AsrConfig().batch_size > 0  # the default decodes the VAD's segments in batches
    sequential = transcribe(dialogue[0], AsrConfig(batch_size=0))
    batched = [w.text.strip(" .,?!").lower() for w in dialogue_asr[0].words]
    spoken = [w.text.strip(" .,?!").lower() for w in sequential.words]
    assert difflib.SequenceMatcher(a=batched, b=spoken, autojunk=False).ratio() >= 0.9
    assert words_match(spoken_text(dialogue[1]), "".join(w.text for w in sequential.words)) >= 0.8
