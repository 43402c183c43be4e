"""Ops endpoints: containers, GPU stats, admin (export/import/reset/reindex), usage — all answered by the
ops service, which orchestrates the owners' Admin RPCs (services/ops)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import grpc
from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from streaming_form_data import StreamingFormDataParser
from streaming_form_data.targets import BaseTarget

from therascript.ops.v1 import ops_pb2 as pb

from ..clients import ServiceClients, get_clients
from ..errors import ApiError, grpc_error_response
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


def _admin_status(reply: pb.AdminResult) -> int:
    """200 when every owner succeeded; 503 when search is not configured (reindex); 502 when an owner failed."""
    if not reply.errors:
        return 200
    return 503 if not reply.search_configured else 502


@router.post("/admin/reindex-elasticsearch", summary="Rebuild the search indexes from the databases")
async def reindex(clients: ServiceClients = Depends(get_clients)) -> JSONResponse:
    """`{message, transcriptsIndexed, messagesIndexed, errors[]}`: 200, or 503 while no service has a search
    server configured, or 502 when an owner's rebuild failed (errors says which)."""
    reply = await clients.ops.ReindexSearch(pb.Empty(), timeout=3600)
    body = {"message": reply.message, "transcriptsIndexed": reply.transcripts_indexed,
            "messagesIndexed": reply.messages_indexed, "errors": list(reply.errors)}
    return JSONResponse(body, status_code=_admin_status(reply))


@router.post("/admin/reset-all-data", summary="Reset all application data (destructive)")
async def reset_all(clients: ServiceClients = Depends(get_clients)) -> JSONResponse:
    """Every service's data emptied (rows, audio files, queued jobs), schemas kept, system templates seeded:
    `{message, errors[]}` with 200, or 502 when an owner failed (errors says which; the others were reset)."""
    reply = await clients.ops.ResetAllData(pb.Empty(), timeout=3600)
    body = {"message": reply.message, "errors": list(reply.errors)}
    return JSONResponse(body, status_code=200 if not reply.errors else 502)


@router.get("/admin/export-data", summary="Export all data as a tar archive")
async def export_data(clients: ServiceClients = Depends(get_clients)) -> StreamingResponse:
    """Streams OpsService.ExportData as `application/x-tar` (the archive and its manifest: services/ops
    backup.py). The first chunk is read before answering, so an error (a service down → 503, another admin
    operation running → 409) comes back as a status, not a broken download; a failure later cuts the download
    short (no manifest: import refuses it)."""
    call = clients.ops.ExportData(pb.Empty(), timeout=3600)
    first = await call.read()

    async def body():
        chunk = first
        while chunk is not grpc.aio.EOF:
            yield chunk.data
            chunk = await call.read()

    filename = f"therascript-backup-{datetime.now(UTC).date().isoformat()}.tar"
    return StreamingResponse(body(), media_type="application/x-tar",
                             headers={"Content-Disposition": f'attachment; filename="{filename}"'})


class _ArchiveTarget(BaseTarget):
    """Forwards each chunk of the `backupFile` part to OpsService.ImportData as it arrives."""

    def __init__(self, call) -> None:
        super().__init__()
        self._call = call
        self.seen = False

    async def on_start_async(self) -> None:
        self.seen = True

    async def on_data_received_async(self, chunk: bytes) -> None:
        if chunk:
            await self._call.write(pb.DataChunk(data=chunk))


_IMPORT_BODY = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["backupFile"],
    "properties": {"backupFile": {"type": "string", "format": "binary",
                                  "description": "A backup from GET /api/admin/export-data (TAR)"}}}}}}}


@router.post("/admin/import-data", summary="Import data from a tar archive", openapi_extra=_IMPORT_BODY)
async def import_data(request: Request, clients: ServiceClients = Depends(get_clients)) -> JSONResponse:
    """Streams the multipart field `backupFile` (a backup from export-data) into OpsService.ImportData,
    which validates it completely before anything changes. `{message}` with 200; 400 (not multipart, no
    `backupFile`, not a valid backup: unsafe member, checksum mismatch, newer format…), 409 (schema version
    differs, another admin operation running), 413 (over a size or member-count limit) with the error body;
    after any of them nothing has changed."""
    try:
        parser = StreamingFormDataParser(headers=request.headers)
    except Exception:
        raise ApiError(400, "Expected a multipart/form-data body with the field backupFile.") from None
    call = clients.ops.ImportData(timeout=3600)
    target = _ArchiveTarget(call)
    parser.register("backupFile", target)
    refused_early = False
    try:
        async for chunk in request.stream():
            await parser.adata_received(chunk)
            if call.done():
                refused_early = True  # ops refused the archive; its status is answered below
                break
        if not target.seen:
            raise ApiError(400, "The backup file is missing.", {"field": "backupFile"})
        await call.done_writing()
    except ApiError:
        call.cancel()
        raise
    except ValueError as error:
        call.cancel()
        raise ApiError(400, f"Malformed upload: {error}") from None
    except (grpc.aio.UsageError, grpc.aio.AioRpcError, RuntimeError, asyncio.InvalidStateError):
        refused_early = True  # the call already ended (a write after its end); awaiting it gives its real status
    except BaseException:
        call.cancel()   # the client went away (or anything else): ops drops its staging at once
        raise
    try:
        reply = await call
    except grpc.aio.AioRpcError as error:
        if not refused_early:
            raise
        # The rest of the body was not read: close the connection, or its bytes would be read as the next request.
        response = grpc_error_response(error)
        response.headers["Connection"] = "close"
        return response
    return JSONResponse({"message": reply.message}, headers={"Connection": "close"} if refused_early else None)


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
