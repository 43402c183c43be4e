"""Resident memory of other processes, for the benches that measure a service's RSS while it works
(bench/upload_memory.py, bench/export_import.py). Linux only: reads /proc/<pid>/status."""

from __future__ import annotations

import threading
from pathlib import Path


def rss_kb(pid: int) -> int:
    """The process's resident set size in kB (VmRSS), 0 when /proc does not say."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class PeakSampler:
    """Samples the RSS (kB) of the given pids every 20 ms on a thread; `peaks` holds the maxima after the
    `with` block."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.peaks = {name: rss_kb(pid) for name, pid in pids.items()}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            for name, pid in self.pids.items():
                self.peaks[name] = max(self.peaks[name], rss_kb(pid))

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
