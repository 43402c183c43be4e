"""Shared body-field types of the gateway's edge validation: names (one rule, therascript_common.names).

A violation is a pydantic error, so it leaves as 400 `ValidationError` naming the field."""

from __future__ import annotations

from typing import Annotated

from pydantic import BeforeValidator, Field

from therascript_common.names import clean_name


def _cleaned(value: object) -> object:
    return clean_name(value) if isinstance(value, str) else value


def _blank_is_none(value: object) -> object:
    if isinstance(value, str):
        return clean_name(value) or None
    return value


_Clean = BeforeValidator(_cleaned)

#: Required names: NFC, trimmed, 1..N characters, no control/bidi/zero-width characters.
Name200 = Annotated[str, _Clean, Field(min_length=1, max_length=200)]
Name100 = Annotated[str, _Clean, Field(min_length=1, max_length=100)]
Name50 = Annotated[str, _Clean, Field(min_length=1, max_length=50)]
FileName = Annotated[str, _Clean, Field(min_length=1, max_length=255)]
#: As Name200, but blank means "no name" (None), as chat renames have it.
ClearableName200 = Annotated[Name200 | None, BeforeValidator(_blank_is_none)]
