"""Chunking and grouping (no lost middle) and the strategist JSON parse: pure functions, no servers."""

from __future__ import annotations

import pytest

from therascript_analysis.chunking import SEPARATOR_TOKENS, chunk_paragraphs, group_items
from therascript_analysis.prompts import StrategyError, parse_strategy


def test_every_paragraph_lands_in_exactly_one_chunk_in_order_within_budget():
    paragraphs = [f"paragraph {i} " + "word " * (i % 7 + 3) for i in range(40)]
    counts = [len(p.split()) for p in paragraphs]
    chunks = chunk_paragraphs(paragraphs, counts, budget=30)
    assert len(chunks) > 1
    assert [p for chunk in chunks for p in chunk] == paragraphs  # nothing dropped, nothing reordered
    for chunk in chunks:
        tokens = sum(len(p.split()) for p in chunk) + SEPARATOR_TOKENS * (len(chunk) - 1)
        assert tokens <= 30


def test_a_transcript_that_fits_is_one_chunk():
    assert chunk_paragraphs(["a b", "c d"], [2, 2], budget=100) == [["a b", "c d"]]


def test_a_paragraph_longer_than_the_budget_is_split_at_words_and_keeps_every_word():
    text = " ".join(f"w{i}" for i in range(100))
    chunks = chunk_paragraphs([text], [100], budget=30)
    assert len(chunks) >= 4
    assert " ".join(" ".join(chunk) for chunk in chunks).split() == text.split()


def test_groups_are_consecutive_and_fit():
    counts = [10, 12, 9, 11, 10, 8]
    groups = group_items(counts, budget=25)
    assert [i for g in groups for i in g] == list(range(len(counts)))
    assert all(sum(counts[i] for i in g) + SEPARATOR_TOKENS * (len(g) - 1) <= 25 for g in groups)
    assert len(groups) == 3


def test_strategy_parse_finds_the_object_and_names_what_is_wrong():
    text = ('<think>plan</think>Sure!\n```json\n{"intermediate_question": "Sleep? (max 100 words)", '
            '"final_synthesis_instructions": "Describe the trend."}\n```')
    assert parse_strategy(text) == {"intermediate_question": "Sleep? (max 100 words)",
                                    "final_synthesis_instructions": "Describe the trend."}
    with pytest.raises(StrategyError, match="no JSON object"):
        parse_strategy("I cannot do that.")
    with pytest.raises(StrategyError, match="final_synthesis_instructions"):
        parse_strategy('{"intermediate_question": "x"}')
