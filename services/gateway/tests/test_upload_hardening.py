"""Hostile and broken uploads (issue 7 items 3, 4, 6) through the real gateway against a real sessions gRPC
server (real SQLite, real Redis): repeated form fields, non-integer speaker counts, clients that stall,
and a sessions service killed mid-upload. Stalls and kills need a real socket, so the gateway runs under
uvicorn (therascript_gateway.testing.serve_gateway), not the in-process TestClient."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from grpc_process import grpc_service_process

from therascript.sessions.v1 import sessions_pb2, sessions_pb2_grpc
from therascript_common.grpc_server import build_server, registration
from therascript_gateway.app import create_app
from therascript_gateway.settings import GatewaySettings
from therascript_gateway.testing import read_response, serve_gateway
from therascript_sessions.server import build
from therascript_sessions.settings import SessionsSettings
from therascript_sessions.testing import start_sessions

UPLOAD_LIMIT = 4 * 1024 * 1024
FORM = {"clientName": "Client A", "sessionName": "Intake", "date": "2026-03-04", "sessionType": "Individual",
        "therapy": "CBT", "numSpeakers": "1"}
BOUNDARY = "----therascript-test-boundary"


@pytest.fixture(scope="module")
def tone(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("audio") / "tone.wav"
    subprocess.run(["sox", "-n", "-r", "16000", "-c", "1", str(path), "synth", "1", "sine", "440"], check=True)
    return path


@pytest.fixture(scope="module")
def sessions(tmp_path_factory, redis_url):
    running = start_sessions(tmp_path_factory.mktemp("sessions"), redis_url, upload_max_bytes=UPLOAD_LIMIT)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def client(sessions):
    settings = GatewaySettings(sessions_target=sessions.target, chat_target="127.0.0.1:1",
                               upload_max_bytes=UPLOAD_LIMIT, grpc_timeout_s=5)
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def _stored(uploads_dir: Path) -> list[str]:
    return sorted(p.name for p in uploads_dir.iterdir()) if uploads_dir.exists() else []


def _settles_to(uploads_dir: Path, expected: list[str], timeout_s: float = 5.0) -> bool:
    """True once the stored files are `expected` (a cancelled stream's partial file goes a moment later)."""
    deadline = time.monotonic() + timeout_s
    while _stored(uploads_dir) != expected and time.monotonic() < deadline:
        time.sleep(0.05)
    return _stored(uploads_dir) == expected


def _assert_error(response, status: int) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) >= {"error", "message"}
    return body


@pytest.mark.parametrize("repeated", ["audioFile", "clientName", "numSpeakers", "date"])
def test_a_repeated_form_field_is_400_and_stores_nothing(client, sessions, tone, repeated):
    """Before: two audioFile parts were concatenated into one stored file, two clientName parts became
    "FirstSecond" (202). After: 400 ValidationError naming the field; no row, no file."""
    audio = tone.read_bytes()
    parts: list[tuple[str, tuple]] = [(name, (None, value)) for name, value in FORM.items()]
    parts.append(("audioFile", ("tone.wav", audio, "audio/wav")))
    if repeated == "audioFile":
        parts.append(("audioFile", ("tone2.wav", audio, "audio/wav")))
    else:
        parts.append((repeated, (None, FORM[repeated])))
    before, listed = _stored(sessions.app.settings.uploads_dir), client.get("/api/sessions").json()
    body = _assert_error(client.post("/api/sessions/upload", files=parts), 400)
    assert body["error"] == "ValidationError" and body["details"][0]["field"] == repeated
    assert _settles_to(sessions.app.settings.uploads_dir, before)
    assert client.get("/api/sessions").json() == listed


@pytest.mark.parametrize("value", ["inf", "-inf", "1e309", "nan", "2.5", "two", "1_0"])
def test_num_speakers_must_be_an_integer(client, sessions, tone, value):
    """Before: `inf` raised OverflowError → 500 with the upstream stream left open. After: 400."""
    before = _stored(sessions.app.settings.uploads_dir)
    with tone.open("rb") as file:
        response = client.post("/api/sessions/upload", data={**FORM, "numSpeakers": value},
                               files={"audioFile": ("tone.wav", file, "audio/wav")})
    body = _assert_error(response, 400)
    assert any(d["field"] == "numSpeakers" for d in body["details"])
    assert _settles_to(sessions.app.settings.uploads_dir, before)


def test_num_speakers_out_of_range_is_clamped(client, tone):
    with tone.open("rb") as file:
        response = client.post("/api/sessions/upload", data={**FORM, "numSpeakers": "0"},
                               files={"audioFile": ("tone.wav", file, "audio/wav")})
    assert response.status_code == 202, response.text


# --- stalled clients ----------------------------------------------------------------------------
def _upload_head(host: str, port: int, body_length: int) -> bytes:
    return (f"POST /api/sessions/upload HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {body_length}\r\n\r\n").encode()


