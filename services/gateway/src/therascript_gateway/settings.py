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
    - `upload_idle_timeout_s`: seconds an upload may send nothing before it is answered 408 and its
      stream to the sessions service is cancelled (which frees that service's worker thread).
    - `upload_deadline_s`: seconds one upload may take in all (its gRPC deadline).
    - `upload_max_concurrent`: uploads forwarded at once; more are answered 503 at once. Each one holds a
      worker thread of the sessions service, so keep this below its `SESSIONS_GRPC_WORKERS` (16): the
      other requests (lists, health) always find a free worker.
    - `audio_max_concurrent`: recordings streamed out at once (GET …/audio; same reasoning, 503 beyond);
      `audio_idle_timeout_s`: seconds a client may accept no bytes before its stream is dropped and cancelled.
      Uploads plus audio streams stay below the sessions service's workers (8 + 4 of 16 by default).
    - `json_body_max_bytes`: the largest request body of every other route (413), counted as it arrives.
    - `*_target`: host:port of each backend gRPC service.
    """

    model_config = SettingsConfigDict(env_prefix="THERASCRIPT_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 3001
    api_token: str | None = None
    cors_origins: str = "http://localhost:3002,http://127.0.0.1:3002"
    upload_max_bytes: int = Field(default=1024**3, gt=0)
    upload_idle_timeout_s: float = Field(default=30.0, gt=0)
    upload_deadline_s: float = Field(default=3600.0, gt=0)
    upload_max_concurrent: int = Field(default=8, gt=0)
    audio_max_concurrent: int = Field(default=4, gt=0)
    audio_idle_timeout_s: float = Field(default=60.0, gt=0)
    json_body_max_bytes: int = Field(default=4 * 1024 * 1024, gt=0)
    grpc_timeout_s: float = 10.0

    sessions_target: str = "127.0.0.1:50051"
    chat_target: str = "127.0.0.1:50052"
    analysis_target: str = "127.0.0.1:50053"
    llm_target: str = "127.0.0.1:50054"
    ops_target: str = "127.0.0.1:50055"

    @property
    def cors_origin_list(self) -> list[str]:
        return [o.strip() for o in self.cors_origins.split(",") if o.strip()]
