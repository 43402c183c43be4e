"""Transcript paragraphs and speaker labels (original §1.1: transcript routes, speakers rename)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import case, delete, select, update
from sqlalchemy.orm import Session

from therascript_common.errors import InvalidArgument, NotFound

from . import search
from .sessions import clean_text, require_session
from .storage.database import Database
from .storage.tables import ParagraphRow, SessionRow
from .transcription.paragraphs import ParagraphDraft

MAX_PARAGRAPH_TEXT = 10_000
MAX_SPEAKER_LABEL = 100


@dataclass(frozen=True)
class SpeakerRename:
    source: str  # `from` on the wire
    target: str  # `to` on the wire


def estimate_tokens(texts: list[str]) -> int:
    """Token estimate of the transcript (paragraphs joined by a blank line): ceil(chars / 4).
    The chat service counts exactly with the loaded model's tokenizer when it needs to."""
    return math.ceil(len("\n\n".join(texts)) / 4)


def paragraphs_of(session: Session, session_id: int) -> list[ParagraphRow]:
    query = select(ParagraphRow).where(ParagraphRow.session_id == session_id).order_by(ParagraphRow.paragraph_index)
    return list(session.scalars(query))


def refresh_token_count(session: Session, row: SessionRow) -> None:
    row.transcript_token_count = estimate_tokens([p.text for p in paragraphs_of(session, row.id)])


def _require_completed(row: SessionRow) -> None:
    if row.status != "completed":
        raise InvalidArgument(f"Session {row.id} is not completed (status: {row.status}).")


def _require_paragraph(session: Session, session_id: int, index: int, missing: type[Exception]) -> ParagraphRow:
    paragraph = session.scalars(
        select(ParagraphRow).where(ParagraphRow.session_id == session_id, ParagraphRow.paragraph_index == index)
    ).first()
    if paragraph is None:
        raise missing(f"Invalid paragraph index: {index}. Paragraph not found.")
    return paragraph


class TranscriptService:
    def __init__(self, db: Database) -> None:
        self._db = db

    def get(self, session_id: int) -> list[ParagraphRow]:
        """Paragraphs by index; [] unless the session is completed (original)."""
        with self._db.transaction() as session:
            row = require_session(session, session_id)
            return paragraphs_of(session, session_id) if row.status == "completed" else []

    def update_paragraph(self, session_id: int, index: int, new_text: str) -> list[ParagraphRow]:
        """Replaces one paragraph's text (trimmed, 1..10 000 chars); returns the whole transcript.
        InvalidArgument if the session is not completed or the paragraph does not exist (as original)."""
        text = new_text.strip()
        if not text or len(text) > MAX_PARAGRAPH_TEXT:
            raise InvalidArgument(f"newText must be 1..{MAX_PARAGRAPH_TEXT} characters.", {"field": "newText"})
        with self._db.transaction() as session:
            row = require_session(session, session_id)
            _require_completed(row)
            paragraph = _require_paragraph(session, session_id, index, InvalidArgument)
            if paragraph.text != text:
                paragraph.text = text
                paragraph.words = None  # the recognised words no longer match the edited text
                session.flush()
                refresh_token_count(session, row)
                search.record_paragraph(session, session_id, index)
            return paragraphs_of(session, session_id)

    def delete_paragraph(self, session_id: int, index: int) -> list[ParagraphRow]:
        """Deletes one paragraph; the other indices are kept (stable ids). NotFound if absent."""
        with self._db.transaction() as session:
            row = require_session(session, session_id)
            _require_completed(row)
            session.delete(_require_paragraph(session, session_id, index, NotFound))
            search.record_paragraph(session, session_id, index)
            session.flush()
            refresh_token_count(session, row)
            return paragraphs_of(session, session_id)

    def set_paragraph_speaker(self, session_id: int, index: int, speaker: str) -> None:
        label = clean_text("speaker", speaker, MAX_SPEAKER_LABEL)
        with self._db.transaction() as session:
            _require_completed(require_session(session, session_id))
            _require_paragraph(session, session_id, index, InvalidArgument).speaker = label
            search.record_paragraph(session, session_id, index)

    def rename_speakers(self, session_id: int, renames: list[SpeakerRename]) -> int:
        """Applies every `from → to` pair at once in one UPDATE (so a swap A↔B works, unlike the
        original's sequential renames). Pairs with from == to are dropped. InvalidArgument when a
        `from` label is not in the transcript or appears twice. Returns the number of pairs applied."""
        pairs = {}
        for i, rename in enumerate(renames):
            source = clean_text(f"[{i}].from", rename.source, MAX_SPEAKER_LABEL)
            target = clean_text(f"[{i}].to", rename.target, MAX_SPEAKER_LABEL)
            if source in pairs:
                raise InvalidArgument(f"Speaker '{source}' is renamed twice.", {"field": f"[{i}].from"})
            if source != target:
                pairs[source] = target
        if not pairs:
            return 0
        with self._db.transaction() as session:
            require_session(session, session_id)
            present = set(session.scalars(
                select(ParagraphRow.speaker).where(ParagraphRow.session_id == session_id).distinct()
            ))
            unknown = sorted(set(pairs) - present)
            if unknown:
                raise InvalidArgument(f"Unknown speaker label(s): {', '.join(unknown)}.", {"unknown": unknown})
            session.execute(
                update(ParagraphRow)
                .where(ParagraphRow.session_id == session_id, ParagraphRow.speaker.in_(list(pairs)))
                .values(speaker=case(pairs, value=ParagraphRow.speaker))
            )
            search.record_session(session, session_id)
        return len(pairs)


def replace_paragraphs(session: Session, session_id: int, drafts: Sequence[ParagraphDraft]) -> None:
    """Replaces a session's paragraphs (idempotent: a retried job never duplicates them)."""
    session.execute(delete(ParagraphRow).where(ParagraphRow.session_id == session_id))
    search.record_session(session, session_id)  # the search index follows, from the same transaction
    session.add_all(
        ParagraphRow(session_id=session_id, paragraph_index=d.index, timestamp_ms=d.timestamp_ms,
                     text=d.text, speaker=d.speaker, words=d.words_json())
        for d in drafts
    )
