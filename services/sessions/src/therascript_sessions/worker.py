"""The transcriber: an RQ worker on the `transcription` queue (console script `therascript-transcriber`).

It runs jobs in its own process (rq.SimpleWorker: no fork), so the Whisper and speaker-embedding
models stay loaded between jobs, and killing the worker kills the job with it (the reconciler in the
sessions service then retries or fails it). It reports its readiness to Redis every 10 s (TTL 30 s):
whether ASR and diarization models load here, and on which device — the upload gate reads it.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import asdict, dataclass, replace

from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from therascript_common.logging import configure_logging
from therascript_common.rq_worker import work_until_stopped, worker_redis

from .jobs import PREFETCH_KEY, READINESS_KEY
from .settings import SessionsSettings
from .storage.database import Database
from .transcription import asr
from .transcription.job import WorkerContext, configure

log = logging.getLogger("therascript_sessions.worker")
REPORT_INTERVAL_S = 10.0


@dataclass
class ReadinessState:
    """What a transcriber reports (JSON in Redis; read by jobs.TranscriptionJobs.readiness)."""

    asr_ready: bool = False
    diarization_ready: bool = False
    prefetch_in_progress: bool = False
    error: str | None = None
    device: str | None = None


class ReadinessReporter:
    """Loads the models once (ASR now, diarization now or on a prefetch request) and publishes readiness."""

    def __init__(self, redis: Redis, asr_config: asr.AsrConfig, ttl_s: int) -> None:
        self._redis = redis
        self._asr_config = asr_config
        self._ttl_s = ttl_s
        self.state = ReadinessState()

    def prepare(self) -> None:
        try:
            asr.load_model(self._asr_config)
            self.state.asr_ready = True
            self.state.device = asr.resolve_device(self._asr_config.device)
        except Exception as error:
            self.state.error = f"ASR model failed to load: {error}"
            log.exception("ASR model failed to load")
        self._prepare_diarization()

    def _prepare_diarization(self) -> None:
        self.state.prefetch_in_progress = True
        self.publish()
        try:
            from .transcription import diarization

            ready, reason = diarization.is_available()
            if ready:
                diarization.warm_up(self._asr_config.device)  # loads the encoder and compiles numba once
            self.state.diarization_ready = ready
            if reason:
                self.state.error = reason
        except Exception as error:
            self.state.error = f"Diarization model failed to load: {error}"
            log.exception("diarization model failed to load")
        finally:
            self.state.prefetch_in_progress = False
            self.publish()

    def publish(self) -> None:
        """Writes the state to Redis; with Redis away it only logs (the loop publishes again every 10 s)."""
        try:
            self._redis.set(READINESS_KEY, json.dumps(asdict(self.state)), ex=self._ttl_s)
        except (RedisConnectionError, RedisTimeoutError) as error:
            log.warning("readiness not published, Redis is unreachable: %s", error)

    def run_in_background(self) -> None:
        def loop() -> None:
            while True:
                try:
                    if self._redis.getdel(PREFETCH_KEY) and not self.state.diarization_ready:
                        self._prepare_diarization()
                    self.publish()
                except Exception:
                    log.warning("readiness report failed", exc_info=True)
                time.sleep(REPORT_INTERVAL_S)

        threading.Thread(target=loop, name="readiness", daemon=True).start()


def asr_config_from(settings: SessionsSettings) -> asr.AsrConfig:
    """The ASR configuration from settings; the packaged tiny.en model unless SESSIONS_WHISPER_MODEL is set."""
    config = asr.AsrConfig(device=settings.whisper_device, compute_type=settings.whisper_compute_type,
                           cpu_threads=settings.whisper_cpu_threads, batch_size=settings.whisper_batch_size)
    return replace(config, model=settings.whisper_model) if settings.whisper_model else config


def main() -> None:
    settings = SessionsSettings()
    configure_logging("transcriber", settings.log_level)
    db = Database(settings.database_file_url)
    db.wait_until_migrated()  # the sessions service owns the schema; two migrators would race
    redis = worker_redis(settings.redis_url)
    asr_config = asr_config_from(settings)
    from .transcription import diarization

    diarization.use_embedding(settings.speaker_embedding)  # an unknown name stops the worker with its name
    if settings.diarization_pipeline:
        diarization.use_pipeline(settings.diarization_pipeline)  # a bad path stops the worker with its name
    configure(WorkerContext(db, settings.uploads_dir, asr_config, settings.heartbeat_interval_s))
    reporter = ReadinessReporter(redis, asr_config, settings.readiness_ttl_s)
    reporter.prepare()
    reporter.run_in_background()
    log.info("transcriber ready (device %s); waiting for jobs", reporter.state.device)
    # Redis going away (killed, restarted) is waited out there, never the end of the transcriber.
    work_until_stopped(settings.queue_name, redis)


if __name__ == "__main__":
    main()
