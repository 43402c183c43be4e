"""Containers and local processes through the gateway.

Stand-in (said here, as the brief asks): no Docker engine can run on this machine, so the docker endpoints are
tested with the real `docker` SDK (in the ops service) against a local HTTP server on a unix socket that speaks
the subset of the Engine API the SDK uses here: `GET /version`, `GET /containers/json` (with the `label`
filter applied as the Engine applies it), `GET /containers/{id}/json` and `GET /containers/{id}/logs`
(multiplexed stdout/stderr frames). Kubernetes is not exercised (no cluster here)."""

from __future__ import annotations

import json
import os
import socketserver
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from ops_stack import start_stack

PROJECT_LABEL = "com.docker.compose.project"

CONTAINERS = [
    {"Id": "a" * 64, "Names": ["/therascript-sessions-1"], "Image": "therascript/sessions", "State": "running",
     "Status": "Up 5 minutes", "Ports": [{"PrivatePort": 50051, "Type": "tcp"}],
     "Labels": {PROJECT_LABEL: "therascript"}},
    {"Id": "b" * 64, "Names": ["/therascript-redis-1"], "Image": "redis:7.4", "State": "exited",
     "Status": "Exited (0) 1 minute ago",
     "Ports": [{"PrivatePort": 6379, "PublicPort": 6390, "Type": "tcp", "IP": "127.0.0.1"}],
     "Labels": {PROJECT_LABEL: "therascript"}},
    {"Id": "c" * 64, "Names": ["/someone-elses-db"], "Image": "postgres:16", "State": "running",
     "Status": "Up 2 days", "Ports": [], "Labels": {PROJECT_LABEL: "other"}},
]
LOG_LINES = {"a" * 64: [(1, b"2026-12-02T03:00:00Z sessions started\n"), (2, b"2026-12-02T03:00:01Z a warning\n")]}


