"""Sessions service and transcriber settings (env prefix SESSIONS_)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from therascript_common.settings import ServiceSettings


class SessionsSettings(ServiceSettings):
    """Typed settings shared by the sessions gRPC server and the transcriber worker.

    Units: bytes for sizes, seconds for times. `whisper_model` is a faster-whisper model name or a
    folder; empty = the packaged Whisper tiny.en (MODELS.md).
    """

    model_config = SettingsConfigDict(env_prefix="SESSIONS_", extra="ignore")

    grpc_port: int = 50051
    data_dir: Path = Path("var/sessions")
    redis_url: str = "redis://127.0.0.1:6390/0"
    chat_target: str = "127.0.0.1:50052"
    elasticsearch_url: str = "http://127.0.0.1:9201"   # the transcript index's server (search.py)
    elasticsearch_index: str = "therascript-transcripts"  # the alias; concrete indexes are <alias>-<epoch ms>
    elasticsearch_timeout_s: float = 10.0
    upload_max_bytes: int = Field(default=1024**3, gt=0)

    queue_name: str = "transcription"
    job_timeout_s: int = 6 * 3600
    max_attempts: int = 2                 # a job killed mid-way is retried once, then `failed`
    heartbeat_interval_s: float = 2.0
    heartbeat_timeout_s: float = 20.0     # no heartbeat for this long = the worker died
    reconcile_interval_s: float = 3.0
    readiness_ttl_s: int = 30             # how long a transcriber's readiness report stays valid

    whisper_model: str = ""
    whisper_device: str = "auto"
    whisper_compute_type: str = "default"
    whisper_cpu_threads: int = 0
    whisper_batch_size: int = Field(default=4, ge=0)  # speech segments decoded together; 0 = sequential (asr.AsrConfig)
    diarization_pipeline: str = ""        # a local pyannote.audio pipeline (folder or config.yaml); "" = built-in
    speaker_embedding: str = "campplus"   # the built-in method's embedding model: "campplus" or "resemblyzer"

    @property
    def uploads_dir(self) -> Path:
        return self.data_dir / "uploads"

    @property
    def database_file_url(self) -> str:
        return self.resolved_database_url("sessions.sqlite")
