"""The message search index, owned by the chat service: one Elasticsearch document per message (id = the
message id), with its chat's name and tags and, for a session chat, the session's client name.

Writes record targets in `search_outbox` inside their own transaction (`record`): a new message
(messages.record_message, the one write path) "m:<id>", a chat renamed, re-tagged or deleted "c:<id>", a
session's chats deleted or its client renamed "S:<session id>". The indexer re-syncs them from the database
(and the client name from the sessions service) with bulk requests until Elasticsearch accepts them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from therascript_common import search
from therascript_common.background import Periodic
from therascript_common.errors import InvalidArgument, NotFound

from .clients import SessionsClient
from .clock import now_ms
from .storage.tables import ChatRow, MessageRow, SearchOutboxRow

KEYWORD = {"type": "keyword"}
PROPERTIES = {
    "doc_id": KEYWORD,
    "message_id": {"type": "long"},
    "chat_id": {"type": "long"},
    "session_id": {"type": "long"},
    "sender": KEYWORD,
    "text": search.text_field(highlighted=True),
    "chat_name": search.text_field(),
    "tags": search.text_field(),
    "client_name": search.text_field(),
    "timestamp_ms": {"type": "long"},
}
QUERY_FIELDS = ["text^3", "client_name^2", "chat_name^1.5", "tags"]


def record(session: Session, target: str) -> None:
    """Inside the caller's transaction: `target` is "m:<message id>", "c:<chat id>" or "S:<session id>"."""
    session.add(SearchOutboxRow(target=target, created_at_ms=now_ms()))


@dataclass(frozen=True)
class MessageHitView:
    """One hit; `snippet`/`highlights` are HTML-escaped text with only <mark> tags added."""

    id: str
    chat_id: int
    session_id: int | None
    sender: str
    timestamp_ms: int
    snippet: str
    score: float
    highlights: list[str]
    client_name: str | None
    tags: list[str]


