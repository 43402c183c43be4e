"""build_paragraphs: the original's rules (original-therascript.md §6.3 step 7) at word level."""

from __future__ import annotations

from therascript_sessions.transcription.asr import Word
from therascript_sessions.transcription.paragraphs import (
    HARD_MAX_S,
    HARD_MAX_WORDS,
    ParagraphDraft,
    build_paragraphs,
)


def spoken(*items: tuple[float, str] | tuple[float, str, str | None], length_s: float = 0.3) -> list[Word]:
    """Words from (start_s, text[, speaker]); each lasts `length_s`."""
    words = []
    for item in items:
        start_s, text = item[0], item[1]
        speaker = item[2] if len(item) > 2 else None
        words.append(Word(start_s, start_s + length_s, " " + text, 0.9, speaker))
    return words


def texts(paragraphs: list[ParagraphDraft]) -> list[str]:
    return [p.text for p in paragraphs]


def test_no_words_gives_no_paragraphs():
    assert build_paragraphs([]) == []


def test_close_words_of_one_speaker_form_one_paragraph():
    words = spoken((0.0, "I"), (0.4, "feel"), (0.8, "fine."), (1.2, "Thanks."))
    assert build_paragraphs(words) == [ParagraphDraft(0, 0, "I feel fine. Thanks.", None)]


def test_speaker_change_starts_a_new_paragraph_even_without_a_pause():
    words = spoken((0.0, "How", "SPEAKER_00"), (0.3, "are", "SPEAKER_00"), (0.6, "you", "SPEAKER_00"),
                   (0.9, "Fine", "SPEAKER_01"), (1.2, "thanks", "SPEAKER_01"))
    paragraphs = build_paragraphs(words)
    assert [(p.text, p.speaker) for p in paragraphs] == [("How are you", "SPEAKER_00"), ("Fine thanks", "SPEAKER_01")]


def test_returning_speaker_gets_a_new_paragraph():
    words = spoken((0.0, "Yes", "SPEAKER_00"), (0.3, "No", "SPEAKER_01"), (0.6, "Maybe", "SPEAKER_00"))
    assert [p.speaker for p in build_paragraphs(words)] == ["SPEAKER_00", "SPEAKER_01", "SPEAKER_00"]


def test_gap_over_one_second_closes_a_paragraph_without_punctuation():
    words = spoken((0.0, "and"), (0.3, "then"), (0.6 + 1.01, "later"))
    assert texts(build_paragraphs(words)) == ["and then", "later"]


def test_gap_of_exactly_one_second_does_not_close_it():
    words = spoken((0.0, "and"), (0.3, "then"), (0.6 + 1.0, "later"), length_s=0.3)
    assert texts(build_paragraphs(words)) == ["and then later"]


def test_sentence_end_and_gap_over_half_a_second_closes_a_paragraph():
    for ending in (".", "!", "?"):
        words = spoken((0.0, "Stop" + ending), (0.3 + 0.51, "Go"))
        assert texts(build_paragraphs(words)) == ["Stop" + ending, "Go"], ending


def test_sentence_end_with_short_gap_keeps_the_paragraph():
    words = spoken((0.0, "Stop."), (0.3 + 0.5, "Go"))
    assert texts(build_paragraphs(words)) == ["Stop. Go"]


def test_half_second_gap_without_sentence_end_keeps_the_paragraph():
    words = spoken((0.0, "well,"), (0.3 + 0.9, "maybe"))
    assert texts(build_paragraphs(words)) == ["well, maybe"]


def test_timestamp_is_first_word_start_in_rounded_ms():
    words = spoken((12.3456, "Hello."), (15.0, "Again"))
    assert [p.timestamp_ms for p in build_paragraphs(words)] == [12346, 15000]


def test_blank_paragraphs_are_dropped_and_indices_stay_sequential():
    words = spoken((0.0, "One."), (2.0, " "), (4.0, "Two."), (6.0, ""), (8.0, "Three."))
    paragraphs = build_paragraphs(words)
    assert [(p.index, p.text) for p in paragraphs] == [(0, "One."), (1, "Two."), (2, "Three.")]


def test_word_texts_are_joined_as_given_and_whitespace_collapsed():
    words = [Word(0.0, 0.2, " I", 1.0), Word(0.2, 0.4, " don't", 1.0), Word(0.4, 0.6, "  know ", 1.0),
             Word(0.6, 0.8, "...", 1.0)]
    assert texts(build_paragraphs(words)) == ["I don't know ..."]


def test_text_without_spaces_between_words_is_not_spaced_out():
    words = [Word(0.0, 0.2, "你", 1.0), Word(0.2, 0.4, "好", 1.0)]
    assert texts(build_paragraphs(words)) == ["你好"]


def test_a_long_monologue_is_capped_in_words():
    words = spoken(*[(i * 0.3, "word") for i in range(HARD_MAX_WORDS * 2 + 10)], length_s=0.3)
    paragraphs = build_paragraphs(words)
    assert [len(p.text.split()) for p in paragraphs] == [HARD_MAX_WORDS, HARD_MAX_WORDS, 10]


def test_a_long_monologue_is_capped_in_time():
    slow = spoken(*[(i * 1.0, "word") for i in range(int(HARD_MAX_S) + 30)], length_s=1.0)
    paragraphs = build_paragraphs(slow)
    assert len(paragraphs) == 2
    assert paragraphs[1].timestamp_ms - paragraphs[0].timestamp_ms <= HARD_MAX_S * 1000 + 1000


def test_a_long_monologue_prefers_to_break_at_a_sentence_end():
    items = []
    for i in range(200):
        items.append((i * 0.3, "word." if i == 190 else "word"))
    paragraphs = build_paragraphs(spoken(*items, length_s=0.3))
    assert [len(p.text.split()) for p in paragraphs] == [191, 9]


def test_paragraph_order_follows_the_words():
    words = spoken((0.0, "A.", "SPEAKER_00"), (2.0, "B.", "SPEAKER_01"), (4.0, "C.", "SPEAKER_00"))
    paragraphs = build_paragraphs(words)
    assert [p.index for p in paragraphs] == [0, 1, 2]
    assert [p.timestamp_ms for p in paragraphs] == [0, 2000, 4000]


def test_paragraphs_never_mix_speakers_and_keep_every_word():
    """Rapid turn-taking inside one sentence and without pauses (issue 11: a few-second turn must not be merged
    into its neighbour's paragraph): every paragraph holds one speaker's words only, and all words are kept."""
    import random

    rng = random.Random(11)
    words, t = [], 0.0
    for position in range(400):
        t += rng.choice([0.0, 0.05, 0.2, 0.6, 1.2])
        words.append(Word(t, t + 0.25, f" w{position}" + rng.choice(["", "", "."]), 0.5,
                          rng.choice(["SPEAKER_00", "SPEAKER_01", "SPEAKER_02"])))
        t += 0.25
    paragraphs = build_paragraphs(words)
    assert [w for p in paragraphs for w in p.words] == words
    for paragraph in paragraphs:
        assert {w.speaker for w in paragraph.words} == {paragraph.speaker}
        assert paragraph.text == " ".join(w.text.strip() for w in paragraph.words)


def test_words_json_keeps_timing_and_probability_in_ms():
    paragraph = build_paragraphs([Word(1.2344, 1.5, " Hi", 0.98765, "SPEAKER_00"), Word(1.6, 1.9, "", 0.1, "SPEAKER_00")])[0]
    assert paragraph.words_json() == [{"start_ms": 1234, "end_ms": 1500, "text": "Hi", "probability": 0.988}]
