"""Real analysis servers for tests of this and other services (gateway, e2e helpers).

    analysis = start_analysis(tmp_path, redis_url, sessions_target, llm_target, map_max_tokens=24)
    ... analysis.target, analysis.app.jobs ...
    analysis.kill_worker(); analysis.start_worker()
    analysis.stop()

The gRPC service runs in this process on a free port; the worker runs as its deployable process
(`therascript-analysis-worker`), so a test can kill -9 it. Each instance gets its own RQ queue name, so
instances with different settings never take each other's jobs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from redis import Redis
from rq import Worker

from therascript.analysis.v1 import analysis_pb2_grpc
from therascript_common.grpc_server import build_server

from .server import AnalysisApp, build
from .settings import AnalysisSettings

WORKER_SCRIPT = Path(sys.executable).parent / "therascript-analysis-worker"


@dataclass
class RunningAnalysis:
    """A started analysis service (`target`, `app`) and its worker process (`worker`)."""

    target: str
    app: AnalysisApp
    server: grpc.Server
    env: dict[str, str]
    log_path: Path
    worker: subprocess.Popen | None = None
    _channel: grpc.Channel | None = field(default=None, repr=False)

    @property
    def stub(self) -> analysis_pb2_grpc.AnalysisServiceStub:
        if self._channel is None:
            self._channel = grpc.insecure_channel(self.target)
        return analysis_pb2_grpc.AnalysisServiceStub(self._channel)

    def start_worker(self, timeout_s: float = 60.0) -> subprocess.Popen:
        """Starts the worker process and waits until it is registered on its RQ queue."""
        log = self.log_path.open("ab")
        self.worker = subprocess.Popen([str(WORKER_SCRIPT)], env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                       start_new_session=True)
        log.close()
        redis = Redis.from_url(self.app.settings.redis_url)
        deadline = time.monotonic() + timeout_s
        try:
            while time.monotonic() < deadline:
                if self.worker.poll() is not None:
                    raise RuntimeError(f"the analysis worker exited with {self.worker.returncode}:\n{self.worker_log()}")
                workers = Worker.all(connection=redis, queue=self.app.jobs.queue)
                if any(w.pid == self.worker.pid for w in workers):
                    return self.worker
                time.sleep(0.1)
        finally:
            redis.close()
        raise TimeoutError(f"the analysis worker did not register within {timeout_s} s:\n{self.worker_log()}")

    def kill_worker(self) -> None:
        """kill -9 the worker (and anything in its process group)."""
        if self.worker is not None and self.worker.poll() is None:
            os.killpg(self.worker.pid, signal.SIGKILL)
            self.worker.wait(timeout=10)
        self.worker = None

    def stop_worker(self) -> None:
        if self.worker is not None and self.worker.poll() is None:
            self.worker.send_signal(signal.SIGTERM)
            try:
                self.worker.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill_worker()
        self.worker = None

    def worker_log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path.exists() else ""

    def stop(self) -> None:
        self.stop_worker()
        if self._channel is not None:
            self._channel.close()
        self.server.stop(0).wait()
        self.app.stop()


def start_analysis(data_dir: Path, redis_url: str, sessions_target: str, llm_target: str, with_worker: bool = True,
                   **overrides: Any) -> RunningAnalysis:
    """An analysis gRPC server on a free loopback port (database in `data_dir`, reconciler running) and, with
    `with_worker`, its worker process. `overrides` are AnalysisSettings fields, given to both (e.g.
    map_max_tokens=24, heartbeat_timeout_s=3)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    values: dict[str, Any] = {"data_dir": data_dir, "redis_url": redis_url, "sessions_target": sessions_target,
                              "llm_target": llm_target, "queue_name": f"analysis-{uuid.uuid4().hex[:8]}",
                              **overrides}
    settings = AnalysisSettings(grpc_port=0, **values)
    app = build(settings)
    app.start_background()
    server, _, port = build_server(app.registrations(), "127.0.0.1:0", workers=16)
    server.start()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    for name, value in values.items():
        env[f"ANALYSIS_{name.upper()}"] = str(value)
    running = RunningAnalysis(f"127.0.0.1:{port}", app, server, env, data_dir / "worker.log")
    if with_worker:
        try:
            running.start_worker()
        except Exception:
            running.stop()
            raise
    return running
