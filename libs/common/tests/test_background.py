"""Periodic background passes keep running after a failing pass, and stop when asked."""

from __future__ import annotations

import threading
import time

from therascript_common.background import Periodic


def test_a_failing_pass_does_not_end_the_loop_and_stop_ends_it():
    calls: list[int] = []
    third = threading.Event()

    def task() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("one bad pass")
        if len(calls) >= 3:
            third.set()

    loop = Periodic("test", 0.01, task).start()
    assert third.wait(2), "the loop died after its first (failing) pass"
    loop.stop()
    time.sleep(0.05)
    settled = len(calls)
    time.sleep(0.1)
    assert len(calls) == settled
