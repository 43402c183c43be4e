"""The sessions REST surface through the real gateway, against a real sessions gRPC server, real
Redis and a real SQLite database (no transcriber runs here: see tests/e2e for the whole pipeline)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from therascript_gateway.app import create_app
from therascript_gateway.settings import GatewaySettings
from therascript_sessions.testing import seed_completed_session, start_sessions

UPLOAD_LIMIT = 2 * 1024 * 1024
FORM = {"clientName": "Client A", "sessionName": "Intake", "date": "2026-03-04", "sessionType": "Individual",
        "therapy": "CBT", "numSpeakers": "1"}


@pytest.fixture(scope="module")
def sessions(tmp_path_factory, redis_url):
    running = start_sessions(tmp_path_factory.mktemp("sessions"), redis_url, upload_max_bytes=UPLOAD_LIMIT)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def client(sessions):
    settings = GatewaySettings(sessions_target=sessions.target, chat_target="127.0.0.1:1",
                               analysis_target="127.0.0.1:1", upload_max_bytes=UPLOAD_LIMIT, grpc_timeout_s=5)
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def tone(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("audio") / "tone.wav"
    subprocess.run(["sox", "-n", "-r", "16000", "-c", "1", str(path), "synth", "1", "sine", "440"], check=True)
    return path


def _upload(client: TestClient, path: Path, **form: str):
    with path.open("rb") as file:
        return client.post("/api/sessions/upload", data={**FORM, **form},
                           files={"audioFile": (path.name, file, "audio/wav")})


def _assert_error(response, status: int, kind: str | None = None) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) >= {"error", "message"}
    if kind:
        assert body["error"] == kind
    return body


def _uploads(sessions) -> list[str]:
    return sorted(p.name for p in sessions.app.settings.uploads_dir.iterdir())


def test_upload_creates_a_queued_session_with_a_job(client, sessions, tone):
    before = _uploads(sessions)
    response = _upload(client, tone)
    assert response.status_code == 202, response.text
    session_id, job_id = response.json()["sessionId"], response.json()["jobId"]
    detail = client.get(f"/api/sessions/{session_id}/").json()
    assert detail["status"] == "queued" and detail["chats"] == [] and detail["showSpeakers"] == 1
    assert detail["whisperJobId"] == job_id and detail["duration"] == 1 and detail["date"] == "2026-03-04T12:00:00.000Z"
    status = client.get(f"/api/transcription/status/{job_id}").json()
    assert status["job_id"] == job_id and status["status"] == "queued"
    assert client.get("/api/jobs/active-count").json()["transcription"] >= 1
    added = sorted(set(_uploads(sessions)) - set(before))
    assert added == [detail["audioPath"]] and added[0].startswith(f"{session_id}-") and added[0].endswith(".wav")


def test_upload_rejects_non_audio_and_leaves_nothing(client, sessions, tmp_path):
    fake = tmp_path / "notes.wav"
    fake.write_text("this is not audio\n" * 100)
    before, listed = _uploads(sessions), client.get("/api/sessions").json()
    _assert_error(_upload(client, fake), 400)
    assert _uploads(sessions) == before and client.get("/api/sessions").json() == listed


def test_upload_over_the_limit_is_413(client, sessions, tmp_path):
    big = tmp_path / "big.wav"
    big.write_bytes(b"\0" * (UPLOAD_LIMIT + 1))
    before = _uploads(sessions)
    _assert_error(_upload(client, big), 413)
    deadline = time.monotonic() + 5  # the cancelled stream's partial file is removed a moment later
    while _uploads(sessions) != before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _uploads(sessions) == before


def test_upload_with_bad_fields_is_400(client, tone):
    body = _assert_error(_upload(client, tone, date="04/03/2026"), 400, "ValidationError")
    assert any(d["field"] == "date" for d in body["details"])
    _assert_error(_upload(client, tone, date="2026-02-30"), 400)
    _assert_error(client.post("/api/sessions/upload", data=FORM), 400)
    _assert_error(client.post("/api/sessions/upload", json=FORM), 400)


def test_upload_with_two_speakers_waits_for_diarization_readiness(client, tone, sessions):
    """No transcriber runs in this test, so diarization cannot be ready: 503, nothing stored."""
    before = _uploads(sessions)
    _assert_error(_upload(client, tone, numSpeakers="2"), 503)
    assert _uploads(sessions) == before


def test_metadata_update_and_server_owned_fields(client, sessions):
    session_id = seed_completed_session(sessions.app, [("SPEAKER_00", "Hello.")])
    updated = client.put(f"/api/sessions/{session_id}/metadata", json={"clientName": "Client B", "date": "2026-05-06"})
    assert updated.status_code == 200
    assert updated.json()["clientName"] == "Client B" and updated.json()["date"] == "2026-05-06T12:00:00.000Z"
    assert client.put(f"/api/sessions/{session_id}/metadata", json={"showSpeakers": False}).json()["showSpeakers"] == 0
    _assert_error(client.put(f"/api/sessions/{session_id}/metadata", json={"audioPath": "../../etc/passwd"}), 400)
    _assert_error(client.put(f"/api/sessions/{session_id}/metadata", json={"status": "completed"}), 400)
    _assert_error(client.put(f"/api/sessions/{session_id}/metadata", json={}), 400)
    _assert_error(client.put(f"/api/sessions/{session_id}/metadata", json={"date": "2026-13-01"}), 400)


@pytest.mark.parametrize("path", ["/api/sessions/abc", "/api/sessions/0", "/api/sessions/-3", "/api/sessions/1.5"])
def test_bad_ids_are_400(client, path):
    _assert_error(client.get(path), 400, "ValidationError")


def test_missing_session_is_404(client):
    body = _assert_error(client.get("/api/sessions/999999"), 404)
    assert body["message"] == "Session with ID 999999 not found."
    _assert_error(client.get("/api/transcription/status/nope"), 404)


def test_transcript_edit_delete_and_speaker(client, sessions):
    sid = seed_completed_session(sessions.app, [("SPEAKER_00", "One."), ("SPEAKER_01", "Two."), (None, "Three.")])
    transcript = client.get(f"/api/sessions/{sid}/transcript").json()
    assert transcript == [{"id": 0, "timestamp": 0, "text": "One.", "speaker": "SPEAKER_00"},
                          {"id": 1, "timestamp": 10000, "text": "Two.", "speaker": "SPEAKER_01"},
                          {"id": 2, "timestamp": 20000, "text": "Three."}]
    edited = client.patch(f"/api/sessions/{sid}/transcript", json={"paragraphIndex": 1, "newText": "  Deux. "})
    assert edited.json()[1]["text"] == "Deux."
    _assert_error(client.patch(f"/api/sessions/{sid}/transcript", json={"paragraphIndex": 7, "newText": "x"}), 400)
    _assert_error(client.patch(f"/api/sessions/{sid}/transcript", json={"paragraphIndex": 1, "newText": ""}), 400)
    _assert_error(client.patch(f"/api/sessions/{sid}/transcript",
                               json={"paragraphIndex": 1, "newText": "x" * 10_001}), 400)
    remaining = client.delete(f"/api/sessions/{sid}/transcript/0").json()
    assert [p["id"] for p in remaining] == [1, 2]  # ids stay stable
    _assert_error(client.delete(f"/api/sessions/{sid}/transcript/0"), 404)
    assert client.patch(f"/api/sessions/{sid}/transcript/2/speaker", json={"speaker": "Client"}).status_code == 200
    assert client.get(f"/api/sessions/{sid}/transcript").json()[1]["speaker"] == "Client"


def test_speaker_rename_swaps_and_refuses_unknown_labels(client, sessions):
    sid = seed_completed_session(sessions.app, [("A", "a1"), ("B", "b1"), ("A", "a2")])
    swap = client.patch(f"/api/sessions/{sid}/speakers", json=[{"from": "A", "to": "B"}, {"from": "B", "to": "A"}])
    assert swap.status_code == 200, swap.text
    assert [p["speaker"] for p in client.get(f"/api/sessions/{sid}/transcript").json()] == ["B", "A", "B"]
    _assert_error(client.patch(f"/api/sessions/{sid}/speakers", json=[{"from": "Nobody", "to": "X"}]), 400)
    _assert_error(client.patch(f"/api/sessions/{sid}/speakers", json=[{"from": " ", "to": "X"}]), 400)
    assert client.patch(f"/api/sessions/{sid}/speakers", json=[{"from": "A", "to": "A"}]).json()["message"] == \
        "No changes needed."


def test_audio_ranges(client, tone):
    sid = _upload(client, tone).json()["sessionId"]
    size = tone.stat().st_size
    data = tone.read_bytes()
    full = client.get(f"/api/sessions/{sid}/audio")
    assert full.status_code == 200 and full.content == data
    assert full.headers["content-type"] == "audio/wav" and full.headers["accept-ranges"] == "bytes"
    cases = {"bytes=0-9": (0, 10), "bytes=100-": (100, size), "bytes=-50": (size - 50, size),
             f"bytes=10-{size + 500}": (10, size)}
    for header, (start, stop) in cases.items():
        part = client.get(f"/api/sessions/{sid}/audio", headers={"Range": header})
        assert part.status_code == 206, header
        assert part.content == data[start:stop]
        assert part.headers["content-range"] == f"bytes {start}-{stop - 1}/{size}"
        assert int(part.headers["content-length"]) == stop - start
    unsatisfiable = client.get(f"/api/sessions/{sid}/audio", headers={"Range": f"bytes={size}-"})
    _assert_error(unsatisfiable, 416)
    assert unsatisfiable.headers["content-range"] == f"bytes */{size}"
    assert client.get(f"/api/sessions/{sid}/audio", headers={"Range": "lines=1-2"}).status_code == 200


def test_delete_audio_keeps_the_session(client, sessions, tone):
    sid = _upload(client, tone).json()["sessionId"]
    name = client.get(f"/api/sessions/{sid}").json()["audioPath"]
    assert client.delete(f"/api/sessions/{sid}/audio").status_code == 200
    assert not (sessions.app.settings.uploads_dir / name).exists()
    assert client.get(f"/api/sessions/{sid}").json()["audioPath"] is None
    _assert_error(client.get(f"/api/sessions/{sid}/audio"), 404)
    _assert_error(client.delete(f"/api/sessions/{sid}/audio"), 404)


def test_delete_session_removes_rows_and_file(client, sessions, tone):
    sid = _upload(client, tone).json()["sessionId"]
    name = client.get(f"/api/sessions/{sid}").json()["audioPath"]
    response = client.delete(f"/api/sessions/{sid}")
    assert response.json()["message"] == f"Session {sid} and associated data deleted successfully."
    assert not (sessions.app.settings.uploads_dir / name).exists()
    _assert_error(client.get(f"/api/sessions/{sid}"), 404)
    assert all(s["id"] != sid for s in client.get("/api/sessions").json())


def test_reset_transcription_fails_the_waiting_sessions(client, tone):
    sid = _upload(client, tone).json()["sessionId"]
    assert client.post("/api/jobs/reset-transcription").json()["success"] is True
    detail = client.get(f"/api/sessions/{sid}").json()
    assert detail["status"] == "failed" and "reset" in detail["errorMessage"]
    assert client.get("/api/jobs/active-count").json()["transcription"] == 0


def test_upload_with_the_queue_down_is_503_and_leaves_nothing(tmp_path, tone):
    """Redis unreachable at enqueue time: the session row and the stored file are removed again."""
    from servers import free_port

    running = start_sessions(tmp_path / "sessions", f"redis://127.0.0.1:{free_port()}/0")
    try:
        settings = GatewaySettings(sessions_target=running.target, chat_target="127.0.0.1:1", grpc_timeout_s=30)
        with TestClient(create_app(settings)) as isolated:
            _assert_error(_upload(isolated, tone), 503)
            assert isolated.get("/api/sessions").json() == []
        assert _uploads(running) == []
    finally:
        running.stop()
