"""Tables owned by the chat service (original §7.1 `chats`, `messages`, `templates`, with §10's faults fixed:
the reasoning text is kept apart from the answer, a cancelled reply is marked, template titles are UNIQUE
and a duplicate is a 409, system templates are seeded once and never overwritten)."""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class ChatRow(Base):
    """A chat. `session_id` NULL = standalone chat (original §1.3). No FK: sessions live in another service,
    which calls DeleteSessionChats when a session goes."""

    __tablename__ = "chats"
    __table_args__ = {"sqlite_autoincrement": True}   # ids are never reused (migration 0002)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    session_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    timestamp_ms: Mapped[int] = mapped_column(BigInteger, index=True)   # creation, epoch ms
    name: Mapped[str | None] = mapped_column(String(200))
    tags: Mapped[list[str] | None] = mapped_column(JSON)                 # sorted; NULL = no tags


class MessageRow(Base):
    """One chat message. `text` is the answer only; `thinking` the model's reasoning, if any."""

    __tablename__ = "messages"
    __table_args__ = {"sqlite_autoincrement": True}   # ids are never reused (migration 0002)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    chat_id: Mapped[int] = mapped_column(ForeignKey("chats.id", ondelete="CASCADE"), index=True)
    sender: Mapped[str] = mapped_column(String(8))                      # user | ai | system
    text: Mapped[str] = mapped_column(Text)
    thinking: Mapped[str | None] = mapped_column(Text)
    timestamp_ms: Mapped[int] = mapped_column(BigInteger)               # epoch ms
    prompt_tokens: Mapped[int | None] = mapped_column(Integer)
    completion_tokens: Mapped[int | None] = mapped_column(Integer)
    duration_ms: Mapped[int | None] = mapped_column(Integer)
    is_truncated: Mapped[bool] = mapped_column(Boolean, default=False)
    cancelled: Mapped[bool] = mapped_column(Boolean, default=False)


class TemplateRow(Base):
    """A message template; titles starting `system_` are the system prompts (original §1.13)."""

    __tablename__ = "templates"
    __table_args__ = {"sqlite_autoincrement": True}   # ids are never reused (migration 0002)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    title: Mapped[str] = mapped_column(String(200), unique=True)
    #: names.name_key(title): case-folded, whitespace-normalised; unique, so look-alike titles are 409 (0003).
    title_key: Mapped[str | None] = mapped_column(String(800), nullable=True, unique=True, index=True)
    text: Mapped[str] = mapped_column(Text)
    created_at_ms: Mapped[int] = mapped_column(BigInteger, index=True)  # epoch ms


class SearchOutboxRow(Base):
    """A change to indexed message content (search.py), written in the same transaction as the change:
    `target` "m:<message id>", "c:<chat id>" or "S:<session id>"."""

    __tablename__ = "search_outbox"
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    target: Mapped[str] = mapped_column(String(64))
    created_at_ms: Mapped[int] = mapped_column(BigInteger)
