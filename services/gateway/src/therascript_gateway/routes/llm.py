"""/api/llm: the model store, the active model, pull jobs and memory estimates (original §1.6 and §5;
wire shapes of ui-contract.md §2). Each route validates, makes one llm-manager RPC, shapes the JSON."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from therascript.llm.v1 import llm_pb2

from ..clients import ServiceClients, get_clients
from ..params import INT32_MAX

router = APIRouter(prefix="/llm", tags=["llm"])

_SET_MODEL_TIMEOUT_S = 600.0  # set-model answers once the model is loaded (bb5fd4d awaits the load)
PullJobId = Annotated[str, Path(pattern=r"^[0-9a-fA-F-]{1,64}$", description="Pull job id (UUID)")]
ModelName = Annotated[str, Path(min_length=1, max_length=255, description="Model file name in the store")]


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class SetModelBody(_Body):
    """The original's body (ui-contract §2). `thinkingBudget` is any number (original §1.6): negative (the UI
    sends -1) or null = unrestricted, 0 = no thinking, else tokens (rounded, capped at int32)."""

    modelName: str = Field(min_length=1, max_length=255)
    contextSize: int | None = Field(default=None, ge=1, le=INT32_MAX)
    temperature: float | None = Field(default=None, ge=0, le=2, allow_inf_nan=False)
    topP: float | None = Field(default=None, ge=0, le=1, allow_inf_nan=False)
    repeatPenalty: float | None = Field(default=None, ge=0.5, le=2, allow_inf_nan=False)
    numGpuLayers: int | None = Field(default=None, ge=0, le=INT32_MAX)
    thinkingBudget: float | None = Field(default=None, allow_inf_nan=False)

    def thinking_budget_tokens(self) -> int | None:
        """None (unrestricted) for null or a negative number; else whole tokens, at most INT32_MAX."""
        if self.thinkingBudget is None or self.thinkingBudget < 0:
            return None
        return min(round(self.thinkingBudget), INT32_MAX)


class PullModelBody(_Body):
    modelUrl: str = Field(min_length=1, max_length=2048)
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-fA-F]{64}$")


class DeleteModelBody(_Body):
    modelName: str = Field(min_length=1, max_length=255)


def _opt(message: Any, name: str) -> Any:
    return getattr(message, name) if message.HasField(name) else None


def _iso(epoch_ms: int) -> str:
    return datetime.fromtimestamp(epoch_ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def model_json(info: llm_pb2.ModelInfo) -> dict[str, Any]:
    """LlmModelInfo of the original: name, modified_at, size, digest, details, defaultContextSize."""
    body: dict[str, Any] = {
        "name": info.name,
        "modified_at": _iso(info.modified_at_ms),
        "size": info.size_bytes,
        "digest": info.digest,
        "details": {
            "format": info.details.format,
            "family": info.details.family or "unknown",
            "families": None,
            "parameter_size": info.details.parameter_size or "unknown",
            "quantization_level": info.details.quantization_level or "unknown",
        },
        "defaultContextSize": _opt(info, "default_context_size"),
        "architecture": None,
    }
    if info.HasField("size_vram"):
        body["size_vram"] = info.size_vram
    return body


def pull_status_json(status: llm_pb2.PullStatus) -> dict[str, Any]:
    """`{jobId, modelName, status, message, progress?, completedBytes?, totalBytes?, startTime, endTime?, error?}`."""
    body: dict[str, Any] = {
        "jobId": status.job_id,
        "modelName": status.model_name,
        "status": llm_pb2.PullJobStatus.Name(status.status).removeprefix("PULL_JOB_STATUS_").lower(),
        "message": status.message,
        "startTime": status.start_time_ms,
    }
    for field, key in (("progress", "progress"), ("completed_bytes", "completedBytes"),
                       ("total_bytes", "totalBytes"), ("end_time_ms", "endTime"), ("error", "error")):
        if status.HasField(field):
            body[key] = getattr(status, field)
    return body


def status_json(status: llm_pb2.LlmStatus) -> dict[str, Any]:
    """The original's status body plus additive fields (state, loadedContextSize, modelMaxContext, ...)."""
    body: dict[str, Any] = {
        "status": "available",
        "activeModel": status.active_model,
        "modelChecked": status.model_checked,
        "loaded": status.loaded,
        "configuredContextSize": _opt(status, "configured_context_size"),
        "configuredTemperature": status.configured_temperature,
        "configuredTopP": status.configured_top_p,
        "configuredRepeatPenalty": status.configured_repeat_penalty,
        "configuredNumGpuLayers": _opt(status, "configured_num_gpu_layers"),
        "configuredThinkingBudget": _opt(status, "configured_thinking_budget"),
        "state": llm_pb2.LoadState.Name(status.state).removeprefix("LOAD_STATE_").lower(),
        "loadedContextSize": _opt(status, "loaded_context_size"),
        "modelMaxContext": _opt(status, "model_max_context"),
        "runtimeHealthy": status.runtime_healthy,
        "runtimeKind": status.runtime_kind,
        "error": _opt(status, "error"),
    }
    if status.HasField("details"):
        body["details"] = model_json(status.details)
    return body


