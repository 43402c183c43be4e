"""Issue 7 item 1, the reproducer: stop chat → delete session A (it has a chat) → upload session B → start
chat. Before: B got A's id (SQLite reused the highest id), so for a few seconds B's session listed A's chat
and served A's messages, and then the delayed clean-up of A's chats deleted the chat B had just created.
Now ids are never reused, and the clean-up deletes exactly the chats that existed when A was deleted."""

from __future__ import annotations

import sqlite3
import time

from dialogue import TWO_SPEAKER_SCRIPT, make_dialogue
from test_sessions_flow import upload

CLEANUP_TIMEOUT_S = 60.0


def _chat_ids_in_chat_db(system) -> set[int]:
    path = system.data_dir / "chat" / "chat.sqlite"
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        return {row[0] for row in db.execute("SELECT id FROM chats")}


def test_a_deleted_session_s_chat_never_reaches_the_next_session(system, client, tmp_path) -> None:
    recording = tmp_path / "short.wav"
    make_dialogue(recording, TWO_SPEAKER_SCRIPT[:2])
    session_a = upload(client, recording)["sessionId"]
    reply = client.post(f"/sessions/{session_a}/chats")
    assert reply.status_code == 201, reply.text
    chat_a = reply.json()["id"]

    system.kill("chat")  # held down: the clean-up of A's chats cannot be delivered yet
    try:
        assert client.delete(f"/sessions/{session_a}").status_code == 200
        session_b = upload(client, recording)["sessionId"]
    finally:
        system.restart("chat")
    assert session_b != session_a, "the deleted session's id was given to the next upload"

    listed = client.get(f"/sessions/{session_b}").json()
    assert [c["id"] for c in listed.get("chats", [])] == [], listed
    assert client.get(f"/sessions/{session_b}/chats/{chat_a}").status_code == 404
    assert client.post(f"/sessions/{session_a}/chats").status_code == 404  # no chat for a deleted session
    reply = client.post(f"/sessions/{session_b}/chats")
    assert reply.status_code == 201, reply.text
    chat_b = reply.json()["id"]
    assert chat_b != chat_a

    deadline = time.monotonic() + CLEANUP_TIMEOUT_S
    while chat_a in _chat_ids_in_chat_db(system):  # the outbox delivers A's clean-up once chat is back
        assert time.monotonic() < deadline, f"A's chat was never cleaned up\n{system.log('sessions')[-3000:]}"
        time.sleep(0.5)
    detail = client.get(f"/sessions/{session_b}/chats/{chat_b}")
    assert detail.status_code == 200, detail.text  # B's chat survived the delayed clean-up
    assert [c["id"] for c in client.get(f"/sessions/{session_b}").json()["chats"]] == [chat_b]
