"""Elasticsearch plumbing shared by the index owners (sessions: transcripts, chat: messages).

- `SearchIndex`: one owner's index behind an alias (`<alias>` → `<alias>-<epoch ms>`), created with an explicit
  mapping on first use; bulk writes; `rebuild()` fills a new versioned index and swaps the alias atomically.
- `SearchIndexer`: applies a service's search outbox (rows recorded in the same transaction as the write that
  changed indexed content) with one bulk request per batch, deleting the rows only once Elasticsearch
  accepted them; so with Elasticsearch down writes still succeed and the index catches up when it returns.
- Query helpers: `text_clauses()` (words, stems, "quoted phrases"), `client_filter()`, `snippet_of()`.

The analyzer depends on the server: the official image has `analysis-common` (the `english` analyzer); the
local Maven Central distribution does not, and gets standard tokenizer + lowercase + English stop words +
`hunspell` en_US stemming (scripts/elasticsearch_local.py puts the dictionary in its config).
"""

from __future__ import annotations

import html
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from typing import Any

from elastic_transport import ConnectionError as EsConnectionError
from elastic_transport import ConnectionTimeout
from elasticsearch import ApiError, Elasticsearch, TransportError, helpers
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from .background import Periodic
from .errors import InvalidArgument, Unavailable

log = logging.getLogger(__name__)

TEXT_ANALYZER = "therascript_text"
SNIPPET_CHARS = 300
FRAGMENT_CHARS = 200
MAX_RESULT_WINDOW = 10_000       # Elasticsearch's index.max_result_window: from + size never beyond it
UNAVAILABLE = (EsConnectionError, ConnectionTimeout, TransportError)
#: Bulk item errors that retrying cannot fix (the document itself does not fit the mapping).
UNINDEXABLE = {"document_parsing_exception", "mapper_parsing_exception", "strict_dynamic_mapping_exception"}


class SearchUnavailable(Unavailable):
    """Elasticsearch cannot be reached or refused the request (retry later); gRPC UNAVAILABLE → HTTP 503."""


def make_client(url: str, timeout_s: float = 10.0) -> Elasticsearch:
    """A client with a request timeout and no transparent retries (callers retry through their outbox)."""
    return Elasticsearch(url, request_timeout=timeout_s, max_retries=0, retry_on_timeout=False,
                         max_dead_node_backoff=2.0)  # a server back from a restart is used again within 2 s


def analysis_settings(client: Elasticsearch) -> dict:
    """The `analysis` index settings defining TEXT_ANALYZER: `english` where the server has analysis-common,
    else lowercase + English stop words + hunspell en_US stems (the local distribution)."""
    nodes = client.nodes.info(metric="plugins", filter_path="nodes.*.modules.name").body.get("nodes", {})
    modules = {module["name"] for node in nodes.values() for module in node.get("modules", [])}
    if "analysis-common" in modules:
        return {"analyzer": {TEXT_ANALYZER: {"type": "english"}}}
    return {
        "filter": {
            "therascript_stop": {"type": "stop", "stopwords": "_english_"},
            "therascript_stem": {"type": "hunspell", "locale": "en_US", "dedup": True},
        },
        "analyzer": {TEXT_ANALYZER: {"type": "custom", "tokenizer": "standard",
                                     "filter": ["lowercase", "therascript_stop", "therascript_stem"]}},
    }


def text_field(highlighted: bool = False) -> dict:
    """A full-text field analyzed with TEXT_ANALYZER, with a `keyword` subfield for exact filters. `highlighted`:
    offsets are indexed, so the highlighter reads them instead of analyzing every hit's text again (hunspell
    analysis is the expensive part of a search: ~30 % of its time at 10 000 paragraphs)."""
    field = {"type": "text", "analyzer": TEXT_ANALYZER, "fields": {"keyword": {"type": "keyword", "ignore_above": 512}}}
    if highlighted:
        field["index_options"] = "offsets"
    return field


