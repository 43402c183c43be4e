"""The sessions service layer on a real database — run on SQLite and on PostgreSQL (conftest `db`)."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from therascript_common.errors import InvalidArgument, NotFound
from therascript_sessions import outbox
from therascript_sessions.clock import now_ms
from therascript_sessions.sessions import MetadataUpdate, SessionService
from therascript_sessions.storage.tables import OutboxRow, ParagraphRow, SessionRow
from therascript_sessions.transcription.paragraphs import ParagraphDraft
from therascript_sessions.transcripts import SpeakerRename, TranscriptService, replace_paragraphs


def _session(db, status: str = "completed", paragraphs=()) -> int:
    with db.transaction() as session:
        row = SessionRow(file_name="a.wav", client_name="C", session_name="S", date="2026-01-01T12:00:00.000Z",
                         session_type="Individual", therapy="CBT", status=status, show_speakers=1, num_speakers=2,
                         created_at_ms=now_ms())
        session.add(row)
        session.flush()
        replace_paragraphs(session, row.id, [ParagraphDraft(i, i * 1000, t, s) for i, (s, t) in enumerate(paragraphs)])
        return row.id


def _texts(db, session_id: int) -> list[tuple[int, str | None, str]]:
    with db.transaction() as session:
        rows = session.scalars(select(ParagraphRow).where(ParagraphRow.session_id == session_id)
                               .order_by(ParagraphRow.paragraph_index))
        return [(p.paragraph_index, p.speaker, p.text) for p in rows]


def test_replacing_paragraphs_is_idempotent(db):
    sid = _session(db, paragraphs=[("A", "one"), ("B", "two")])
    drafts = [ParagraphDraft(0, 0, "uno", "A"), ParagraphDraft(1, 900, "dos", "B")]
    for _ in range(3):  # a retried job writes the same session again
        with db.transaction() as session:
            replace_paragraphs(session, sid, drafts)
    assert _texts(db, sid) == [(0, "A", "uno"), (1, "B", "dos")]


def test_paragraph_index_is_unique_per_session(db):
    sid = _session(db, paragraphs=[("A", "one")])
    with pytest.raises(IntegrityError), db.transaction() as session:
        session.add(ParagraphRow(session_id=sid, paragraph_index=0, timestamp_ms=0, text="dup"))


def test_rename_applies_all_pairs_at_once(db):
    sid = _session(db, paragraphs=[("A", "1"), ("B", "2"), ("C", "3"), ("A", "4")])
    service = TranscriptService(db)
    assert service.rename_speakers(sid, [SpeakerRename("A", "B"), SpeakerRename("B", "A"), SpeakerRename("C", "C")]) == 2
    assert [s for _, s, _ in _texts(db, sid)] == ["B", "A", "C", "B"]
    with pytest.raises(InvalidArgument):
        service.rename_speakers(sid, [SpeakerRename("A", "X"), SpeakerRename("Z", "Y")])
    assert [s for _, s, _ in _texts(db, sid)] == ["B", "A", "C", "B"]  # nothing applied on error


def test_transcript_edits_require_a_completed_session(db):
    sid = _session(db, status="transcribing", paragraphs=[("A", "x")])
    service = TranscriptService(db)
    assert service.get(sid) == []
    with pytest.raises(InvalidArgument):
        service.update_paragraph(sid, 0, "y")


def test_delete_session_is_atomic_and_records_what_it_owes(db, tmp_path):
    sid = _session(db, paragraphs=[("A", "x")])
    with db.transaction() as session:
        session.get(SessionRow, sid).audio_path = "1-1.wav"
    (tmp_path / "1-1.wav").write_bytes(b"RIFF")
    delivered: list[dict] = []

    def failing_chat(payload: dict) -> None:
        raise ConnectionError("chat service down")

    dispatcher = outbox.OutboxDispatcher(db, {outbox.DELETE_FILE: outbox.delete_file,
                                              outbox.DELETE_SESSION_CHATS: failing_chat})
    before_ms = now_ms()
    SessionService(db, tmp_path, dispatcher).delete(sid)
    after_ms = now_ms()
    with pytest.raises(NotFound):
        SessionService(db, tmp_path, dispatcher).get(sid)
    assert _texts(db, sid) == []
    assert not (tmp_path / "1-1.wav").exists()
    with db.transaction() as session:
        pending = session.scalars(select(OutboxRow)).all()
        assert [(p.kind, p.attempts) for p in pending] == [(outbox.DELETE_SESSION_CHATS, 1)]
        # the clean-up names what it deletes: the session's chats as of its deletion (issue 7 item 1)
        payload = pending[0].payload
        assert payload["session_id"] == sid and before_ms <= payload["deleted_at_ms"] <= after_ms
    # the chat service comes back: the owed delete is delivered, once
    dispatcher = outbox.OutboxDispatcher(db, {outbox.DELETE_SESSION_CHATS: delivered.append})
    assert dispatcher.deliver_pending() == 1
    assert delivered == [payload]
    assert dispatcher.deliver_pending() == 0


def test_metadata_update_validates_and_pins_dates(db, tmp_path):
    sid = _session(db)
    service = SessionService(db, tmp_path, outbox.OutboxDispatcher(db, {}))
    row = service.update_metadata(sid, MetadataUpdate(client_name="  Bob ", date="2026-02-28", show_speakers=False))
    assert (row.client_name, row.date, row.show_speakers) == ("Bob", "2026-02-28T12:00:00.000Z", 0)
    for bad in (MetadataUpdate(), MetadataUpdate(date="2026-02-30"), MetadataUpdate(therapy=" "),
                MetadataUpdate(client_name="x" * 201)):
        with pytest.raises(InvalidArgument):
            service.update_metadata(sid, bad)
    with pytest.raises(NotFound):
        service.update_metadata(sid + 1000, MetadataUpdate(therapy="DBT"))


def test_waiting_for_the_schema_returns_once_migrated(db):
    db.wait_until_migrated(timeout_s=5)


def test_waiting_for_an_unmigrated_schema_times_out(tmp_path):
    from therascript_sessions.storage.database import Database

    fresh = Database(f"sqlite:///{tmp_path / 'empty.sqlite'}")
    with pytest.raises(TimeoutError):
        fresh.wait_until_migrated(timeout_s=0.5, poll_s=0.1)


def test_ids_are_never_reused_after_the_newest_row_is_deleted(db):
    """Issue 7 item 1: SQLite without AUTOINCREMENT gave the deleted newest session's id to the next upload,
    so work another service still owed the old session landed on the new one. SQLite and PostgreSQL."""
    first = _session(db, paragraphs=[("A", "client A")])
    with db.transaction() as session:
        paragraph_id = session.scalars(select(ParagraphRow.id).where(ParagraphRow.session_id == first)).one()
        outbox.record(session, "test.kind", {"n": 1})
    with db.transaction() as session:
        outbox_id = session.scalars(select(OutboxRow.id)).one()
    with db.transaction() as session:
        session.delete(session.get(SessionRow, first))
        session.delete(session.get(OutboxRow, outbox_id))
    second = _session(db, paragraphs=[("B", "client B")])
    assert second > first
    with db.transaction() as session:
        assert session.scalars(select(ParagraphRow.id).where(ParagraphRow.session_id == second)).one() > paragraph_id
        outbox.record(session, "test.kind", {"n": 2})
    with db.transaction() as session:
        assert session.scalars(select(OutboxRow.id)).one() > outbox_id
