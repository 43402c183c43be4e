"""Search on the whole system as the runner starts it (its own Elasticsearch, the Maven Central distribution):
a transcribed upload becomes searchable; an edit follows; with Elasticsearch killed the writes still succeed
(search is 503) and once it is back the index catches up; the admin rebuild keeps it; a delete removes it."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest
from dialogue import TWO_SPEAKER_SCRIPT, make_dialogue
from test_sessions_flow import upload, wait_until_done

INDEXED_S = 60.0


def _eventually(check: Callable[[], bool], timeout_s: float = INDEXED_S, what: str = "") -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached after {timeout_s} s: {what}")
        time.sleep(0.5)


def _hits(client: httpx.Client, **params) -> list[dict]:
    response = client.get("/search", params={"searchType": "transcript", **params})
    return response.json()["results"] if response.status_code == 200 else []


@pytest.fixture(scope="module")
def session_id(system, tmp_path_factory) -> int:
    path = tmp_path_factory.mktemp("search-audio") / "two-voices.wav"
    make_dialogue(path, TWO_SPEAKER_SCRIPT)
    with httpx.Client(base_url=system.base_url, headers={"Authorization": f"Bearer {system.token}"},
                      timeout=60) as http:
        sid = upload(http, path)["sessionId"]
        assert wait_until_done(http, sid)["status"] == "completed"
        return sid


def test_health_reports_elasticsearch_connected(client):
    body = client.get("/health").json()
    assert body["elasticsearch"] == "connected", body


def test_transcript_is_searchable_and_follows_edits_through_an_outage(client, system, session_id):
    paragraphs = client.get(f"/sessions/{session_id}/transcript").json()
    word = max(paragraphs[0]["text"].strip(".,!?").split(), key=len).strip(".,!?")
    _eventually(lambda: f"{session_id}_0" in {h["id"] for h in _hits(client, q=word)}, what=f"search for {word!r}")
    hit = next(h for h in _hits(client, q=word) if h["id"] == f"{session_id}_0")
    assert hit["sessionId"] == session_id and hit["clientName"] == "Alice Example" and "<mark>" in hit["snippet"]

    edited = client.patch(f"/sessions/{session_id}/transcript",
                          json={"paragraphIndex": 0, "newText": "The zebras were crossing <b>slowly</b>."})
    assert edited.status_code == 200, edited.text
    _eventually(lambda: [h["id"] for h in _hits(client, q="zebra")] == [f"{session_id}_0"], what="edited text")
    assert "&lt;b&gt;" in _hits(client, q="zebra")[0]["snippet"]

    system.kill("elasticsearch")
    try:
        renamed = client.put(f"/sessions/{session_id}/metadata", json={"clientName": "Zed Client"})
        assert renamed.status_code == 200, renamed.text
        again = client.patch(f"/sessions/{session_id}/transcript",
                             json={"paragraphIndex": 0, "newText": "A giraffe walked past."})
        assert again.status_code == 200, again.text
        down = client.get("/search", params={"q": "giraffe"})
        assert down.status_code == 503 and down.json()["error"] == "ServiceUnavailableError"
    finally:
        system.restart("elasticsearch")
    _eventually(lambda: [h["id"] for h in _hits(client, q="giraffe", clientName="Zed Client")]
                == [f"{session_id}_0"], 90, "catch-up after Elasticsearch came back")
    assert _hits(client, q="zebra") == []
    assert {h["clientName"] for h in _hits(client, q="", clientName="Zed Client", limit=100)} == {"Zed Client"}

    rebuilt = client.post("/admin/reindex-elasticsearch")
    assert rebuilt.status_code == 200, rebuilt.text
    assert [h["id"] for h in _hits(client, q="giraffe")] == [f"{session_id}_0"]

    assert client.delete(f"/sessions/{session_id}").status_code == 200
    _eventually(lambda: _hits(client, q="", clientName="Zed Client") == [], what="deleted session leaves the index")
