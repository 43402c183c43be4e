"""The RQ worker loop (therascript_common.rq_worker) against a real Redis that is killed and started again
(issue 7 item 11): before, rq's teardown raised "Error 111 connecting" out of the loop and the worker
process exited — with a job just finished, and no worker left to run the retry or the next job."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from redis import Redis
from rq import Queue
from servers import start_redis

HERE = Path(__file__).resolve().parent
WORKER = """
import logging, sys
logging.basicConfig(level=logging.INFO)
from therascript_common.rq_worker import work_until_stopped, worker_redis
work_until_stopped(sys.argv[2], worker_redis(sys.argv[1]), restart_pause_s=0.5)
"""


def _wait_for(path: Path, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def test_the_worker_waits_out_a_redis_outage_and_runs_the_next_job(tmp_path) -> None:
    redis_process, url = start_redis(tmp_path / "redis", appendonly=True)
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
    log_path = tmp_path / "worker.log"
    with log_path.open("wb") as log_file:
        worker = subprocess.Popen([sys.executable, "-c", WORKER, url, "q"], env=env, stdout=log_file,
                                  stderr=subprocess.STDOUT)
    try:
        queue = Queue("q", connection=Redis.from_url(url))
        first, second = tmp_path / "first", tmp_path / "second"
        queue.enqueue("rq_test_jobs.write_after", str(first), 3.0)
        # the job's own function is running (not merely in rq's started registry: between that entry and the
        # function rq still calls Redis, and a kill in that gap loses the job before it starts)
        assert _wait_for(Path(f"{first}.started"), 20), log_path.read_text()
        redis_process.kill()
        redis_process.wait()
        assert _wait_for(first, 10), log_path.read_text()  # the job itself never needed Redis
        time.sleep(3)  # rq's end-of-job bookkeeping fails against the dead Redis meanwhile
        assert worker.poll() is None, f"the worker exited with Redis away:\n{log_path.read_text()[-3000:]}"
        redis_process, _ = start_redis(tmp_path / "redis", port=port, appendonly=True)
        Queue("q", connection=Redis.from_url(url)).enqueue("rq_test_jobs.write_after", str(second), 0.0)
        assert _wait_for(second, 30), f"the next job never ran:\n{log_path.read_text()[-3000:]}"
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=10)
        except subprocess.TimeoutExpired:
            worker.kill()
        redis_process.terminate()
        redis_process.wait(timeout=10)
