"""Speaker diarization: who spoke each word (MODELS.md "Diarization").

Method (issue 2, measured and revised in issue 11 with bench/quality.py on real meeting speech):

1. Speech regions: Silero VAD's speech (faster-whisper ships it) united with the recognised words' spans,
   merged where the pause between them is < REGION_GAP_S — so speech Whisper left untranscribed is covered.
2. Windows of WINDOW_S every HOP_S (1.5 s every 0.75 s: 3D-Speaker's diarization subsegments) inside each
   region; a region shorter than a window is one window of its own length. Windows never cross a pause.
3. One speaker embedding per window (speaker_embedding: CAM++ 192-d by default — on the pyannote clips it
   cut confusion 0.135 → 0.037 against resemblyzer's 256-d VoiceEncoder, which stays selectable).
4. AgglomerativeClustering (cosine, average linkage) on the windows of at least MIN_RELIABLE_S (at most
   MAX_CLUSTERED of them) into `num_speakers` clusters — or, when it is None, into the count estimated by
   cutting the dendrogram at the model's count_threshold (clusters under MIN_CLUSTER_SHARE of the windows not
   counted);
   then every window goes to the nearest cluster centroid (two k-means steps).
5. Resegmentation: Viterbi over the windows in time order (an HMM with one state per cluster, emissions from
   the cosine similarity to each centroid, a penalty per speaker change) removes isolated flips.
6. Turns: each window owns the time halfway to its neighbours' centres; same-speaker neighbours merge.
7. Each word takes the label of the turns overlapping it (majority by overlap). The word-level smoothing of
   issue 2 (`smooth_turns`) is kept but off (SMOOTH_WORDS): on real speech it merged genuine short turns
   (word-level confusion 0.155 with it, 0.082 without, bench/quality.py).
8. When num_speakers is given, a cluster the word vote lost gets its words back, so that many labels come
   out whenever there is enough speech. Labels "SPEAKER_00", … are numbered in order of first appearance.

torch, the embedding models and scikit-learn are imported lazily, here only, so that importing
`therascript_sessions` never pulls torch. Nothing touches the network.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from therascript_sessions.transcription import overlap, speaker_embedding
from therascript_sessions.transcription.asr import Word

if TYPE_CHECKING:  # pragma: no cover - typing only
    import numpy as np

SAMPLE_RATE = 16000
FRAMES_PER_S = speaker_embedding.FRAMES_PER_S
WINDOW_S = 1.5
HOP_S = 0.75
REGION_GAP_S = 0.4
MIN_WINDOW_S = 0.2
MIN_RELIABLE_S = 1.0
MAX_CLUSTERED = 2000
SHORT_RUN_WORDS = 2
SHORT_RUN_S = 0.5
ISOLATED_GAP_S = 1.0
EDGE_JOIN_GAP_S = 0.2
SNAP_WORDS = 2
SNAP_MIN_GAIN_S = 0.1
MAX_SPEAKERS = 8
VAD_THRESHOLD = 0.3
VAD_MIN_SILENCE_MS = 300
VAD_PAD_MS = 150
RESEGMENT = True
HMM_SHARPNESS = 20.0
HMM_SWITCH_PENALTY = 6.0
LINKAGE = "average"
SMOOTH_WORDS = False
OVERLAP = True
"""Add a second speaker's turn where segmentation-3.0 hears two at once (overlap.py); skipped when its model is
not installed. Turns only: words keep one speaker."""
STREAM_BLOCK_S = 60.0
KEEP_SHARE = 0.3
MAX_REGION_S = 60.0
MIN_CLUSTER_SHARE = 0.08
TARGET_DBFS = -30  # resemblyzer's audio_norm_target_dBFS

ProgressCallback = Callable[[float], None]


def speaker_label(number: int) -> str:
    """0 → "SPEAKER_00" (the label format of the original, whisperx/pyannote)."""
    return f"SPEAKER_{number:02d}"


_pipeline_path: str | None = None
_embedding_name: str = speaker_embedding.DEFAULT_MODEL


def use_embedding(name: str) -> None:
    """Embed windows with speaker embedding model `name` ("campplus" or "resemblyzer"; SESSIONS_SPEAKER_EMBEDDING).
    Raises ValueError for an unknown name (whether it can be loaded here is reported by is_available)."""
    global _embedding_name
    speaker_embedding.check(name)
    _embedding_name = name


def use_pipeline(path: str | Path | None) -> None:
    """Diarize with a pyannote.audio pipeline from a local path (pyannote_backend) instead of the built-in
    embedding method; None or "" goes back to the built-in one. Checked at once: raises
    pyannote_backend.PipelineConfigError (a ValueError) naming the path when it does not exist or holds no
    config.yaml. (pyannote.audio itself being missing is reported by is_available, as readiness.)"""
    global _pipeline_path
    if not path:
        _pipeline_path = None
        return
    from therascript_sessions.transcription.pyannote_backend import config_file

    config_file(path)
    _pipeline_path = str(path)


def is_available() -> tuple[bool, str | None]:
    """Whether diarization can run here: the chosen embedding model's packages and weights present
    (speaker_embedding.check) — or, with `use_pipeline`, that pipeline's config and pyannote.audio. Imports
    nothing and never touches the network. Returns (True, None) or (False, the reason)."""
    if _pipeline_path is not None:
        from therascript_sessions.transcription.pyannote_backend import check

        return check(_pipeline_path)
    return speaker_embedding.check(_embedding_name)


def assign_speakers(
    path: Path,
    words: list[Word],
    num_speakers: int,
    on_progress: ProgressCallback | None = None,
    device: str = "auto",
) -> list[Word]:
    """Label every word with its speaker.

    path: the audio the words were recognised from (any format ffmpeg decodes). words: time-ordered, as
    `asr.transcribe` gives them. num_speakers: how many speakers to find (≥ 1); 1 labels everything
    SPEAKER_00 without loading the model. on_progress: fraction done, 0..1, non-decreasing, ending at 1.0.
    device: "auto" (CUDA when torch sees it), "cpu" or "cuda".
    Returns new Word objects (the input is not modified) with `speaker` set.
    Raises ValueError for num_speakers < 1 or undecodable audio, FileNotFoundError for a missing file,
    RuntimeError (or ImportError) when the embedding model cannot be loaded.
    """
    return diarize(path, words, num_speakers, on_progress, device).words


@dataclass
class Diarization:
    """What `diarize` finds. turns: (start_s, end_s, speaker label) in time order, covering the detected
    speech (not only the recognised words); words: the input words with `speaker` set."""

    turns: list[tuple[float, float, str]]
    words: list[Word]


def diarize(
    path: Path,
    words: list[Word],
    num_speakers: int | None,
    on_progress: ProgressCallback | None = None,
    device: str = "auto",
) -> Diarization:
    """Who spoke when, and who spoke each word: `assign_speakers` plus the speaker turns.

    num_speakers: how many speakers to find (≥ 1), or None to estimate it (1..MAX_SPEAKERS). When given and
    there is enough speech (at least that many reliable windows), exactly that many labels come out.
    Raises as `assign_speakers`.
    """
    if num_speakers is not None and num_speakers < 1:
        raise ValueError(f"num_speakers must be at least 1, got {num_speakers}")
    progress = on_progress or (lambda fraction: None)
    if _pipeline_path is not None and num_speakers != 1 and words:
        from therascript_sessions.transcription import pyannote_backend

        found = pyannote_backend.diarize(_pipeline_path, path, words, num_speakers, device)
        progress(1.0)
        return found
    if num_speakers == 1 or not words:
        progress(1.0)
        labelled = [replace(word, speaker=speaker_label(0)) for word in words]
        spans = speech_regions(words)
        return Diarization([(r.start_s, r.end_s, speaker_label(0)) for r in spans], labelled)
    detector = overlap.OverlapDetector() if _overlap_on() else None
    speech, gain = scan_audio(path, detector)
    windows = plan_windows(split_long(merge_spans(speech, words)), WINDOW_S, HOP_S)
    embeddings = embed_stream(path, windows, gain, device, lambda done: progress(0.9 * done))
    clustered = cluster_windows(embeddings, windows, num_speakers, load_embedder(device).count_threshold)
    window_labels = resegment(embeddings, windows, clustered) if RESEGMENT else clustered
    if num_speakers is not None:  # resegmentation may swallow a small cluster: give it back its windows
        window_labels = _restore_lost(clustered, window_labels)
    turns = window_turns(windows, window_labels)
    labels = vote_words(words, [Window(s, e) for s, e, _ in turns], [t[2] for t in turns])
    if SMOOTH_WORDS:
        labels = smooth_turns(words, labels)
    if num_speakers is not None:
        labels = _keep_every_cluster(words, labels, windows, window_labels)
    if detector is not None:  # after the words' vote: each word keeps the one speaker of its turn
        turns = overlap.add_second_speaker(turns, detector.regions())
    order: dict[int, int] = {}
    for label in labels + [t[2] for t in turns]:
        order.setdefault(label, len(order))
    progress(1.0)
    return Diarization(
        [(s, e, speaker_label(order[label])) for s, e, label in turns],
        [replace(word, speaker=speaker_label(order[label])) for word, label in zip(words, labels)],
    )


def _restore_lost(before: Any, after: Any) -> Any:
    """`after`, except that windows of a cluster present in `before` but absent from `after` keep `before`'s
    label (numSpeakers is honoured)."""
    import numpy as np

    lost = sorted(set(before.tolist()) - set(after.tolist()))
    return np.where(np.isin(before, lost), before, after) if lost else after


def _keep_every_cluster(words: list[Word], labels: list[int], windows: list[Window], window_labels: Any) -> list[int]:
    """When the caller asked for that many speakers, a cluster that no word's majority vote chose still gets
    the words where its windows hold at least KEEP_SHARE of the overlap — or, failing that, the one word
    where they hold the most — so that numSpeakers labels come out whenever that speaker's windows touch a
    word (issue 11: numSpeakers=4 gave 3 labels)."""
    import bisect

    lost = sorted({int(x) for x in window_labels} - set(labels))
    if not lost:
        return labels
    labels = list(labels)
    starts = [w.start_s for w in windows]
    longest = max(w.duration_s for w in windows)
    shares: list[dict[int, float]] = []
    for word in words:
        votes: dict[int, float] = {}
        for position in range(bisect.bisect_left(starts, word.start_s - longest),
                              bisect.bisect_right(starts, word.end_s)):
            overlap = min(word.end_s, windows[position].end_s) - max(word.start_s, windows[position].start_s)
            if overlap > 0:
                label = int(window_labels[position])
                votes[label] = votes.get(label, 0.0) + overlap
        total = sum(votes.values()) or 1.0
        shares.append({label: value / total for label, value in votes.items()})
    for cluster in lost:
        chosen = [i for i, share in enumerate(shares) if share.get(cluster, 0.0) >= KEEP_SHARE]
        if not chosen:
            best = max(range(len(words)), key=lambda i: shares[i].get(cluster, 0.0))
            chosen = [best] if shares[best].get(cluster, 0.0) > 0 else []
        for index in chosen:
            labels[index] = cluster
    return labels


# --- 1–2. where to embed -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """A stretch of audio to embed, in seconds."""

    start_s: float
    end_s: float

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


def speech_regions(words: list[Word], max_gap_s: float = REGION_GAP_S) -> list[Window]:
    """Spans of continuous speech: the words' spans merged where the pause between them is < max_gap_s."""
    regions: list[Window] = []
    for word in words:
        if regions and word.start_s - regions[-1].end_s < max_gap_s:
            regions[-1] = Window(regions[-1].start_s, max(regions[-1].end_s, word.end_s))
        else:
            regions.append(Window(word.start_s, word.end_s))
    return regions


