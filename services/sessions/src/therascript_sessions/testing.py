"""Real sessions servers for other services' tests (chat, analysis, e2e helpers).

`start_sessions(data_dir, redis_url)` runs a real sessions gRPC server in this process on a free port
(its own SQLite database in `data_dir`); `seed_completed_session(...)` stores a completed session with
paragraphs through the service's own storage layer — the same path the transcriber's job takes —
so a chat test need not run Whisper.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import grpc

from therascript.sessions.v1 import sessions_pb2, sessions_pb2_grpc
from therascript_common.admin import admin_registration
from therascript_common.grpc_server import build_server, registration

from .clock import now_ms, session_date_iso
from .server import SessionsApp, build
from .settings import SessionsSettings
from .storage.tables import SessionRow
from .transcription.paragraphs import ParagraphDraft
from .transcripts import estimate_tokens, replace_paragraphs


@dataclass
class RunningSessions:
    target: str            # "127.0.0.1:<port>"
    app: SessionsApp
    server: grpc.Server

    def stop(self) -> None:
        self.server.stop(0)
        self.app.stop()


def start_sessions(data_dir: Path, redis_url: str, chat_target: str = "127.0.0.1:1", **overrides) -> RunningSessions:
    """Starts a sessions gRPC server (with its reconciler and outbox loops) on a free port. Its search index
    goes nowhere (an unreachable Elasticsearch) unless `elasticsearch_url` is given: a test never writes into a
    developer's running index."""
    overrides.setdefault("elasticsearch_url", "http://127.0.0.1:1")
    settings = SessionsSettings(data_dir=data_dir, redis_url=redis_url, chat_target=chat_target,
                                grpc_port=0, **overrides)
    app = build(settings)
    app.start_background()
    server, _, port = build_server(
        [registration(sessions_pb2, sessions_pb2_grpc, "SessionsService", app.servicer),
         admin_registration(app.admin)], "127.0.0.1:0"
    )
    server.start()
    return RunningSessions(f"127.0.0.1:{port}", app, server)


def seed_completed_session(app: SessionsApp, paragraphs: list[tuple[str | None, str]], client_name: str = "Client A",
                           session_name: str = "Session 1", date: str = "2026-01-15") -> int:
    """Stores a completed session whose transcript is `paragraphs` [(speaker, text)], 10 s apart;
    returns its id."""
    drafts = [ParagraphDraft(i, i * 10_000, text, speaker) for i, (speaker, text) in enumerate(paragraphs)]
    with app.db.transaction() as session:
        row = SessionRow(file_name="seed.wav", client_name=client_name, session_name=session_name,
                         date=session_date_iso(date), session_type="Individual", therapy="CBT", status="completed",
                         duration_s=len(drafts) * 10, show_speakers=1, num_speakers=2, created_at_ms=now_ms(),
                         transcript_token_count=estimate_tokens([d.text for d in drafts]))
        session.add(row)
        session.flush()
        replace_paragraphs(session, row.id, drafts)
        return row.id
