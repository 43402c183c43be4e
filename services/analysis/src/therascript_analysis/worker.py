"""The analysis worker: an RQ worker on the `analysis` queue (console script `therascript-analysis-worker`).

Jobs run in the worker's own process (rq.SimpleWorker), so killing the worker kills its job with it; the analysis
service's reconciler then resumes the job (attempt + 1, reusing every stored answer) or fails it. The worker never
migrates: it waits until the analysis service has migrated the shared database.
"""

from __future__ import annotations

import logging

from therascript_common.logging import configure_logging
from therascript_common.rq_worker import work_until_stopped, worker_redis

from .clients import LlmClient, SessionsClient
from .events import EventLog
from .mapreduce import WorkerContext, configure
from .settings import AnalysisSettings
from .storage.database import Database

log = logging.getLogger("therascript_analysis.worker")


def build_context(settings: AnalysisSettings) -> WorkerContext:
    """The worker's database (migrated by the service), event log and clients."""
    db = Database(settings.database_file_url)
    db.wait_until_migrated()
    events = EventLog(worker_redis(settings.redis_url), settings.event_retention_s, settings.event_log_max_len)
    return WorkerContext(db, events, SessionsClient(settings.sessions_target, settings.rpc_timeout_s),
                         LlmClient(settings.llm_target, settings.rpc_timeout_s, settings.generate_timeout_s), settings)


def main() -> None:
    settings = AnalysisSettings()
    configure_logging("analysis-worker", settings.log_level)
    configure(build_context(settings))
    log.info("analysis worker ready (map concurrency %s); waiting for jobs on %r", settings.map_concurrency,
             settings.queue_name)
    work_until_stopped(settings.queue_name, worker_redis(settings.redis_url))


if __name__ == "__main__":
    main()
