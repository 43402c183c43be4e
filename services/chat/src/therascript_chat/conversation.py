"""What the model is given for a chat: system prompt, transcript (session chats), history, question.

Session chat (original §2.1 step 3): system message = the `system_prompt` template (its speaker-label
sentence swapped for a descriptive one when the session hides speakers); history from the first user
message on; the final user message wraps the transcript — paragraphs joined by a blank line, each
prefixed `SPEAKER: ` when the session shows speakers — around the question.
Standalone chat: the `system_standalone_prompt` template is sent (the original never sent it, §10 item 8).
The reasoning (`thinking`) of earlier replies is not sent back (original §10 "Performance" 1).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from therascript.llm.v1 import llm_pb2
from therascript.sessions.v1 import sessions_pb2

from . import messages, templates
from .clients import LlmClient
from .deps import ChatDeps
from .storage.tables import ChatRow
from .windowing import HistoryTurn, WindowPlan, gap_marker, omission_note, relevance_scores

_SPEAKER_PREFIX = re.compile(r"^SPEAKER_\d+:\s*", re.MULTILINE)


@dataclass(frozen=True)
class Turn:
    """An earlier message: `role` user or assistant; `text` the answer only."""

    role: Literal["user", "assistant"]
    text: str


@dataclass(frozen=True)
class Conversation:
    """A chat as the model sees it. `transcript` = rendered paragraph lines (None for standalone chats)."""

    purpose: str                 # llm usage source: session_chat | standalone_chat
    system_prompt: str
    transcript: list[str] | None
    history: list[Turn]


@dataclass(frozen=True)
class ConversationCounts:
    """Tokens of each part (by the loaded model's tokenizer when `by_tokenizer`).

    `message`: the final user message without the transcript; `question`: the question alone;
    `context_size`: the loaded n_ctx (tokens) as CountTokens reports it, None when no model is loaded.
    """

    system: int
    transcript: int | None
    history: list[int]
    message: int
    question: int
    by_tokenizer: bool
    context_size: int | None


def session_system_prompt(text: str, show_speakers: bool) -> str:
    """The session system prompt; with speakers hidden the label sentence becomes a descriptive one."""
    if show_speakers:
        return text
    if templates.SPEAKER_LABEL_SENTENCE in text:
        return text.replace(templates.SPEAKER_LABEL_SENTENCE, templates.SPEAKER_DESCRIPTIVE_SENTENCE)
    return f"{text} {templates.SPEAKER_DESCRIPTIVE_SENTENCE}"


def render_paragraph(paragraph: sessions_pb2.Paragraph, show_speakers: bool) -> str:
    """`SPEAKER: text` when speakers are shown and the paragraph has one, else the text."""
    if show_speakers and paragraph.HasField("speaker") and paragraph.speaker:
        return f"{paragraph.speaker}: {paragraph.text}"
    return paragraph.text


def transcript_text(lines: list[str]) -> str:
    """Paragraph lines joined by a blank line (original §2.1)."""
    return "\n\n".join(lines)


def user_message(transcript: str | None, question: str) -> str:
    """The final user message: the question, wrapped with the transcript for session chats (original §2.1)."""
    if transcript is None:
        return question
    return f'CONTEXT TRANSCRIPT:\n"""\n{transcript}\n"""\n\nUSER QUESTION:\n{question}'


def _history(chat_id: int, deps: ChatDeps, strip_speakers: bool) -> list[Turn]:
    """User and AI messages from the first user message on (original §2.1 step 3)."""
    turns: list[Turn] = []
    for row in messages.list_messages(deps.db, chat_id):
        if row.sender == "system" or (row.sender == "ai" and not turns):
            continue
        text = _SPEAKER_PREFIX.sub("", row.text) if strip_speakers and row.sender == "ai" else row.text
        turns.append(Turn("user" if row.sender == "user" else "assistant", text))
    return turns


def load_conversation(deps: ChatDeps, chat: ChatRow) -> Conversation:
    """The chat's conversation; for a session chat, the session and transcript come from sessions (gRPC)."""
    if chat.session_id is None:
        system = templates.system_prompt(deps.db, templates.STANDALONE_SYSTEM_PROMPT)
        return Conversation("standalone_chat", system, None, _history(chat.id, deps, False))
    session = deps.sessions.get_session(chat.session_id)
    show = session.show_speakers != 0
    lines = [render_paragraph(p, show) for p in deps.sessions.get_transcript(chat.session_id)]
    system = session_system_prompt(templates.system_prompt(deps.db, templates.SESSION_SYSTEM_PROMPT), show)
    return Conversation("session_chat", system, lines, _history(chat.id, deps, not show))


def count_conversation(llm: LlmClient, convo: Conversation, question: str) -> ConversationCounts:
    """One CountTokens call for every part of the conversation plus `question` (may be "")."""
    transcript = [transcript_text(convo.transcript)] if convo.transcript is not None else []
    empty_transcript = "" if convo.transcript is not None else None
    texts = [convo.system_prompt, user_message(empty_transcript, question), question, *transcript,
             *(turn.text for turn in convo.history)]
    result = llm.count_tokens(texts)
    counts = result.counts
    history_at = 3 + len(transcript)
    return ConversationCounts(
        system=counts[0], message=counts[1], question=counts[2] if question else 0,
        transcript=counts[3] if transcript else None, history=counts[history_at:],
        by_tokenizer=result.by_tokenizer, context_size=result.context_size,
    )


def history_turns(convo: Conversation, counts: ConversationCounts) -> list[HistoryTurn]:
    """The history as the window planner sees it."""
    return [HistoryTurn(tokens, turn.role == "user") for turn, tokens in zip(convo.history, counts.history, strict=True)]


def paragraph_counter(llm: LlmClient, convo: Conversation):
    """A callable giving each transcript paragraph's token count (only called when cutting is needed)."""
    return lambda: llm.count_tokens(convo.transcript or []).counts


def paragraph_scorer(convo: Conversation, question: str):
    """A callable giving each transcript paragraph's relevance to `question` (only called when cutting)."""
    return lambda: relevance_scores(question, convo.transcript or [])


def _selected_transcript(lines: list[str], plan: WindowPlan, kept: tuple[int, ...]) -> str:
    """The kept paragraphs in time order, a note first and a gap marker wherever paragraphs were left out."""
    parts = [f"[Note: only {len(kept)} of the {len(lines)} transcript paragraphs fit the model's context window: "
             "those most relevant to the question and the ones around them, in time order.]"]
    previous = -1
    for index in kept:
        if index > previous + 1:
            parts.append(gap_marker(index - previous - 1))
        parts.append(lines[index])
        previous = index
    if previous < len(lines) - 1:
        parts.append(gap_marker(len(lines) - 1 - previous))
    return transcript_text(parts)


def _windowed_transcript(lines: list[str], plan: WindowPlan) -> str:
    if plan.kept_paragraphs is not None:
        return _selected_transcript(lines, plan, plan.kept_paragraphs)
    if plan.transcript_cut is None:
        return transcript_text(lines)
    head, tail = plan.transcript_cut
    note = omission_note(plan.omitted_paragraphs, len(lines))
    return transcript_text([*lines[:head], note, *lines[len(lines) - tail:]])


def build_prompt(convo: Conversation, question: str, plan: WindowPlan) -> list[llm_pb2.ChatMessage]:
    """The messages sent to Generate: system, the kept history, the final user message."""
    role = {"user": llm_pb2.ROLE_USER, "assistant": llm_pb2.ROLE_ASSISTANT}
    transcript = None if convo.transcript is None else _windowed_transcript(convo.transcript, plan)
    return [
        llm_pb2.ChatMessage(role=llm_pb2.ROLE_SYSTEM, content=convo.system_prompt),
        *(llm_pb2.ChatMessage(role=role[t.role], content=t.text) for t in convo.history[plan.first_turn:]),
        llm_pb2.ChatMessage(role=llm_pb2.ROLE_USER, content=user_message(transcript, question)),
    ]
