"""Chat names and tags in the chat service itself (issue 7 item 13): the gateway refuses bad names at the edge,
and the owning service refuses them again, so no caller can store one. Pure functions: no database needed."""

from __future__ import annotations

import pytest

from therascript_chat.chats import clean_name, clean_tags
from therascript_common.errors import InvalidArgument

BAD = ["A\x00B", "Two\r\nlines", "Rev\u202eersed", "Iso\u2066late", "Zero\u200bwidth", "\ufeffBom", "C1\x85inside"]


@pytest.mark.parametrize("bad", BAD)
def test_names_and_tags_with_forbidden_characters_are_invalid(bad: str) -> None:
    with pytest.raises(InvalidArgument):
        clean_name(bad)
    with pytest.raises(InvalidArgument):
        clean_tags(["ok", bad])


def test_names_are_nfc_and_trimmed_and_blank_still_clears() -> None:
    assert clean_name("  Cafe\u0301 ") == "Caf\u00e9"
    assert clean_name("   ") is None
    assert clean_tags(["Cafe\u0301", "b"]) == ["b", "Caf\u00e9"]
    assert clean_tags(["a", "  "]) is None  # one blank tag clears them all (original behaviour)