def _form_prefix() -> bytes:
    fields = "".join(f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'
                     for k, v in FORM.items())
    return (fields + f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="audioFile"; filename="a.wav"\r\n'
            "Content-Type: audio/wav\r\n\r\n").encode()


def _start_stalled_upload(host: str, port: int, audio: bytes, declared: int = 1024 * 1024) -> socket.socket:
    """Sends the headers (Content-Length `declared`), the text fields and the first half of the file, then
    nothing more."""
    sock = socket.create_connection((host, port))
    sock.sendall(_upload_head(host, port, declared) + _form_prefix() + audio[: len(audio) // 2])
    return sock


def test_stalled_uploads_cannot_starve_the_sessions_service(tmp_path, redis_url, tone):
    """More stalled uploads (8) than the sessions service has worker threads (4). Before: each held a
    worker for the 3600 s deadline, so `GET /api/sessions` timed out (504) and `/api/health` went 503.
    After: only `upload_max_concurrent` (3) are forwarded at once, the rest are 503 at once; lists and
    health still answer while they stall; after the idle timeout (1 s) each stalled one is 408 and its
    stream cancelled, so the workers are free again and a real upload then succeeds."""
    settings = SessionsSettings(data_dir=tmp_path / "sessions", redis_url=redis_url, chat_target="127.0.0.1:1",
                                grpc_port=0, upload_max_bytes=UPLOAD_LIMIT)
    app = build(settings)
    app.start_background()
    server, _, grpc_port = build_server(
        [registration(sessions_pb2, sessions_pb2_grpc, "SessionsService", app.servicer)], "127.0.0.1:0", workers=4)
    server.start()
    gateway_settings = GatewaySettings(sessions_target=f"127.0.0.1:{grpc_port}", chat_target="127.0.0.1:1",
                                       upload_max_bytes=UPLOAD_LIMIT, grpc_timeout_s=3, upload_max_concurrent=3,
                                       upload_idle_timeout_s=1.0)
    audio = tone.read_bytes()
    stalled: list[socket.socket] = []
    try:
        with serve_gateway(gateway_settings) as (host, port):
            base = f"http://{host}:{port}"
            stalled = [_start_stalled_upload(host, port, audio) for _ in range(8)]
            started = time.monotonic()
            with httpx.Client(base_url=base, timeout=10) as http:
                listed = http.get("/api/sessions")
                health = http.get("/api/health")
                answered_in = time.monotonic() - started
                assert listed.status_code == 200 and health.status_code == 200, (listed.text, health.text)
                assert answered_in < 1.0, f"lists and health took {answered_in:.2f} s behind stalled uploads"
                answers = [read_response(sock, 10) for sock in stalled]
                assert sorted(status for status, _ in answers) == [408] * 3 + [503] * 5
                # the body was left unread: the gateway closes the connection rather than read it as a request
                assert all(b"\r\nconnection: close\r\n" in raw.lower() for _, raw in answers)
                for sock in stalled:
                    sock.close()
                # The three workers the stalled streams held are free again: three new stalled uploads take
                # them, and the fourth worker still answers the list (were the old ones held, 6 > 4 workers).
                stalled = [_start_stalled_upload(host, port, audio) for _ in range(3)]
                time.sleep(0.3)
                started = time.monotonic()
                assert http.get("/api/sessions").status_code == 200
                assert time.monotonic() - started < 1.0
                assert [read_response(sock, 10)[0] for sock in stalled] == [408] * 3
                for sock in stalled:
                    sock.close()
                with tone.open("rb") as file:
                    done = http.post("/api/sessions/upload", data=FORM, files={"audioFile": ("t.wav", file, "audio/wav")})
                assert done.status_code == 202, done.text
                assert http.get("/api/sessions").json()[0]["id"] == done.json()["sessionId"]
                assert len(http.get("/api/sessions").json()) == 1  # none of the stalled ones was stored
        deadline = time.monotonic() + 5
        while any(n.startswith(".upload-") for n in _stored(settings.uploads_dir)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [n for n in _stored(settings.uploads_dir) if n.startswith(".upload-")]
    finally:
        for sock in stalled:
            sock.close()
        server.stop(0)
        app.stop()


# --- the sessions service killed mid-upload -----------------------------------------------------
def test_sessions_killed_mid_upload_is_503_with_the_error_body(tmp_path, redis_url, tone):
    """The sessions service (its deployable process) is SIGKILLed while an upload streams into it. Before:
    the client got a 500. After: 503 ServiceUnavailableError with the contract's body."""
    env = {"SESSIONS_REDIS_URL": redis_url, "SESSIONS_UPLOAD_MAX_BYTES": str(UPLOAD_LIMIT),
           "SESSIONS_CHAT_TARGET": "127.0.0.1:1"}
    audio = tone.read_bytes()
    with grpc_service_process("therascript-sessions", "SESSIONS_", tmp_path / "sessions", env) as (target, process):
        gateway_settings = GatewaySettings(sessions_target=target, chat_target="127.0.0.1:1",
                                           upload_max_bytes=UPLOAD_LIMIT, grpc_timeout_s=5, upload_idle_timeout_s=20)
        with serve_gateway(gateway_settings) as (host, port):
            sock = _start_stalled_upload(host, port, audio, declared=3 * 1024 * 1024)
            time.sleep(0.5)  # the stream is open and the service is writing its partial file
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)
            status, raw = None, b""
            try:
                for _ in range(150):  # keep streaming the file (2.4 MB): the next writes find the stream broken
                    sock.sendall(audio[:16384])
                    time.sleep(0.01)
            except OSError:
                pass  # the gateway answered and closed the connection
            status, raw = read_response(sock, 10)
            sock.close()
    assert status == 503, raw
    body = json.loads(raw.partition(b"\r\n\r\n")[2])
    assert body["error"] == "ServiceUnavailableError" and body["message"]


@pytest.mark.parametrize("field", ["clientName", "sessionName", "sessionType", "therapy"])
def test_upload_names_with_control_bidi_or_zero_width_characters_are_400(client, sessions, tone, field):
    """Issue 7 item 13. Before: a clientName with U+202E (or NUL, CR/LF, U+200B) was stored as sent."""
    before = _stored(sessions.app.settings.uploads_dir)
    for bad in ("Eve\u202eliF", "A\x00B", "Two\r\nlines", "Zero\u200bwidth"):
        with tone.open("rb") as file:
            response = client.post("/api/sessions/upload", data={**FORM, field: bad},
                                   files={"audioFile": ("tone.wav", file, "audio/wav")})
        body = _assert_error(response, 400)
        assert any(d["field"] == field for d in body["details"]), body
    assert _settles_to(sessions.app.settings.uploads_dir, before)


def test_upload_names_are_stored_nfc_and_trimmed(client, tone):
    with tone.open("rb") as file:
        response = client.post("/api/sessions/upload", data={**FORM, "clientName": "  Cafe\u0301 "},
                               files={"audioFile": ("tone.wav", file, "audio/wav")})
    assert response.status_code == 202, response.text
    assert client.get(f"/api/sessions/{response.json()['sessionId']}").json()["clientName"] == "Caf\u00e9"


# --- clients that stop reading a recording ------------------------------------------------------
def test_stalled_audio_readers_are_bounded_and_dropped(tmp_path, redis_url):
    """Recordings streamed to clients that stop reading. Before: each such stream held a sessions worker for
    the 3600 s deadline, any number of them at once. After: at most `audio_max_concurrent` (2) at once (one
    more is 503 at once), lists still answer meanwhile, and after `audio_idle_timeout_s` (1 s) of not reading
    each is dropped and its gRPC stream cancelled: the slots come back and a full download succeeds."""
    limit = 64 * 1024 * 1024
    long_tone = tmp_path / "long.wav"  # 15 min of 16 kHz mono: 28.8 MB, more than every buffer on the way
    subprocess.run(["sox", "-n", "-r", "16000", "-c", "1", str(long_tone), "synth", "900", "sine", "440"], check=True)
    settings = SessionsSettings(data_dir=tmp_path / "sessions", redis_url=redis_url, chat_target="127.0.0.1:1",
                                grpc_port=0, upload_max_bytes=limit)
    app = build(settings)
    app.start_background()
    server, _, grpc_port = build_server(
        [registration(sessions_pb2, sessions_pb2_grpc, "SessionsService", app.servicer)], "127.0.0.1:0", workers=3)
    server.start()
    gateway_settings = GatewaySettings(sessions_target=f"127.0.0.1:{grpc_port}", chat_target="127.0.0.1:1",
                                       upload_max_bytes=limit, grpc_timeout_s=3, audio_max_concurrent=2,
                                       audio_idle_timeout_s=1.0)
    readers: list[socket.socket] = []
    try:
        with serve_gateway(gateway_settings) as (host, port), httpx.Client(base_url=f"http://{host}:{port}",
                                                                           timeout=30) as http:
            with long_tone.open("rb") as file:
                uploaded = http.post("/api/sessions/upload", data=FORM, files={"audioFile": ("l.wav", file, "audio/wav")})
            assert uploaded.status_code == 202, uploaded.text
            path = f"/api/sessions/{uploaded.json()['sessionId']}/audio"
            for _ in range(3):
                sock = socket.socket()
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                sock.connect((host, port))
                sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
                readers.append(sock)
            statuses = [read_response(sock, 5, body=False)[0] for sock in readers]  # the head, then no more reading
            assert sorted(statuses) == [200, 200, 503]
            started = time.monotonic()
            assert http.get("/api/sessions").status_code == 200
            assert time.monotonic() - started < 1.0
            time.sleep(2.5)  # past the idle timeout: both stalled streams are dropped
            full = http.get(path)
            assert full.status_code == 200 and len(full.content) == long_tone.stat().st_size
            second = http.get(path, headers={"Range": "bytes=0-99"})
            assert second.status_code == 206 and second.content == long_tone.read_bytes()[:100]
    finally:
        for sock in readers:
            sock.close()
        server.stop(0)
        app.stop()
