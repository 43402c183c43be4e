"""Readiness of the whole system: every owning service's grpc.health.v1, the databases (through their
owners' Admin.Describe, which reads them), Redis (PING), the search server (cluster health green/yellow), the
LLM (llm-manager answers, and its runtime does when a model is loaded) and the transcriber (the worker's
readiness report, relayed by sessions). All checks run in parallel, each bounded by `probe_timeout_s`."""

from __future__ import annotations

import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import grpc
import httpx
from redis import Redis
from redis.exceptions import RedisError

from therascript.common.v1 import admin_pb2
from therascript.llm.v1 import llm_pb2, llm_pb2_grpc
from therascript.sessions.v1 import sessions_pb2, sessions_pb2_grpc

from .owners import Owners
from .settings import OpsSettings


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str = ""
    required: bool = True


class HealthChecker:
    """`check()` → the list of component checks; `ready` = every required one is ok."""

    def __init__(self, owners: Owners, settings: OpsSettings) -> None:
        self._owners = owners
        self._settings = settings
        self._redis = Redis.from_url(settings.redis_url, socket_timeout=settings.probe_timeout_s,
                                     socket_connect_timeout=settings.probe_timeout_s)
        self._pool = ThreadPoolExecutor(max_workers=12, thread_name_prefix="probe")
        sessions = owners.by_name["sessions"].channel
        self._sessions = sessions_pb2_grpc.SessionsServiceStub(sessions)
        self._llm = llm_pb2_grpc.LlmManagerServiceStub(owners.by_name["llm-manager"].channel)

    def check(self) -> list[Check]:
        probes: list[Callable[[], Check]] = [self._database, self._redis_check, self._search, self._llm_check,
                                             self._whisper]
        probes += [functools.partial(self._service, owner.name) for owner in self._owners]
        return [future.result() for future in [self._pool.submit(probe) for probe in probes]]

    # --- probes ---------------------------------------------------------------------------------------
    def _service(self, name: str) -> Check:
        ok, why = self._owners.by_name[name].serving(self._settings.probe_timeout_s)
        return Check(name, ok, why)

    def _database(self) -> Check:
        """Each owner that implements Admin reads its database for Describe (row counts)."""
        problems = []
        for name in ("sessions", "chat"):
            try:
                self._owners.by_name[name].admin.Describe(admin_pb2.AdminEmpty(), timeout=self._settings.probe_timeout_s)
            except grpc.RpcError as error:
                problems.append(f"{name}: {error.code().name} {error.details() or ''}".strip())
        return Check("database", not problems, "; ".join(problems))

    def _redis_check(self) -> Check:
        try:
            self._redis.ping()
        except RedisError as error:
            return Check("redis", False, f"Redis: {error.__class__.__name__}")
        return Check("redis", True)

    def _search(self) -> Check:
        url = self._settings.elasticsearch_url
        if not url:
            return Check("elasticsearch", False, "search is not configured (OPS_ELASTICSEARCH_URL unset)",
                         required=False)
        try:
            reply = httpx.get(f"{url.rstrip('/')}/_cluster/health", timeout=self._settings.probe_timeout_s)
            status = reply.json().get("status") if reply.status_code == 200 else None
        except (httpx.HTTPError, ValueError) as error:
            return Check("elasticsearch", False, f"search server: {error.__class__.__name__}")
        return Check("elasticsearch", status in ("green", "yellow"), "" if status in ("green", "yellow")
                     else f"search server cluster health is {status}")

    def _llm_check(self) -> Check:
        try:
            status = self._llm.GetStatus(llm_pb2.GetStatusRequest(), timeout=self._settings.probe_timeout_s)
        except grpc.RpcError as error:
            return Check("llm", False, f"llm-manager: {error.code().name}")
        if status.loaded and not status.runtime_healthy:
            return Check("llm", False, "the LLM runtime is not answering")
        if status.HasField("error") and not status.loaded:
            return Check("llm", False, f"the model could not be loaded: {status.error}")
        return Check("llm", True)   # answering; a model that is not loaded yet loads on first use

    def _whisper(self) -> Check:
        """The transcriber: a worker registered, its models loaded (sessions relays its readiness report)."""
        try:
            report = self._sessions.CheckDiarizationReadiness(sessions_pb2.CheckDiarizationReadinessRequest(),
                                                              timeout=self._settings.probe_timeout_s)
        except grpc.RpcError as error:
            return Check("whisper", False, f"sessions: {error.code().name}")
        if not report.ready:
            return Check("whisper", False, report.error or "the transcription models are not loaded yet")
        return Check("whisper", True)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._redis.close()
