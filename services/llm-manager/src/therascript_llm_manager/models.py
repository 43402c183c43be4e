"""The active model: which model is configured, whether it is loaded, and its runtime.

One model is loaded at a time: loading a model stops the previous runtime first. A runtime that died
(crash, kill -9) is reported as LoadState.ERROR by `snapshot()` and restarted by the next
`ensure_loaded()` (every Generate calls it), so one crash costs one reload, not an outage.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from therascript_common.errors import FailedPrecondition, InvalidArgument, Unavailable

from .db import ModelSettings, SettingsRepository
from .runtime import LaunchSpec, Runtime, RuntimeStartError
from .settings import LlmManagerSettings
from .store import ModelStore

log = logging.getLogger(__name__)

FALLBACK_CONTEXT_SIZE = 2048  # tokens, for a model whose GGUF header gives no context length

Launcher = Callable[[LaunchSpec], Runtime]


class LoadState(enum.Enum):
    UNLOADED = "unloaded"
    LOADING = "loading"
    LOADED = "loaded"
    ERROR = "error"


@dataclass(frozen=True)
class Snapshot:
    """The runtime state at one instant."""

    state: LoadState
    settings: ModelSettings  # the persisted (configured) settings
    loaded_model: str | None  # the model the runtime serves
    loaded_context_size: int | None  # tokens per request
    runtime: Runtime | None
    error: str | None


class ActiveModel:
    """Owns the runtime process and the persisted model settings. Thread-safe."""

    def __init__(self, config: LlmManagerSettings, store: ModelStore, repo: SettingsRepository,
                 launcher: Launcher) -> None:
        self._config = config
        self._store = store
        self._repo = repo
        self._launch = launcher
        self._settings = repo.load()
        self._cond = threading.Condition()
        self._load_lock = threading.Lock()  # one load/unload at a time
        self._state = LoadState.UNLOADED
        self._runtime: Runtime | None = None
        self._loaded: tuple[str, int] | None = None
        self._error: str | None = None

    # ---- reading --------------------------------------------------------------------------
    def snapshot(self) -> Snapshot:
        """Current state; a LOADED runtime whose process has exited is turned into ERROR here."""
        with self._cond:
            self._notice_death()
            name, ctx = self._loaded or (None, None)
            return Snapshot(self._state, self._settings, name, ctx, self._runtime, self._error)

    def loaded_runtime(self) -> Runtime | None:
        """The serving runtime, or None when nothing is loaded (or it is still loading / dead)."""
        snap = self.snapshot()
        return snap.runtime if snap.state is LoadState.LOADED else None

    def context_size_for(self, settings: ModelSettings) -> int:
        """The context window a load with `settings` gets, tokens: the configured size, else the operator's
        default, else the largest the model supports (its trained context, capped by max_context_size;
        FALLBACK_CONTEXT_SIZE when the model's header does not say)."""
        configured = settings.context_size or self._config.default_context_size
        if configured:
            return configured
        trained = None
        if settings.active_model and self._store.exists(settings.active_model):
            trained = self._store.get(settings.active_model).header.context_length
        return min(trained or FALLBACK_CONTEXT_SIZE, self._config.max_context_size)

    @property
    def runtime_kind(self) -> str:
        """"xllamacpp", "llama-server" or "remote"."""
        return self._config.runtime

    # ---- changing -------------------------------------------------------------------------
    def adopt_default(self, packaged_model: str | None) -> None:
        """At start-up: make `packaged_model` active when no (existing) model is configured."""
        active = self._settings.active_model
        if packaged_model and (not active or not self._store.exists(active)):
            self._save(replace(self._settings, active_model=packaged_model, context_size=None))

    def set_model(self, settings: ModelSettings) -> None:
        """Persists `settings` as the active ones and loads the model (blocks until loaded).

        Raises NotFound/InvalidArgument (unknown or unsafe name, context too large) before anything
        changes, Unavailable when the runtime fails to load it."""
        assert settings.active_model
        model = self._store.get(settings.active_model)
        max_context = model.header.context_length or self._config.max_context_size
        requested = settings.context_size
        if requested is not None and requested > min(max_context, self._config.max_context_size):
            raise InvalidArgument(f"Context size {requested} exceeds the model's maximum of "
                                  f"{min(max_context, self._config.max_context_size)} tokens.")
        self._save(settings)
        self.load()

    def load(self) -> Runtime:
        """(Re)starts the runtime for the configured model. Raises Unavailable when it fails."""
        with self._load_lock:
            settings = self._settings
            if not settings.active_model:
                raise Unavailable("No model is configured.")
            context_size = self.context_size_for(settings)
            self._stop_runtime(LoadState.LOADING)
            try:
                runtime = self._launch(self._spec(settings, context_size))
            except (RuntimeStartError, OSError) as error:
                self._set(LoadState.ERROR, error=f"Failed to load {settings.active_model}: {error}")
                raise Unavailable(f"Model '{settings.active_model}' failed to load: {error}") from error
            self._set(LoadState.LOADED, runtime=runtime, loaded=(settings.active_model, context_size))
            return runtime

    def delete_model(self, name: str) -> None:
        """Deletes `name` from the store. Raises InvalidArgument (unsafe name), NotFound, and
        FailedPrecondition while it is loaded or loading (unload first)."""
        self._store.path_for(name)
        with self._cond:
            busy = self._state in (LoadState.LOADED, LoadState.LOADING) and name in (
                self._loaded[0] if self._loaded else None, self._settings.active_model)
        if busy:
            raise FailedPrecondition(f"Model {name} is loaded; unload it before deleting it.")
        self._store.delete(name)

    def unload(self) -> bool:
        """Stops the runtime. Returns True when a model was loaded."""
        with self._load_lock:
            with self._cond:
                was_loaded = self._state is LoadState.LOADED
            self._stop_runtime(LoadState.UNLOADED)
            return was_loaded

    def ensure_loaded(self, wait_s: float | None = None) -> Runtime | None:
        """The serving runtime, loading (or restarting) the configured model when needed.

        While another thread is loading, waits up to `wait_s` seconds (None: until it is done) and
        returns None if it is still loading then. Raises Unavailable when the load fails."""
        deadline = None if wait_s is None else time.monotonic() + wait_s
        while True:
            with self._cond:
                self._notice_death()
                if self._state is LoadState.LOADED and self._runtime is not None:
                    return self._runtime
                if self._state is LoadState.LOADING:
                    remaining = 1.0 if deadline is None else deadline - time.monotonic()
                    if remaining <= 0:
                        return None
                    self._cond.wait(remaining)
                    continue
            return self._load_if_still_needed()

    def load_in_background(self) -> threading.Thread:
        """Starts loading the configured model on a daemon thread (start-up); errors land in the state."""
        with self._cond:
            self._state = LoadState.LOADING  # visible at once, before the thread runs
        thread = threading.Thread(target=self._background_load, name="model-load", daemon=True)
        thread.start()
        return thread

    def wait_until_settled(self, timeout_s: float) -> Snapshot:
        """Blocks until the state is not LOADING (or the timeout passes), then returns it."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while self._state is LoadState.LOADING and time.monotonic() < deadline:
                self._cond.wait(min(0.2, max(0.0, deadline - time.monotonic())))
        return self.snapshot()

    def close(self) -> None:
        self.unload()

    # ---- internals ------------------------------------------------------------------------
    def _background_load(self) -> None:
        try:
            self.load()
        except Exception as error:
            log.error("start-up load failed: %s", error)

    def _load_if_still_needed(self) -> Runtime:
        with self._cond:
            if self._state is LoadState.LOADED and self._runtime is not None and self._runtime.alive():
                return self._runtime
        return self.load()

    def _spec(self, settings: ModelSettings, context_size: int) -> LaunchSpec:
        layers = settings.num_gpu_layers if settings.num_gpu_layers is not None else self._config.n_gpu_layers
        binary = str(self._config.llama_server_binary) if self._config.llama_server_binary else None
        return LaunchSpec(
            backend=self._config.runtime, model_path=str(self._store.path_for(settings.active_model or "")),
            context_size=context_size, parallel_slots=self._config.parallel_slots, n_gpu_layers=layers,
            threads=self._config.threads, load_timeout_s=self._config.load_timeout_s, binary=binary,
        )

    def _save(self, settings: ModelSettings) -> None:
        self._repo.save(settings)
        with self._cond:
            self._settings = settings

    def _stop_runtime(self, new_state: LoadState) -> None:
        with self._cond:
            runtime, self._runtime = self._runtime, None
        if runtime is not None:
            runtime.stop()
        self._set(new_state)

    def _set(self, state: LoadState, runtime: Runtime | None = None, loaded: tuple[str, int] | None = None,
             error: str | None = None) -> None:
        with self._cond:
            self._state, self._runtime, self._loaded, self._error = state, runtime, loaded, error
            self._cond.notify_all()

    def _notice_death(self) -> None:
        """Caller holds _cond. A loaded runtime whose process exited becomes ERROR (kept for its exit code)."""
        if self._state is LoadState.LOADED and self._runtime is not None and not self._runtime.alive():
            code = self._runtime.exit_code()
            log.error("LLM runtime exited unexpectedly (exit code %s)", code)
            self._runtime.stop()
            self._state, self._runtime = LoadState.ERROR, None
            self._error = f"The LLM runtime exited unexpectedly (exit code {code}); it restarts on the next request."
