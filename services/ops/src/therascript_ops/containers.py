"""What runs this system, and its logs: the project's Docker containers (the `docker` SDK, filtered by the
compose project label), its Kubernetes pods (the official `kubernetes` client, when an in-cluster config
exists), and the local processes of `scripts/up` (its `run/processes.json` and `logs/<name>.log` in the data
folder). Logs are served only for a name in those lists (anything else is NotFound), so no name reaches the
engine, the cluster or the file system unchecked.

Status shape (original §1.8, extended): `{available, source: "docker"|"kubernetes"|"none", message,
containers: [{id (12 chars), name, image, state, status, ports: [{PrivatePort, PublicPort?, Type, IP?}]}],
processes: [{name, pid, state, uptimeSeconds, restarts, logFile}]}`. An unreachable engine is
`available: false` with a message, never an error.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import deque
from pathlib import Path
from typing import Any

from therascript_common.errors import NotFound

from .settings import OpsSettings

log = logging.getLogger(__name__)

COMPOSE_PROJECT_LABEL = "com.docker.compose.project"
K8S_PART_OF_LABEL = "app.kubernetes.io/part-of"
K8S_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")
K8S_NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def _in_cluster() -> bool:
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST")) and K8S_TOKEN.exists()


class Containers:
    def __init__(self, settings: OpsSettings) -> None:
        self._settings = settings

    # --- status ---------------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """The status document (module docstring)."""
        body = self._pods() if _in_cluster() else self._docker()
        body["processes"] = self._processes()
        return body

    def _docker_client(self):
        import docker

        if self._settings.docker_host:
            return docker.DockerClient(base_url=self._settings.docker_host, timeout=self._settings.docker_timeout_s)
        return docker.from_env(timeout=self._settings.docker_timeout_s)

    def _project_containers(self, client) -> list:
        """The engine filters by the compose project label; the labels are checked again here."""
        project = self._settings.compose_project
        listed = client.containers.list(all=True, sparse=True, filters={"label": f"{COMPOSE_PROJECT_LABEL}={project}"})
        return [c for c in listed if (c.attrs.get("Labels") or {}).get(COMPOSE_PROJECT_LABEL) == project]

    def _docker(self) -> dict[str, Any]:
        from docker.errors import DockerException

        try:
            client = self._docker_client()
            try:
                containers = [_container(c.attrs) for c in self._project_containers(client)]
            finally:
                client.close()
        except (DockerException, OSError) as error:
            return {"available": False, "source": "none", "containers": [],
                    "message": f"The Docker engine is not reachable ({error.__class__.__name__})."}
        containers.sort(key=lambda c: c["name"])
        return {"available": True, "source": "docker", "containers": containers,
                "message": f"{len(containers)} container(s) of compose project {self._settings.compose_project!r}."}

    def _k8s_api(self):
        from kubernetes import client, config

        config.load_incluster_config()
        return client.CoreV1Api()

    def _namespace(self) -> str:
        if self._settings.kubernetes_namespace:
            return self._settings.kubernetes_namespace
        try:
            return K8S_NAMESPACE_FILE.read_text().strip()
        except OSError:
            return "default"

    def _pod_list(self) -> list:
        api = self._k8s_api()
        selector = f"{K8S_PART_OF_LABEL}={self._settings.compose_project}"
        return api.list_namespaced_pod(self._namespace(), label_selector=selector,
                                       _request_timeout=self._settings.docker_timeout_s).items

    def _pods(self) -> dict[str, Any]:
        from kubernetes.client.exceptions import ApiException
        from kubernetes.config import ConfigException

        try:
            pods = self._pod_list()
        except (ApiException, ConfigException, OSError) as error:
            return {"available": False, "source": "kubernetes", "containers": [],
                    "message": f"The Kubernetes API is not reachable ({error.__class__.__name__})."}
        containers = [_pod(p) for p in pods]
        containers.sort(key=lambda c: c["name"])
        return {"available": True, "source": "kubernetes", "containers": containers,
                "message": f"{len(containers)} pod(s) in namespace {self._namespace()!r}."}

    # --- logs -----------------------------------------------------------------------------------------
    def logs(self, name: str, tail_lines: int) -> str:
        """The last `tail_lines` lines (stdout and stderr, with timestamps) of one of this project's containers,
        pods or local processes. NotFound for any other name."""
        tail = max(1, min(tail_lines or self._settings.log_tail_lines, 5000))
        process_log = self._process_log(name)
        if process_log is not None:
            return _tail_file(process_log, tail)
        if _in_cluster():
            from kubernetes.client.exceptions import ApiException
            from kubernetes.config import ConfigException

            try:
                if name in {p.metadata.name for p in self._pod_list()}:
                    return self._k8s_api().read_namespaced_pod_log(name, self._namespace(), tail_lines=tail,
                                                                   timestamps=True)
            except (ApiException, ConfigException, OSError) as error:
                raise NotFound(f"Logs of {name!r} are not available ({error.__class__.__name__}).") from None
            raise NotFound(f"No container or process named {name!r} belongs to this project.")
        from docker.errors import DockerException

        try:
            client = self._docker_client()
            try:
                match = [c for c in self._project_containers(client) if _container(c.attrs)["name"] == name]
                if match:
                    container = client.containers.get(match[0].id)
                    raw = container.logs(stdout=True, stderr=True, timestamps=True, tail=tail)
                    return raw.decode("utf-8", errors="replace")
            finally:
                client.close()
        except (DockerException, OSError):
            pass
        raise NotFound(f"No container or process named {name!r} belongs to this project.")

    # --- local processes (scripts/up) -----------------------------------------------------------------
    def _process_table(self) -> dict[str, dict]:
        root = self._settings.process_dir
        if root is None:
            return {}
        table: dict[str, dict] = {}
        logs = root / "logs"
        if logs.is_dir():
            for path in sorted(logs.glob("*.log")):
                table[path.stem] = {"pid": None, "started_at_ms": None, "state": "unknown", "restarts": 0,
                                    "log": f"logs/{path.name}"}
        try:
            status = json.loads((root / "run" / "processes.json").read_text())
            for name, entry in (status.get("processes") or {}).items():
                if isinstance(entry, dict):
                    table[str(name)] = {**table.get(str(name), {}), **entry}
        except (OSError, ValueError, AttributeError):
            pass
        return table

    def _processes(self) -> list[dict[str, Any]]:
        now_ms = time.time() * 1000
        result = []
        for name, entry in sorted(self._process_table().items()):
            pid = entry.get("pid")
            state = entry.get("state", "unknown")
            if isinstance(pid, int) and state == "running" and not _alive(pid):
                state = "exited"
            started = entry.get("started_at_ms")
            result.append({"name": name, "pid": pid, "state": state,
                           "uptimeSeconds": round((now_ms - started) / 1000) if isinstance(started, int | float)
                           and state == "running" else None,
                           "restarts": entry.get("restarts", 0), "logFile": entry.get("log")})
        return result

    def _process_log(self, name: str) -> Path | None:
        root = self._settings.process_dir
        if root is None or name not in self._process_table():
            return None
        return root / "logs" / f"{name}.log"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _tail_file(path: Path, lines: int) -> str:
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - lines * 400))   # about 400 bytes a line; enough for a tail
            kept = deque(handle.read().splitlines(), maxlen=lines)
    except OSError:
        return ""
    return "\n".join(line.decode("utf-8", errors="replace") for line in kept)


def _container(attrs: dict) -> dict[str, Any]:
    names = attrs.get("Names") or [attrs.get("Name") or ""]
    ports = [{k: p[k] for k in ("PrivatePort", "PublicPort", "Type", "IP") if k in p} for p in attrs.get("Ports") or []]
    state = attrs.get("State")
    if isinstance(state, dict):   # a full inspect instead of a list entry
        state = state.get("Status")
    return {"id": (attrs.get("Id") or "N/A")[:12], "name": names[0].lstrip("/"), "image": attrs.get("Image", ""),
            "state": state or "unknown", "status": attrs.get("Status", ""), "ports": ports}


def _pod(pod) -> dict[str, Any]:
    statuses = pod.status.container_statuses or []
    images = ", ".join(s.image for s in statuses) or ", ".join(c.image for c in pod.spec.containers)
    ready = sum(1 for s in statuses if s.ready)
    ports = [{"PrivatePort": p.container_port, "Type": (p.protocol or "TCP").lower()}
             for c in pod.spec.containers for p in (c.ports or [])]
    return {"id": (pod.metadata.uid or "N/A")[:12], "name": pod.metadata.name, "image": images,
            "state": (pod.status.phase or "unknown").lower(),
            "status": f"{ready}/{len(statuses)} ready, {sum(s.restart_count for s in statuses)} restarts",
            "ports": ports}
