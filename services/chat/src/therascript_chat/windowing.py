"""History windowing: make prompt + reserved output fit the loaded context window.

The original re-sent the whole transcript and the whole history on every turn and left truncation to the
runtime (original §10 "Performance" 1). Here, before generating, the prompt is planned against the
context size: the system prompt and the new question always stay; the transcript stays whole if it fits,
else paragraphs are cut from its middle (head 60 % / tail 40 %, with a note in their place, as the
original's analysis map did, §3); then as many of the most recent history turns as fit are kept, and a
kept history never starts with an assistant turn (chat templates such as Gemma's need user first).

Pure functions over token counts, so they are unit-tested without a model.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from therascript_common.errors import InvalidArgument

#: Tokens a chat template adds around each message (ChatML: `<|im_start|>role\n … <|im_end|>\n` ≈ 5).
MESSAGE_OVERHEAD_TOKENS = 8
#: Tokens of the joint between two transcript paragraphs (`\n\n`) — a safe upper bound.
PARAGRAPH_JOINT_TOKENS = 2
#: Tokens reserved for the note that replaces cut paragraphs (see `omission_note`).
OMISSION_NOTE_TOKENS = 32
HEAD_SHARE = 0.6


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

    @property
    def windowed(self) -> bool:
        """True when anything was left out (history turns or transcript paragraphs)."""
        return self.first_turn > 0 or self.omitted_paragraphs > 0


def omission_note(omitted: int, total: int) -> str:
    """The line that stands where paragraphs were cut from the transcript."""
    return f"[... {omitted} of {total} transcript paragraphs omitted here to fit the model's context window ...]"


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
) -> WindowPlan:
    """Plans the prompt for a context of `context_size` tokens keeping `reserved_output` free.

    `message_tokens`: the final user message without the transcript; `transcript_tokens`: the whole
    rendered transcript (0 for none); `paragraph_tokens()` is called only when the transcript must be cut.
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
    cut, omitted, transcript_used = None, 0, transcript_tokens
    if transcript_tokens > room:
        paragraphs = list(paragraph_tokens())
        head, tail = cut_transcript(paragraphs, max(0, room - OMISSION_NOTE_TOKENS))
        cut, omitted = (head, tail), len(paragraphs) - head - tail
        kept = paragraphs[:head] + paragraphs[len(paragraphs) - tail:]
        transcript_used = sum(kept) + PARAGRAPH_JOINT_TOKENS * len(kept) + OMISSION_NOTE_TOKENS
    first, history_used = _kept_history(history, room - transcript_used)
    return WindowPlan(first, cut, omitted, fixed + transcript_used + history_used)
