"""The transcript search index, owned by the sessions service: one Elasticsearch document per paragraph.

Every write that changes indexed content (paragraph edits and deletes, speaker labels, session metadata, a
transcript stored by the transcriber, a session delete) calls `record_session` or `record_paragraph` inside
its own transaction; the indexer (therascript_common.search.SearchIndexer) re-syncs those targets from the
database with bulk requests until Elasticsearch accepts them. Document id = "{sessionId}_{paragraphIndex}"
(the id the UI parses).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from therascript_common import search
from therascript_common.errors import InvalidArgument

from .clock import now_ms
from .storage.database import Database
from .storage.tables import ParagraphRow, SearchOutboxRow, SessionRow

KEYWORD = {"type": "keyword"}
PROPERTIES = {
    "doc_id": KEYWORD,
    "session_id": {"type": "long"},
    "paragraph_index": {"type": "integer"},
    "text": search.text_field(highlighted=True),
    "speaker": search.text_field(),
    "timestamp_ms": {"type": "long"},
    "client_name": search.text_field(),
    "session_name": search.text_field(),
    "date": {"type": "date"},
    "session_type": KEYWORD,
    "therapy": KEYWORD,
}
QUERY_FIELDS = ["text^3", "session_name^2", "client_name^2", "speaker"]


def record_session(session: Session, session_id: int) -> None:
    """Inside the caller's transaction: re-sync every paragraph of this session (or remove them all)."""
    session.add(SearchOutboxRow(target=f"s:{session_id}", created_at_ms=now_ms()))


def record_paragraph(session: Session, session_id: int, paragraph_index: int) -> None:
    """Inside the caller's transaction: re-sync one paragraph (index it, or remove it if gone)."""
    session.add(SearchOutboxRow(target=f"p:{session_id}:{paragraph_index}", created_at_ms=now_ms()))


def doc_id(session_id: int, paragraph_index: int) -> str:
    return f"{session_id}_{paragraph_index}"


def _document(row: SessionRow, paragraph: ParagraphRow) -> dict:
    key = doc_id(row.id, paragraph.paragraph_index)
    return {"_op_type": "index", "_id": key, "_source": {
        "doc_id": key, "session_id": row.id, "paragraph_index": paragraph.paragraph_index, "text": paragraph.text,
        "speaker": paragraph.speaker, "timestamp_ms": paragraph.timestamp_ms, "client_name": row.client_name,
        "session_name": row.session_name, "date": row.date, "session_type": row.session_type, "therapy": row.therapy,
    }}


def _paragraphs(session: Session, session_id: int) -> list[ParagraphRow]:
    return list(session.scalars(select(ParagraphRow).where(ParagraphRow.session_id == session_id)))


@dataclass(frozen=True)
class TranscriptHitView:
    """One search hit: `snippet` and `highlights` are HTML-escaped text with only <mark> tags added."""

    id: str
    session_id: int
    timestamp_ms: int
    snippet: str
    score: float
    highlights: list[str]
    client_name: str | None


class TranscriptSearch:
    """The transcript index (`alias`), its outbox indexer, search and rebuild."""

    def __init__(self, db: Database, url: str, alias: str, timeout_s: float = 10.0, interval_s: float = 0.5) -> None:
        self.index = search.SearchIndex(search.make_client(url, timeout_s), alias, PROPERTIES)
        self.indexer = search.SearchIndexer(db.transaction, SearchOutboxRow, self.index, self._actions_for,
                                            interval_s=interval_s)

    def _actions_for(self, session: Session, targets: list[str]) -> list[dict]:
        whole = {int(t[2:]) for t in targets if t.startswith("s:")}
        single = {(int(s), int(i)) for t in targets if t.startswith("p:")
                  for s, i in [t[2:].split(":")] if int(s) not in whole}
        actions: list[dict] = []
        # One scan for every whole session of the batch: which of their documents the index holds now.
        indexed = self.index.ids_where({"terms": {"session_id": sorted(whole)}}) if whole else set()
        current: set[str] = set()
        for session_id in sorted(whole):
            row = session.get(SessionRow, session_id)
            paragraphs = _paragraphs(session, session_id) if row is not None else []
            current |= {doc_id(session_id, p.paragraph_index) for p in paragraphs}
            actions += [_document(row, p) for p in paragraphs] if row is not None else []
        actions = [{"_op_type": "delete", "_id": key} for key in sorted(indexed - current)] + actions
        for session_id, index in sorted(single):
            row = session.get(SessionRow, session_id)
            paragraph = session.scalars(select(ParagraphRow).where(
                ParagraphRow.session_id == session_id, ParagraphRow.paragraph_index == index)).first()
            if row is None or paragraph is None:
                actions.append({"_op_type": "delete", "_id": doc_id(session_id, index)})
            else:
                actions.append(_document(row, paragraph))
        return actions

    def _all_actions(self, session: Session) -> Iterator[dict]:
        rows = {row.id: row for row in session.scalars(select(SessionRow))}
        for paragraph in session.scalars(select(ParagraphRow).order_by(ParagraphRow.session_id,
                                                                       ParagraphRow.paragraph_index)):
            if paragraph.session_id in rows:
                yield _document(rows[paragraph.session_id], paragraph)

    def rebuild(self) -> int:
        """Re-creates the index from the database in a new versioned index, then swaps the alias (searches keep
        working on the old one meanwhile). Returns the paragraphs indexed; SearchUnavailable if ES is down."""
        return self.indexer.rebuild(self._all_actions)

    def search(self, query: str, client_name: str | None, offset: int, limit: int) -> tuple[list[TranscriptHitView], int]:
        """Paragraphs matching `query` (words, stems, "phrases"; blank = all) for `client_name` (exact, any case;
        None = every client), best first (ties by id), `offset`/`limit` applied. Returns (hits, total).
        InvalidArgument when offset + limit passes 10 000; SearchUnavailable when ES is down."""
        try:
            search.check_window(offset, limit)
        except ValueError as error:
            raise InvalidArgument(str(error), {"field": "from"}) from error
        body = search.search_body(search.text_clauses(query, QUERY_FIELDS, "text"), search.client_filter(client_name),
                                  offset, limit, "doc_id")
        reply = self.index.search(body)
        hits = [TranscriptHitView(
            id=hit["_id"], session_id=hit["_source"]["session_id"], timestamp_ms=hit["_source"]["timestamp_ms"],
            snippet=search.snippet_of(hit), score=search.hit_score(hit), highlights=search.highlights_of(hit),
            client_name=hit["_source"].get("client_name"),
        ) for hit in reply["hits"]["hits"] if "_source" in hit]
        return hits, int(reply["hits"]["total"]["value"])
