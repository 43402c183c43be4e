"""Fitting text into a context window without losing the middle (the original kept head 60 % / tail 40 %).

- `chunk_paragraphs`: a transcript that does not fit is split into consecutive chunks at paragraph boundaries;
  every paragraph lands in exactly one chunk (a paragraph longer than a whole chunk is split at word
  boundaries, the only place a paragraph is cut).
- `group_items`: intermediate answers that do not fit one reduce prompt are grouped (consecutive, in session
  order) so that each group fits; the groups' answers are reduced again (hierarchical reduce).

Counts are tokens as llm-manager's CountTokens reports them; `SEPARATOR_TOKENS` covers the blank line between
paragraphs.
"""

from __future__ import annotations

import math

SEPARATOR_TOKENS = 2


def split_long(text: str, tokens: int, budget: int) -> list[tuple[str, int]]:
    """`text` (of `tokens` tokens) cut at word boundaries into pieces of at most ~`budget` tokens each, with
    estimated counts (proportional to the words)."""
    if tokens <= budget:
        return [(text, tokens)]
    words = text.split()
    pieces = max(2, math.ceil(tokens / max(1, int(budget * 0.9))))
    size = max(1, math.ceil(len(words) / pieces))
    parts = [" ".join(words[i:i + size]) for i in range(0, len(words), size)]
    return [(part, max(1, math.ceil(tokens * len(part.split()) / max(1, len(words))))) for part in parts]


def chunk_paragraphs(paragraphs: list[str], counts: list[int], budget: int) -> list[list[str]]:
    """Consecutive chunks of `paragraphs` whose token total (with separators) stays within `budget`; one chunk
    when everything fits. Raises ValueError for a budget under 1 token."""
    if budget < 1:
        raise ValueError("the token budget must be positive")
    pieces: list[tuple[str, int]] = []
    for text, tokens in zip(paragraphs, counts, strict=True):
        pieces.extend(split_long(text, tokens, budget - SEPARATOR_TOKENS))
    chunks: list[list[str]] = []
    current: list[str] = []
    used = 0
    for text, tokens in pieces:
        cost = tokens + (SEPARATOR_TOKENS if current else 0)
        if current and used + cost > budget:
            chunks.append(current)
            current, used, cost = [], 0, tokens
        current.append(text)
        used += cost
    if current:
        chunks.append(current)
    return chunks


def group_items(counts: list[int], budget: int) -> list[list[int]]:
    """Indices of consecutive items grouped so that each group's tokens (with separators) fit `budget`. An item
    alone over the budget forms its own group (callers size budgets so that never happens)."""
    groups: list[list[int]] = []
    current: list[int] = []
    used = 0
    for index, tokens in enumerate(counts):
        cost = tokens + (SEPARATOR_TOKENS if current else 0)
        if current and used + cost > budget:
            groups.append(current)
            current, used, cost = [], 0, tokens
        current.append(index)
        used += cost
    if current:
        groups.append(current)
    return groups
