"""Wires the chat gRPC server: settings → database (migrated, system templates seeded) → clients → servicer."""

from __future__ import annotations

from therascript.chat.v1 import chat_pb2, chat_pb2_grpc
from therascript_common.admin import admin_registration
from therascript_common.grpc_server import registration, run

from .admin import build_admin
from .clients import LlmClient, SessionsClient
from .deps import ChatDeps
from .search import MessageSearch
from .servicer import ChatServicer
from .settings import ChatSettings
from .storage.database import open_database
from .templates import seed_system_templates


def build_deps(settings: ChatSettings) -> ChatDeps:
    """Opens (migrates) the database, seeds missing system templates, connects the clients."""
    db = open_database(settings.database_url_resolved())
    seed_system_templates(db)
    sessions = SessionsClient(settings.sessions_target, settings.rpc_timeout_s)
    return ChatDeps(
        db=db,
        sessions=sessions,
        llm=LlmClient(settings.llm_target, settings.rpc_timeout_s, settings.generate_timeout_s),
        settings=settings,
        search=MessageSearch(db, sessions, settings.elasticsearch_url, settings.elasticsearch_index,
                             settings.elasticsearch_timeout_s),
    )


def registrations(deps: ChatDeps) -> list:
    return [registration(chat_pb2, chat_pb2_grpc, "ChatService", ChatServicer(deps)),
            admin_registration(build_admin(deps))]


def main() -> None:
    settings = ChatSettings()
    deps = build_deps(settings)
    if deps.search is not None:
        deps.search.start()  # the message index follows the database (search.py)
    run("chat", settings, registrations(deps))


if __name__ == "__main__":
    main()
