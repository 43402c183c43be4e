"""Gateway settings, from environment variables (prefix THERASCRIPT_ unless noted)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class GatewaySettings(BaseSettings):
    """Typed gateway configuration.

    - `api_token` (THERASCRIPT_API_TOKEN): bearer token required on every /api route except health
      and docs. When unset the gateway refuses to bind anything but loopback (API-CONTRACT.md Part C).
    - `cors_origins`: the UI origins allowed cross-origin (ui-contract.md §4), comma-separated.
    - `upload_max_bytes`: upload size limit, enforced while streaming (413).
    - `*_target`: host:port of each backend gRPC service.
    """

    model_config = SettingsConfigDict(env_prefix="THERASCRIPT_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 3001
    api_token: str | None = None
    cors_origins: str = "http://localhost:3002,http://127.0.0.1:3002"
    upload_max_bytes: int = Field(default=1024**3, gt=0)
    grpc_timeout_s: float = 10.0

    sessions_target: str = "127.0.0.1:50051"
    chat_target: str = "127.0.0.1:50052"
    analysis_target: str = "127.0.0.1:50053"
    llm_target: str = "127.0.0.1:50054"
    ops_target: str = "127.0.0.1:50055"

    @property
    def cors_origin_list(self) -> list[str]:
        return [o.strip() for o in self.cors_origins.split(",") if o.strip()]
