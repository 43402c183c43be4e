"""The one rule for names people type: client and session names, chat names, template titles, speaker
labels (issue 7 item 13). The gateway applies it at the edge; the owning services apply it again, so a
name that reaches the database is always clean whoever called.

- `clean_name(value)`: NFC-normalised and trimmed; ValueError if it holds a control character (NUL,
  CR/LF, tab, any Unicode Cc), a bidi override/isolate/mark (U+202A–202E, U+2066–2069, U+200E/F, U+061C)
  or a zero-width/invisible character (U+200B–200D, U+2060, U+FEFF). Length is the caller's to check.
- `name_key(value)`: the form two names are compared in for uniqueness (template titles): NFKC,
  case-folded, every run of whitespace (a non-breaking space included) one space, trimmed. So
  "Intake Notes", "intake  notes" and "Intake\u00a0Notes" share one key.
"""

from __future__ import annotations

import re
import unicodedata

_BIDI = {chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F, 0x061C)}
_INVISIBLE = {"\u200b", "\u200c", "\u200d", "\u2060", "\ufeff"}
_WHITESPACE_RUN = re.compile(r"\s+")


def forbidden_character(value: str) -> str | None:
    """The first character of `value` a name may not hold, described (`"U+202E"`), or None."""
    for char in value:
        if char in _BIDI or char in _INVISIBLE or unicodedata.category(char) == "Cc":
            return f"U+{ord(char):04X}"
    return None


def clean_name(value: str) -> str:
    """`value` NFC-normalised and trimmed (possibly empty); ValueError naming the first forbidden character."""
    value = unicodedata.normalize("NFC", value).strip()
    bad = forbidden_character(value)
    if bad is not None:
        raise ValueError(f"must not contain control, bidirectional-override or zero-width characters ({bad})")
    return value


def name_key(value: str) -> str:
    """The uniqueness key of a name: NFKC, case-folded, whitespace runs collapsed to one space, trimmed."""
    folded = unicodedata.normalize("NFKC", value).casefold()
    return _WHITESPACE_RUN.sub(" ", folded).strip()
