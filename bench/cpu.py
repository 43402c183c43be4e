"""CPU time of processes and threads, for the benches that charge a hop the CPU it spends (bench/gateway_hop.py,
bench/chat_sse.py): it moves far less than wall-clock figures when the shared machine is busy. Linux only: reads
/proc/<pid>/stat and /proc/<pid>/task/<tid>/stat."""

from __future__ import annotations

import os
from pathlib import Path


def _stat_cpu_s(stat: Path) -> float:
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime, in clock ticks


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) the process has used so far, all its threads together."""
    return _stat_cpu_s(Path(f"/proc/{pid}/stat"))


def thread_cpu_s(pid: int, tid: int) -> float:
    """CPU seconds (user + system) thread `tid` of process `pid` has used so far."""
    return _stat_cpu_s(Path(f"/proc/{pid}/task/{tid}/stat"))