def vram_json(estimate: llm_pb2.VramEstimate) -> dict[str, Any]:
    """The original's estimate-vram body (bytes; context in tokens)."""
    return {
        "model": estimate.model,
        "context_size": _opt(estimate, "context_size"),
        "num_gpu_layers": _opt(estimate, "num_gpu_layers"),
        "estimated_vram_bytes": _opt(estimate, "estimated_vram_bytes"),
        "estimated_ram_bytes": _opt(estimate, "estimated_ram_bytes"),
        "vram_per_token_bytes": _opt(estimate, "vram_per_token_bytes"),
        "breakdown": {
            "weights_bytes": _opt(estimate, "weights_bytes"),
            "weights_vram_bytes": _opt(estimate, "weights_vram_bytes"),
            "weights_ram_bytes": _opt(estimate, "weights_ram_bytes"),
            "kv_cache_bytes": _opt(estimate, "kv_cache_bytes"),
            "overhead_bytes": _opt(estimate, "overhead_bytes"),
        },
        "error": _opt(estimate, "error"),
    }


@router.get("/available-models", summary="List the GGUF models in the model store")
async def available_models(clients: ServiceClients = Depends(get_clients)) -> dict[str, Any]:
    reply = await clients.llm.ListAvailableModels(llm_pb2.ListAvailableModelsRequest())
    return {"models": [model_json(m) for m in reply.models]}


@router.post("/set-model", summary="Set the active model and context size, and load it")
async def set_model(body: SetModelBody, clients: ServiceClients = Depends(get_clients)) -> dict[str, str]:
    request = llm_pb2.SetModelRequest(
        model_name=body.modelName, context_size=body.contextSize, temperature=body.temperature, top_p=body.topP,
        repeat_penalty=body.repeatPenalty, num_gpu_layers=body.numGpuLayers,
        thinking_budget=body.thinking_budget_tokens(),
    )
    reply = await clients.llm.SetModel(request, timeout=_SET_MODEL_TIMEOUT_S)
    return {"message": reply.message}


@router.post("/unload", summary="Unload the active model from memory")
async def unload(clients: ServiceClients = Depends(get_clients)) -> dict[str, str]:
    reply = await clients.llm.Unload(llm_pb2.UnloadRequest())
    return {"message": reply.message}


@router.post("/pull-model", status_code=202, summary="Start downloading a GGUF model (allowed hosts only)")
async def pull_model(body: PullModelBody, clients: ServiceClients = Depends(get_clients)) -> JSONResponse:
    reply = await clients.llm.PullModel(llm_pb2.PullModelRequest(model_url=body.modelUrl, sha256=body.sha256))
    return JSONResponse({"jobId": reply.job_id, "message": reply.message}, status_code=202)


@router.get("/pull-status/{job_id}", summary="Status and progress of a model pull job")
async def pull_status(job_id: PullJobId, clients: ServiceClients = Depends(get_clients)) -> dict[str, Any]:
    return pull_status_json(await clients.llm.GetPullStatus(llm_pb2.PullJobRef(job_id=job_id)))


@router.post("/cancel-pull/{job_id}", summary="Cancel a model pull job and remove its partial file")
async def cancel_pull(job_id: PullJobId, clients: ServiceClients = Depends(get_clients)) -> dict[str, str]:
    reply = await clients.llm.CancelPull(llm_pb2.PullJobRef(job_id=job_id))
    return {"message": reply.message}


@router.post("/delete-model", summary="Delete a model file from the store (not while loaded)")
async def delete_model(body: DeleteModelBody, clients: ServiceClients = Depends(get_clients)) -> dict[str, str]:
    reply = await clients.llm.DeleteModel(llm_pb2.DeleteModelRequest(model_name=body.modelName))
    return {"message": reply.message}


@router.get("/status", summary="Loaded state and configured settings of the active (or a given) model")
async def status(modelName: str | None = Query(default=None, max_length=255),
                 clients: ServiceClients = Depends(get_clients)) -> dict[str, Any]:
    request = llm_pb2.GetStatusRequest(model_name=modelName or None)
    return status_json(await clients.llm.GetStatus(request))


@router.get("/models/{name}/estimate-vram", summary="VRAM/RAM estimate for a model at a context size")
async def estimate_vram(
    name: ModelName,
    context_size: int | None = Query(default=None, ge=1, le=10_000_000),
    num_gpu_layers: int | None = Query(default=None, ge=0, le=100_000),
    clients: ServiceClients = Depends(get_clients),
) -> dict[str, Any]:
    request = llm_pb2.EstimateVramRequest(model_name=name, context_size=context_size, num_gpu_layers=num_gpu_layers)
    return vram_json(await clients.llm.EstimateVram(request))
