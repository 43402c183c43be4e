"""Chat service settings, from environment variables prefixed `CHAT_`."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from therascript_common.settings import ServiceSettings

UNARY_HEADROOM_WORKERS = 8  # gRPC threads kept free of replies, for the unary RPCs and health checks


class ChatSettings(ServiceSettings):
    """Typed configuration of the chat service.

    - `CHAT_GRPC_PORT` (50052), `CHAT_DATA_DIR` (var/chat; holds `chat.sqlite`), `CHAT_DATABASE_URL`
      (a PostgreSQL SQLAlchemy URL; SQLite file in the data dir when unset).
    - `CHAT_SESSIONS_TARGET` / `CHAT_LLM_TARGET`: host:port of the sessions and llm-manager gRPC servers.
    - `CHAT_RESERVED_OUTPUT_TOKENS`: room kept free for the reply when windowing the prompt, tokens
      (original §4 default 512).
    - `CHAT_MAX_REPLY_TOKENS`: cap on one reply, tokens; unset = whatever the context window leaves.
    - `CHAT_FALLBACK_CONTEXT_SIZE`: context size assumed when llm-manager reports none, tokens
      (original §2.1 step 4: 8192).
    - `CHAT_GENERATE_TIMEOUT_S`: deadline of one Generate stream, seconds.
    - `CHAT_MAX_CONCURRENT_REPLIES`: replies (SendMessage streams) in flight at once, count (default 8). One
      more is refused at once with UNAVAILABLE (the gateway's 503), never queued silently behind the others.
      Each reply also holds one of llm-manager's gRPC threads (LLM_GRPC_WORKERS, 16) for its Generate
      stream, so keep it well below that; llama.cpp itself generates `LLM_PARALLEL_SLOTS` replies at a time.
    - `CHAT_GRPC_WORKERS`: gRPC worker threads (default 16); each streaming reply holds one, so it must be at
      least CHAT_MAX_CONCURRENT_REPLIES + 8, leaving room for the other RPCs and health checks.
    """

    model_config = SettingsConfigDict(env_prefix="CHAT_", extra="ignore")

    grpc_port: int = 50052
    data_dir: Path = Path("var/chat")
    sessions_target: str = "127.0.0.1:50051"
    llm_target: str = "127.0.0.1:50054"
    elasticsearch_url: str = "http://127.0.0.1:9201"       # the message index's server (search.py)
    elasticsearch_index: str = "therascript-messages"      # the alias; concrete indexes are <alias>-<epoch ms>
    elasticsearch_timeout_s: float = 10.0
    rpc_timeout_s: float = 10.0
    generate_timeout_s: float = 900.0
    reserved_output_tokens: int = Field(default=512, gt=0)
    max_reply_tokens: int | None = Field(default=None, gt=0)
    fallback_context_size: int = Field(default=8192, gt=0)
    max_concurrent_replies: int = Field(default=8, gt=0)

    @model_validator(mode="after")
    def _workers_beyond_replies(self) -> ChatSettings:
        if self.grpc_workers < self.max_concurrent_replies + UNARY_HEADROOM_WORKERS:
            raise ValueError(f"CHAT_GRPC_WORKERS ({self.grpc_workers}) must be at least CHAT_MAX_CONCURRENT_REPLIES "
                             f"({self.max_concurrent_replies}) + {UNARY_HEADROOM_WORKERS}: every streaming reply "
                             "holds a worker thread")
        return self

    def database_url_resolved(self) -> str:
        """The configured database URL, or `sqlite:///<data_dir>/chat.sqlite`."""
        return self.resolved_database_url("chat.sqlite")