class SearchIndex:
    """One owner's index: `alias` points at exactly one concrete index `<alias>-<epoch ms>`.

    `properties` is the explicit mapping (`dynamic: strict`: an unmapped field is an error, never guessed).
    Every method raises SearchUnavailable when Elasticsearch cannot be reached."""

    def __init__(self, client: Elasticsearch, alias: str, properties: dict) -> None:
        self.client = client
        self.alias = alias
        self.properties = properties
        self._ready = False
        self._lock = threading.Lock()

    def _create(self) -> str:
        name = f"{self.alias}-{time.time_ns() // 1_000_000}"
        self.client.indices.create(
            index=name,
            settings={"number_of_shards": 1, "number_of_replicas": 0, "analysis": analysis_settings(self.client)},
            mappings={"dynamic": "strict", "properties": self.properties},
        )
        return name

    def ensure(self) -> None:
        """Creates the first versioned index and the alias unless the alias exists; an alias left on several
        indexes (a swap interrupted half-way) is pointed at the newest alone."""
        if self._ready:
            return
        with self._lock:
            if self._ready:
                return
            try:
                names = self.concrete()
                if not names:
                    name = self._create()
                    self.client.indices.update_aliases(actions=[{"add": {"index": name, "alias": self.alias}}])
                elif len(names) > 1:
                    newest = max(names, key=lambda n: int(n.rsplit("-", 1)[1]) if n.rsplit("-", 1)[1].isdigit() else 0)
                    self.client.indices.update_aliases(actions=[
                        *({"remove": {"index": n, "alias": self.alias}} for n in names if n != newest)])
            except UNAVAILABLE as error:
                raise SearchUnavailable(f"Elasticsearch: {error}") from error
            self._ready = True

    def concrete(self) -> list[str]:
        """The concrete index names behind the alias (one, except after an interrupted swap)."""
        try:
            return sorted(self.client.indices.get_alias(name=self.alias).body)
        except ApiError as error:
            if error.meta.status == 404:
                return []
            raise SearchUnavailable(f"Elasticsearch: {error}") from error
        except UNAVAILABLE as error:
            raise SearchUnavailable(f"Elasticsearch: {error}") from error

    def bulk(self, actions: list[dict], index: str | None = None) -> int:
        """Applies `actions` (bulk helper form: `_op_type` index|delete, `_id`, `_source`) in one request per 2000.
        A delete of a missing document counts as done. A document Elasticsearch can never take (UNINDEXABLE
        errors) is logged and dropped; SearchUnavailable for anything else (connection, 429, 5xx, alias trouble):
        the caller retries.
        Returns how many actions were applied."""
        if not actions:
            return 0
        self.ensure()
        target = index or self.alias
        applied = 0
        try:
            for ok, item in helpers.streaming_bulk(self.client, ({**a, "_index": target} for a in actions),
                                                   chunk_size=2000, raise_on_error=False,
                                                   raise_on_exception=True, max_retries=0):
                if ok:
                    applied += 1
                    continue
                op, detail = next(iter(item.items()))
                status = detail.get("status", 0)
                error_type = (detail.get("error") or {}).get("type", "")
                if op == "delete" and status == 404:
                    applied += 1
                elif error_type not in UNINDEXABLE:
                    raise SearchUnavailable(f"Elasticsearch refused {op} {detail.get('_id')}: {detail.get('error')}")
                else:
                    log.error("search index %s: dropping %s %s: %s", self.alias, op, detail.get("_id"),
                              detail.get("error"))
                    applied += 1
        except UNAVAILABLE as error:
            raise SearchUnavailable(f"Elasticsearch: {error}") from error
        return applied

    def ids_where(self, query: dict) -> set[str]:
        """Ids of every document matching `query` (scan, no sources)."""
        self.ensure()
        try:
            return {hit["_id"] for hit in helpers.scan(self.client, index=self.alias, query={"query": query},
                                                      _source=False, size=2000)}
        except UNAVAILABLE as error:
            raise SearchUnavailable(f"Elasticsearch: {error}") from error

    def search(self, body: dict) -> dict:
        """Runs a search over the alias; the raw response body. InvalidArgument when Elasticsearch rejects the
        query (400: "Search query syntax error or invalid field: …", as the original)."""
        self.ensure()
        try:
            try:
                return self.client.search(index=self.alias, body=body).body
            except ApiError as error:
                if error.meta.status not in (404, 503):
                    raise
                # A search that met the old index just as a rebuild swapped the alias and deleted it: once more.
                return self.client.search(index=self.alias, body=body).body
        except ApiError as error:
            if error.meta.status == 400:
                raise InvalidArgument(f"Search query syntax error or invalid field: {error.message}") from error
            raise SearchUnavailable(f"Elasticsearch: {error}") from error
        except UNAVAILABLE as error:
            raise SearchUnavailable(f"Elasticsearch: {error}") from error

    def refresh(self) -> None:
        self.ensure()
        self.client.indices.refresh(index=self.alias)

    def rebuild(self, actions: Iterable[dict]) -> int:
        """Fills a NEW versioned index from `actions` (index operations), then points the alias at it in one
        atomic `update_aliases` and deletes the old index; searches use the old index until the swap.
        Returns how many documents went in. On failure the new index is deleted and the alias is unchanged."""
        try:
            old = self.concrete()
            name = self._create()
            try:
                count = self.bulk(list(actions), index=name)
                self.client.indices.refresh(index=name)
                swap = [{"remove": {"index": o, "alias": self.alias}} for o in old]
                self.client.indices.update_aliases(actions=[*swap, {"add": {"index": name, "alias": self.alias}}])
            except BaseException:
                self.client.indices.delete(index=name, ignore_unavailable=True)
                raise
            for o in old:
                self.client.indices.delete(index=o, ignore_unavailable=True)
        except UNAVAILABLE as error:
            raise SearchUnavailable(f"Elasticsearch: {error}") from error
        self._ready = True
        return count