def plan_windows(regions: list[Window], window_s: float = WINDOW_S, hop_s: float = HOP_S) -> list[Window]:
    """Sliding windows inside each region, in time order: every region is covered end to end by windows of
    `window_s` starting about every `hop_s`; a region shorter than `window_s` (but at least MIN_WINDOW_S,
    else widened to it) is one window."""
    windows: list[Window] = []
    for region in regions:
        if region.duration_s <= window_s:
            middle, half = (region.start_s + region.end_s) / 2, max(region.duration_s, MIN_WINDOW_S) / 2
            windows.append(Window(max(0.0, middle - half), middle + half))
            continue
        count = math.ceil((region.duration_s - window_s) / hop_s) + 1
        step = (region.duration_s - window_s) / (count - 1)
        windows.extend(Window(region.start_s + i * step, region.start_s + i * step + window_s) for i in range(count))
    return windows


def voice_regions(samples: np.ndarray, words: list[Word]) -> list[Window]:
    """Speech regions: Silero VAD's speech (shipped in faster-whisper; threshold VAD_THRESHOLD, padded by
    VAD_PAD_MS) united with the recognised words' spans, merged across pauses < REGION_GAP_S. Covers speech
    that Whisper left untranscribed (backchannels, overlaps), so the turns cover it too."""
    return merge_spans(vad_spans(samples), words)


