"""History windowing (windowing.py): pure planning over token counts."""

from __future__ import annotations

import pytest

from therascript_chat.windowing import (
    MESSAGE_OVERHEAD_TOKENS as O,
)
from therascript_chat.windowing import (
    OMISSION_NOTE_TOKENS,
    HistoryTurn,
    cut_transcript,
    plan_window,
)
from therascript_common.errors import InvalidArgument


def _no_paragraphs() -> list[int]:
    raise AssertionError("paragraph counts must not be needed")


def _turns(*tokens: int) -> list[HistoryTurn]:
    return [HistoryTurn(t, i % 2 == 0) for i, t in enumerate(tokens)]  # user, assistant, user, ...


def test_everything_fits_nothing_windowed() -> None:
    plan = plan_window(1000, 100, 50, 20, 300, _turns(10, 10), _no_paragraphs)
    assert (plan.first_turn, plan.transcript_cut, plan.windowed) == (0, None, False)
    assert plan.prompt_tokens == 50 + 20 + 2 * O + 300 + 2 * (10 + O)


def test_oldest_turns_dropped_first_and_never_start_on_assistant() -> None:
    history = _turns(100, 100, 100, 100)  # u a u a
    room_for_three = 3 * (100 + O)
    plan = plan_window(100 + 50 + 2 * O + room_for_three, 100, 50, 0, 0, history, _no_paragraphs)
    # three newest fit (a u a), but a kept history may not start with the assistant turn
    assert plan.first_turn == 2 and plan.windowed
    assert plan.prompt_tokens <= 50 + 2 * O + room_for_three


def test_prompt_plus_reserved_output_fits_the_context() -> None:
    history = _turns(*[37] * 40)
    plan = plan_window(2048, 512, 120, 60, 700, history, _no_paragraphs)
    assert plan.prompt_tokens + 512 <= 2048 and plan.first_turn > 0


def test_transcript_cut_from_the_middle_when_it_alone_overflows() -> None:
    paragraphs = [30] * 100
    plan = plan_window(1000, 200, 50, 20, sum(paragraphs) + 200, _turns(10, 10), lambda: paragraphs)
    head, tail = plan.transcript_cut
    assert head > 0 and tail > 0 and head >= tail
    assert plan.omitted_paragraphs == 100 - head - tail
    assert plan.prompt_tokens + 200 <= 1000
    assert plan.first_turn == 2  # no room left for history
    assert plan.windowed


def test_cut_transcript_gives_head_sixty_percent_and_tail_the_rest() -> None:
    head, tail = cut_transcript([8] * 100, 100)  # 10 tokens per paragraph with its joint
    assert (head, tail) == (6, 4)
    assert cut_transcript([500], 100) == (0, 0)


def test_question_that_cannot_fit_is_invalid() -> None:
    with pytest.raises(InvalidArgument):
        plan_window(512, 256, 200, 100, 0, [], _no_paragraphs)


def test_note_tokens_are_counted_when_cutting() -> None:
    plan = plan_window(600, 100, 10, 10, 10_000, [], lambda: [100] * 100)
    assert plan.prompt_tokens >= 10 + 10 + 2 * O + OMISSION_NOTE_TOKENS
    assert plan.prompt_tokens + 100 <= 600


# --- relevance selection (issue 9: a transcript longer than the context) ------------------------------------------
from therascript_chat.windowing import relevance_scores, select_relevant  # noqa: E402


def test_relevance_ranks_paragraphs_that_share_the_questions_words() -> None:
    paragraphs = ["We talked about the weather.", "She sleeps badly and wakes at night.",
                  "Work was busy.", "Sleeping pills were mentioned; sleep improved."]
    scores = relevance_scores("How is her sleep at night?", paragraphs)
    assert scores[0] == 0 and scores[2] == 0
    assert scores[1] > 0 and scores[3] > 0


def test_the_most_relevant_paragraphs_are_kept_in_time_order_within_the_budget() -> None:
    tokens = [50] * 20
    scores = [0.0] * 20
    scores[17], scores[3], scores[9] = 3.0, 2.0, 1.0
    kept = select_relevant(tokens, scores, room=2 * (50 + 2 + 8))
    assert kept == [3, 17]  # the two best that fit, in transcript order
    wider = select_relevant(tokens, scores, room=5 * (50 + 2 + 8))
    assert wider == [2, 3, 4, 9, 17]  # all three hits, then the nearest neighbours (ties: the earlier one)


def test_plan_keeps_relevant_paragraphs_and_says_so() -> None:
    scores = [0.0] * 100
    scores[42] = scores[77] = 1.0
    plan = plan_window(900, 100, 10, 10, 10_000, [], lambda: [100] * 100, lambda: scores)
    kept = plan.kept_paragraphs or ()
    assert {42, 77} <= set(kept) and list(kept) == sorted(kept)
    assert set(kept) - {42, 77} <= {41, 43, 76, 78}  # the room left goes to their neighbours
    assert plan.omitted_paragraphs == 100 - len(kept) and len(kept) > 2
    assert plan.transcript_cut is None and plan.prompt_tokens + 100 <= 900
    assert "most relevant to the question" in (plan.context_note or "")


def test_with_nothing_relevant_head_and_tail_are_kept_and_said_so() -> None:
    plan = plan_window(600, 100, 10, 10, 10_000, [], lambda: [100] * 100, lambda: [0.0] * 100)
    assert plan.kept_paragraphs is None and plan.transcript_cut is not None
    assert plan.context_note and "first and last parts" in plan.context_note


def test_a_transcript_that_fits_has_no_note() -> None:
    assert plan_window(1000, 100, 50, 20, 300, [], _no_paragraphs, _no_paragraphs).context_note is None