# --- the indexer ------------------------------------------------------------------------------------------------

ActionsFor = Callable[[Session, list[Any]], list[dict]]


class SearchIndexer:
    """Applies a search outbox table (rows with `id` and `target`) to a SearchIndex.

    `actions_for(session, targets)` turns the distinct targets of a batch into bulk actions, reading the
    CURRENT database state (so entries are idempotent and order does not matter: each says "re-sync this").
    Rows are deleted only after Elasticsearch accepted the batch; until then every pass retries them.
    `lock` is held while a batch is applied and during `rebuild`, so no change is lost across an alias swap."""

    def __init__(self, transaction: Callable[[], AbstractContextManager[Session]], row_type: Any, index: SearchIndex,
                 actions_for: ActionsFor, batch_size: int = 500, interval_s: float = 1.0) -> None:
        self._transaction = transaction
        self._row_type = row_type
        self.index = index
        self._actions_for = actions_for
        self._batch_size = batch_size
        self._interval_s = interval_s
        self.lock = threading.Lock()

    def pending(self) -> int:
        """How many outbox rows wait to be applied."""
        with self._transaction() as session:
            return len(session.scalars(select(self._row_type.id)).all())

    def apply_batch(self) -> int:
        """Applies up to `batch_size` rows, oldest first; returns how many rows were applied (0 = none pending).
        SearchUnavailable when Elasticsearch did not accept them (they stay)."""
        with self.lock:
            with self._transaction() as session:
                rows = session.scalars(select(self._row_type).order_by(self._row_type.id)
                                       .limit(self._batch_size)).all()
                if not rows:
                    return 0
                targets = list(dict.fromkeys(row.target for row in rows))
                actions = self._actions_for(session, targets)
                ids = [row.id for row in rows]
            self.index.bulk(actions)
            with self._transaction() as session:
                session.execute(delete(self._row_type).where(self._row_type.id.in_(ids)))
            return len(ids)

    def drain(self) -> int:
        """Applies batches until none is pending; returns how many rows were applied. Quiet when ES is down."""
        total = 0
        try:
            while applied := self.apply_batch():
                total += applied
        except Unavailable as error:  # Elasticsearch, or a service a document needs (chat: client names)
            log.warning("search indexer (%s): will retry: %s", self.index.alias, error)
        return total

    def rebuild(self, all_actions: Callable[[Session], Iterator[dict]]) -> int:
        """Re-creates the index from the database (`all_actions` = index actions for every document) into a
        new versioned index and swaps the alias. The outbox is held meanwhile (writes still commit; their
        rows are applied to the new index right after). Returns the number of documents indexed."""
        with self.lock:
            with self._transaction() as session:
                actions = list(all_actions(session))
            return self.index.rebuild(actions)

    def run_in_background(self) -> Periodic:
        return Periodic(f"search-indexer-{self.index.alias}", self._interval_s, self.drain).start()


