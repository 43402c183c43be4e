"""Export / import / reset through the gateway on the real services (conftest.py): the round trip keeps every
entity kind and every audio byte; a bad archive is a 4xx with the error body and changes nothing; a reset
while a transcription is queued empties the queue and every service's data."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import time

import httpx
import pytest
from ops_stack import start_stack, wav_bytes
from redis import Redis
from rq import Queue

from therascript_analysis.storage.tables import AnalysisJobRow, AnswerRow, SummaryRow
from therascript_chat.storage.tables import MessageRow
from therascript_gateway.testing import serve_gateway
from therascript_llm_manager.db import UsageRepository
from therascript_sessions.testing import seed_completed_session


def _members(archive: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


def _export(api) -> bytes:
    reply = api.get("/api/admin/export-data")
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"] == "application/x-tar"
    assert reply.headers["content-disposition"].startswith('attachment; filename="therascript-backup-')
    return reply.content


def _import(api, archive: bytes):
    return api.post("/api/admin/import-data", files={"backupFile": ("backup.tar", archive, "application/x-tar")})


def _populate(stack) -> None:
    """One of every entity kind: sessions (uploaded with audio and a queued job; seeded completed with
    speaker-labelled paragraphs), session and standalone chats with tags, messages with reasoning and token
    counts, user templates beside the system ones, and LLM usage records."""
    api = stack.api
    for name, seconds in (("Week 1", 1.0), ("Week 2", 2.5)):
        reply = api.post("/api/sessions/upload", files={"audioFile": (f"{name}.wav", wav_bytes(seconds), "audio/wav")},
                         data={"clientName": "Alice", "sessionName": name, "date": "2026-11-20",
                               "sessionType": "Individual", "therapy": "CBT", "numSpeakers": "1"})
        assert reply.status_code == 202, reply.text
    completed = seed_completed_session(stack.sessions.app, [("SPEAKER_00", "How was the week?"),
                                                            ("SPEAKER_01", "Hard, but better.")], client_name="Bob")
    session_chat = api.post(f"/api/sessions/{completed}/chats").json()
    api.patch(f"/api/sessions/{completed}/chats/{session_chat['id']}/name", json={"name": "Themes"})
    standalone = api.post("/api/chats").json()
    assert api.patch(f"/api/chats/{standalone['id']}/details", json={"name": "Notes", "tags": ["b", "a"]}).status_code == 200
    with stack.chat.deps.db.begin() as tx:
        tx.add_all([
            MessageRow(chat_id=session_chat["id"], sender="user", text="Summarise", timestamp_ms=1_700_000_000_000),
            MessageRow(chat_id=session_chat["id"], sender="ai", text="Sleep improved.", thinking="Look at para 1",
                       timestamp_ms=1_700_000_001_000, prompt_tokens=120, completion_tokens=8, duration_ms=900,
                       is_truncated=True),
            MessageRow(chat_id=standalone["id"], sender="user", text="ünïcode ✓", timestamp_ms=1_700_000_002_000,
                       cancelled=True),
        ])
    assert api.post("/api/templates", json={"title": "Opening", "text": "How are you?"}).status_code == 201
    now = int(time.time() * 1000)
    with stack.analysis.app.db.transaction() as tx:             # a finished multi-session analysis
        job = AnalysisJobRow(original_prompt="What changed across sessions?", short_prompt="Changes",
                             status="completed", final_result="Sleep improved.", model_name="smollm2.gguf",
                             context_size=4096, use_advanced_strategy=True,
                             strategy_json={"intermediate_question": "q", "final_synthesis_instructions": "s"},
                             attempt=1, created_at_ms=now, updated_at_ms=now, completed_at_ms=now)
        tx.add(job)
        tx.flush()
        summary = SummaryRow(job_id=job.id, session_id=completed, session_name="Session 1", session_date="2026-01-15",
                             summary_text="Better sleep.", status="completed", chunk_count=1)
        tx.add(summary)
        tx.flush()
        tx.add(AnswerRow(job_id=job.id, summary_id=summary.id, key="map:1:0", kind="map", status="completed",
                         text="Better sleep.", prompt_tokens=100, completion_tokens=5, duration_ms=300, attempt=1,
                         updated_at_ms=now))
    record = UsageRepository(stack.llm.admin.data.engine)   # what llm-manager's Generate records
    record.record("session_chat", "smollm2.gguf", 120, 8, 900, int(time.time() * 1000))
    record.record("analysis_map", "smollm2.gguf", 50, 20, 400, int(time.time() * 1000))


def _state(stack) -> dict:
    """What a user sees, through the gateway, plus the audio files on disk."""
    api = stack.api
    sessions = api.get("/api/sessions").json()
    return {
        "sessions": sessions,
        "details": [api.get(f"/api/sessions/{s['id']}").json() for s in sessions],
        "transcripts": [api.get(f"/api/sessions/{s['id']}/transcript").json() for s in sessions],
        "chats": api.get("/api/chats").json(),
        "analysis": [api.get(f"/api/analysis-jobs/{j['id']}").json() for j in api.get("/api/analysis-jobs").json()],
        "templates": api.get("/api/templates").json(),
        "usage": api.get("/api/usage/logs").json()["items"],
        "files": sorted((p.name, hashlib.sha256(p.read_bytes()).hexdigest()) for p in stack.uploads.iterdir()),
    }


@pytest.fixture(scope="module")
def populated(stack):
    _populate(stack)
    return stack


def test_round_trip_keeps_every_entity_and_every_audio_byte(populated):
    stack = populated
    before = _state(stack)
    assert len(before["sessions"]) == 3 and len(before["files"]) == 2 and len(before["usage"]) == 2
    assert len(before["analysis"]) == 1 and before["analysis"][0]["summaries"]
    first = _export(stack.api)
    members = _members(first)
    manifest = json.loads(members.pop("manifest.json"))
    assert manifest["format_version"] == 1
    assert set(manifest["services"]) == {"sessions", "chat", "llm-manager", "analysis"} and manifest["absent"] == {}
    assert manifest["services"]["analysis"]["counts"]["intermediate_answers"] == 1
    assert manifest["services"]["sessions"]["schema_version"]
    assert manifest["services"]["sessions"]["counts"]["files"] == 2
    for name, data in members.items():
        assert manifest["members"][name] == {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    for upload in stack.uploads.iterdir():
        assert members[f"sessions/files/uploads/{upload.name}"] == upload.read_bytes()

    reset = stack.api.post("/api/admin/reset-all-data")
    assert reset.status_code == 200, reset.text
    assert stack.api.get("/api/sessions").json() == [] and list(stack.uploads.iterdir()) == []
    assert stack.api.get("/api/chats").json() == [] and stack.api.get("/api/usage/logs").json()["total"] == 0
    assert stack.api.get("/api/analysis-jobs").json() == []
    assert {t["title"] for t in stack.api.get("/api/templates").json()} == {
        t["title"] for t in before["templates"] if t["title"].startswith("system_")}

    reply = _import(stack.api, first)
    assert reply.status_code == 200, reply.text
    assert reply.json() == {"message": "Import successful. Data has been restored."}
    assert _state(stack) == before

    second = _members(_export(stack.api))
    second_manifest = json.loads(second.pop("manifest.json"))
    assert second == members                                  # byte-identical content
    assert second_manifest["members"] == manifest["members"]
    assert second_manifest["services"] == manifest["services"]

    reindex = stack.api.post("/api/admin/reindex-elasticsearch")
    assert reindex.status_code == 200, reindex.text
    assert reindex.json() == {"message": "Search indexes rebuilt.", "transcriptsIndexed": 2, "messagesIndexed": 3,
                              "errors": []}


def _tar(entries: list[tuple[tarfile.TarInfo, bytes | None]], mode: str = "w") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def _file(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def _link(name: str, target: str, kind: bytes) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info, None


def _rewrite(archive: bytes, change) -> bytes:
    """The archive with `change(members dict)` applied (manifest included, as parsed JSON)."""
    members = _members(archive)
    manifest = json.loads(members.pop("manifest.json"))
    change(members, manifest)
    entries = [_file(n, d) for n, d in members.items()]
    entries.append(_file("manifest.json", json.dumps(manifest).encode()))
    return _tar(entries)


def _with_member(name: str, data: bytes):
    def change(members, manifest):
        members[name] = data
        manifest["members"][name] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    return change


def _bad_archives(good: bytes) -> dict[str, tuple[bytes, int]]:
    manifest_of_good = _members(good)["manifest.json"]

    def wrong_checksum(members, manifest):
        name = next(n for n in members if n.startswith("sessions/files/"))
        members[name] = b"X" + members[name][1:]

    def newer_format(members, manifest):
        manifest["format_version"] = 99

    def other_schema(members, manifest):
        manifest["services"]["sessions"]["schema_version"] = "9999"

    def bad_rows(members, manifest):
        data = b'{"id": "not-a-number"}\n'
        members["chat/db/templates.jsonl"] = data
        manifest["members"]["chat/db/templates.jsonl"] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}

    many = [_file(f"sessions/files/uploads/f{i}.wav", b"") for i in range(10_000)]
    bomb = _tar([_file("sessions/files/uploads/bomb.wav", bytes(64 * 1024 * 1024)),
                 _file("manifest.json", manifest_of_good)], mode="w:gz")
    return {
        "dot-dot": (_rewrite(good, _with_member("sessions/../../../etc/evil", b"x")), 400),
        "dot-dot-in-service": (_rewrite(good, _with_member("sessions/files/uploads/../../x.wav", b"x")), 400),
        "absolute": (_tar([_file("/etc/evil", b"x"), _file("manifest.json", manifest_of_good)]), 400),
        "symlink": (_tar([_link("sessions/files/uploads/a.wav", "/etc/passwd", tarfile.SYMTYPE),
                          _file("manifest.json", manifest_of_good)]), 400),
        "relative-symlink": (_tar([_link("sessions/files/uploads/a.wav", "b.wav", tarfile.SYMTYPE),
                                   _file("manifest.json", manifest_of_good)]), 400),
        "hard-link": (_tar([_file("sessions/files/uploads/b.wav", b"x"),
                            _link("sessions/files/uploads/a.wav", "sessions/files/uploads/b.wav", tarfile.LNKTYPE),
                            _file("manifest.json", manifest_of_good)]), 400),
        "fifo": (_tar([_link("sessions/files/uploads/p", "", tarfile.FIFOTYPE)]), 400),
        "device": (_tar([_link("sessions/files/uploads/d", "", tarfile.CHRTYPE)]), 400),
        "10000-members": (_tar(many), 413),
        "compression-bomb": (bomb, 413),
        "wrong-checksum": (_rewrite(good, wrong_checksum), 400),
        "newer-format": (_rewrite(good, newer_format), 400),
        "other-schema-version": (_rewrite(good, other_schema), 409),
        "rows-that-do-not-fit": (_rewrite(good, bad_rows), 400),
        "unlisted-member": (_tar([*[_file(n, d) for n, d in _members(good).items()],
                                  _file("chat/db/extra.jsonl", b"{}\n")]), 400),
        "no-manifest": (_tar([_file(n, d) for n, d in _members(good).items() if n != "manifest.json"]), 400),
        "cut-off": (good[: len(good) // 2], 400),
        "not-a-tar": (b"PK\x03\x04 this is a zip, not a tar" * 100, 400),
        "8-mb-of-junk": (b"\x01junk" * 1_600_000, 400),   # refused at its first block, while the upload goes on
    }


def test_bad_archives_are_4xx_with_the_error_body_and_change_nothing(populated):
    stack = populated
    good = _export(stack.api)
    before = _state(stack)
    snapshot = _members(good)
    for label, (archive, status) in _bad_archives(good).items():
        reply = _import(stack.api, archive)
        assert reply.status_code == status, (label, reply.status_code, reply.text)
        body = reply.json()
        assert isinstance(body.get("error"), str) and body["message"], (label, body)
        assert _state(stack) == before, label
    after = _members(_export(stack.api))
    after.pop("manifest.json")
    snapshot.pop("manifest.json")
    assert after == snapshot
    assert not any((stack.root / "ops" / "staging").iterdir())       # no staging left behind
    for service in ("sessions", "chat"):
        staging = stack.root / service / ".admin-staging"
        assert not staging.exists() or not [p for p in staging.iterdir() if p.is_dir()], service


def test_import_without_a_file_is_400(stack):
    reply = stack.api.post("/api/admin/import-data", data={"other": "x"}, files={"x": ("a", b"b")})
    assert reply.status_code == 400 and reply.json()["error"]
    assert stack.api.post("/api/admin/import-data", json={}).status_code == 400


def test_reset_while_a_transcription_is_queued(tmp_path, elasticsearch_url):
    """A queued upload (no transcriber runs): reset empties the RQ queue, every table and the audio files,
    keeps the schemas (the running services go on: a new upload works at once, ids restart) and the system
    templates."""
    for stack in start_stack(tmp_path, elasticsearch_url):
        reply = stack.api.post("/api/sessions/upload", files={"audioFile": ("a.wav", wav_bytes(1.0), "audio/wav")},
                               data={"clientName": "A", "sessionName": "S", "date": "2026-11-20",
                                     "sessionType": "Individual", "therapy": "CBT", "numSpeakers": "1"})
        assert reply.status_code == 202, reply.text
        queue = Queue("transcription", connection=Redis.from_url(stack.redis.url))
        assert queue.count == 1
        assert stack.api.get("/api/jobs/active-count").json()["transcription"] == 1
        assert stack.api.post("/api/chats").status_code == 201

        reset = stack.api.post("/api/admin/reset-all-data")
        assert reset.status_code == 200, reset.text
        assert reset.json()["errors"] == []
        assert queue.count == 0
        assert stack.api.get("/api/jobs/active-count").json()["transcription"] == 0
        assert stack.api.get("/api/sessions").json() == []
        assert stack.api.get("/api/chats").json() == []
        assert list(stack.uploads.iterdir()) == []
        titles = {t["title"] for t in stack.api.get("/api/templates").json()}
        assert titles and all(t.startswith("system_") for t in titles)

        again = stack.api.post("/api/sessions/upload", files={"audioFile": ("b.wav", wav_bytes(1.0), "audio/wav")},
                               data={"clientName": "B", "sessionName": "S", "date": "2026-11-21",
                                     "sessionType": "Individual", "therapy": "CBT", "numSpeakers": "1"})
        assert again.status_code == 202 and again.json()["sessionId"] == 1
        assert queue.count == 1


def test_imports_over_one_keep_alive_connection_of_the_real_http_server(populated):
    """Through uvicorn (real sockets): an import answers only once the whole upload is read, so the next request
    on the same connection is parsed as a request (the tar's trailing record padding once leaked into it: 431);
    an import refused before the end of its upload closes the connection instead."""
    good = _export(populated.api)
    bomb = _bad_archives(good)["10000-members"][0]
    with serve_gateway(populated.gateway_settings) as (host, port), \
            httpx.Client(base_url=f"http://{host}:{port}", timeout=120) as http:
        for _ in range(2):
            archive = http.get("/api/admin/export-data")
            assert archive.status_code == 200
            reply = http.post("/api/admin/import-data", files={"backupFile": ("b.tar", archive.content)})
            assert reply.status_code == 200, (len(archive.content), reply.text)
        refused = http.post("/api/admin/import-data", files={"backupFile": ("b.tar", bomb)})
        assert refused.status_code == 413 and refused.json()["error"]
        junk = http.post("/api/admin/import-data", files={"backupFile": ("b.tar", b"\x01junk" * 1_600_000)})
        assert junk.status_code == 400 and junk.json()["error"] == "BadRequestError"   # was a 500 (write after end)
        assert http.get("/api/sessions").status_code == 200
