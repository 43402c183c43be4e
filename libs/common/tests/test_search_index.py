"""therascript_common.search against a real Elasticsearch (the local distribution: hunspell analyzer)."""

from __future__ import annotations

import uuid

import pytest

from therascript_common import search


@pytest.fixture
def index(elasticsearch_url: str) -> search.SearchIndex:
    properties = {"doc_id": {"type": "keyword"}, "text": search.text_field(), "client_name": search.text_field()}
    idx = search.SearchIndex(search.make_client(elasticsearch_url), f"test-{uuid.uuid4().hex[:8]}", properties)
    yield idx
    for name in idx.concrete():
        idx.client.indices.delete(index=name, ignore_unavailable=True)


def _doc(doc_id: str, text: str, client: str = "Ann") -> dict:
    return {"_op_type": "index", "_id": doc_id, "_source": {"doc_id": doc_id, "text": text, "client_name": client}}


def _ids(index: search.SearchIndex, q: str, client: str | None = None) -> list[str]:
    body = search.search_body(search.text_clauses(q, ["text"], "text"), search.client_filter(client), 0, 10, "doc_id")
    return [hit["_id"] for hit in index.search(body)["hits"]["hits"]]


def test_local_analyzer_stems_english_and_drops_stop_words(index: search.SearchIndex) -> None:
    index.bulk([_doc("a", "The foxes jumped over the fences"), _doc("b", "A quiet afternoon")])
    index.refresh()
    assert _ids(index, "fox") == ["a"]
    assert _ids(index, "jumping fence") == ["a"]
    assert _ids(index, "the") == []


def test_phrase_and_client_filter(index: search.SearchIndex) -> None:
    index.bulk([_doc("a", "we talked about the panic attack", "Ann"), _doc("b", "attack of panic", "Bob")])
    index.refresh()
    assert _ids(index, '"panic attack"') == ["a"]
    assert sorted(_ids(index, "panic")) == ["a", "b"]
    assert _ids(index, "panic", "bob") == ["b"]


def test_highlight_is_escaped_text_with_only_mark_tags(index: search.SearchIndex) -> None:
    index.bulk([_doc("a", "he wrote <script>alert('x')</script> & worried")])
    index.refresh()
    body = search.search_body(search.text_clauses("worried", ["text"], "text"), [], 0, 10, "doc_id")
    hit = index.search(body)["hits"]["hits"][0]
    snippet = search.snippet_of(hit)
    assert "<script>" not in snippet
    assert "&lt;script&gt;" in snippet and "<mark>worried</mark>" in snippet
    assert snippet.replace("<mark>", "").replace("</mark>", "").count("<") == 0


def test_rebuild_swaps_the_alias_and_drops_the_old_index(index: search.SearchIndex) -> None:
    index.bulk([_doc("old", "stale words")])
    before = index.concrete()
    assert index.rebuild([_doc("new", "fresh words")]) == 1
    after = index.concrete()
    assert len(after) == 1 and after != before
    assert not index.client.indices.exists(index=before[0])
    assert _ids(index, "words") == ["new"]


def test_unreachable_server_is_search_unavailable() -> None:
    idx = search.SearchIndex(search.make_client("http://127.0.0.1:9", 1.0), "nowhere", {})
    with pytest.raises(search.SearchUnavailable):
        idx.bulk([_doc("a", "x")])
    assert not search.healthy("http://127.0.0.1:9", 1.0)
