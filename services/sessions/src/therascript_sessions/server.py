"""Wires the sessions gRPC server: settings → database → services → servicer; plus the reconciler
and outbox loops. No business logic here."""

from __future__ import annotations

from dataclasses import dataclass, field

import grpc
from redis import Redis

from therascript.chat.v1 import chat_pb2, chat_pb2_grpc
from therascript.sessions.v1 import sessions_pb2, sessions_pb2_grpc
from therascript_common.admin import AdminServicer, admin_registration
from therascript_common.background import Periodic
from therascript_common.grpc_client import sync_channel
from therascript_common.grpc_server import registration, run

from . import outbox
from .admin import build_admin
from .audio import AudioService
from .jobs import TranscriptionJobs
from .search import TranscriptSearch
from .servicer import SessionsServicer
from .sessions import SessionService
from .settings import SessionsSettings
from .storage.database import Database
from .transcripts import TranscriptService
from .uploads import PARTIAL_STALE_S, UploadService


@dataclass
class SessionsApp:
    """Everything a running sessions service holds; `stop()` ends its background loops."""

    settings: SessionsSettings
    db: Database
    servicer: SessionsServicer
    jobs: TranscriptionJobs
    dispatcher: outbox.OutboxDispatcher
    chat_channel: grpc.Channel
    admin: AdminServicer

    loops: list[Periodic] = field(default_factory=list)

    def start_background(self) -> None:
        """The reconciler (jobs never stuck), the outbox delivery (deletes owed elsewhere) and the sweep of
        partial uploads a killed process left behind (once now, then periodically)."""
        uploads = self.servicer.uploads
        uploads.sweep_partial_uploads()
        self.loops = [self.jobs.run_reconciler(self.settings.reconcile_interval_s),
                      self.dispatcher.run_in_background(),
                      Periodic("partial-upload-sweep", PARTIAL_STALE_S, uploads.sweep_partial_uploads).start()]
        if self.servicer.search is not None:  # the transcript index follows the database (search.py)
            self.loops.append(self.servicer.search.indexer.run_in_background())

    def stop(self) -> None:
        for loop in self.loops:
            loop.stop()
        if self.servicer.search is not None:
            self.servicer.search.index.client.close()
        self.chat_channel.close()
        self.db.dispose()


def build(settings: SessionsSettings) -> SessionsApp:
    """Builds (and migrates) everything; starts nothing."""
    db = Database(settings.database_file_url)
    db.migrate()
    settings.uploads_dir.mkdir(parents=True, exist_ok=True)
    redis = Redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=5)
    chat_channel = sync_channel(settings.chat_target, default_timeout_s=10)
    chat = chat_pb2_grpc.ChatServiceStub(chat_channel)

    def delete_session_chats(payload: dict) -> None:
        chat.DeleteSessionChats(chat_pb2.DeleteSessionChatsRequest(
            session_id=payload["session_id"], created_at_or_before_ms=payload.get("deleted_at_ms")))

    def reindex_session_chats(payload: dict) -> None:
        chat.ReindexSessionChats(chat_pb2.ReindexSessionChatsRequest(session_id=payload["session_id"]))

    dispatcher = outbox.OutboxDispatcher(db, {outbox.DELETE_FILE: outbox.delete_file,
                                              outbox.DELETE_SESSION_CHATS: delete_session_chats,
                                              outbox.REINDEX_SESSION_CHATS: reindex_session_chats})
    search = TranscriptSearch(db, settings.elasticsearch_url, settings.elasticsearch_index,
                              settings.elasticsearch_timeout_s)
    jobs = TranscriptionJobs(db, redis, settings.queue_name, settings.max_attempts, settings.heartbeat_timeout_s,
                             settings.job_timeout_s)
    servicer = SessionsServicer(
        SessionService(db, settings.uploads_dir, dispatcher),
        TranscriptService(db),
        AudioService(db, settings.uploads_dir, dispatcher),
        UploadService(db, jobs, settings.uploads_dir, settings.upload_max_bytes),
        jobs,
        search,
    )
    return SessionsApp(settings, db, servicer, jobs, dispatcher, chat_channel, build_admin(settings, db, jobs, search))


def main() -> None:
    app = build(SessionsSettings())
    app.start_background()
    try:
        run("sessions", app.settings,
            [registration(sessions_pb2, sessions_pb2_grpc, "SessionsService", app.servicer),
             admin_registration(app.admin)])
    finally:
        app.stop()


if __name__ == "__main__":
    main()
