"""/api/analysis-jobs: multi-session map/reduce jobs (analysis issue). Until the analysis service
implements its RPCs they answer UNIMPLEMENTED, which the gateway maps to 501."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from therascript.analysis.v1 import analysis_pb2 as pb

from ..clients import ServiceClients, get_clients
from ..params import JobId

router = APIRouter(prefix="/analysis-jobs", tags=["analysis"])


@router.post("", status_code=202, summary="Create a multi-session analysis job")
async def create_job(clients: ServiceClients = Depends(get_clients)) -> dict:
    reply = await clients.analysis.CreateJob(pb.CreateJobRequest())
    return {"jobId": reply.job_id}


@router.get("", summary="List analysis jobs")
async def list_jobs(clients: ServiceClients = Depends(get_clients)) -> list:
    await clients.analysis.ListJobs(pb.ListJobsRequest())
    return []


@router.get("/{job_id}", summary="Status and result of one analysis job")
async def get_job(job_id: JobId, clients: ServiceClients = Depends(get_clients)) -> dict:
    await clients.analysis.GetJob(pb.JobRef(job_id=job_id))
    return {}


@router.get("/{job_id}/stream", summary="Analysis progress (SSE)")
async def stream_job(job_id: JobId, clients: ServiceClients = Depends(get_clients)) -> dict:
    await clients.analysis.GetJob(pb.JobRef(job_id=job_id))
    return {}


@router.post("/{job_id}/cancel", status_code=202, summary="Cancel a running analysis job")
async def cancel_job(job_id: JobId, clients: ServiceClients = Depends(get_clients)) -> dict:
    reply = await clients.analysis.CancelJob(pb.JobRef(job_id=job_id))
    return {"message": reply.message}


@router.delete("/{job_id}", summary="Delete an analysis job")
async def delete_job(job_id: JobId, clients: ServiceClients = Depends(get_clients)) -> dict:
    reply = await clients.analysis.DeleteJob(pb.JobRef(job_id=job_id))
    return {"message": reply.message}
