"""Shared body-field types of the gateway's edge validation: names (one rule, therascript_common.names) and
texts that must hold something besides whitespace.

A violation is a pydantic error, so it leaves as 400 `ValidationError` naming the field. The OpenAPI schema of
each type says the same as a `pattern`, so a client (or schemathesis) can tell a valid value from its schema."""

from __future__ import annotations

import unicodedata
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, WithJsonSchema

from therascript_common.names import clean_name

#: What a name may not contain, as a character class body (therascript_common.names): C0/C1 controls, bidi
#: marks, overrides and isolates, zero-width characters.
_FORBIDDEN = r"\u0000-\u001f\u007f-\u009f\u061c\u200b-\u200f\u202a-\u202e\u2060\u2066-\u2069\ufeff"
#: A name, in the document: no forbidden character, and at least one that is not whitespace.
NAME_PATTERN = rf"^[^{_FORBIDDEN}]*[^\s{_FORBIDDEN}][^{_FORBIDDEN}]*$"
#: A text that must not be blank, in the document (unanchored: "holds a non-whitespace character").
NON_BLANK_PATTERN = r"\S"
#: A calendar date as the contract writes it (year 1000-9999, month 01-12, day 01-31; the owning service checks
#: the rest, e.g. 2026-02-30).
DATE_PATTERN = r"^[1-9][0-9]{3}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$"
DATE_LENGTH = 10  # also stated, so no generator reads `$` as "before a final newline" (Python's re does)
#: A `YYYY-MM-DD` date field.
DateText = Annotated[str, Field(pattern=DATE_PATTERN, min_length=DATE_LENGTH, max_length=DATE_LENGTH)]


def _cleaned(value: object) -> object:
    return clean_name(value) if isinstance(value, str) else value


def _blank_is_none(value: object) -> object:
    if isinstance(value, str):
        return clean_name(value) or None
    return value


def _name(max_chars: int) -> Any:
    return Field(min_length=1, max_length=max_chars, json_schema_extra={"pattern": NAME_PATTERN})


def _tag(value: object) -> object:
    """NFC, and refused if it holds a forbidden character, but not trimmed: the chat service trims tags and
    clears the whole list when one is blank (original behaviour, ui-contract §1.A.4)."""
    if isinstance(value, str):
        value = unicodedata.normalize("NFC", value)
        clean_name(value)  # raises ValueError for a forbidden character
    return value


_Clean = BeforeValidator(_cleaned)

#: Required names: NFC, trimmed, 1..N characters, no control/bidi/zero-width characters.
Name200 = Annotated[str, _Clean, _name(200)]
Name100 = Annotated[str, _Clean, _name(100)]
#: A chat tag: as a name, except that surrounding whitespace is kept for the chat service (see _tag).
Tag50 = Annotated[str, BeforeValidator(_tag), Field(min_length=1, max_length=50,
                                                     json_schema_extra={"pattern": rf"^[^{_FORBIDDEN}]*$"})]
FileName = Annotated[str, _Clean, _name(255)]
#: As Name200, but blank (or null) means "no name", as chat renames have it.
ClearableName200 = Annotated[Name200 | None, BeforeValidator(_blank_is_none), WithJsonSchema({
    "anyOf": [{"type": "string", "maxLength": 200, "pattern": rf"^[^{_FORBIDDEN}]*$"}, {"type": "null"}]})]
