"""Analysis service and worker settings, from environment variables prefixed `ANALYSIS_`."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from therascript_common.settings import ServiceSettings


class AnalysisSettings(ServiceSettings):
    """Typed configuration shared by the analysis gRPC server and its worker (`therascript-analysis-worker`).

    Units: tokens for token budgets, seconds for times.
    - `ANALYSIS_GRPC_PORT` (50053), `ANALYSIS_DATA_DIR` (var/analysis; holds `analysis.sqlite`),
      `ANALYSIS_DATABASE_URL` (PostgreSQL URL; SQLite in the data dir when unset).
    - `ANALYSIS_REDIS_URL`: the RQ queue `ANALYSIS_QUEUE_NAME` and the per-job event logs (Redis streams).
    - `ANALYSIS_SESSIONS_TARGET` / `ANALYSIS_LLM_TARGET`: host:port of sessions and llm-manager.
    - `ANALYSIS_MAP_CONCURRENCY`: map calls in flight at once per job (useful up to llm-manager's
      `LLM_PARALLEL_SLOTS`; more only queue in the runtime).
    - `ANALYSIS_MAP_MAX_TOKENS` / `ANALYSIS_REDUCE_MAX_TOKENS` / `ANALYSIS_STRATEGY_MAX_TOKENS`: answer caps.
    - `ANALYSIS_CONTEXT_LIMIT_TOKENS`: use at most this much of the loaded context window (unset = all of it).
    - `ANALYSIS_HEARTBEAT_*`, `ANALYSIS_RECONCILE_INTERVAL_S`, `ANALYSIS_MAX_ATTEMPTS`: a worker killed mid-job
      is detected after the heartbeat timeout; the job is resumed (attempt + 1) up to max_attempts, then failed.
    - `ANALYSIS_EVENT_RETENTION_S`: how long a finished job's event log stays in Redis.
    """

    model_config = SettingsConfigDict(env_prefix="ANALYSIS_", extra="ignore")

    grpc_port: int = 50053
    grpc_workers: int = 32  # every open StreamJob holds a server thread
    data_dir: Path = Path("var/analysis")
    redis_url: str = "redis://127.0.0.1:6390/0"
    sessions_target: str = "127.0.0.1:50051"
    llm_target: str = "127.0.0.1:50054"
    rpc_timeout_s: float = 10.0
    generate_timeout_s: float = 900.0

    queue_name: str = "analysis"
    job_timeout_s: int = 6 * 3600
    max_attempts: int = Field(default=3, ge=1)
    heartbeat_interval_s: float = Field(default=1.0, gt=0)
    heartbeat_timeout_s: float = Field(default=15.0, gt=0)
    reconcile_interval_s: float = Field(default=2.0, gt=0)
    cancel_poll_s: float = Field(default=0.2, gt=0)

    map_concurrency: int = Field(default=1, ge=1, le=16)
    map_max_tokens: int = Field(default=400, ge=8)
    reduce_max_tokens: int = Field(default=1000, ge=8)
    strategy_max_tokens: int = Field(default=400, ge=8)
    context_limit_tokens: int | None = Field(default=None, ge=256)
    fallback_context_size: int = Field(default=8192, gt=0)  # when llm-manager reports no loaded context
    temperature: float = Field(default=0.3, ge=0, le=2)

    event_retention_s: int = Field(default=3600, gt=0)
    event_log_max_len: int = Field(default=200_000, gt=0)  # events kept per job (approximate trim)

    @property
    def database_file_url(self) -> str:
        return self.resolved_database_url("analysis.sqlite")
