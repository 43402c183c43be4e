"""What the chat domain functions need, built once by server.py and passed in (no globals)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from .clients import LlmClient, SessionsClient
from .search import MessageSearch
from .settings import ChatSettings


@dataclass(frozen=True)
class ChatDeps:
    """The database session factory, the two service clients, the settings, and the message index."""

    db: sessionmaker[Session]
    sessions: SessionsClient
    llm: LlmClient
    settings: ChatSettings
    search: MessageSearch | None = None