class MessageSearch:
    """The message index (`alias`), its outbox indexer, search and rebuild. `sessions` resolves client names."""

    def __init__(self, db: sessionmaker[Session], sessions: SessionsClient, url: str, alias: str,
                 timeout_s: float = 10.0, interval_s: float = 0.5) -> None:
        self._sessions = sessions
        self.index = search.SearchIndex(search.make_client(url, timeout_s), alias, PROPERTIES)
        self.indexer = search.SearchIndexer(db.begin, SearchOutboxRow, self.index, self._actions_for,
                                            interval_s=interval_s)
        self._loop: Periodic | None = None

    def start(self) -> None:
        self._loop = self.indexer.run_in_background()

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.stop()
        self.index.client.close()

    def _client_names(self, session_ids: set[int]) -> dict[int, str | None]:
        names: dict[int, str | None] = {}
        for session_id in session_ids:
            try:
                names[session_id] = self._sessions.get_session(session_id).client_name
            except NotFound:
                names[session_id] = None
        return names

    def _documents(self, session: Session, chats: list[ChatRow], messages: list[MessageRow]) -> list[dict]:
        by_id = {chat.id: chat for chat in chats}
        names = self._client_names({c.session_id for c in chats if c.session_id is not None})
        documents = []
        for message in messages:
            chat = by_id[message.chat_id]
            documents.append({"_op_type": "index", "_id": str(message.id), "_source": {
                "doc_id": str(message.id), "message_id": message.id, "chat_id": chat.id, "session_id": chat.session_id,
                "sender": message.sender, "text": message.text, "chat_name": chat.name, "tags": chat.tags or [],
                "client_name": names.get(chat.session_id) if chat.session_id is not None else None,
                "timestamp_ms": message.timestamp_ms,
            }})
        return documents

    def _sync_chats(self, session: Session, chat_ids: set[int], query: dict | None = None) -> list[dict]:
        """Index every message of these chats; delete documents of theirs (or matching `query`) no longer stored."""
        chats = list(session.scalars(select(ChatRow).where(ChatRow.id.in_(chat_ids)))) if chat_ids else []
        messages = list(session.scalars(select(MessageRow).where(MessageRow.chat_id.in_([c.id for c in chats]))))
        current = {str(m.id) for m in messages}
        indexed: set[str] = set()
        if chat_ids:
            indexed |= self.index.ids_where({"terms": {"chat_id": sorted(chat_ids)}})
        if query is not None:
            indexed |= self.index.ids_where(query)
        return [{"_op_type": "delete", "_id": key} for key in sorted(indexed - current)] + \
            self._documents(session, chats, messages)

    def _actions_for(self, session: Session, targets: list[str]) -> list[dict]:
        actions: list[dict] = []
        for session_id in sorted({int(t[2:]) for t in targets if t.startswith("S:")}):
            chat_ids = set(session.scalars(select(ChatRow.id).where(ChatRow.session_id == session_id)))
            actions += self._sync_chats(session, chat_ids, {"term": {"session_id": session_id}})
        chat_ids = {int(t[2:]) for t in targets if t.startswith("c:")}
        if chat_ids:
            actions += self._sync_chats(session, chat_ids)
        message_ids = {int(t[2:]) for t in targets if t.startswith("m:")}
        if message_ids:
            messages = list(session.scalars(select(MessageRow).where(MessageRow.id.in_(message_ids))))
            chats = list(session.scalars(select(ChatRow).where(ChatRow.id.in_({m.chat_id for m in messages}))))
            actions += [{"_op_type": "delete", "_id": str(i)} for i in sorted(message_ids - {m.id for m in messages})]
            actions += self._documents(session, chats, messages)
        return actions

    def _all_actions(self, session: Session) -> Iterator[dict]:
        chats = list(session.scalars(select(ChatRow)))
        yield from self._documents(session, chats, list(session.scalars(select(MessageRow).order_by(MessageRow.id))))

    def reindex_session(self, db: sessionmaker[Session], session_id: int) -> int:
        """Queues every chat of the session for re-indexing (its client name changed); returns how many chats."""
        with db.begin() as tx:
            record(tx, f"S:{session_id}")
            return int(tx.scalar(select(func.count()).select_from(ChatRow).where(ChatRow.session_id == session_id))
                       or 0)

    def rebuild(self) -> int:
        """Re-creates the index from the database into a new versioned index, then swaps the alias (searches keep
        working on the old one). Returns the messages indexed; SearchUnavailable if Elasticsearch is down."""
        return self.indexer.rebuild(self._all_actions)

    def search(self, query: str, client_name: str | None, offset: int, limit: int) -> tuple[list[MessageHitView], int]:
        """Messages matching `query` (words, stems, "phrases"; blank = all) whose session's client is
        `client_name` (exact, any case; standalone chats have none), best first (ties by id). Returns (hits,
        total). InvalidArgument when offset + limit passes 10 000; SearchUnavailable when ES is down."""
        try:
            search.check_window(offset, limit)
        except ValueError as error:
            raise InvalidArgument(str(error), {"field": "from"}) from error
        body = search.search_body(search.text_clauses(query, QUERY_FIELDS, "text"), search.client_filter(client_name),
                                  offset, limit, "doc_id")
        reply = self.index.search(body)
        hits = []
        for hit in reply["hits"]["hits"]:
            source = hit.get("_source")
            if source is None:
                continue
            hits.append(MessageHitView(
                id=hit["_id"], chat_id=source["chat_id"], session_id=source.get("session_id"), sender=source["sender"],
                timestamp_ms=source["timestamp_ms"], snippet=search.snippet_of(hit), score=search.hit_score(hit),
                highlights=search.highlights_of(hit), client_name=source.get("client_name"),
                tags=list(source.get("tags") or []),
            ))
        return hits, int(reply["hits"]["total"]["value"])
