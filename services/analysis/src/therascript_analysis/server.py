"""Wires the analysis gRPC server: settings → database (migrated) → Redis, clients → jobs, streams → servicer;
plus the reconciler loop. No business logic here. The jobs themselves run in the analysis worker (worker.py)."""

from __future__ import annotations

from dataclasses import dataclass, field

from redis import Redis

from therascript.analysis.v1 import analysis_pb2, analysis_pb2_grpc
from therascript_common.admin import AdminServicer, admin_registration
from therascript_common.background import Periodic
from therascript_common.grpc_server import registration, run

from .admin import build_admin
from .clients import LlmClient, SessionsClient
from .events import EventLog
from .jobs import AnalysisJobs
from .servicer import AnalysisServicer
from .settings import AnalysisSettings
from .storage.database import Database
from .streams import JobStreams


@dataclass
class AnalysisApp:
    """Everything a running analysis service holds; `stop()` ends its background loop and connections."""

    settings: AnalysisSettings
    db: Database
    redis: Redis
    jobs: AnalysisJobs
    servicer: AnalysisServicer
    sessions: SessionsClient
    llm: LlmClient
    admin: AdminServicer
    loops: list[Periodic] = field(default_factory=list)

    def registrations(self) -> list:
        return [registration(analysis_pb2, analysis_pb2_grpc, "AnalysisService", self.servicer),
                admin_registration(self.admin)]

    def start_background(self) -> None:
        """The reconciler: jobs left running by a dead worker are resumed or failed, never left hanging."""
        self.loops = [self.jobs.run_reconciler(self.settings.reconcile_interval_s)]

    def stop(self) -> None:
        for loop in self.loops:
            loop.stop()
        self.sessions.close()
        self.llm.close()
        self.redis.close()
        self.db.dispose()


def build(settings: AnalysisSettings) -> AnalysisApp:
    """Builds (and migrates) everything; starts nothing."""
    db = Database(settings.database_file_url)
    db.migrate()
    redis = Redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=5)
    events = EventLog(redis, settings.event_retention_s, settings.event_log_max_len)
    sessions = SessionsClient(settings.sessions_target, settings.rpc_timeout_s)
    llm = LlmClient(settings.llm_target, settings.rpc_timeout_s, settings.generate_timeout_s)
    jobs = AnalysisJobs(db, redis, events, sessions, llm, settings.queue_name, settings.job_timeout_s,
                        settings.max_attempts, settings.heartbeat_timeout_s)
    servicer = AnalysisServicer(jobs, JobStreams(jobs, events))
    admin = build_admin(db, jobs.queue, settings)
    return AnalysisApp(settings, db, redis, jobs, servicer, sessions, llm, admin)


def main() -> None:
    app = build(AnalysisSettings())
    app.start_background()
    try:
        run("analysis", app.settings, app.registrations())
    finally:
        app.stop()


if __name__ == "__main__":
    main()
