"""Typed settings shared by every backend service (pydantic-settings, from environment variables)."""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    """Settings every gRPC service has. Subclasses set `env_prefix` and add their own fields.

    Environment: `<PREFIX>GRPC_PORT`, `<PREFIX>DATA_DIR`, `DATABASE_URL` (unprefixed is also accepted
    per service via `<PREFIX>DATABASE_URL`), `LOG_LEVEL`.
    """

    model_config = SettingsConfigDict(extra="ignore")

    grpc_host: str = "127.0.0.1"
    grpc_port: int
    data_dir: Path = Path("var")
    database_url: str | None = None  # None = SQLite file inside data_dir
    log_level: str = "INFO"
    grpc_workers: int = 16

    def resolved_database_url(self, file_name: str) -> str:
        """DATABASE_URL when set, else a SQLite file `<data_dir>/<file_name>`."""
        if self.database_url:
            return self.database_url
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{self.data_dir / file_name}"
