"""The whole system, started for real as `scripts/therascript_local.py up` starts it, for end-to-end tests.

Fixtures:
- `system` (session scope): every process of the process table on free loopback ports, data in a temporary
  folder (logs under `<data_dir>/logs/`), authentication ON with a random API token. It exposes `base_url`
  (".../api"), `token`, `data_dir`, `kill(name)` (SIGKILL to the process group; it stays down), `crash(name)`
  (SIGKILL that the supervisor recovers from) and `restart(name)` (start again and wait until healthy), and stops
  everything at the end of the session. It is supervised, as `scripts/up` runs it.
- `client`: an httpx.Client on `base_url` with the bearer token, 30 s timeout.

It runs next to a developer's running system (which uses the default ports and var/) without touching it.
"""

from __future__ import annotations

import contextlib
import secrets
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

import therascript_local  # noqa: E402
from servers import free_port  # noqa: E402  (tests/support, on sys.path via the root conftest.py)

START_TIMEOUT_S = 180.0
UPLOAD_LIMIT_BYTES = 20 * 1024 * 1024
# Smaller limits and faster failure detection than production, so the e2e tests stay short.
E2E_ENV = {
    "THERASCRIPT_UPLOAD_MAX_BYTES": str(UPLOAD_LIMIT_BYTES),
    "SESSIONS_UPLOAD_MAX_BYTES": str(UPLOAD_LIMIT_BYTES),
    "SESSIONS_HEARTBEAT_TIMEOUT_S": "6",
    "SESSIONS_RECONCILE_INTERVAL_S": "1",
}
CLIENT_TIMEOUT_S = 30.0


@dataclass
class E2ESystem:
    """What e2e tests see of the running system."""

    system: therascript_local.System
    token: str

    @property
    def base_url(self) -> str:
        return self.system.base_url

    @property
    def data_dir(self) -> Path:
        return self.system.data_dir

    def kill(self, name: str) -> None:
        """kill -9 the process `name` (and its children, e.g. an RQ work-horse)."""
        self.system.kill(name)

    def crash(self, name: str) -> None:
        """kill -9 the process `name` without holding it down: the supervisor must start it again."""
        self.system.kill(name, hold=False)

    def restart(self, name: str, timeout_s: float = START_TIMEOUT_S) -> None:
        """Starts `name` again (stopping it first if alive) and waits until it is healthy."""
        self.system.restart(name, timeout_s)

    def log(self, name: str) -> str:
        """The log of process `name` so far (for assertion messages)."""
        return (self.data_dir / "logs" / f"{name}.log").read_text(errors="replace")


@contextlib.contextmanager
def started_system(folder: Path, env: dict[str, str], **start_options: object) -> Iterator[E2ESystem]:
    """A whole system (`therascript_local.start_system`) on free ports in `folder`, authentication on with a fresh
    token, `env` on top; stopped on exit. A system that does not start fails the test with its processes' logs."""
    token = secrets.token_urlsafe(24)
    ports = {name: free_port() for name in therascript_local.DEFAULT_PORTS}
    start_options.setdefault("timeout_s", START_TIMEOUT_S)
    try:
        running = therascript_local.start_system(
            ROOT, folder, ports=ports, env_overrides={"THERASCRIPT_API_TOKEN": token, **env}, **start_options)
    except therascript_local.StartError as error:
        pytest.fail(f"the system did not start:\n{error}", pytrace=False)
    try:
        yield E2ESystem(running, token)
    finally:
        running.stop()


@pytest.fixture(scope="session")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[E2ESystem]:
    with started_system(tmp_path_factory.mktemp("system"), E2E_ENV, supervise=True) as running:
        yield running


@pytest.fixture
def client(system: E2ESystem) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=system.base_url, headers={"Authorization": f"Bearer {system.token}"},
                      timeout=CLIENT_TIMEOUT_S) as http:
        yield http
