"""Transcript search through the real sessions gRPC server on a real Elasticsearch (the local distribution, so
the hunspell analyzer): indexing through the search outbox, every write that changes indexed content, search
by word / stem / phrase / client, HTML-safe highlights, Elasticsearch down and back, rebuild during searches."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import grpc
import pytest
from elasticsearch import helpers
from servers import LocalElasticsearch

from therascript.sessions.v1 import sessions_pb2 as pb
from therascript.sessions.v1 import sessions_pb2_grpc
from therascript_sessions import search as transcript_search
from therascript_sessions.testing import RunningSessions, seed_completed_session, start_sessions

CONVERGE_S = 30.0


def _start(tmp_path, redis_url: str, es_url: str) -> RunningSessions:
    return start_sessions(tmp_path / "sessions", redis_url, elasticsearch_url=es_url,
                          elasticsearch_index=f"test-transcripts-{uuid.uuid4().hex[:8]}", elasticsearch_timeout_s=3)


@pytest.fixture
def running(tmp_path, redis_url, elasticsearch_url) -> Iterator[RunningSessions]:
    service = _start(tmp_path, redis_url, elasticsearch_url)
    yield service
    service.stop()


def _stub(service: RunningSessions) -> sessions_pb2_grpc.SessionsServiceStub:
    return sessions_pb2_grpc.SessionsServiceStub(grpc.insecure_channel(service.target))


def _indexed(service: RunningSessions) -> dict[str, dict]:
    index = service.app.servicer.search.index
    index.refresh()
    return {hit["_id"]: hit["_source"] for hit in helpers.scan(index.client, index=index.alias)}


def _expected(service: RunningSessions) -> dict[str, dict]:
    search = service.app.servicer.search
    with service.app.db.transaction() as session:
        return {a["_id"]: a["_source"] for a in search._all_actions(session)}


def _converge(service: RunningSessions, timeout_s: float = CONVERGE_S) -> dict[str, dict]:
    """Waits until the index holds exactly the database's documents; returns them."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            indexed = _indexed(service)
        except Exception:  # Elasticsearch still starting
            indexed = None
        expected = _expected(service)
        if indexed == expected and service.app.servicer.search.indexer.pending() == 0:
            return indexed
        if time.monotonic() > deadline:
            assert indexed == expected, "the index did not converge to the database"
        time.sleep(0.3)


def _search(stub, query: str, client: str | None = None, limit: int = 20, offset: int = 0):
    request = pb.SearchTranscriptsRequest(query=query, limit=limit, client_name=client, **{"from": offset})
    return stub.SearchTranscripts(request)


def test_search_by_word_stem_phrase_and_client(running: RunningSessions) -> None:
    ann = seed_completed_session(running.app, [("SPEAKER_00", "The foxes jumped over the garden fence."),
                                               ("SPEAKER_01", "I keep having panic attacks at work.")],
                                 client_name="Ann Smith")
    bob = seed_completed_session(running.app, [("SPEAKER_00", "An attack of panic in the night."),
                                               ("SPEAKER_01", "Nothing else to report.")], client_name="Bob Jones")
    _converge(running)
    stub = _stub(running)

    reply = _search(stub, "fox")
    assert [h.id for h in reply.hits] == [f"{ann}_0"] and reply.total == 1
    assert reply.hits[0].session_id == ann and reply.hits[0].client_name == "Ann Smith"
    assert "<mark>foxes</mark>" in reply.hits[0].snippet

    assert [h.id for h in _search(stub, "jumping").hits] == [f"{ann}_0"]          # stem of jumped
    assert {h.id for h in _search(stub, "panic").hits} == {f"{ann}_1", f"{bob}_0"}
    assert [h.id for h in _search(stub, '"panic attacks"').hits] == [f"{ann}_1"]  # phrase, not both words
    assert [h.id for h in _search(stub, "panic", client="bob jones").hits] == [f"{bob}_0"]
    assert _search(stub, "panic", client="Nobody").total == 0
    only_client = _search(stub, "", client="Ann Smith")
    assert {h.id for h in only_client.hits} == {f"{ann}_0", f"{ann}_1"}
    assert only_client.hits[0].timestamp_ms in (0, 10_000)


def test_highlights_are_inert_html(running: RunningSessions) -> None:
    sid = seed_completed_session(running.app, [(None, "<script>alert('x')</script> & I felt anxious <b>today</b>")])
    _converge(running)
    hit = _search(_stub(running), "anxious").hits[0]
    assert hit.id == f"{sid}_0"
    for html in [hit.snippet, *hit.highlights]:
        assert "<script>" not in html and "<b>" not in html
        assert "&lt;script&gt;" in html and "<mark>anxious</mark>" in html
        assert html.replace("<mark>", "").replace("</mark>", "").count("<") == 0


