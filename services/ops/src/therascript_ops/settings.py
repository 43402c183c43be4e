"""Ops service settings (env prefix OPS_)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from therascript_common.settings import ServiceSettings


class OpsSettings(ServiceSettings):
    """Typed settings of the ops service. Units: bytes for sizes, seconds for times.

    - `*_target`: host:port of each data-owning service (their Admin RPCs and health);
    - `redis_url`, `elasticsearch_url` (unset = search not configured): checked by readiness;
    - `import_max_bytes` (the upload), `import_max_member_bytes`, `import_max_total_bytes` (sum of the
      archive's member sizes), `import_max_members`: limits against archive bombs (413);
    - `compose_project`: the `com.docker.compose.project` label of this project's containers;
      `docker_host`: the Engine address (unset = the docker SDK's default, `DOCKER_HOST` or the local socket);
    - `process_dir`: the data folder of a `scripts/up` run (its `logs/` and `run/processes.json`), unset = none;
    - `kubernetes_namespace`: namespace whose pods are reported in a cluster (unset = the pod's own);
    - `gpu_cache_s`: how long one GPU reading is served again.
    """

    model_config = SettingsConfigDict(env_prefix="OPS_", extra="ignore")

    grpc_port: int = 50055
    data_dir: Path = Path("var/ops")
    sessions_target: str = "127.0.0.1:50051"
    chat_target: str = "127.0.0.1:50052"
    analysis_target: str = "127.0.0.1:50053"
    llm_target: str = "127.0.0.1:50054"
    redis_url: str = "redis://127.0.0.1:6390/0"
    elasticsearch_url: str | None = None
    rpc_timeout_s: float = 10.0
    admin_timeout_s: float = 3600.0
    probe_timeout_s: float = 3.0

    import_max_bytes: int = Field(default=64 * 1024**3, gt=0)
    import_max_member_bytes: int = Field(default=4 * 1024**3, gt=0)
    import_max_total_bytes: int = Field(default=64 * 1024**3, gt=0)
    import_max_members: int = Field(default=5000, gt=0)

    compose_project: str = "therascript"
    docker_host: str | None = None
    docker_timeout_s: float = 3.0
    process_dir: Path | None = None
    kubernetes_namespace: str | None = None
    log_tail_lines: int = Field(default=200, gt=0, le=5000)
    gpu_cache_s: float = 1.0

    @property
    def staging_dir(self) -> Path:
        return self.data_dir / "staging"
