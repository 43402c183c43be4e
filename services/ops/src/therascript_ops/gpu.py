"""GPU statistics through NVML (`pynvml` of nvidia-ml-py), in the original's shape (§8):

    {available, driverVersion|null, cudaVersion|null,
     gpus: [{id, name, fanSpeedPercent|null, performanceState ('P0'…)|null,
             memory: {totalMb, usedMb, freeMb}, utilization: {gpuPercent|null, memoryPercent|null},
             temperature: {currentCelsius|null}, power: {drawWatts|null, limitWatts|null},
             processes: [{pid, name, memoryUsedMb}], isUnifiedMemory: false}],
     summary: {gpuCount, totalMemoryMb, totalMemoryUsedMb, avgGpuUtilizationPercent|null,
               avgMemoryUtilizationPercent|null, avgTemperatureCelsius|null, totalPowerDrawWatts|null,
               totalPowerLimitWatts|null, isUnifiedMemory},
     executionProvider: 'gpu'|'cpu', systemMemory: {totalMb, usedMb, freeMb, percentUsed}}

Memory in MiB, power in watts, temperature in °C. No NVIDIA driver or device → `available: false`, no GPUs.
A reading is cached for `cache_s` seconds (the UI polls every 2 s)."""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from typing import Any

import psutil

MIB = 1024 * 1024


def _maybe(call: Callable[[], Any]) -> Any:
    """The value, or None where NVML says the device does not support it."""
    import pynvml

    try:
        return call()
    except pynvml.NVMLError:
        return None


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _process_name(pid: int) -> str:
    try:
        return psutil.Process(pid).name()
    except (psutil.Error, OSError):
        return ""


def _gpu(index: int) -> dict[str, Any]:
    import pynvml

    handle = pynvml.nvmlDeviceGetHandleByIndex(index)
    memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
    rates = _maybe(lambda: pynvml.nvmlDeviceGetUtilizationRates(handle))
    draw = _maybe(lambda: pynvml.nvmlDeviceGetPowerUsage(handle))
    limit = _maybe(lambda: pynvml.nvmlDeviceGetEnforcedPowerLimit(handle))
    pstate = _maybe(lambda: pynvml.nvmlDeviceGetPerformanceState(handle))
    processes = []
    getters: list[Callable[[Any], list]] = [pynvml.nvmlDeviceGetComputeRunningProcesses,
                                            pynvml.nvmlDeviceGetGraphicsRunningProcesses]
    for getter in getters:
        for proc in _maybe(functools.partial(getter, handle)) or []:
            used = proc.usedGpuMemory
            processes.append({"pid": proc.pid, "name": _process_name(proc.pid),
                              "memoryUsedMb": round(used / MIB) if isinstance(used, int) and used >= 0 else None})
    return {
        "id": index,
        "name": _text(pynvml.nvmlDeviceGetName(handle)),
        "fanSpeedPercent": _maybe(lambda: pynvml.nvmlDeviceGetFanSpeed(handle)),
        "performanceState": f"P{pstate}" if isinstance(pstate, int) and pstate < 32 else None,
        "memory": {"totalMb": round(memory.total / MIB), "usedMb": round(memory.used / MIB),
                   "freeMb": round(memory.free / MIB)},
        "utilization": {"gpuPercent": rates.gpu if rates else None, "memoryPercent": rates.memory if rates else None},
        "temperature": {"currentCelsius": _maybe(lambda: pynvml.nvmlDeviceGetTemperature(
            handle, pynvml.NVML_TEMPERATURE_GPU))},
        "power": {"drawWatts": round(draw / 1000, 1) if draw is not None else None,
                  "limitWatts": round(limit / 1000, 1) if limit is not None else None},
        "processes": processes,
        "isUnifiedMemory": False,
    }


def _avg(values: list) -> float | None:
    present = [v for v in values if v is not None]
    return round(sum(present) / len(present)) if present else None


def _total(values: list) -> float | None:
    present = [v for v in values if v is not None]
    return round(sum(present), 1) if present and sum(present) else None


def _system_memory() -> dict[str, Any]:
    memory = psutil.virtual_memory()
    return {"totalMb": round(memory.total / MIB), "usedMb": round((memory.total - memory.available) / MIB),
            "freeMb": round(memory.available / MIB), "percentUsed": round(memory.percent, 1)}


def read_gpu_stats() -> dict[str, Any]:
    """One reading (module docstring); never raises for a missing driver or device."""
    import pynvml

    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as error:
        return {"available": False, "driverVersion": None, "cudaVersion": None, "gpus": [],
                "summary": _summary([]), "executionProvider": "cpu", "systemMemory": _system_memory(),
                "message": f"No NVIDIA GPU or driver ({error})."}
    try:
        driver = _text(pynvml.nvmlSystemGetDriverVersion())
        cuda = _maybe(pynvml.nvmlSystemGetCudaDriverVersion_v2) or _maybe(pynvml.nvmlSystemGetCudaDriverVersion)
        gpus = [_gpu(i) for i in range(pynvml.nvmlDeviceGetCount())]
    finally:
        pynvml.nvmlShutdown()
    return {"available": bool(gpus), "driverVersion": driver,
            "cudaVersion": f"{cuda // 1000}.{cuda % 1000 // 10}" if isinstance(cuda, int) else None,
            "gpus": gpus, "summary": _summary(gpus), "executionProvider": "gpu" if gpus else "cpu",
            "systemMemory": _system_memory()}


def _summary(gpus: list[dict]) -> dict[str, Any]:
    return {
        "gpuCount": len(gpus),
        "totalMemoryMb": sum(g["memory"]["totalMb"] for g in gpus),
        "totalMemoryUsedMb": sum(g["memory"]["usedMb"] for g in gpus),
        "avgGpuUtilizationPercent": _avg([g["utilization"]["gpuPercent"] for g in gpus]),
        "avgMemoryUtilizationPercent": _avg([g["utilization"]["memoryPercent"] for g in gpus]),
        "avgTemperatureCelsius": _avg([g["temperature"]["currentCelsius"] for g in gpus]),
        "totalPowerDrawWatts": _total([g["power"]["drawWatts"] for g in gpus]),
        "totalPowerLimitWatts": _total([g["power"]["limitWatts"] for g in gpus]),
        "isUnifiedMemory": False,
    }


class GpuStats:
    """`read()` serves one reading for `cache_s` seconds (concurrent callers share it)."""

    def __init__(self, cache_s: float = 1.0, reader: Callable[[], dict[str, Any]] = read_gpu_stats) -> None:
        self._cache_s = cache_s
        self._reader = reader
        self._lock = threading.Lock()
        self._value: dict[str, Any] | None = None
        self._at = 0.0

    def read(self) -> dict[str, Any]:
        with self._lock:
            if self._value is None or time.monotonic() - self._at > self._cache_s:
                self._value = self._reader()
                self._at = time.monotonic()
            return self._value
