"""/api/analysis-jobs: multi-session map/reduce jobs (original §1.4, §2.2; ui-contract §2 and §3.2).

JSON shapes are the original's: list rows in its snake_case columns, the job with `summaries[]` (`sessionName`,
`sessionDate` in camelCase, as the UI reads them) and `strategy`. The stream is SSE framed by sse-starlette:
every event has an `id:` (the event log's id, so an EventSource reconnecting with Last-Event-ID gets exactly what
it missed), unnamed `data:` lines (EventSource.onmessage), `: keep-alive` comments while idle; it closes after
completed, failed or canceled. A client going away cancels the gRPC stream, which frees its server thread; the
job itself never depends on who is watching.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Annotated

import grpc
from fastapi import APIRouter, Depends, Header
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from sse_starlette import EventSourceResponse, ServerSentEvent

from therascript.analysis.v1 import analysis_pb2 as pb

from ..clients import ServiceClients, get_clients
from ..params import JobId

log = logging.getLogger(__name__)
router = APIRouter(prefix="/analysis-jobs", tags=["analysis"])

KEEP_ALIVE_S = 15            # seconds of silence before a `: keep-alive` comment
STREAM_DEADLINE_S = 6 * 3600  # one stream connection may stay open this long, seconds
_STATUS_NAMES = {value: name.removeprefix("JOB_STATUS_").lower() for name, value in pb.JobStatus.items()}


# --- JSON shapes --------------------------------------------------------------------------------
def _opt(message, field: str):
    return getattr(message, field) if message.HasField(field) else None


def job_row_json(j: pb.Job) -> dict:
    """A list row: `id, original_prompt, short_prompt, status, final_result, error_message, created_at,
    completed_at (epoch ms), model_name, context_size (tokens)`."""
    return {"id": j.id, "original_prompt": j.original_prompt, "short_prompt": j.short_prompt,
            "status": _STATUS_NAMES.get(j.status, "pending"), "final_result": _opt(j, "final_result"),
            "error_message": _opt(j, "error_message"), "created_at": j.created_at_ms,
            "completed_at": _opt(j, "completed_at_ms"), "model_name": _opt(j, "model_name"),
            "context_size": _opt(j, "context_size")}


def summary_json(job_id: int, s: pb.Summary) -> dict:
    """`{id, analysis_job_id, session_id, summary_text|null, status, error_message|null, sessionName, sessionDate}`
    (+ additive `chunk_count`: map calls the transcript needed)."""
    return {"id": s.id, "analysis_job_id": job_id, "session_id": s.session_id,
            "summary_text": _opt(s, "summary_text"), "status": s.status, "error_message": _opt(s, "error_message"),
            "sessionName": s.session_name, "sessionDate": s.session_date, "chunk_count": s.chunk_count}


def strategy_json(d: pb.JobDetail) -> dict | None:
    if not d.HasField("strategy"):
        return None
    return {"intermediate_question": d.strategy.intermediate_question,
            "final_synthesis_instructions": d.strategy.final_synthesis_instructions}


def job_json(d: pb.JobDetail) -> dict:
    """The job row, `strategy_json` (the strategy as JSON text, or null), `summaries` in session-date order and
    `strategy` (object or null)."""
    strategy = strategy_json(d)
    return {**job_row_json(d.job), "strategy_json": json.dumps(strategy) if strategy else None,
            "summaries": [summary_json(d.job.id, s) for s in d.summaries], "strategy": strategy}


# --- request body -------------------------------------------------------------------------------
Prompt = Annotated[str, StringConstraints(strip_whitespace=True, min_length=10, max_length=5000)]
PositiveId = Annotated[int, Field(gt=0, le=2**62)]


class CreateJobBody(BaseModel):
    """`{sessionIds (1..50 positive ids), prompt (10..5000 characters), modelName?, useAdvancedStrategy?}`;
    unknown fields are refused (400)."""

    model_config = ConfigDict(extra="forbid")
    sessionIds: list[PositiveId] = Field(min_length=1, max_length=50)
    prompt: Prompt
    modelName: str | None = Field(None, max_length=255)
    useAdvancedStrategy: bool | None = False


# --- routes -------------------------------------------------------------------------------------
@router.post("", status_code=202, summary="Create a multi-session analysis job")
async def create_job(body: CreateJobBody, clients: ServiceClients = Depends(get_clients)) -> dict:
    """202 `{jobId}`. 400 for a bad body or a session without a transcript, 404 for an unknown session."""
    request = pb.CreateJobRequest(prompt=body.prompt, session_ids=body.sessionIds, model_name=body.modelName or None,
                                  use_advanced_strategy=bool(body.useAdvancedStrategy))
    reply = await clients.analysis.CreateJob(request)
    return {"jobId": reply.job_id}


@router.get("", summary="List analysis jobs")
async def list_jobs(clients: ServiceClients = Depends(get_clients)) -> list[dict]:
    """Every job, newest first, as the original's rows."""
    reply = await clients.analysis.ListJobs(pb.ListJobsRequest())
    return [job_row_json(j) for j in reply.jobs]


