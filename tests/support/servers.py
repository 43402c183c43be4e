"""Real local servers for tests: Redis and PostgreSQL, started per test session on free ports.

Fixtures (session scope):
- `redis_url`: a fresh `redis-server` (Debian package) on a free loopback port, no persistence
  unless a test asks for its own; torn down at the end.
- `postgres_url`: a throw-away PostgreSQL cluster (initdb + pg_ctl from the Debian package, run as
  the `postgres` user when the tests run as root) with an empty database; a SQLAlchemy URL
  `postgresql+psycopg://...`. Tests that need a clean database create their own schema or database.
- `elasticsearch_url`: a throw-away Elasticsearch (scripts/elasticsearch_local.py: the Maven Central distribution that
  scripts/bootstrap installs, run as the `elasticsearch` system user when root) on a free port, `http://…`.
  Tests use their own index names. `LocalElasticsearch` starts one a test can stop and start again.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

PG_BIN = Path("/usr/lib/postgresql/15/bin")
ROOT = Path(__file__).resolve().parents[2]
ES_START_TIMEOUT_S = 150.0


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout_s: float = 20.0) -> None:
    """Blocks until 127.0.0.1:port accepts connections; TimeoutError after timeout_s seconds."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listening on port {port} after {timeout_s} s")


def start_redis(directory: Path, port: int | None = None, appendonly: bool = False) -> tuple[subprocess.Popen, str]:
    """Starts redis-server in `directory`; returns the process and its URL."""
    port = port or free_port()
    directory.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(directory),
         "--save", "", "--appendonly", "yes" if appendonly else "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    wait_for_port(port)
    return process, f"redis://127.0.0.1:{port}/0"


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    process, url = start_redis(tmp_path_factory.mktemp("redis"))
    yield url
    process.terminate()
    process.wait(timeout=10)


def _as_postgres(args: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """URL of an empty database `therascript_test` in a private PostgreSQL cluster."""
    if os.environ.get("TEST_POSTGRES_URL"):
        yield os.environ["TEST_POSTGRES_URL"]
        return
    # Not under pytest's tmp folder: that one is private to this user, and the server runs as `postgres`.
    data = Path(tempfile.mkdtemp(prefix="therascript-pg-"))
    if os.geteuid() == 0:
        shutil.chown(data, "postgres", "postgres")
    port = free_port()
    subprocess.run(_as_postgres([str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"]),
                   check=True, capture_output=True)
    subprocess.run(_as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(data), "-w", "-l", str(data / "log"),
                                 "-o", f"-p {port} -k {data} -c listen_addresses=127.0.0.1", "start"]),
                   check=True, capture_output=True)
    subprocess.run(_as_postgres([str(PG_BIN / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres",
                                 "therascript_test"]), check=True, capture_output=True)
    yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/therascript_test"
    subprocess.run(_as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"]), capture_output=True)
    shutil.rmtree(data, ignore_errors=True)


class LocalElasticsearch:
    """One Elasticsearch server in `directory` on `port` (free if None), started with scripts/elasticsearch_local.py.
    `start()` waits until cluster health is green/yellow (TimeoutError with the log's tail otherwise); `stop()`
    sends SIGTERM to its process group and waits; a stopped one starts again on the same port and data."""

    def __init__(self, directory: Path, port: int | None = None) -> None:
        self.directory = directory
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = directory.parent / f"{directory.name}.log"
        self.process: subprocess.Popen | None = None

    def healthy(self) -> bool:
        import json

        try:
            with urllib.request.urlopen(f"{self.url}/_cluster/health", timeout=1.0) as reply:
                return json.load(reply).get("status") in ("green", "yellow")
        except (urllib.error.URLError, OSError, ValueError):
            return False

    def start(self, timeout_s: float = ES_START_TIMEOUT_S) -> None:
        self.directory.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, str(ROOT / "scripts" / "elasticsearch_local.py"), "run", "--data-dir", str(self.directory),
                 "--http-port", str(self.port)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            )
        deadline = time.monotonic() + timeout_s
        while not self.healthy():
            if self.process.poll() is not None or time.monotonic() > deadline:
                tail = self.log_path.read_text(errors="replace")[-3000:]
                self.stop()
                raise TimeoutError(f"Elasticsearch on {self.port} did not become healthy:\n{tail}")
            time.sleep(0.5)

    def stop(self) -> None:
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.process = None


@pytest.fixture(scope="session")
def elasticsearch_url() -> Iterator[str]:
    """URL of a throw-away Elasticsearch for this test session (TEST_ELASTICSEARCH_URL to use a running one)."""
    if os.environ.get("TEST_ELASTICSEARCH_URL"):
        yield os.environ["TEST_ELASTICSEARCH_URL"]
        return
    directory = Path(tempfile.mkdtemp(prefix="therascript-es-test-"))
    directory.chmod(0o755)  # the server's own user (when root) must reach its folder
    server = LocalElasticsearch(directory / "es")
    server.start()
    yield server.url
    server.stop()
    shutil.rmtree(directory, ignore_errors=True)
