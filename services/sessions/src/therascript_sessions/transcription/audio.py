"""Media files by content: probe them with ffprobe, decode them with ffmpeg.

Uploads are untrusted. Both tools are therefore run with only the `file` protocol and an allow-list of
audio/video container demuxers, so a crafted playlist (HLS, concat, …) can never make them open other files
or URLs, and a text file is "not media" even when some demuxer would accept it.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover - typing only
    import numpy as np

ALLOWED_DEMUXERS = (
    "wav,w64,aiff,caf,au,mp3,aac,flac,ogg,mov,matroska,asf,avi,flv,amr,mpegts,mpeg"
)
"""FFmpeg demuxers accepted for uploads: the usual audio formats and the video containers sessions are
recorded in (mov = mp4/m4a/3gp, matroska = mkv/webm, asf = wma/wmv, mpeg = mpg)."""

_INPUT_GUARDS = ("-protocol_whitelist", "file", "-format_whitelist", ALLOWED_DEMUXERS)
PROBE_TIMEOUT_S = 30.0
DECODE_TIMEOUT_S = 1800.0


@dataclass(frozen=True)
class MediaInfo:
    """What ffprobe says about a file. duration_s: seconds (0.0 when unknown); has_audio: at least one
    audio stream; format_name: FFmpeg's demuxer name ("wav", "mov,mp4,m4a,3gp,3g2,mj2", …);
    codec: the first audio stream's codec name ("pcm_s16le", "mp3", "aac", …), None without audio."""

    duration_s: float
    has_audio: bool
    format_name: str
    codec: str | None


def probe(path: Path, timeout_s: float = PROBE_TIMEOUT_S) -> MediaInfo:
    """Inspect `path` by its content. Raises FileNotFoundError when it does not exist, ValueError when it
    is not a media file of an allowed container (or ffprobe gives up within `timeout_s` seconds)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(path)
    command = ["ffprobe", "-v", "error", *_INPUT_GUARDS, "-print_format", "json", "-show_format",
               "-show_streams", _input_url(path)]
    try:
        done = subprocess.run(command, capture_output=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired as error:
        raise ValueError(f"not a readable media file: ffprobe timed out after {timeout_s:g} s") from error
    if done.returncode != 0:
        reason = done.stderr.decode(errors="replace").strip().splitlines()
        raise ValueError(f"not a media file: {reason[-1] if reason else 'ffprobe failed'}")
    return _media_info(json.loads(done.stdout or b"{}"))


def has_audio_packets(path: Path, timeout_s: float = PROBE_TIMEOUT_S) -> bool:
    """True when the first audio stream of `path` holds at least one packet (ffprobe reads one packet, not
    the file): tells a recording whose container gives no duration (a browser's WebM) from a header-only one
    (a WAV of 0 samples). Raises ValueError when ffprobe fails or times out."""
    command = ["ffprobe", "-v", "error", *_INPUT_GUARDS, "-read_intervals", "%+#1", "-select_streams", "a:0",
               "-show_entries", "packet=pts", "-of", "csv=p=0", _input_url(Path(path))]
    try:
        done = subprocess.run(command, capture_output=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired as error:
        raise ValueError(f"not a readable media file: ffprobe timed out after {timeout_s:g} s") from error
    if done.returncode != 0:
        raise ValueError("not a readable media file")
    return bool(done.stdout.strip())


def _media_info(report: dict) -> MediaInfo:
    """MediaInfo from ffprobe's JSON report. Raises ValueError when it lists no streams."""
    streams = report.get("streams") or []
    container = report.get("format") or {}
    if not streams or not container:
        raise ValueError("not a media file: no streams")
    audio = [s for s in streams if s.get("codec_type") == "audio"]
    durations = [container.get("duration")] + [s.get("duration") for s in streams]
    return MediaInfo(
        duration_s=max((_seconds(d) for d in durations), default=0.0),
        has_audio=bool(audio),
        format_name=str(container.get("format_name", "")),
        codec=audio[0].get("codec_name") if audio else None,
    )


def _seconds(value: object) -> float:
    """ffprobe's duration string ("12.34", "N/A" or absent) in seconds; 0.0 when unknown."""
    try:
        return max(0.0, float(value))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0.0


def decode_mono(path: Path, sample_rate: int = 16000, timeout_s: float = DECODE_TIMEOUT_S) -> np.ndarray:
    """Decode the first audio stream of `path` to mono float32 samples in -1..1 at `sample_rate` Hz,
    with no trimming: sample i is at i / sample_rate seconds of the original. Shape (n_samples,).
    Memory: 4 bytes per sample (an hour at 16 kHz is 230 MB). Raises FileNotFoundError, or ValueError
    when ffmpeg cannot decode it."""
    import numpy as np

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(path)
    command = ["ffmpeg", "-nostdin", "-v", "error", *_INPUT_GUARDS, "-i", _input_url(path), "-map", "0:a:0",
               "-ac", "1", "-ar", str(sample_rate), "-f", "f32le", "-"]
    try:
        done = subprocess.run(command, capture_output=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired as error:
        raise ValueError(f"ffmpeg did not decode {path.name} within {timeout_s:g} s") from error
    if done.returncode != 0:
        reason = done.stderr.decode(errors="replace").strip().splitlines()
        raise ValueError(f"cannot decode audio: {reason[-1] if reason else 'ffmpeg failed'}")
    return np.frombuffer(done.stdout, dtype=np.float32).copy()


def stream_mono(
    path: Path, block_s: float, sample_rate: int = 16000, timeout_s: float = DECODE_TIMEOUT_S
) -> Iterator[np.ndarray]:
    """Decode like `decode_mono`, but yield the samples in consecutive blocks of `block_s` seconds (the last
    one shorter), so memory stays at one block whatever the length of the recording. Concatenated, the
    blocks are exactly `decode_mono`'s samples. Raises FileNotFoundError, or ValueError (at the end of the
    stream) when ffmpeg cannot decode it or runs past `timeout_s`."""
    import numpy as np

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(path)
    command = ["ffmpeg", "-nostdin", "-v", "error", *_INPUT_GUARDS, "-i", _input_url(path), "-map", "0:a:0",
               "-ac", "1", "-ar", str(sample_rate), "-f", "f32le", "-"]
    block_bytes = max(4, int(block_s * sample_rate) * 4)
    with tempfile.TemporaryFile() as errors, subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors) as ffmpeg:
        assert ffmpeg.stdout is not None
        deadline = time.monotonic() + timeout_s
        try:
            while True:
                data = ffmpeg.stdout.read(block_bytes)
                if not data:
                    break
                if time.monotonic() > deadline:
                    raise ValueError(f"ffmpeg did not decode {path.name} within {timeout_s:g} s")
                usable = len(data) - len(data) % 4
                yield np.frombuffer(data[:usable], dtype=np.float32).copy()
        finally:
            if ffmpeg.poll() is None:
                ffmpeg.kill()
        returncode = ffmpeg.wait()
        if returncode != 0:
            errors.seek(0)
            reason = errors.read().decode(errors="replace").strip().splitlines()
            raise ValueError(f"cannot decode audio: {reason[-1] if reason else 'ffmpeg failed'}")


def _input_url(path: Path) -> str:
    """An explicit file: URL, so a name like "concat:a|b" or "-x" is never read as a protocol or option."""
    return "file:" + str(path.resolve())
