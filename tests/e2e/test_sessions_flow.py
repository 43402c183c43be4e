"""The sessions vertical slice through the gateway, on the whole system started as the runner does:
upload a two-speaker espeak recording → Whisper + diarization → a speaker-labelled transcript;
rename with a swap; stream the audio with ranges; delete and verify everything is gone."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from dialogue import TWO_SPEAKER_SCRIPT, make_dialogue, words_match

from conftest import UPLOAD_LIMIT_BYTES

FORM = {"clientName": "Alice Example", "sessionName": "Week 3", "date": "2026-11-20", "sessionType": "Individual",
        "therapy": "CBT"}
TRANSCRIBE_TIMEOUT_S = 300.0


def upload(client: httpx.Client, path: Path, num_speakers: int = 2, ready_timeout_s: float = 120.0) -> dict:
    """Uploads `path`; retries while the diarization gate answers 503 (the transcriber is still loading),
    as a client would. Returns the 202 body."""
    deadline = time.monotonic() + ready_timeout_s
    while True:
        with path.open("rb") as file:
            response = client.post("/sessions/upload", data={**FORM, "numSpeakers": str(num_speakers)},
                                   files={"audioFile": (path.name, file, "audio/wav")})
        if response.status_code != 503 or time.monotonic() > deadline:
            assert response.status_code == 202, response.text
            return response.json()
        time.sleep(2)


def wait_until_done(client: httpx.Client, session_id: int, timeout_s: float = TRANSCRIBE_TIMEOUT_S) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        session = client.get(f"/sessions/{session_id}").json()
        if session["status"] in ("completed", "failed"):
            return session
        time.sleep(1)
    raise AssertionError(f"session {session_id} still {session['status']} after {timeout_s} s")


@pytest.fixture(scope="module")
def dialogue(tmp_path_factory) -> tuple[Path, list]:
    path = tmp_path_factory.mktemp("audio") / "two-voices.wav"
    return path, make_dialogue(path, TWO_SPEAKER_SCRIPT)


@pytest.fixture(scope="module")
def transcribed(system, dialogue) -> int:
    with httpx.Client(base_url=system.base_url, headers={"Authorization": f"Bearer {system.token}"},
                      timeout=60) as http:
        body = upload(http, dialogue[0])
        progress_seen = []
        deadline = time.monotonic() + TRANSCRIBE_TIMEOUT_S
        while time.monotonic() < deadline:
            status = http.get(f"/transcription/status/{body['jobId']}").json()
            progress_seen.append(status["progress"])
            if status["status"] in ("completed", "failed"):
                break
            time.sleep(0.5)
        session = wait_until_done(http, body["sessionId"])
        assert session["status"] == "completed", session
        assert status["stageSeconds"]["asr"] > 0 and status["device"] == "cpu"
        assert progress_seen == sorted(progress_seen) and progress_seen[-1] == 100.0
        return body["sessionId"]


def test_transcript_has_the_words_and_two_speakers_in_the_right_turns(client, transcribed, dialogue):
    transcript = client.get(f"/sessions/{transcribed}/transcript").json()
    expected = " ".join(text for _, text in TWO_SPEAKER_SCRIPT)
    assert words_match(expected, " ".join(p["text"] for p in transcript)) >= 0.85
    turns = dialogue[1]
    labels_by_voice: dict[str, set[str]] = {}
    for paragraph in transcript:
        start_s = paragraph["timestamp"] / 1000
        turn = min(turns, key=lambda t: abs(t[0] - start_s))
        labels_by_voice.setdefault(turn[2], set()).add(paragraph["speaker"])
    assert len(labels_by_voice) == 2
    voice_a, voice_b = labels_by_voice.values()
    assert len(voice_a) == 1 and len(voice_b) == 1 and voice_a != voice_b
    assert all(0 <= p["timestamp"] <= turns[-1][1] * 1000 for p in transcript)


def test_rename_speakers_with_a_swap(client, transcribed):
    before = [p["speaker"] for p in client.get(f"/sessions/{transcribed}/transcript").json()]
    first, second = sorted(set(before))
    swap = [{"from": first, "to": second}, {"from": second, "to": first}]
    assert client.patch(f"/sessions/{transcribed}/speakers", json=swap).status_code == 200
    after = [p["speaker"] for p in client.get(f"/sessions/{transcribed}/transcript").json()]
    assert after == [second if s == first else first for s in before]
    named = client.patch(f"/sessions/{transcribed}/speakers", json=[{"from": first, "to": "Therapist"}])
    assert named.status_code == 200
    assert "Therapist" in {p["speaker"] for p in client.get(f"/sessions/{transcribed}/transcript").json()}


def test_audio_streams_with_ranges(client, transcribed, dialogue):
    data = dialogue[0].read_bytes()
    full = client.get(f"/sessions/{transcribed}/audio")
    assert full.status_code == 200 and full.content == data and full.headers["content-type"] == "audio/wav"
    part = client.get(f"/sessions/{transcribed}/audio", headers={"Range": "bytes=-1000"})
    assert part.status_code == 206 and part.content == data[-1000:]
    assert part.headers["content-range"] == f"bytes {len(data) - 1000}-{len(data) - 1}/{len(data)}"
    assert client.get(f"/sessions/{transcribed}/audio", headers={"Range": f"bytes={len(data)}-"}).status_code == 416


def test_cors_lets_the_original_ui_read_the_api(system, transcribed):
    origin = "http://localhost:3002"
    preflight = httpx.options(f"{system.base_url}/sessions/{transcribed}/metadata",
                              headers={"Origin": origin, "Access-Control-Request-Method": "PUT",
                                       "Access-Control-Request-Headers": "content-type,authorization"})
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == origin
    audio = httpx.get(f"{system.base_url}/sessions/{transcribed}/audio",
                      headers={"Origin": origin, "Range": "bytes=0-9", "Authorization": f"Bearer {system.token}"})
    assert audio.headers["access-control-allow-origin"] == origin


def test_delete_removes_everything(client, system, transcribed):
    session = client.get(f"/sessions/{transcribed}").json()
    audio_file = system.data_dir / "sessions" / "uploads" / session["audioPath"]
    assert audio_file.exists()
    chat = client.post(f"/sessions/{transcribed}/chats")
    chat_id = chat.json()["id"] if chat.status_code == 201 else None
    assert client.delete(f"/sessions/{transcribed}").status_code == 200
    assert client.get(f"/sessions/{transcribed}").status_code == 404
    assert client.get(f"/sessions/{transcribed}/transcript").status_code == 404
    assert client.get(f"/sessions/{transcribed}/audio").status_code == 404
    assert not audio_file.exists()
    assert all(s["id"] != transcribed for s in client.get("/sessions").json())
    if chat_id is not None:
        assert client.get(f"/sessions/{transcribed}/chats/{chat_id}").status_code == 404


@pytest.mark.parametrize(("method", "path", "kwargs"), [
    ("get", "/sessions/abc", {}),
    ("get", "/sessions/0", {}),
    ("put", "/sessions/1/metadata", {"json": {"date": "2026-02-31"}}),
    ("put", "/sessions/1/metadata", {"json": {"audioPath": "/etc/passwd"}}),
    ("patch", "/sessions/1/speakers", {"json": {"from": "A", "to": "B"}}),
    ("delete", "/sessions/1/transcript/x", {}),
])
def test_bad_input_is_4xx_with_the_error_body(client, method, path, kwargs):
    response = getattr(client, method)(path, **kwargs)
    assert 400 <= response.status_code < 500, response.text
    assert set(response.json()) >= {"error", "message"}


def test_non_audio_and_oversized_uploads_are_refused(client, tmp_path):
    text = tmp_path / "notes.wav"
    text.write_text("not audio at all\n" * 1000)
    with text.open("rb") as file:
        refused = client.post("/sessions/upload", data={**FORM, "numSpeakers": "1"},
                              files={"audioFile": ("notes.wav", file, "audio/wav")})
    assert refused.status_code == 400 and refused.json()["error"]
    big = tmp_path / "big.wav"
    with big.open("wb") as file:
        file.truncate(UPLOAD_LIMIT_BYTES + 1024)
    with big.open("rb") as file:
        too_big = client.post("/sessions/upload", data={**FORM, "numSpeakers": "1"},
                              files={"audioFile": ("big.wav", file, "audio/wav")})
    assert too_big.status_code == 413 and too_big.json()["error"] == "PayloadTooLargeError"


def test_no_token_is_401(system):
    response = httpx.get(f"{system.base_url}/sessions")
    assert response.status_code == 401 and response.json()["error"] == "UnauthorizedError"
    wrong = httpx.get(f"{system.base_url}/sessions", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
