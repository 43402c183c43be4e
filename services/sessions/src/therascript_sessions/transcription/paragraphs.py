"""Words → transcript paragraphs.

The rules are the original's (original-therascript.md §6.3 step 7, `groupSegmentsIntoParagraphs`), applied
to words instead of Whisper segments so that a speaker change inside a segment starts a new paragraph.
A paragraph is closed:

- when the speaker changes, word by word (before the new word is added): a paragraph never mixes speakers;
- when the gap to the next word is > 1000 ms;
- when the text so far ends with ".", "!" or "?" and the gap to the next word is > 500 ms;
- (ours) when it reaches SOFT_MAX_S / SOFT_MAX_WORDS and a sentence ends, or HARD_MAX_S / HARD_MAX_WORDS
  in any case, so that a long monologue does not become one unreadable block;
- at the last word.

Unlike the original, empty paragraphs are dropped BEFORE indices are given, so indices are always 0..n-1.
Each paragraph keeps its words (timing and ASR probability; the speaker is the paragraph's), stored with it
for word-level exports and editors (`ParagraphDraft.words_json`).
Pure functions: no I/O, no heavy imports.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from therascript_sessions.transcription.asr import Word

LONG_GAP_S = 1.0
"""A pause longer than this (s) always ends a paragraph (original: > 1000 ms)."""
SENTENCE_GAP_S = 0.5
"""A pause longer than this (s) after ".", "!" or "?" ends a paragraph (original: > 500 ms)."""
SENTENCE_END = (".", "!", "?")
SOFT_MAX_S = 90.0
SOFT_MAX_WORDS = 180
HARD_MAX_S = 120.0
HARD_MAX_WORDS = 250


@dataclass
class ParagraphDraft:
    """A paragraph ready to store. index: position in the transcript, from 0. timestamp_ms: start of its
    first word in ms (rounded). text: the words joined, stripped. speaker: their speaker label or None (all
    its words have this speaker). words: the words, in time order."""

    index: int
    timestamp_ms: int
    text: str
    speaker: str | None
    words: list[Word] = field(default_factory=list, compare=False, repr=False)

    def words_json(self) -> list[dict]:
        """The words as stored: `[{"start_ms": int, "end_ms": int, "text": str, "probability": float}, …]`,
        text stripped of Whisper's leading space, probability rounded to 3 decimals."""
        return [{"start_ms": round(w.start_s * 1000), "end_ms": round(w.end_s * 1000), "text": w.text.strip(),
                 "probability": round(float(w.probability), 3)} for w in self.words if w.text.strip()]


def build_paragraphs(words: list[Word]) -> list[ParagraphDraft]:
    """Group time-ordered words into paragraphs by the rules in this module's docstring.

    words: as `asr.transcribe` returns them (text with its leading space), `speaker` set or None.
    Returns the paragraphs in order, none empty, indices 0..n-1.
    """
    groups: list[list[Word]] = []
    current: list[Word] = []
    for position, word in enumerate(words):
        if current and word.speaker != current[-1].speaker:
            groups.append(current)
            current = []
        current.append(word)
        following = words[position + 1] if position + 1 < len(words) else None
        if following is None or _ends_paragraph(current, following.start_s - word.end_s):
            groups.append(current)
            current = []
    kept = [(group, text) for group in groups if (text := _join(group))]
    return [
        ParagraphDraft(index, round(group[0].start_s * 1000), text, group[0].speaker, list(group))
        for index, (group, text) in enumerate(kept)
    ]


def _ends_paragraph(current: list[Word], gap_s: float) -> bool:
    """Whether the paragraph `current` (non-empty) closes before a next word that starts `gap_s` later."""
    sentence_ends = current[-1].text.rstrip().endswith(SENTENCE_END)
    if gap_s > LONG_GAP_S or (sentence_ends and gap_s > SENTENCE_GAP_S):
        return True
    duration_s = current[-1].end_s - current[0].start_s
    if len(current) >= HARD_MAX_WORDS or duration_s >= HARD_MAX_S:
        return True
    return sentence_ends and (len(current) >= SOFT_MAX_WORDS or duration_s >= SOFT_MAX_S)


def _join(words: list[Word]) -> str:
    """The paragraph text: the word texts concatenated (each carries its own leading space, as Whisper
    gives it; languages written without spaces have none), whitespace runs collapsed, stripped."""
    return " ".join("".join(word.text for word in words).split())