# --- queries ----------------------------------------------------------------------------------------------------

_PHRASE = re.compile(r'"([^"]+)"')


def text_clauses(query: str, fields: list[str], phrase_field: str) -> list[dict]:
    """`bool.must` clauses for a user query: each "quoted phrase" must match as a phrase on `phrase_field`;
    the other words go to one `multi_match` (best fields, any word) over `fields`. [] for a blank query.
    No fuzziness (the original had AUTO): English stems already match word forms, and fuzzy expansion made
    query + highlight 5-30x slower here (p90 ~800 ms at 10 000 paragraphs, vs ~40 ms without)."""
    phrases = [p.strip() for p in _PHRASE.findall(query) if p.strip()]
    rest = _PHRASE.sub(" ", query).replace('"', " ").strip()
    clauses: list[dict] = [{"match_phrase": {phrase_field: phrase}} for phrase in phrases]
    if rest:
        clauses.append({"multi_match": {"query": rest, "fields": fields, "type": "best_fields"}})
    return clauses


def client_filter(client_name: str | None) -> list[dict]:
    """Exact client-name filter (case-insensitive) on `client_name.keyword`; [] when not given."""
    if not client_name:
        return []
    return [{"term": {"client_name.keyword": {"value": client_name, "case_insensitive": True}}}]


def search_body(must: list[dict], filters: list[dict], offset: int, size: int, tiebreak: str) -> dict:
    """Search request: score order with `tiebreak` (a keyword field) for a stable order across pages,
    highlights of `text` HTML-encoded with only <mark> added."""
    return {
        "query": {"bool": {"must": must or [{"match_all": {}}], "filter": filters}},
        "size": size,
        "from": offset,
        "track_total_hits": True,
        "sort": [{"_score": "desc"}, {tiebreak: "asc"}],
        "highlight": {"pre_tags": ["<mark>"], "post_tags": ["</mark>"], "encoder": "html",
                      "fields": {"text": {"number_of_fragments": 1, "fragment_size": FRAGMENT_CHARS,
                                          "no_match_size": FRAGMENT_CHARS}}},
    }


def highlights_of(hit: dict) -> list[str]:
    return list(hit.get("highlight", {}).get("text", []))


def snippet_of(hit: dict) -> str:
    """The `text` highlight fragments joined by ' ... ', else the first SNIPPET_CHARS characters, escaped."""
    fragments = highlights_of(hit)
    if fragments:
        return " ... ".join(fragments)
    return html.escape(hit.get("_source", {}).get("text", "")[:SNIPPET_CHARS])


def hit_score(hit: dict) -> float:
    score = hit.get("_score")
    if score is None:
        sort = hit.get("sort") or [0.0]
        score = sort[0]
    return float(score or 0.0)


def check_window(offset: int, limit: int) -> None:
    """ValueError when `offset + limit` passes MAX_RESULT_WINDOW."""
    if offset < 0 or limit < 1 or offset + limit > MAX_RESULT_WINDOW:
        raise ValueError(f"from + limit must be at most {MAX_RESULT_WINDOW}")


def healthy(url: str, timeout_s: float = 2.0) -> bool:
    """True when the cluster at `url` answers health green or yellow (GET / is 405 on the local distribution)."""
    try:
        status = make_client(url, timeout_s).cluster.health().body.get("status")
    except (ApiError, *UNAVAILABLE):
        return False
    return status in ("green", "yellow")