class FakeEngine(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    requests: list[str] = []

    def log_message(self, *args) -> None:
        pass

    def address_string(self) -> str:   # a unix socket has no host:port
        return "unix"

    def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        url = urlparse(self.path)
        FakeEngine.requests.append(self.path)
        path = url.path.split("/", 2)[-1] if url.path.startswith("/v1.") else url.path.lstrip("/")
        query = parse_qs(url.query)
        if path == "version":
            return self._send(200, json.dumps({"ApiVersion": "1.45", "Version": "27.0.0"}).encode())
        if path == "containers/json":
            filters = json.loads(query.get("filters", ["{}"])[0])
            wanted = [f.split("=", 1) for f in filters.get("label", [])]
            found = [c for c in CONTAINERS if all(c["Labels"].get(k) == v for k, v in wanted)]
            return self._send(200, json.dumps(found).encode())
        parts = path.split("/")
        if len(parts) == 3 and parts[0] == "containers":
            match = [c for c in CONTAINERS if c["Id"] == parts[1] or c["Names"][0] == "/" + parts[1]]
            if not match:
                return self._send(404, json.dumps({"message": f"No such container: {parts[1]}"}).encode())
            container = match[0]
            if parts[2] == "json":
                inspect = {"Id": container["Id"], "Name": container["Names"][0], "Config": {"Tty": False,
                           "Labels": container["Labels"]}, "State": {"Status": container["State"]},
                           "Image": container["Image"]}
                return self._send(200, json.dumps(inspect).encode())
            if parts[2] == "logs":
                frames = b"".join(struct.pack(">BxxxL", kind, len(data)) + data
                                  for kind, data in LOG_LINES.get(container["Id"], []))
                return self._send(200, frames, "application/vnd.docker.multiplexed-stream")
        return self._send(404, json.dumps({"message": "page not found"}).encode())


class UnixHttpServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


@pytest.fixture
def engine(tmp_path):
    socket_path = tmp_path / "docker.sock"
    server = UnixHttpServer(str(socket_path), FakeEngine)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    FakeEngine.requests = []
    yield socket_path
    server.shutdown()
    server.server_close()


def _local_run(root: Path) -> Path:
    """A data folder as `scripts/up` leaves it: logs/<name>.log and run/processes.json."""
    (root / "logs").mkdir(parents=True)
    (root / "run").mkdir()
    (root / "logs" / "sessions.log").write_text("".join(f"line {i}\n" for i in range(500)))
    (root / "logs" / "chat.log").write_text("chat up\n")
    now = int(time.time() * 1000)
    (root / "run" / "processes.json").write_text(json.dumps({"updated_at_ms": now, "processes": {
        "sessions": {"pid": os.getpid(), "started_at_ms": now - 65_000, "state": "running", "restarts": 1,
                     "log": "logs/sessions.log"},
        "chat": {"pid": 2**22 + 12345, "started_at_ms": now - 1000, "state": "running", "restarts": 0,
                 "log": "logs/chat.log"},
    }}))
    return root


def test_docker_status_and_logs_of_project_containers_only(tmp_path, engine):
    for stack in start_stack(tmp_path / "s", docker_host=f"unix://{engine}", process_dir=_local_run(tmp_path / "var")):
        status = stack.api.get("/api/docker/status")
        assert status.status_code == 200, status.text
        body = status.json()
        assert body["available"] is True and body["source"] == "docker"
        assert [c["name"] for c in body["containers"]] == ["therascript-redis-1", "therascript-sessions-1"]
        redis = body["containers"][0]
        assert redis == {"id": "b" * 12, "name": "therascript-redis-1", "image": "redis:7.4", "state": "exited",
                         "status": "Exited (0) 1 minute ago",
                         "ports": [{"PrivatePort": 6379, "PublicPort": 6390, "Type": "tcp", "IP": "127.0.0.1"}]}
        processes = {p["name"]: p for p in body["processes"]}
        assert processes["sessions"]["state"] == "running" and processes["sessions"]["pid"] == os.getpid()
        assert 60 <= processes["sessions"]["uptimeSeconds"] <= 120 and processes["sessions"]["restarts"] == 1
        assert processes["chat"]["state"] == "exited"        # its pid is gone: said so, not "running"

        logs = stack.api.get("/api/docker/logs/therascript-sessions-1")
        assert logs.status_code == 200, logs.text
        assert logs.json() == {"containerName": "therascript-sessions-1",
                               "logs": "2026-12-02T03:00:00Z sessions started\n2026-12-02T03:00:01Z a warning\n"}
        assert any("/logs" in r and "tail=200" in r and "timestamps=1" in r for r in FakeEngine.requests)

        for name in ("someone-elses-db", "nothing-here", "therascript-sessions-1..", "cccccccccccc"):
            before = len([r for r in FakeEngine.requests if "/logs" in r])
            reply = stack.api.get(f"/api/docker/logs/{name}")
            assert reply.status_code == 404, (name, reply.text)
            assert reply.json()["error"] == "NotFoundError"
            assert len([r for r in FakeEngine.requests if "/logs" in r]) == before   # never asked the engine
        assert stack.api.get("/api/docker/logs/..%2F..%2Fetc%2Fpasswd").status_code in (400, 404)

        local = stack.api.get("/api/docker/logs/sessions")
        assert local.status_code == 200
        assert local.json()["logs"].splitlines() == [f"line {i}" for i in range(300, 500)]


def test_no_engine_is_200_with_an_unavailable_state(stack):
    reply = stack.api.get("/api/docker/status")
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["available"] is False and body["containers"] == [] and "not reachable" in body["message"]
    assert stack.api.get("/api/docker/logs/therascript-sessions-1").status_code == 404


def test_gpu_stats_here_is_the_unavailable_shape(stack):
    """No NVIDIA driver on this machine: `available: false`, no GPUs, the summary zeroed, system memory read."""
    reply = stack.api.get("/api/system/gpu-stats")
    assert reply.status_code == 200
    body = reply.json()
    assert body["available"] is False and body["gpus"] == [] and body["executionProvider"] == "cpu"
    assert body["summary"]["gpuCount"] == 0 and body["summary"]["totalMemoryMb"] == 0
    assert body["systemMemory"]["totalMb"] > 0 and 0 <= body["systemMemory"]["percentUsed"] <= 100
    assert stack.api.get("/api/system/gpu-stats").json()["systemMemory"] == body["systemMemory"]   # cached ~1 s


def test_the_processes_scripts_up_starts_are_listed_from_its_status_file(tmp_path):
    """The local supervisor (scripts/therascript_local.py System) writes run/processes.json; ops reads it."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "scripts"))
    import therascript_local

    from therascript_ops.containers import Containers
    from therascript_ops.settings import OpsSettings

    (tmp_path / "logs").mkdir()
    spec = therascript_local.ProcessSpec("sleeper", ("sleep", "30"), "http")
    system = therascript_local.System(root=tmp_path, data_dir=tmp_path, ports={}, env=dict(os.environ),
                                      specs={"sleeper": spec})
    running = system.start("sleeper")
    try:
        containers = Containers(OpsSettings(process_dir=tmp_path, docker_host=f"unix://{tmp_path}/none.sock"))
        listed = {p["name"]: p for p in containers.status()["processes"]}
        assert listed["sleeper"]["pid"] == running.popen.pid and listed["sleeper"]["state"] == "running"
        assert listed["sleeper"]["logFile"] == "logs/sleeper.log"
        assert "starting sleep 30" in containers.logs("sleeper", 10)
    finally:
        running.popen.kill()
        running.popen.wait()
    assert {p["name"]: p for p in containers.status()["processes"]}["sleeper"]["state"] == "exited"