@router.get("/{job_id}", summary="Status and result of one analysis job")
async def get_job(job_id: JobId, clients: ServiceClients = Depends(get_clients)) -> dict:
    """The job with its summaries and strategy; 404 if unknown."""
    return job_json(await clients.analysis.GetJob(pb.JobRef(job_id=job_id)))


def _sse(event: pb.JobEvent, job_id: int) -> ServerSentEvent:
    if event.HasField("snapshot"):
        snapshot = job_json(event.snapshot)
        data = json.dumps({"type": "snapshot", "phase": "status", "jobId": job_id,
                           "timestamp": int(time.time() * 1000), "job": snapshot,
                           "summaries": snapshot["summaries"]}, separators=(",", ":"), ensure_ascii=False)
    else:
        data = event.payload_json
    return ServerSentEvent(data=data, id=event.id, sep="\n")


async def _relay(call, job_id: int) -> AsyncIterator[ServerSentEvent]:
    """Relays the StreamJob events until the terminal one; on a broken upstream, a failed status so the UI
    closes (it reconnects to a fresh snapshot otherwise). Always cancels the gRPC call on exit."""
    try:
        while (event := await call.read()) is not grpc.aio.EOF:
            yield _sse(event, job_id)
            if event.terminal:
                return
    except grpc.RpcError as error:
        log.warning("analysis stream failed: %s %s", error.code().name, error.details())
        yield ServerSentEvent(data=json.dumps({"jobId": job_id, "phase": "status", "type": "status",
                                               "status": "failed", "message": "The analysis stream broke."}),
                              sep="\n")
    finally:
        call.cancel()


@router.get("/{job_id}/stream", summary="Analysis progress (SSE)")
async def stream_job(job_id: JobId, clients: ServiceClients = Depends(get_clients),
                     last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", max_length=64)] = None
                     ) -> EventSourceResponse:
    """A snapshot, then status/map/reduce events with `id:`s; with `Last-Event-ID`, exactly the events after
    it. Ends after completed, failed or canceled. 404 (JSON error body) for an unknown job."""
    await clients.analysis.GetJob(pb.JobRef(job_id=job_id))  # 404 before the stream starts
    request = pb.StreamJobRequest(job_id=job_id, last_event_id=last_event_id or None)
    call = clients.analysis.StreamJob(request, timeout=STREAM_DEADLINE_S)
    headers = {"Cache-Control": "no-cache, no-transform", "X-Accel-Buffering": "no"}
    return EventSourceResponse(_relay(call, job_id), headers=headers, sep="\n", ping=KEEP_ALIVE_S,
                               ping_message_factory=lambda: ServerSentEvent(comment="keep-alive", sep="\n"),
                               media_type="text/event-stream")


@router.post("/{job_id}/cancel", status_code=202, summary="Cancel a running analysis job")
async def cancel_job(job_id: JobId, clients: ServiceClients = Depends(get_clients)) -> dict:
    """202 `{message}`; 404 if unknown, 409 if already finished."""
    reply = await clients.analysis.CancelJob(pb.JobRef(job_id=job_id))
    return {"message": reply.message}


@router.delete("/{job_id}", summary="Delete an analysis job")
async def delete_job(job_id: JobId, clients: ServiceClients = Depends(get_clients)) -> dict:
    """`{message}`; a running job is canceled first. 404 if unknown."""
    reply = await clients.analysis.DeleteJob(pb.JobRef(job_id=job_id))
    return {"message": reply.message}
