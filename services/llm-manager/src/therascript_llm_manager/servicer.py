"""The gRPC layer of llm-manager: proto ⇄ domain, nothing else. Domain errors (therascript_common.errors)
raised below become gRPC statuses in the shared interceptor."""

from __future__ import annotations

from collections.abc import Iterator

from therascript.common.v1 import common_pb2
from therascript.llm.v1 import llm_pb2, llm_pb2_grpc
from therascript_common.errors import InvalidArgument

from . import vram
from .db import ModelSettings
from .generation import Cancellation, GenerationRequest, Generator, Loading, Message, Text, Usage, coalesce
from .models import ActiveModel, LoadState
from .pulls import PullJob, PullManager
from .read_ahead import read_ahead
from .store import ModelStore, StoredModel

_LOAD_STATES = {
    LoadState.UNLOADED: llm_pb2.LOAD_STATE_UNLOADED,
    LoadState.LOADING: llm_pb2.LOAD_STATE_LOADING,
    LoadState.LOADED: llm_pb2.LOAD_STATE_LOADED,
    LoadState.ERROR: llm_pb2.LOAD_STATE_ERROR,
}
_ROLES = {llm_pb2.ROLE_SYSTEM: "system", llm_pb2.ROLE_USER: "user", llm_pb2.ROLE_ASSISTANT: "assistant"}


def _opt(message, name: str):
    """The value of optional field `name`, or None when unset."""
    return getattr(message, name) if message.HasField(name) else None


def model_info(model: StoredModel, size_vram: int | None = None) -> llm_pb2.ModelInfo:
    """A store entry as ModelInfo."""
    header = model.header
    return llm_pb2.ModelInfo(
        name=model.name, size_bytes=model.size_bytes, digest=model.digest,
        default_context_size=header.context_length, modified_at_ms=model.modified_at_ms, size_vram=size_vram,
        details=llm_pb2.ModelDetails(format="gguf", family=header.architecture,
                                     parameter_size=header.parameter_size,
                                     quantization_level=header.quantization),
    )


def pull_status(job: PullJob) -> llm_pb2.PullStatus:
    return llm_pb2.PullStatus(
        job_id=job.id, status=llm_pb2.PullJobStatus.Value(f"PULL_JOB_STATUS_{job.status.name}"),
        model_name=job.model_name, message=job.message, progress=job.progress,
        completed_bytes=job.completed_bytes, total_bytes=job.total_bytes, start_time_ms=job.start_time_ms,
        end_time_ms=job.end_time_ms, error=job.error,
    )


