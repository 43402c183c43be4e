"""GET /api/sessions/:id/transcript/words (issue 11) through the real gateway, against a real sessions gRPC
server, real Redis and a real SQLite database: paragraphs built from speaker-labelled words by the
transcriber's own `build_paragraphs`, stored, and served with their word timings."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from therascript_gateway.app import create_app
from therascript_gateway.settings import GatewaySettings
from therascript_sessions.clock import now_ms
from therascript_sessions.storage.tables import SessionRow
from therascript_sessions.testing import start_sessions
from therascript_sessions.transcription.asr import Word
from therascript_sessions.transcription.paragraphs import build_paragraphs
from therascript_sessions.transcripts import replace_paragraphs

WORDS = [Word(0.0, 0.4, " Hello", 0.91, "SPEAKER_00"), Word(0.45, 0.9, " there.", 0.8, "SPEAKER_00"),
         Word(0.95, 1.2, " Hi", 0.7, "SPEAKER_01"), Word(1.25, 1.6, " back.", 0.66666, "SPEAKER_01")]


@pytest.fixture(scope="module")
def sessions(tmp_path_factory, redis_url):
    running = start_sessions(tmp_path_factory.mktemp("sessions"), redis_url)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def client(sessions):
    settings = GatewaySettings(sessions_target=sessions.target, chat_target="127.0.0.1:1",
                               analysis_target="127.0.0.1:1", grpc_timeout_s=5)
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def _seed(sessions) -> int:
    with sessions.app.db.transaction() as session:
        row = SessionRow(file_name="w.wav", client_name="C", session_name="S", date="2026-01-01T12:00:00.000Z",
                         session_type="Individual", therapy="CBT", status="completed", show_speakers=1,
                         num_speakers=2, created_at_ms=now_ms())
        session.add(row)
        session.flush()
        replace_paragraphs(session, row.id, build_paragraphs(WORDS))
        return row.id


def test_words_are_served_per_paragraph_and_dropped_on_edit(client, sessions):
    sid = _seed(sessions)
    words = client.get(f"/api/sessions/{sid}/transcript/words")
    assert words.status_code == 200, words.text
    assert words.json() == [
        {"id": 0, "timestamp": 0, "text": "Hello there.", "speaker": "SPEAKER_00",
         "words": [{"start": 0, "end": 400, "text": "Hello", "probability": 0.91},
                   {"start": 450, "end": 900, "text": "there.", "probability": 0.8}]},
        {"id": 1, "timestamp": 950, "text": "Hi back.", "speaker": "SPEAKER_01",
         "words": [{"start": 950, "end": 1200, "text": "Hi", "probability": 0.7},
                   {"start": 1250, "end": 1600, "text": "back.", "probability": 0.667}]},
    ]
    # The plain transcript is unchanged (no words field: the original UI's shape).
    assert client.get(f"/api/sessions/{sid}/transcript").json()[0] == {
        "id": 0, "timestamp": 0, "text": "Hello there.", "speaker": "SPEAKER_00"}
    assert client.patch(f"/api/sessions/{sid}/transcript", json={"paragraphIndex": 1, "newText": "Hi."}).status_code == 200
    after = client.get(f"/api/sessions/{sid}/transcript/words").json()
    assert after[1]["words"] == [] and after[1]["text"] == "Hi."
    assert len(after[0]["words"]) == 2


def test_words_of_a_missing_session_is_404(client):
    response = client.get("/api/sessions/987654/transcript/words")
    assert response.status_code == 404, response.text
    assert "error" in response.json()
