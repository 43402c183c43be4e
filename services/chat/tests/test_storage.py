"""Chats, messages and templates against a real database (each test runs on SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest

from therascript_chat import chats, messages, templates
from therascript_chat.messages import NewMessage
from therascript_common.errors import Conflict, InvalidArgument, NotFound


def test_session_chats_are_listed_newest_first_and_scoped(db) -> None:
    first, second = chats.create_chat(db, 7), chats.create_chat(db, 7)
    chats.create_chat(db, 8)
    chats.create_chat(db, None)
    assert [c.id for c in chats.list_session_chats(db, 7)] == [second.id, first.id]
    assert chats.get_chat(db, first.id, 7).session_id == 7
    with pytest.raises(NotFound, match=f"Chat {first.id} not found in session 8"):
        chats.get_chat(db, first.id, 8)
    with pytest.raises(NotFound, match=f"Standalone Chat {first.id} not found"):
        chats.get_chat(db, first.id, None)


def test_delete_session_chats_removes_chats_and_messages_and_is_idempotent(db) -> None:
    chat = chats.create_chat(db, 3)
    messages.record_message(db, NewMessage(chat.id, "user", "hello"))
    other = chats.create_chat(db, 4)
    assert chats.delete_session_chats(db, 3) == 1
    assert chats.delete_session_chats(db, 3) == 0
    assert chats.list_session_chats(db, 3) == []
    assert messages.list_messages(db, chat.id) == []
    assert chats.get_chat(db, other.id, 4).id == other.id


def test_delete_chat_deletes_its_messages(db) -> None:
    chat = chats.create_chat(db, None)
    messages.record_message(db, NewMessage(chat.id, "user", "hi"))
    chats.delete_chat(db, chat.id, None)
    assert messages.list_messages(db, chat.id) == []
    with pytest.raises(NotFound):
        chats.delete_chat(db, chat.id, None)


def test_messages_keep_token_counts_thinking_and_markers_in_order(db) -> None:
    chat = chats.create_chat(db, None)
    messages.record_message(db, NewMessage(chat.id, "user", "question"))
    messages.record_message(db, NewMessage(chat.id, "ai", "partial", thinking="hmm", prompt_tokens=None,
                                           completion_tokens=3, duration_ms=120, is_truncated=True, cancelled=True))
    user, ai = messages.list_messages(db, chat.id)
    assert (user.sender, user.text, user.completion_tokens, user.is_truncated) == ("user", "question", None, False)
    assert (ai.text, ai.thinking, ai.completion_tokens, ai.duration_ms) == ("partial", "hmm", 3, 120)
    assert ai.is_truncated and ai.cancelled and ai.id > user.id


@pytest.mark.parametrize("text", ["", "   ", "x" * 10_001])
def test_message_text_outside_1_to_10000_is_invalid(text: str) -> None:
    with pytest.raises(InvalidArgument):
        messages.clean_text(text)


def test_standalone_details_replace_name_and_tags(db) -> None:
    chat = chats.create_chat(db, None)
    updated = chats.update_chat_details(db, chat.id, "  Notes ", ["zeta", " Alpha", "beta", "zeta"])
    assert (updated.name, updated.tags) == ("Notes", ["Alpha", "beta", "zeta"])
    cleared = chats.update_chat_details(db, chat.id, None, None)
    assert (cleared.name, cleared.tags) == (None, None)
    assert chats.update_chat_details(db, chat.id, "n", ["ok", "  "]).tags is None  # ui-contract §1.A.4
    with pytest.raises(InvalidArgument):
        chats.update_chat_details(db, chat.id, "n", [str(i) for i in range(11)])
    with pytest.raises(InvalidArgument):
        chats.update_chat_details(db, chat.id, "x" * 201, None)
    session_chat = chats.create_chat(db, 5)
    with pytest.raises(NotFound):
        chats.update_chat_details(db, session_chat.id, "n", None)


def test_rename_session_chat_trims_and_blank_is_null(db) -> None:
    chat = chats.create_chat(db, 9)
    assert chats.rename_chat(db, chat.id, 9, "  Intake ").name == "Intake"
    assert chats.rename_chat(db, chat.id, 9, "   ").name is None
    with pytest.raises(NotFound):
        chats.rename_chat(db, chat.id, 10, "x")


def test_standalone_list_pages_newest_first(db) -> None:
    ids = [chats.create_chat(db, None).id for _ in range(3)]
    assert [c.id for c in chats.list_standalone_chats(db)] == ids[::-1]
    assert [c.id for c in chats.list_standalone_chats(db, limit=1, offset=1)] == [ids[1]]


def test_templates_crud_and_duplicate_title_conflicts(db) -> None:
    created = templates.create_template(db, "  Summary ", " Summarise the session. ")
    assert (created.title, created.text) == ("Summary", "Summarise the session.")
    with pytest.raises(Conflict):
        templates.create_template(db, "Summary", "again")
    other = templates.create_template(db, "Risks", "List risks.")
    with pytest.raises(Conflict):
        templates.update_template(db, other.id, "Summary", "x")
    assert templates.update_template(db, other.id, "Risk review", "List risks.").title == "Risk review"
    templates.delete_template(db, created.id)
    with pytest.raises(NotFound):
        templates.delete_template(db, created.id)
    with pytest.raises(NotFound):
        templates.update_template(db, created.id, "a", "b")
    with pytest.raises(InvalidArgument):
        templates.create_template(db, "x" * 201, "b")
    assert [t.title for t in templates.list_templates(db)] == ["Risk review"]


def test_system_templates_are_seeded_once_and_user_edits_survive_restart(db) -> None:
    assert templates.seed_system_templates(db) == 4
    titles = {t.title: t for t in templates.list_templates(db)}
    assert set(titles) == set(templates.SYSTEM_TEMPLATES)
    edited = templates.update_template(db, titles["system_prompt"].id, "system_prompt", "My own prompt.")
    assert templates.seed_system_templates(db) == 0  # a restart seeds again
    assert templates.system_prompt(db, "system_prompt") == "My own prompt."
    assert {t.id for t in templates.list_templates(db)} == {t.id for t in titles.values()}
    templates.delete_template(db, edited.id)
    assert templates.system_prompt(db, "system_prompt") == templates.SYSTEM_TEMPLATES["system_prompt"]


def test_ids_are_never_reused_after_the_newest_row_is_deleted(db) -> None:
    """Issue 7 item 1: SQLite without AUTOINCREMENT gave a deleted newest chat's id to the next chat, so a
    client (or a delayed clean-up) naming the old id reached the new chat. Runs on SQLite and PostgreSQL."""
    first = chats.create_chat(db, 1)
    message = messages.record_message(db, NewMessage(first.id, "user", "A's message"))
    chats.delete_chat(db, first.id, 1)
    second = chats.create_chat(db, 1)
    assert second.id > first.id
    assert messages.record_message(db, NewMessage(second.id, "user", "B's message")).id > message.id
    template = templates.create_template(db, "T", "text")
    templates.delete_template(db, template.id)
    assert templates.create_template(db, "T", "text").id > template.id
