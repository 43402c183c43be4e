"""History windowing: make prompt + reserved output fit the loaded context window.

The original re-sent the whole transcript and the whole history on every turn and left truncation to the
runtime (original §10 "Performance" 1). Here, before generating, the prompt is planned against the
context size: the system prompt and the new question always stay; the transcript stays whole if it fits,
else the paragraphs most relevant to the question (BM25 over the paragraph words) are kept up to the budget,
in time order, with a marker where paragraphs were left out — or, when no paragraph shares a word with the
question, its head and tail (60 % / 40 %, with a note in their place); then as many of the most recent history
turns as fit are kept, and a kept history never starts with an assistant turn (chat templates such as Gemma's
need user first). A windowed transcript is always said so (`WindowPlan.context_note`), never silently dropped.

Pure functions over token counts, so they are unit-tested without a model.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from therascript_common.errors import InvalidArgument

#: Tokens a chat template adds around each message (ChatML: `<|im_start|>role\n … <|im_end|>\n` ≈ 5).
MESSAGE_OVERHEAD_TOKENS = 8
#: Tokens of the joint between two transcript paragraphs (`\n\n`) — a safe upper bound.
PARAGRAPH_JOINT_TOKENS = 2
#: Tokens reserved for the note that replaces cut paragraphs (see `omission_note`).
OMISSION_NOTE_TOKENS = 32
#: Tokens of the marker between two kept paragraphs that are not neighbours (see `gap_marker`).
GAP_MARKER_TOKENS = 8
HEAD_SHARE = 0.6
BM25_K1, BM25_B = 1.2, 0.75
_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_STOP_WORDS_TEXT = ("the and for are but not you your with have has had was were what when where which who why how "
                    "does did this that these those from they them their there then than into about over also just "
                    "can could would should will been being any all our out his her him she its")
_STOP_WORDS = frozenset(_STOP_WORDS_TEXT.split(" "))


@dataclass(frozen=True)
class HistoryTurn:
    """One earlier message as the planner sees it: its token count and whether the user wrote it."""

    tokens: int
    from_user: bool


@dataclass(frozen=True)
class WindowPlan:
    """What to send. `history[first_turn:]` is kept; `transcript_cut` = (head, tail) paragraphs kept, or
    None for the whole transcript; `prompt_tokens` estimates the prompt (tokens, template overhead included)."""

    first_turn: int
    transcript_cut: tuple[int, int] | None
    omitted_paragraphs: int
    prompt_tokens: int
    kept_paragraphs: tuple[int, ...] | None = None   # relevance selection: indices kept, in time order
    total_paragraphs: int = 0

    @property
    def windowed(self) -> bool:
        """True when anything was left out (history turns or transcript paragraphs)."""
        return self.first_turn > 0 or self.omitted_paragraphs > 0

    @property
    def context_note(self) -> str | None:
        """One sentence for the reader when the transcript did not fit whole; None when it did."""
        if self.omitted_paragraphs <= 0:
            return None
        kept = self.total_paragraphs - self.omitted_paragraphs
        if self.kept_paragraphs is not None:
            return (f"The transcript is longer than the model's context window: this answer is based on {kept} of "
                    f"its {self.total_paragraphs} paragraphs, those most relevant to the question and the ones "
                    "around them, in time order.")
        return (f"The transcript is longer than the model's context window: this answer is based on its first and "
                f"last parts ({kept} of {self.total_paragraphs} paragraphs).")


def omission_note(omitted: int, total: int) -> str:
    """The line that stands where paragraphs were cut from the transcript."""
    return f"[... {omitted} of {total} transcript paragraphs omitted here to fit the model's context window ...]"


def gap_marker(omitted: int) -> str:
    """The line that stands where a run of less relevant paragraphs was left out."""
    return f"[... {omitted} paragraph{'s' if omitted != 1 else ''} left out ...]"


def _terms(text: str) -> list[str]:
    """Lower-case words of `text` without stop words and short words, crudely stemmed (plural/-ing/-ed)."""
    terms = []
    for word in _WORD.findall(text.lower()):
        if len(word) < 3 or word in _STOP_WORDS:
            continue
        for suffix in ("ing", "ed", "es", "s"):
            if len(word) > len(suffix) + 3 and word.endswith(suffix):
                word = word[: -len(suffix)]
                break
        terms.append(word)
    return terms


def relevance_scores(question: str, paragraphs: Sequence[str]) -> list[float]:
    """BM25 score of each paragraph for the words of `question` (0 for a paragraph sharing none)."""
    query = set(_terms(question))
    docs = [Counter(_terms(p)) for p in paragraphs]
    if not query or not docs:
        return [0.0] * len(docs)
    lengths = [sum(d.values()) for d in docs]
    average = (sum(lengths) / len(lengths)) or 1.0
    scores = []
    for doc, length in zip(docs, lengths, strict=True):
        score = 0.0
        for term in query:
            tf = doc.get(term, 0)
            if tf:
                df = sum(1 for d in docs if term in d)
                idf = math.log(1 + (len(docs) - df + 0.5) / (df + 0.5))
                score += idf * tf * (BM25_K1 + 1) / (tf + BM25_K1 * (1 - BM25_B + BM25_B * length / average))
        scores.append(score)
    return scores


def select_relevant(paragraph_tokens: Sequence[int], scores: Sequence[float], room: int) -> list[int]:
    """Indices of the paragraphs to keep within `room` tokens (joints and gap markers included): the relevant
    ones (score > 0) most relevant first (ties: the earlier one), then the room left filled with their
    neighbours, nearest first; any that no longer fits is skipped. Returned in time order; [] when none is
    relevant."""
    chosen: list[int] = []
    used = 0

    def take(index: int) -> None:
        nonlocal used
        cost = paragraph_tokens[index] + PARAGRAPH_JOINT_TOKENS + GAP_MARKER_TOKENS
        if used + cost <= room:
            chosen.append(index)
            used += cost

    for index in sorted(range(len(scores)), key=lambda i: (-scores[i], i)):
        if scores[index] <= 0:
            break
        take(index)
    if chosen:
        hits = list(chosen)
        rest = [i for i in range(len(scores)) if scores[i] <= 0]
        for index in sorted(rest, key=lambda i: (min(abs(i - h) for h in hits), i)):
            take(index)
    return sorted(chosen)


def cut_transcript(paragraph_tokens: Sequence[int], room: int) -> tuple[int, int]:
    """(head, tail): how many paragraphs to keep from the start and from the end within `room` tokens
    (joints included). The head gets 60 % of the room; what it leaves unused goes to the tail."""
    head, used = 0, 0
    for tokens in paragraph_tokens:
        if used + tokens + PARAGRAPH_JOINT_TOKENS > room * HEAD_SHARE:
            break
        head, used = head + 1, used + tokens + PARAGRAPH_JOINT_TOKENS
    tail = 0
    for tokens in reversed(paragraph_tokens[head:]):
        if used + tokens + PARAGRAPH_JOINT_TOKENS > room:
            break
        tail, used = tail + 1, used + tokens + PARAGRAPH_JOINT_TOKENS
    return head, tail


def _kept_history(history: Sequence[HistoryTurn], room: int) -> tuple[int, int]:
    """(first kept index, tokens used): newest turns first while they fit; never start on an assistant turn."""
    first, used = len(history), 0
    for index in range(len(history) - 1, -1, -1):
        cost = history[index].tokens + MESSAGE_OVERHEAD_TOKENS
        if used + cost > room:
            break
        first, used = index, used + cost
    while first < len(history) and not history[first].from_user:
        used -= history[first].tokens + MESSAGE_OVERHEAD_TOKENS
        first += 1
    return first, used


def plan_window(
    context_size: int,
    reserved_output: int,
    system_tokens: int,
    message_tokens: int,
    transcript_tokens: int,
    history: Sequence[HistoryTurn],
    paragraph_tokens: Callable[[], Sequence[int]],
    paragraph_scores: Callable[[], Sequence[float]] | None = None,
) -> WindowPlan:
    """Plans the prompt for a context of `context_size` tokens keeping `reserved_output` free.

    `message_tokens`: the final user message without the transcript; `transcript_tokens`: the whole
    rendered transcript (0 for none); `paragraph_tokens()` and `paragraph_scores()` (relevance to the question,
    see relevance_scores) are called only when the transcript must be cut; without scores, or when no
    paragraph is relevant, the head and tail are kept.
    Raises InvalidArgument when even the system prompt and the question alone do not fit.
    """
    limit = context_size - reserved_output
    fixed = system_tokens + message_tokens + 2 * MESSAGE_OVERHEAD_TOKENS
    if fixed > limit:
        raise InvalidArgument(
            f"The message is too long for the model's context window ({context_size} tokens, "
            f"{reserved_output} kept for the reply)."
        )
    room = limit - fixed
    cut, omitted, transcript_used, selected, total = None, 0, transcript_tokens, None, 0
    if transcript_tokens > room:
        paragraphs = list(paragraph_tokens())
        total = len(paragraphs)
        budget = max(0, room - OMISSION_NOTE_TOKENS)
        chosen = select_relevant(paragraphs, list(paragraph_scores()), budget) if paragraph_scores else []
        if chosen:
            selected, omitted = tuple(chosen), total - len(chosen)
            transcript_used = (sum(paragraphs[i] for i in chosen)
                               + (PARAGRAPH_JOINT_TOKENS + GAP_MARKER_TOKENS) * len(chosen) + OMISSION_NOTE_TOKENS)
        else:
            head, tail = cut_transcript(paragraphs, budget)
            cut, omitted = (head, tail), total - head - tail
            kept = paragraphs[:head] + paragraphs[total - tail:]
            transcript_used = sum(kept) + PARAGRAPH_JOINT_TOKENS * len(kept) + OMISSION_NOTE_TOKENS
    first, history_used = _kept_history(history, room - transcript_used)
    return WindowPlan(first, cut, omitted, fixed + transcript_used + history_used, selected, total)
