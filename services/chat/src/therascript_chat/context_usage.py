"""Context usage (original §4 shape, ui-contract §2), counted with the loaded model's own tokenizer
(llm-manager CountTokens) instead of the original's cl100k estimate (§10 "Performance" 2).

Breakdown, all in tokens:
- `systemTokens`: the system prompt actually sent (session or standalone template);
- `transcriptTokens`: the rendered transcript as sent (speaker prefixes included); null for standalone;
- `chatHistoryTokens`: Σ of each earlier message's answer text (reasoning is not sent back);
- `inputDraftTokens`: the draft, or 0.
`promptTokens` is their sum (chat-template overhead not included); `percentUsed = min(1, prompt/effective)`.
"""

from __future__ import annotations

from dataclasses import dataclass

from therascript.chat.v1 import chat_pb2

from . import chats
from .clients import LlmClient
from .conversation import ConversationCounts, count_conversation, load_conversation
from .deps import ChatDeps

WARN_AT = 0.75     # original §4 thresholds
DANGER_AT = 0.9
DEFAULT_RESERVED_OUTPUT_TOKENS = 512  # original §4


@dataclass(frozen=True)
class ModelWindow:
    """The active model's name and context sizes (tokens); effective = loaded ?? configured ?? default."""

    name: str
    configured: int | None
    default: int | None
    effective: int | None


def model_window(llm: LlmClient) -> ModelWindow:
    """From llm-manager GetStatus."""
    status = llm.status()
    configured = status.configured_context_size if status.HasField("configured_context_size") else None
    default = None
    if status.HasField("details") and status.details.HasField("default_context_size"):
        default = status.details.default_context_size
    elif status.HasField("model_max_context"):
        default = status.model_max_context
    loaded = status.loaded_context_size if status.HasField("loaded_context_size") else None
    effective = next((size for size in (loaded, configured, default) if size), None)
    return ModelWindow(status.active_model, configured, default, effective)


def usage_from_counts(counts: ConversationCounts, model: ModelWindow, reserved_output: int,
                      question_in_history: bool) -> chat_pb2.ContextUsage:
    """The §4 object. `question_in_history`: the question is already a stored message (the SSE `usage`
    event) rather than a draft (GET …/context-usage?inputDraft=)."""
    history = sum(counts.history) + (counts.question if question_in_history else 0)
    draft = 0 if question_in_history else counts.question
    prompt = counts.system + (counts.transcript or 0) + history + draft
    totals = chat_pb2.ContextUsage.Totals(prompt_tokens=prompt)
    if model.effective:
        totals.percent_used = min(1.0, prompt / model.effective)
        totals.remaining_for_prompt = max(0, model.effective - prompt)
        totals.remaining_for_output = max(0, totals.remaining_for_prompt - reserved_output)
    return chat_pb2.ContextUsage(
        model=chat_pb2.ContextUsage.Model(
            name=model.name, configured_context_size=model.configured, default_context_size=model.default,
            effective_context_size=model.effective),
        breakdown=chat_pb2.ContextUsage.Breakdown(
            system_tokens=counts.system, transcript_tokens=counts.transcript, chat_history_tokens=history,
            input_draft_tokens=draft),
        reserved_output_tokens=reserved_output,
        totals=totals,
        warn_at=WARN_AT,
        danger_at=DANGER_AT,
        token_count_method="tokenizer" if counts.by_tokenizer else "estimate",
    )


def get_context_usage(deps: ChatDeps, chat_id: int, session_id: int | None, input_draft: str,
                      reserved_output: int) -> chat_pb2.ContextUsage:
    """GET …/context-usage: NotFound for an unknown chat; `reserved_output` 0 = 512 tokens."""
    chat = chats.get_chat(deps.db, chat_id, session_id)
    convo = load_conversation(deps, chat)
    counts = count_conversation(deps.llm, convo, input_draft)
    reserved = reserved_output if reserved_output > 0 else DEFAULT_RESERVED_OUTPUT_TOKENS
    return usage_from_counts(counts, model_window(deps.llm), reserved, question_in_history=False)
