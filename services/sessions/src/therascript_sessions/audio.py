"""Session audio files: where they live, their content type, reading byte ranges, deleting them.

Files live in `<data_dir>/uploads/` under server-chosen names (`<sessionId>-<ms><ext>`); clients can
never set `audioPath` (original §10.3), and every path is checked to stay inside the folder.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from therascript_common.errors import NotFound

from . import outbox
from .sessions import require_session
from .storage.database import Database

READ_CHUNK_BYTES = 256 * 1024

# Extension → content type for what uploads may contain (video containers included, which the
# original served as application/octet-stream, §10 perf 7). Registered with the stdlib table.
CONTENT_TYPES = {
    ".wav": "audio/wav", ".mp3": "audio/mpeg", ".m4a": "audio/mp4", ".aac": "audio/aac",
    ".flac": "audio/flac", ".ogg": "audio/ogg", ".oga": "audio/ogg", ".opus": "audio/ogg",
    ".weba": "audio/webm", ".amr": "audio/amr", ".aiff": "audio/aiff", ".wma": "audio/x-ms-wma",
    ".mp4": "video/mp4", ".m4v": "video/mp4", ".mov": "video/quicktime", ".webm": "video/webm",
    ".mkv": "video/x-matroska", ".avi": "video/x-msvideo", ".flv": "video/x-flv", ".wmv": "video/x-ms-wmv",
    ".mpg": "video/mpeg", ".mpeg": "video/mpeg", ".ts": "video/mp2t", ".3gp": "video/3gpp",
}
for _ext, _type in CONTENT_TYPES.items():
    mimetypes.add_type(_type, _ext)


@dataclass(frozen=True)
class AudioFile:
    path: Path
    size_bytes: int
    content_type: str


def content_type_for(name: str) -> str:
    return mimetypes.guess_type(name)[0] or "application/octet-stream"


def resolve_in(folder: Path, name: str) -> Path:
    """`folder/name`, refusing anything that would leave `folder` (NotFound, never a foreign file)."""
    folder = folder.resolve()
    path = (folder / name).resolve()
    if path.parent != folder:
        raise NotFound("Audio file not found.")
    return path


class AudioService:
    def __init__(self, db: Database, uploads_dir: Path, dispatcher: outbox.OutboxDispatcher) -> None:
        self._db = db
        self._uploads_dir = uploads_dir
        self._dispatcher = dispatcher

    def info(self, session_id: int) -> AudioFile:
        """The session's audio file. NotFound when the session has none or the file is missing."""
        with self._db.transaction() as session:
            row = require_session(session, session_id)
            name = row.audio_path
        if not name:
            raise NotFound(f"No audio file for session {session_id}.")
        path = resolve_in(self._uploads_dir, name)
        if not path.is_file():
            raise NotFound(f"Audio file for session {session_id} not found.")
        return AudioFile(path, path.stat().st_size, content_type_for(name))

    def read(self, session_id: int, offset: int, length: int) -> Iterator[bytes]:
        """Bytes [offset, offset+length) in chunks of at most 256 KiB; length 0 = to the end."""
        audio = self.info(session_id)
        remaining = audio.size_bytes - offset if length <= 0 else min(length, audio.size_bytes - offset)
        with audio.path.open("rb") as file:
            file.seek(offset)
            while remaining > 0:
                chunk = file.read(min(READ_CHUNK_BYTES, remaining))
                if not chunk:
                    return
                remaining -= len(chunk)
                yield chunk

    def delete(self, session_id: int) -> None:
        """Deletes only the audio file and clears audioPath; the transcript stays. NotFound without audio."""
        with self._db.transaction() as session:
            row = require_session(session, session_id)
            if not row.audio_path:
                raise NotFound(f"No audio file for session {session_id}.")
            path = resolve_in(self._uploads_dir, row.audio_path)
            row.audio_path = None
            outbox.record(session, outbox.DELETE_FILE, {"path": str(path)})
        self._dispatcher.deliver_pending()