def test_every_write_reaches_the_index(running: RunningSessions) -> None:
    sid = seed_completed_session(running.app, [("SPEAKER_00", "We spoke about sleep."),
                                               ("SPEAKER_01", "Work has been stressful."),
                                               ("SPEAKER_00", "Exercise helps a little.")], client_name="Ann")
    other = seed_completed_session(running.app, [("SPEAKER_00", "Unrelated words.")], client_name="Cara")
    _converge(running)
    stub = _stub(running)
    stub.UpdateParagraph(pb.UpdateParagraphRequest(session_id=sid, paragraph_index=1, new_text="Work is calmer now."))
    stub.DeleteParagraph(pb.ParagraphRef(session_id=sid, paragraph_index=2))
    stub.RenameSpeakers(pb.RenameSpeakersRequest(session_id=sid, renames=[
        pb.SpeakerRename(**{"from": "SPEAKER_00", "to": "Therapist"})]))
    stub.UpdateSessionMetadata(pb.UpdateSessionMetadataRequest(session_id=sid, client_name="Ann Marie"))
    docs = _converge(running)
    assert set(docs) == {f"{sid}_0", f"{sid}_1", f"{other}_0"}
    assert docs[f"{sid}_0"]["speaker"] == "Therapist" and docs[f"{sid}_0"]["client_name"] == "Ann Marie"
    assert docs[f"{sid}_1"]["text"] == "Work is calmer now."
    assert _search(stub, "calm", client="Ann Marie").hits[0].id == f"{sid}_1"
    assert _search(stub, "stressful").total == 0

    stub.DeleteSession(pb.SessionRef(session_id=sid))
    assert set(_converge(running)) == {f"{other}_0"}


def test_elasticsearch_down_then_back_converges(tmp_path, redis_url) -> None:
    """Its own Elasticsearch, stopped while writes happen; writes succeed, the index catches up on restart."""
    es = LocalElasticsearch(tmp_path / "es")
    tmp_path.chmod(0o755)  # the server's own user (when root) must reach its folder
    es.start()
    service = _start(tmp_path, redis_url, es.url)
    try:
        keep = seed_completed_session(service.app, [("A", "first words"), ("B", "second words")], client_name="Dee")
        gone = seed_completed_session(service.app, [("A", "doomed words")], client_name="Eve")
        _converge(service)
        stub = _stub(service)
        es.stop()
        stub.UpdateParagraph(pb.UpdateParagraphRequest(session_id=keep, paragraph_index=0, new_text="edited words"))
        stub.RenameSpeakers(pb.RenameSpeakersRequest(session_id=keep, renames=[pb.SpeakerRename(**{"from": "B",
                                                                                                   "to": "Client"})]))
        stub.UpdateSessionMetadata(pb.UpdateSessionMetadataRequest(session_id=keep, client_name="Dee Dee"))
        stub.DeleteSession(pb.SessionRef(session_id=gone))
        time.sleep(2)  # the indexer tried and failed meanwhile
        assert service.app.servicer.search.indexer.pending() > 0
        with pytest.raises(grpc.RpcError) as down:
            _search(stub, "words")
        assert down.value.code() == grpc.StatusCode.UNAVAILABLE
        es.start()
        docs = _converge(service, 60)
        assert set(docs) == {f"{keep}_0", f"{keep}_1"}
        assert docs[f"{keep}_0"]["text"] == "edited words" and docs[f"{keep}_1"]["speaker"] == "Client"
        assert {d["client_name"] for d in docs.values()} == {"Dee Dee"}
    finally:
        service.stop()
        es.stop()


def test_rebuild_swaps_while_searches_keep_answering(running: RunningSessions) -> None:
    for n in range(5):
        seed_completed_session(running.app, [(None, f"steady sentence number {n} {i}") for i in range(40)])
    _converge(running)
    stub = _stub(running)
    search = running.app.servicer.search
    before = search.index.concrete()
    failures: list[BaseException] = []
    totals: list[int] = []
    stop = threading.Event()

    def keep_searching() -> None:
        while not stop.is_set():
            try:
                totals.append(_search(stub, "steady").total)
            except grpc.RpcError as error:
                failures.append(error)

    searcher = threading.Thread(target=keep_searching)
    searcher.start()
    try:
        assert search.rebuild() == 200
        assert search.rebuild() == 200
    finally:
        stop.set()
        searcher.join()
    assert not failures and totals and set(totals) == {200}
    after = search.index.concrete()
    assert len(after) == 1 and after != before
    reply = running.app.admin.RebuildSearchIndex(None, None)   # what ops calls for /api/admin/reindex-elasticsearch
    assert reply.configured and reply.transcripts_indexed == 200 and not reply.errors
    assert transcript_search.doc_id(1, 2) == "1_2"


def test_bad_window_is_invalid_argument(running: RunningSessions) -> None:
    with pytest.raises(grpc.RpcError) as error:
        _search(_stub(running), "x", limit=100, offset=9950)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
