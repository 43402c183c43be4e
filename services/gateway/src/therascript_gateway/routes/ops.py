"""Ops endpoints: containers, GPU stats, admin, usage (ops issue). The ops service answers
UNIMPLEMENTED for what is not built yet → 501."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import grpc
from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import StreamingResponse

from therascript.ops.v1 import ops_pb2 as pb

from ..clients import ServiceClients, get_clients
from ..params import INT32_MAX, EpochMs, Offset

router = APIRouter(tags=["ops"])


@router.get("/docker/status", summary="Status of the project's containers")
async def docker_status(clients: ServiceClients = Depends(get_clients)) -> dict:
    return json.loads((await clients.ops.GetContainerStatus(pb.Empty())).json)


@router.get("/docker/logs/{container_name}", summary="Recent logs of one project container")
async def docker_logs(
    container_name: str = Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"),
    clients: ServiceClients = Depends(get_clients),
) -> dict:
    reply = await clients.ops.GetContainerLogs(pb.ContainerLogsRequest(container_name=container_name, tail_lines=200))
    return {"logs": reply.logs, "containerName": reply.container_name}


@router.get("/system/gpu-stats", summary="GPU statistics")
async def gpu_stats(clients: ServiceClients = Depends(get_clients)) -> dict:
    return json.loads((await clients.ops.GetGpuStats(pb.Empty())).json)


@router.post("/admin/reindex-elasticsearch", summary="Rebuild the search indexes from the databases")
async def reindex(clients: ServiceClients = Depends(get_clients)) -> dict:
    reply = await clients.ops.ReindexSearch(pb.Empty())
    return {"message": reply.message, "transcriptsIndexed": reply.transcripts_indexed,
            "messagesIndexed": reply.messages_indexed, "errors": list(reply.errors)}


@router.post("/admin/reset-all-data", summary="Reset all application data (destructive)")
async def reset_all(clients: ServiceClients = Depends(get_clients)) -> dict:
    reply = await clients.ops.ResetAllData(pb.Empty())
    return {"message": reply.message, "errors": list(reply.errors)}


@router.get("/admin/export-data", summary="Export all data as a tar archive")
async def export_data(clients: ServiceClients = Depends(get_clients)) -> StreamingResponse:
    """Streams OpsService.ExportData as `application/x-tar`. The first chunk is read before answering, so an
    error (UNIMPLEMENTED until the ops issue → 501) comes back as a status, not a broken download."""
    call = clients.ops.ExportData(pb.Empty(), timeout=3600)
    first = await call.read()

    async def body():
        if first is not grpc.aio.EOF:
            yield first.data
        async for chunk in call:
            yield chunk.data

    filename = f"therascript-backup-{datetime.now(UTC).date().isoformat()}.tar"
    return StreamingResponse(body(), media_type="application/x-tar",
                             headers={"Content-Disposition": f'attachment; filename="{filename}"'})


@router.post("/admin/import-data", summary="Import data from a tar archive")
async def import_data(clients: ServiceClients = Depends(get_clients)) -> dict:
    """OpsService.ImportData (a client stream of the archive; the ops issue builds the multipart side).
    Until then the RPC answers UNIMPLEMENTED → 501."""
    call = clients.ops.ImportData(timeout=3600)
    await call.done_writing()
    reply = await call
    return {"message": reply.message}


@router.get("/usage/history", summary="Usage by week")
async def usage_history(weeks: int = Query(12, ge=1, le=52), clients: ServiceClients = Depends(get_clients)) -> dict:
    return json.loads((await clients.ops.GetUsageHistory(pb.UsageHistoryRequest(weeks=weeks))).json)


@router.get("/usage/stats", summary="Usage totals")
async def usage_stats(clients: ServiceClients = Depends(get_clients)) -> dict:
    return json.loads((await clients.ops.GetUsageStats(pb.Empty())).json)


@router.get("/usage/logs", summary="Usage log, paged")
async def usage_logs(
    start: EpochMs = None,
    end: EpochMs = None,
    type: str | None = Query(None, pattern="^(llm|whisper)$"),
    model: str | None = Query(None, max_length=200),
    source: str | None = Query(None, max_length=100),
    limit: int = Query(50, ge=1, le=INT32_MAX),
    offset: Offset = 0,
    clients: ServiceClients = Depends(get_clients),
) -> dict:
    request = pb.UsageLogsRequest(start_ms=start, end_ms=end, type=type, model=model, source=source,
                                  limit=min(limit, 200), offset=max(offset, 0))
    return json.loads((await clients.ops.GetUsageLogs(request)).json)
