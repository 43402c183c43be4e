"""The local runner's supervisor (scripts/therascript_local.py) on a small real process: a crashed process
is started again with backoff, a process killed on purpose stays down until restart(), and the port check
is not fooled by TIME_WAIT (issue 7 item 10). The process is Python's http.server, not a Therascript
service, so these run in seconds; tests/e2e/test_system_up.py does the same with the real system."""

from __future__ import annotations

import signal
import socket
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import therascript_local  # noqa: E402
from servers import free_port  # noqa: E402

WEB = therascript_local.ProcessSpec(
    "web", (sys.executable, "-m", "http.server", "--bind", therascript_local.HOST, "{port}"), "http",
    health_path="/", stage=0)


@pytest.fixture
def web(tmp_path):
    events: list[str] = []
    system = therascript_local.start_system(ROOT, tmp_path, ports={"web": free_port()}, specs=(WEB,),
                                            timeout_s=30, on_event=events.append, supervise=True)
    yield system, events
    system.stop()


def _wait(condition, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def test_a_crashed_process_is_restarted_and_says_so(web) -> None:
    system, events = web
    first_pid = system.running["web"].popen.pid
    system.kill("web", hold=False)  # a crash: nobody asked for it to stay down
    _wait(lambda: system.running["web"].popen.pid != first_pid and system.healthy("web"), 15,
          f"web was not restarted: {events}")
    _wait(lambda: "web healthy again" in events, 5, f"no 'healthy again' event: {events}")
    assert any(e.startswith("web exited with code -9; restarting in 1 s (restart 1)") for e in events), events
    log = (system.data_dir / "logs" / "web.log").read_text()
    assert "supervisor: web exited with code -9; restarting in 1 s" in log
    assert "supervisor: web restarted" in log
    assert system.restarts == {"web": 1}


def test_a_process_killed_on_purpose_stays_down_until_restart(web) -> None:
    system, events = web
    system.kill("web")
    time.sleep(3 * therascript_local.RESTART_BACKOFF_S[0])
    assert not system.running["web"].alive and system.restarts == {}, events
    system.restart("web", timeout_s=30)
    assert system.healthy("web")
    system.kill("web", hold=False)  # restart() lifted the hold: supervised again
    _wait(lambda: system.restarts.get("web") == 1 and system.healthy("web"), 15, f"not restarted: {events}")


def test_without_supervision_nothing_is_restarted(tmp_path) -> None:
    system = therascript_local.start_system(ROOT, tmp_path, ports={"web": free_port()}, specs=(WEB,), timeout_s=30)
    try:
        system.running["web"].popen.send_signal(signal.SIGKILL)
        time.sleep(2.5)
        assert system.dead() == ["web"]
    finally:
        system.stop()


def test_backoff_doubles_to_the_cap_and_resets_after_a_stable_run() -> None:
    first, cap = therascript_local.RESTART_BACKOFF_S
    delays = [therascript_local.next_backoff(None, 0.5)]
    for _ in range(8):
        delays.append(therascript_local.next_backoff(delays[-1], 0.5))
    assert delays[:3] == [first, first * 2, first * 4] and delays[-1] == cap and max(delays) == cap
    assert therascript_local.next_backoff(cap, therascript_local.STABLE_AFTER_S) == first


def test_a_port_with_connections_in_time_wait_counts_as_free() -> None:
    """Before: the check bound without SO_REUSEADDR, so for ~60 s after a stop (the closed connections in
    TIME_WAIT) starting again failed with "port in use"."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((therascript_local.HOST, 0))
    listener.listen()
    port = listener.getsockname()[1]
    client = socket.create_connection((therascript_local.HOST, port))
    accepted, _ = listener.accept()
    accepted.close()          # the server side closes first: its end (local port `port`) goes to TIME_WAIT
    client.recv(1)
    client.close()
    listener.close()
    with socket.socket() as plain, pytest.raises(OSError):
        plain.bind((therascript_local.HOST, port))   # the TIME_WAIT is there (what the old check tripped on)
    therascript_local._check_ports_free({"web": port})   # no StartError
    with socket.socket() as busy:
        busy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        busy.bind((therascript_local.HOST, port))
        busy.listen()
        with pytest.raises(therascript_local.StartError, match=f"port {port}"):
            therascript_local._check_ports_free({"web": port})
