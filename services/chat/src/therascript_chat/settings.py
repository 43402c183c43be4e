"""Chat service settings, from environment variables prefixed `CHAT_`."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from therascript_common.settings import ServiceSettings


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
    """

    model_config = SettingsConfigDict(env_prefix="CHAT_", extra="ignore")

    grpc_port: int = 50052
    data_dir: Path = Path("var/chat")
    sessions_target: str = "127.0.0.1:50051"
    llm_target: str = "127.0.0.1:50054"
    rpc_timeout_s: float = 10.0
    generate_timeout_s: float = 900.0
    reserved_output_tokens: int = Field(default=512, gt=0)
    max_reply_tokens: int | None = Field(default=None, gt=0)
    fallback_context_size: int = Field(default=8192, gt=0)

    def database_url_resolved(self) -> str:
        """The configured database URL, or `sqlite:///<data_dir>/chat.sqlite`."""
        return self.resolved_database_url("chat.sqlite")
