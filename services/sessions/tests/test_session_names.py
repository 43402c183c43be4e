"""Names in the sessions service itself (issue 7 item 13): client/session names, session type, therapy and
speaker labels go through one check (sessions.clean_text → therascript_common.names), so a name with a control,
bidi-override or zero-width character is refused by the owning service whoever calls it, not only at the gateway.
Pure function: no database needed."""

from __future__ import annotations

import pytest

from therascript_common.errors import InvalidArgument
from therascript_sessions.sessions import clean_text


@pytest.mark.parametrize("bad", ["A\x00B", "Two\r\nlines", "Rev\u202eersed", "Iso\u2067late", "Zero\u200bwidth",
                                 "Word\u2060joiner", "\ufeffBom"])
def test_names_with_forbidden_characters_are_invalid(bad: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        clean_text("clientName", bad)
    assert refused.value.details == {"field": "clientName"}


def test_names_are_nfc_and_trimmed() -> None:
    assert clean_text("clientName", "  Cafe\u0301 ") == "Caf\u00e9"
    with pytest.raises(InvalidArgument):
        clean_text("clientName", "   ")