def vad_spans(samples: np.ndarray, offset_s: float = 0.0) -> list[tuple[float, float]]:
    """Silero VAD's speech spans (start_s, end_s) in `samples` (16 kHz), shifted by `offset_s`."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    options = VadOptions(threshold=VAD_THRESHOLD, min_silence_duration_ms=VAD_MIN_SILENCE_MS,
                         speech_pad_ms=VAD_PAD_MS)
    return [(offset_s + t["start"] / SAMPLE_RATE, offset_s + t["end"] / SAMPLE_RATE)
            for t in get_speech_timestamps(samples, options)]


def scan_audio(path: Path, detector: overlap.OverlapDetector | None = None) -> tuple[list[tuple[float, float]], float]:
    """One streamed pass over the audio (blocks of STREAM_BLOCK_S), each block also fed to `detector` when given:
    the VAD's speech spans, and the gain that
    brings the whole recording to TARGET_DBFS (only ever raised, as resemblyzer's normalize_volume does;
    CAM++'s mean-normalised filterbanks do not depend on it). Memory: one block. Raises FileNotFoundError /
    ValueError as audio.stream_mono."""
    from therascript_sessions.transcription.audio import stream_mono

    spans: list[tuple[float, float]] = []
    energy, count = 0.0, 0
    for block in stream_mono(path, STREAM_BLOCK_S, SAMPLE_RATE):
        spans.extend(vad_spans(block, count / SAMPLE_RATE))
        if detector is not None:
            detector.feed(block)
        energy += float((block.astype("float64") ** 2).sum())
        count += len(block)
    if not count or energy <= 0:
        return spans, 1.0
    change_db = TARGET_DBFS - 10 * math.log10(energy / count)
    return spans, 10 ** (change_db / 20) if change_db > 0 else 1.0


def split_long(regions: list[Window], longest_s: float = MAX_REGION_S) -> list[Window]:
    """Regions longer than `longest_s` cut into equal pieces no longer than it (bounds the audio held at once)."""
    out: list[Window] = []
    for region in regions:
        pieces = max(1, math.ceil(region.duration_s / longest_s))
        step = region.duration_s / pieces
        out.extend(Window(region.start_s + i * step, region.start_s + (i + 1) * step) for i in range(pieces))
    return out


def merge_spans(spans: list[tuple[float, float]], words: list[Word]) -> list[Window]:
    """`spans` united with the words' spans, merged across pauses < REGION_GAP_S, in time order."""
    spans = list(spans) + [(w.start_s, w.end_s) for w in words if w.end_s > w.start_s]
    regions: list[Window] = []
    for start, end in sorted(spans):
        if regions and start - regions[-1].end_s < REGION_GAP_S:
            regions[-1] = Window(regions[-1].start_s, max(regions[-1].end_s, end))
        else:
            regions.append(Window(start, end))
    return regions


def window_turns(windows: list[Window], labels: Any) -> list[tuple[float, float, int]]:
    """Speaker turns (start_s, end_s, cluster) from labelled windows: inside a run of overlapping windows each
    window owns the time up to halfway to its neighbours' centres; same-label neighbours are merged."""
    turns: list[tuple[float, float, int]] = []
    for index, window in enumerate(windows):
        previous = windows[index - 1] if index > 0 else None
        following = windows[index + 1] if index + 1 < len(windows) else None
        middle = (window.start_s + window.end_s) / 2
        start = window.start_s
        if previous is not None and previous.end_s > window.start_s:
            start = max(start, (middle + (previous.start_s + previous.end_s) / 2) / 2)
        end = window.end_s
        if following is not None and following.start_s < window.end_s:
            end = min(end, (middle + (following.start_s + following.end_s) / 2) / 2)
        label = int(labels[index])
        if turns and turns[-1][2] == label and start - turns[-1][1] < 1e-6:
            turns[-1] = (turns[-1][0], max(turns[-1][1], end), label)
        elif end > start:
            turns.append((start, end, label))
    return turns


# --- 3. embeddings --------------------------------------------------------------------------------------


def load_embedder(device: str = "auto") -> speaker_embedding.Embedder:
    """The speaker embedding model chosen with `use_embedding` (CAM++ by default) on `device`, loaded once
    per process. Raises RuntimeError when it cannot be loaded here."""
    return speaker_embedding.load(_embedding_name, device)


def warm_up(device: str = "auto") -> None:
    """Load the embedding model and the overlap detector's (or the configured pyannote pipeline) and run them
    once, so that the first job
    does not pay for it. Call it in a worker's parent process before jobs are forked. Raises what
    load_embedder raises."""
    if _pipeline_path is not None:
        from therascript_sessions.transcription.pyannote_backend import load_pipeline

        load_pipeline(_pipeline_path, device)
        return
    speaker_embedding.warm_up(load_embedder(device))
    if _overlap_on():
        overlap.warm_up()


def _overlap_on() -> bool:
    return OVERLAP and overlap.is_available()[0]


def embed_stream(
    path: Path, windows: list[Window], gain: float = 1.0, device: str = "auto",
    on_progress: ProgressCallback | None = None,
) -> np.ndarray:
    """One L2-normalised embedding per window, shape (len(windows), the model's dim), float32. The audio is
    decoded at 16 kHz as a stream (samples × `gain`), untrimmed so that no timestamp moves: only the audio of
    the run of overlapping windows being embedded is held, so memory does not grow with the recording's
    length. Windows of equal frame count are embedded in batches. on_progress: fraction embedded, 0..1."""
    import numpy as np

    embedder = load_embedder(device)
    embeddings = np.zeros((len(windows), embedder.dim), dtype=np.float32)
    done = 0
    for indices, batch in _batched(_streamed_features(embedder, path, windows, gain), embedder.batch_size):
        embeddings[indices] = embedder.embed(batch)
        done += len(indices)
        if on_progress:
            on_progress(done / len(windows))
    return embeddings


def _runs_of(windows: list[Window]) -> list[tuple[int, int]]:
    """(first, last) indices of each run of consecutive overlapping windows."""
    runs: list[tuple[int, int]] = []
    for index in range(len(windows)):
        if runs and windows[index].start_s < windows[runs[-1][1]].end_s:
            runs[-1] = (runs[-1][0], index)
        else:
            runs.append((index, index))
    return runs


def _run_features(embedder: speaker_embedding.Embedder, piece: np.ndarray, windows: list[Window], first: int,
                  last: int) -> Iterator[tuple[int, np.ndarray]]:
    """The feature frames of each window first..last, from `piece` = the audio from windows[first].start_s:
    computed once for the run and sliced, not once per window."""
    features = embedder.features(piece)
    for position in range(first, last + 1):
        begin = round((windows[position].start_s - windows[first].start_s) * FRAMES_PER_S)
        frames = max(1, round(windows[position].duration_s * FRAMES_PER_S))
        yield position, _frames(features, begin, frames)


def _streamed_features(embedder: speaker_embedding.Embedder, path: Path, windows: list[Window],
                       gain: float) -> Iterator[tuple[int, np.ndarray]]:
    import numpy as np

    from therascript_sessions.transcription.audio import stream_mono

    runs = _runs_of(windows)
    bounds = [(int(windows[a].start_s * SAMPLE_RATE), max(int(windows[b].end_s * SAMPLE_RATE),
                                                          int(windows[a].start_s * SAMPLE_RATE) + 1))
              for a, b in runs]
    buffer, buffer_start, next_run = np.zeros(0, dtype=np.float32), 0, 0
    for block in stream_mono(path, STREAM_BLOCK_S, SAMPLE_RATE):
        buffer = np.concatenate([buffer, block * np.float32(gain)])
        while next_run < len(runs) and bounds[next_run][1] <= buffer_start + len(buffer):
            start, stop = bounds[next_run]
            yield from _run_features(embedder, buffer[start - buffer_start : stop - buffer_start], windows,
                                     *runs[next_run])
            next_run += 1
        keep_from = bounds[next_run][0] if next_run < len(runs) else buffer_start + len(buffer)
        if keep_from > buffer_start:
            buffer, buffer_start = buffer[keep_from - buffer_start :], keep_from
    for run, (start, stop) in zip(runs[next_run:], bounds[next_run:]):  # windows past the end: zero-padded
        piece = _padded(buffer, max(0, start - buffer_start), stop - buffer_start)
        yield from _run_features(embedder, piece, windows, *run)


def _batched(features: Iterator[tuple[int, np.ndarray]], size: int) -> Iterator[tuple[list[int], np.ndarray]]:
    """(window indices, feature frames of shape (batch, frames, bins)) for windows of equal frame count.
    Memory stays bounded: at most `size` windows per frame count are pending at once."""
    import numpy as np

    pending: dict[int, list[tuple[int, np.ndarray]]] = {}
    for index, frames in features:
        group = pending.setdefault(len(frames), [])
        group.append((index, frames))
        if len(group) == size:
            yield [i for i, _ in group], np.stack([f for _, f in group])
            del pending[len(frames)]
    for group in pending.values():
        yield [i for i, _ in group], np.stack([f for _, f in group])


def _padded(samples: np.ndarray, start: int, stop: int) -> np.ndarray:
    """samples[start:stop], zero-padded when the range runs past the end of the audio."""
    import numpy as np

    piece = samples[start:stop]
    return piece if len(piece) == stop - start else np.pad(piece, (0, stop - start - len(piece)))


def _frames(features: np.ndarray, begin: int, frames: int) -> np.ndarray:
    """features[begin:begin + frames], zero-padded to exactly `frames` rows when it runs past the end."""
    import numpy as np

    piece = features[begin : begin + frames]
    return piece if len(piece) == frames else np.pad(piece, ((0, frames - len(piece)), (0, 0)))


# --- 4. clustering --------------------------------------------------------------------------------------


def cluster_windows(embeddings: np.ndarray, windows: list[Window], num_speakers: int | None,
                    count_threshold: float = speaker_embedding.CamPlusPlus.count_threshold) -> np.ndarray:
    """A cluster number (0..num_speakers-1) per window, shape (len(windows),).

    Agglomerative clustering (cosine distance, average linkage; MODELS.md) runs on the reliable windows
    (≥ MIN_RELIABLE_S; all windows when too few are), evenly subsampled to MAX_CLUSTERED so that memory
    and time stay bounded on long sessions; then every window is assigned to the nearest centroid, twice
    (a k-means refinement that also absorbs short, noisy windows)."""
    import numpy as np
    from sklearn.cluster import AgglomerativeClustering

    wanted = num_speakers if num_speakers is not None else MAX_SPEAKERS
    count = min(wanted, len(windows))
    if count < 2:
        return np.zeros(len(windows), dtype=int)
    durations = np.array([w.duration_s for w in windows])
    chosen = np.flatnonzero(durations >= MIN_RELIABLE_S)
    if len(chosen) < max(count, 2 * wanted):
        chosen = np.arange(len(windows))
    chosen = chosen[:: math.ceil(len(chosen) / MAX_CLUSTERED)]
    if num_speakers is None:
        count = estimate_speakers(embeddings[chosen], count_threshold)
        if count < 2:
            return np.zeros(len(windows), dtype=int)
    clustering = AgglomerativeClustering(n_clusters=count, metric="cosine", linkage=LINKAGE)
    labels = np.zeros(len(windows), dtype=int)
    labels[chosen] = clustering.fit_predict(embeddings[chosen])
    centroids = _centroids(embeddings[chosen], labels[chosen], count)
    agglomerative = labels.copy()
    for _ in range(2):
        labels = np.argmax(embeddings @ centroids.T, axis=1)
        centroids = _centroids(embeddings, labels, count, fallback=centroids)
    lost = set(range(count)) - set(labels.tolist())
    if lost:  # the k-means steps emptied a cluster: its clustered windows keep it
        keep = np.zeros(len(windows), dtype=bool)
        keep[chosen] = np.isin(agglomerative[chosen], sorted(lost))
        labels[keep] = agglomerative[keep]
    return labels


def estimate_speakers(embeddings: np.ndarray, threshold: float = speaker_embedding.CamPlusPlus.count_threshold,
                      max_speakers: int = MAX_SPEAKERS) -> int:
    """How many speakers the embeddings hold (1..max_speakers): agglomerative clustering (cosine, LINKAGE)
    cut at cosine distance `threshold` (the embedding model's count_threshold), counting only the clusters that
    hold at least MIN_CLUSTER_SHARE of the windows (stray windows — noise, laughter, overlap — are not speakers)."""
    import numpy as np
    from sklearn.cluster import AgglomerativeClustering

    if len(embeddings) < 2:
        return 1
    labels = AgglomerativeClustering(n_clusters=None, distance_threshold=threshold, metric="cosine",
                                     linkage=LINKAGE).fit_predict(embeddings)
    sizes = np.bincount(labels)
    speakers = int(np.sum(sizes >= max(2, MIN_CLUSTER_SHARE * len(embeddings))))
    return min(max_speakers, max(1, speakers))


def resegment(embeddings: np.ndarray, windows: list[Window], labels: np.ndarray) -> np.ndarray:
    """Viterbi resegmentation: an HMM over the windows in time order whose states are the clusters, emission
    log-likelihood HMM_SHARPNESS × cosine similarity to each centroid, and HMM_SWITCH_PENALTY for changing
    speaker between overlapping windows (half of it across a pause). Removes isolated flips that the
    independent per-window assignment leaves; returns the new labels, shape (len(windows),)."""
    import numpy as np

    count = int(labels.max()) + 1 if len(labels) else 0
    if count < 2:
        return labels
    centroids = _centroids(embeddings, labels, count)
    scores = HMM_SHARPNESS * (embeddings @ centroids.T)
    back = np.zeros(scores.shape, dtype=int)
    total = scores[0].copy()
    for index in range(1, len(windows)):
        contiguous = windows[index].start_s < windows[index - 1].end_s
        penalty = HMM_SWITCH_PENALTY if contiguous else HMM_SWITCH_PENALTY / 2
        moves = total[None, :] - penalty * (1 - np.eye(count))  # [to, from]
        back[index] = np.argmax(moves, axis=1)
        total = moves[np.arange(count), back[index]] + scores[index]
    path = np.zeros(len(windows), dtype=int)
    path[-1] = int(np.argmax(total))
    for index in range(len(windows) - 1, 0, -1):
        path[index - 1] = back[index, path[index]]
    return path


def _centroids(
    embeddings: np.ndarray, labels: np.ndarray, count: int, fallback: np.ndarray | None = None
) -> np.ndarray:
    """L2-normalised mean embedding per cluster, shape (count, dim); an empty cluster keeps its fallback."""
    import numpy as np

    centroids = np.zeros((count, embeddings.shape[1]), dtype=np.float32)
    for cluster in range(count):
        members = embeddings[labels == cluster]
        if len(members):
            mean = members.mean(axis=0)
            centroids[cluster] = mean / (np.linalg.norm(mean) or 1.0)
        elif fallback is not None:
            centroids[cluster] = fallback[cluster]
    return centroids


# --- 5. words -------------------------------------------------------------------------------------------


def vote_words(words: list[Word], windows: list[Window], window_labels: Any) -> list[int]:
    """Each word's cluster: the label with the most window overlap (s) with the word; a word that no
    window overlaps takes the label of the window nearest to it."""
    import bisect

    starts = [w.start_s for w in windows]
    longest = max(w.duration_s for w in windows)
    labels: list[int] = []
    for word in words:
        votes: dict[int, float] = {}
        first = bisect.bisect_left(starts, word.start_s - longest)
        for position in range(first, bisect.bisect_right(starts, word.end_s)):
            window = windows[position]
            overlap = min(word.end_s, window.end_s) - max(word.start_s, window.start_s)
            if overlap > 0:
                label = int(window_labels[position])
                votes[label] = votes.get(label, 0.0) + overlap
        if not votes:
            votes[int(window_labels[_nearest_window(word, windows)])] = 1.0
        labels.append(max(votes, key=votes.__getitem__))
    return labels


def _nearest_window(word: Word, windows: list[Window]) -> int:
    """Index of the window whose middle is nearest to the word's middle."""
    middle = (word.start_s + word.end_s) / 2
    return min(range(len(windows)), key=lambda i: abs((windows[i].start_s + windows[i].end_s) / 2 - middle))


# --- 6. smoothing ---------------------------------------------------------------------------------------


@dataclass
class _Run:
    """Consecutive words [first, stop) with one label."""

    label: int
    first: int
    stop: int


def _runs(labels: list[int]) -> list[_Run]:
    runs: list[_Run] = []
    for position, label in enumerate(labels):
        if runs and runs[-1].label == label:
            runs[-1].stop = position + 1
        else:
            runs.append(_Run(label, position, position + 1))
    return runs


def _gap_before(words: list[Word], position: int) -> float:
    """Pause (s) between word position-1 and word position; infinite at the edges."""
    if position <= 0 or position >= len(words):
        return math.inf
    return words[position].start_s - words[position - 1].end_s


def smooth_turns(words: list[Word], labels: list[int]) -> list[int]:
    """Remove implausibly short speaker runs, then snap each turn change to the nearby longest pause."""
    labels = _absorb_short_runs(words, list(labels))
    return _snap_boundaries(words, labels)


def _is_short(words: list[Word], run: _Run) -> bool:
    duration_s = words[run.stop - 1].end_s - words[run.first].start_s
    return run.stop - run.first <= SHORT_RUN_WORDS or duration_s < SHORT_RUN_S


def _absorb_short_runs(words: list[Word], labels: list[int]) -> list[int]:
    """Relabel short runs that interrupt one speaker (or hang on to the edge of a neighbour's speech),
    repeating until nothing changes."""
    changed = True
    while changed:
        changed = False
        runs = _runs(labels)
        for position, run in enumerate(runs):
            new_label = _absorbing_label(words, runs, position) if _is_short(words, run) else None
            if new_label is not None:
                labels[run.first : run.stop] = [new_label] * (run.stop - run.first)
                changed = True
                break
    return labels


def _absorbing_label(words: list[Word], runs: list[_Run], position: int) -> int | None:
    """The label a short run should take, or None to keep it."""
    run = runs[position]
    before, after = _gap_before(words, run.first), _gap_before(words, run.stop)
    previous = runs[position - 1] if position > 0 else None
    following = runs[position + 1] if position + 1 < len(runs) else None
    if previous and following:
        if previous.label == following.label and min(before, after) < ISOLATED_GAP_S:
            return previous.label
        return None
    neighbour, gap = (previous, before) if previous else (following, after)
    if neighbour is not None and gap < EDGE_JOIN_GAP_S:
        return neighbour.label
    return None


def _snap_boundaries(words: list[Word], labels: list[int]) -> list[int]:
    """Move each turn change to the longest pause among the SNAP_WORDS word gaps on either side, when that
    pause is longer by SNAP_MIN_GAIN_S; each run keeps at least one word."""
    runs = _runs(labels)
    for left, right in zip(runs, runs[1:]):
        boundary = right.first
        candidates = range(max(left.first + 1, boundary - SNAP_WORDS), min(right.stop - 1, boundary + SNAP_WORDS) + 1)
        best = max(candidates, key=lambda p: _gap_before(words, p), default=boundary)
        if _gap_before(words, best) > _gap_before(words, boundary) + SNAP_MIN_GAIN_S:
            first, stop = min(best, boundary), max(best, boundary)
            labels[first:stop] = [left.label if best > boundary else right.label] * (stop - first)
            left.stop, right.first = best, best
    return labels


def number_by_appearance(labels: list[int]) -> list[int]:
    """Renumber cluster labels 0, 1, … in order of first appearance: [4, 4, 1, 4] → [0, 0, 1, 0]."""
    order: dict[int, int] = {}
    return [order.setdefault(label, len(order)) for label in labels]
