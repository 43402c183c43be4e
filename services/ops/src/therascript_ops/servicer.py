"""OpsService (proto/therascript/ops/v1/ops.proto): thin over the domain modules — backup (export/import/
reset/reindex over the owners' Admin RPCs), containers, gpu, usage, health."""

from __future__ import annotations

import json
from collections.abc import Iterator

from therascript.ops.v1 import ops_pb2 as pb
from therascript.ops.v1 import ops_pb2_grpc

from .backup import Backups, Outcome
from .containers import Containers
from .gpu import GpuStats
from .health import HealthChecker
from .usage import Usage

_STATE = {True: pb.COMPONENT_STATE_CONNECTED, False: pb.COMPONENT_STATE_DISCONNECTED}


def _json(document) -> pb.JsonDocument:
    return pb.JsonDocument(json=json.dumps(document))


def _result(outcome: Outcome) -> pb.AdminResult:
    return pb.AdminResult(message=outcome.message, errors=outcome.errors, counts=outcome.counts,
                          transcripts_indexed=outcome.transcripts_indexed, messages_indexed=outcome.messages_indexed,
                          search_configured=outcome.search_configured)


class OpsServicer(ops_pb2_grpc.OpsServiceServicer):
    def __init__(self, backups: Backups, containers: Containers, gpu: GpuStats, usage: Usage,
                 health: HealthChecker) -> None:
        self._backups = backups
        self._containers = containers
        self._gpu = gpu
        self._usage = usage
        self._health = health

    def GetContainerStatus(self, request, context):
        return _json(self._containers.status())

    def GetContainerLogs(self, request, context):
        """NOT_FOUND for a name that is not one of this project's containers, pods or local processes."""
        logs = self._containers.logs(request.container_name, request.tail_lines)
        return pb.ContainerLogs(container_name=request.container_name, logs=logs)

    def GetGpuStats(self, request, context):
        return _json(self._gpu.read())

    def ReindexSearch(self, request, context):
        return _result(self._backups.reindex())

    def ResetAllData(self, request, context):
        return _result(self._backups.reset())

    def ExportData(self, request, context) -> Iterator[pb.DataChunk]:
        for data in self._backups.export():
            yield pb.DataChunk(data=data)

    def ImportData(self, request_iterator, context):
        return _result(self._backups.import_archive(chunk.data for chunk in request_iterator))

    def GetUsageHistory(self, request, context):
        return _json(self._usage.history(request.weeks))

    def GetUsageStats(self, request, context):
        return _json(self._usage.stats())

    def GetUsageLogs(self, request, context):
        def opt(name: str):
            return getattr(request, name) if request.HasField(name) else None

        return _json(self._usage.logs(opt("start_ms"), opt("end_ms"), opt("type"), opt("model"), opt("source"),
                                      request.limit, request.offset))

    def GetReadiness(self, request, context):
        checks = self._health.check()
        return pb.Readiness(
            ready=all(c.ok for c in checks if c.required),
            services={c.name: _STATE[c.ok] for c in checks},
            components=[pb.Component(name=c.name, state=_STATE[c.ok], detail=c.detail, required=c.required)
                        for c in checks])