class LlmManagerServicer(llm_pb2_grpc.LlmManagerServiceServicer):
    """Implements therascript.llm.v1.LlmManagerService over the domain objects."""

    def __init__(self, store: ModelStore, models: ActiveModel, generator: Generator, pulls: PullManager) -> None:
        self._store = store
        self._models = models
        self._generator = generator
        self._pulls = pulls

    # ---- models ---------------------------------------------------------------------------
    def ListAvailableModels(self, request, context):
        """Every GGUF in the store with its header metadata (sizes in bytes, context in tokens)."""
        return llm_pb2.ListAvailableModelsResponse(models=[model_info(m) for m in self._store.list()])

    def SetModel(self, request, context):
        """Persists the settings and loads the model; answers when loaded.
        NOT_FOUND unknown model, INVALID_ARGUMENT bad name/values, UNAVAILABLE load failed."""
        current = self._models.snapshot().settings
        settings = ModelSettings(
            active_model=request.model_name, context_size=_opt(request, "context_size"),
            temperature=_in_range(_opt(request, "temperature"), current.temperature, 0, 2, "temperature"),
            top_p=_in_range(_opt(request, "top_p"), current.top_p, 0, 1, "topP"),
            repeat_penalty=_in_range(_opt(request, "repeat_penalty"), current.repeat_penalty, 0.5, 2,
                                     "repeatPenalty"),
            num_gpu_layers=_opt(request, "num_gpu_layers"), thinking_budget=_opt(request, "thinking_budget"),
        )
        if settings.context_size is not None and settings.context_size < 1:
            raise InvalidArgument("context_size must be at least 1 token.")
        self._models.set_model(settings)
        context_label = settings.context_size or "default"
        return common_pb2.Ack(message=f"Active model set to {request.model_name} (context: {context_label}). "
                                      "Model loaded.")

    def Unload(self, request, context):
        """Stops the runtime; the next Generate loads the active model again."""
        unloaded = self._models.unload()
        return common_pb2.Ack(message="1 model instance(s) unloaded successfully." if unloaded
                              else "No models were loaded.")

    def DeleteModel(self, request, context):
        """Deletes a store file. INVALID_ARGUMENT unsafe name, NOT_FOUND, FAILED_PRECONDITION when loaded."""
        self._models.delete_model(request.model_name)
        return common_pb2.Ack(message=f"Deleted model {request.model_name}")

    def GetStatus(self, request, context):
        """Active model, load state, configured settings, loaded/maximum context (tokens), runtime health."""
        snap = self._models.snapshot()
        settings = snap.settings
        checked = _opt(request, "model_name") or settings.active_model or ""
        loaded = snap.state is LoadState.LOADED and checked == snap.loaded_model
        details = max_context = None
        if checked and self._store.exists(checked):
            model = self._store.get(checked)
            size_vram = vram.estimate(model.header, snap.loaded_context_size, settings.num_gpu_layers).vram_bytes \
                if loaded and snap.loaded_context_size else None
            details, max_context = model_info(model, size_vram), model.header.context_length
        return llm_pb2.LlmStatus(
            active_model=settings.active_model or "default", model_checked=checked or "default", loaded=loaded,
            state=_LOAD_STATES[snap.state], details=details, configured_context_size=settings.context_size,
            configured_temperature=settings.temperature, configured_top_p=settings.top_p,
            configured_repeat_penalty=settings.repeat_penalty, configured_num_gpu_layers=settings.num_gpu_layers,
            configured_thinking_budget=settings.thinking_budget, loaded_context_size=snap.loaded_context_size,
            model_max_context=max_context, runtime_healthy=snap.state is LoadState.LOADED, error=snap.error,
            runtime_kind=self._models.runtime_kind,
        )

    def EstimateVram(self, request, context):
        """Weights + KV cache + overhead (bytes) for a context size (tokens) and GPU layer count."""
        model = self._store.get(request.model_name)
        settings = self._models.snapshot().settings
        context_size = _opt(request, "context_size") or self._models.context_size_for(settings)
        if context_size < 1:
            raise InvalidArgument("context_size must be at least 1 token.")
        layers = _opt(request, "num_gpu_layers")
        result = vram.estimate(model.header, context_size, layers)
        return llm_pb2.VramEstimate(
            model=model.name, context_size=context_size, num_gpu_layers=layers,
            estimated_vram_bytes=result.vram_bytes, estimated_ram_bytes=result.ram_bytes,
            weights_bytes=result.weights_bytes, weights_vram_bytes=result.weights_vram_bytes,
            weights_ram_bytes=result.weights_ram_bytes, kv_cache_bytes=result.kv_cache_bytes,
            overhead_bytes=result.overhead_bytes, vram_per_token_bytes=result.kv_bytes_per_token,
        )

    # ---- pulls ----------------------------------------------------------------------------
    def PullModel(self, request, context):
        """Queues a download. INVALID_ARGUMENT for URLs outside the allow-list or internal addresses."""
        job = self._pulls.start(request.model_url, _opt(request, "sha256"))
        return llm_pb2.PullModelResponse(job_id=job.id, message=f"Pull of {job.model_name} started.")

    def GetPullStatus(self, request, context):
        """A job's state and progress (bytes, percent). NOT_FOUND for unknown ids."""
        return pull_status(self._pulls.get(request.job_id))

    def CancelPull(self, request, context):
        """Stops a download and removes its partial file. NOT_FOUND; FAILED_PRECONDITION when finished."""
        self._pulls.cancel(request.job_id)
        return common_pb2.Ack(message=f"Cancellation request sent for job {request.job_id}.")

    # ---- generation -----------------------------------------------------------------------
    def Generate(self, request, context) -> Iterator[llm_pb2.GenerateChunk]:
        """Streams content/thinking chunks, `loading` keep-alives, then one `usage`. The runtime's stream is read
        ahead while a message is being sent, and what arrived meanwhile leaves as one chunk (read_ahead.py): a
        chunk holds one token when the caller keeps up, several when it did not. Cancelling the call closes
        the runtime stream, which stops the generation."""
        cancellation = Cancellation()
        context.add_callback(cancellation.cancel)
        domain = GenerationRequest(
            messages=[Message(_ROLES.get(m.role, ""), m.content) for m in request.messages],
            max_tokens=_opt(request, "max_tokens"), temperature=_opt(request, "temperature"),
            top_p=_opt(request, "top_p"), repeat_penalty=_opt(request, "repeat_penalty"),
            seed=_opt(request, "seed"), purpose=request.purpose,
        )
        events = self._generator.generate(domain, cancellation)
        for batch in read_ahead(events, cancellation.cancel, "generate-read-ahead"):
            for event in coalesce(batch):
                yield _chunk(event)

    def CountTokens(self, request, context):
        """Token counts per text: the loaded model's tokenizer, else chars/4 (method says which)."""
        counts, exact, context_size = self._generator.count_tokens(list(request.texts))
        method = llm_pb2.TOKEN_COUNT_METHOD_TOKENIZER if exact else llm_pb2.TOKEN_COUNT_METHOD_ESTIMATE
        return llm_pb2.CountTokensResponse(counts=counts, method=method, context_size=context_size)


def _chunk(event: Text | Loading | Usage) -> llm_pb2.GenerateChunk:
    if isinstance(event, Text):
        return llm_pb2.GenerateChunk(thinking=event.text) if event.thinking else llm_pb2.GenerateChunk(content=event.text)
    if isinstance(event, Loading):
        return llm_pb2.GenerateChunk(loading=True)
    return llm_pb2.GenerateChunk(usage=llm_pb2.Usage(
        prompt_tokens=event.prompt_tokens, completion_tokens=event.completion_tokens,
        duration_ms=event.duration_ms, truncated=event.truncated, model=event.model,
        time_to_first_token_ms=event.time_to_first_token_ms,
    ))


def _in_range(value: float | None, default: float, low: float, high: float, name: str) -> float:
    if value is None:
        return default
    if not low <= value <= high:
        raise InvalidArgument(f"{name} must be between {low} and {high}.")
    return value

