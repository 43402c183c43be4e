"""The work loop of an RQ worker process (the transcriber, the analysis worker): jobs run in the worker's own
process (rq.SimpleWorker, no fork), so loaded models and connections stay between jobs and killing the worker
kills its job with it (the owning service's reconciler then resumes or fails the job)."""

from __future__ import annotations

import logging
import time

from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

log = logging.getLogger(__name__)

#: Socket timeout for the worker's Redis connection, seconds: longer than rq's blocking dequeue (worker_ttl 420 s
#: - 15 s plus its 10 s margin). redis-py 8 falls back to the URL's default (5 s) otherwise, and the idle worker
#: quit ("Redis connection timeout") every few seconds.
RQ_SOCKET_TIMEOUT_S = 600.0


def worker_redis(url: str) -> Redis:
    """A Redis connection fit for an RQ worker's blocking dequeue."""
    return Redis.from_url(url, socket_timeout=RQ_SOCKET_TIMEOUT_S)


def work_until_stopped(queue_name: str, redis: Redis, restart_pause_s: float = 2.0) -> None:
    """Runs RQ SimpleWorkers on `queue_name` until a shutdown is requested (SIGTERM/SIGINT). rq's work loop
    returns on a Redis timeout or an unexpected error, and raises when Redis is gone (its teardown cannot
    reach it; so did starting a worker while Redis was down); a worker must not vanish because Redis went
    away, so a fresh one starts after `restart_pause_s` seconds, for as long as Redis stays away."""
    from rq import Queue, SimpleWorker  # rq is a dependency of the services that run workers, not of this lib

    while True:
        worker: SimpleWorker | None = None
        try:
            worker = SimpleWorker([Queue(queue_name, connection=redis)], connection=redis)  # asks Redis already
            worker.work(with_scheduler=False)
        except (RedisConnectionError, RedisTimeoutError) as error:
            if worker is not None and (worker._stop_requested or worker._shutdown_requested_date is not None):
                return
            log.warning("the RQ worker on %s lost Redis (%s); waiting %.0f s for it", queue_name, error,
                        restart_pause_s)
            time.sleep(restart_pause_s)
            continue
        # rq's own SIGTERM/SIGINT handler sets the date (idle) and the flag (busy); either means "stop".
        if worker._stop_requested or worker._shutdown_requested_date is not None:
            return
        log.warning("the RQ worker loop on %s ended without a shutdown request; starting it again in %.0f s",
                    queue_name, restart_pause_s)
        time.sleep(restart_pause_s)
