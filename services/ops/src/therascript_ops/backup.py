"""Export, import, reset and reindex of all data, orchestrated over each owner's Admin RPCs.

Archive format (version 1): an uncompressed POSIX (pax) TAR holding, in this order, every owner's members as
its Admin.ExportData streams them (`<service>/db/<table>.jsonl`, `<service>/files/<folder>/<path>`), then
`manifest.json`:

    {"format": "therascript-backup", "format_version": 1, "created_at_ms": ...,
     "services": {"<service>": {"schema_version": "<Alembic head>", "counts": {"<table>": rows, "files": n,
                                "file_bytes": n}}},
     "absent": {"<service>": "<why its data is not in the archive>"},
     "members": {"<name>": {"size": bytes, "sha256": hex}}}

The manifest is last because each member's sha256 is known only once it has been streamed; an archive without
it (a cut-off download) is refused. Export writes the TAR headers with `tarfile.TarInfo.tobuf` and streams
the data through: neither the archive nor a member is held whole in memory or written to disk by ops.

Import reads the upload as a stream with `tarfile` (mode `r|*`, so a gzip/bz2/xz archive is read too),
checks every member with tarfile's `data` extraction filter plus stricter rules of its own (regular files
only: no links, devices, FIFOs; names `manifest.json` or `<known service>/...`; no duplicates; member
count, per-member and total size limits taken from the headers BEFORE any data is read), writes them to a
staging folder while hashing them, then checks the manifest (format and version, every member listed with
its size and sha256, nothing extra, each service's schema version = the live one's). Only then each owner
stages its part (Admin.StageImport validates it and tries it in a rolled-back transaction), and only when
every owner has staged, each one commits. A failure before the commits changes nothing anywhere.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import shutil
import tarfile
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from therascript.common.v1 import admin_pb2
from therascript_common.errors import Conflict, DomainError, FailedPrecondition, InvalidArgument, TooLarge

from .owners import Owner, Owners, owner_error
from .settings import OpsSettings

log = logging.getLogger(__name__)

FORMAT = "therascript-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
MANIFEST_MAX_BYTES = 64 * 1024 * 1024
PIECE_BYTES = 1024 * 1024
REFUSAL_DRAIN_BYTES = 64 * 1024 * 1024


@dataclass
class Outcome:
    """What an admin operation did: a message, per-owner error lines, counts."""

    message: str
    errors: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    transcripts_indexed: int = 0
    messages_indexed: int = 0
    search_configured: bool = True


def _tar_header(name: str, size: int, mtime_s: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode, info.type = size, mtime_s, 0o644, tarfile.REGTYPE
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def _padding(size: int) -> bytes:
    remainder = size % tarfile.BLOCKSIZE
    return tarfile.NUL * (tarfile.BLOCKSIZE - remainder) if remainder else b""


def _drain(reader: io.RawIOBase, limit: int) -> None:
    """Reads and drops up to `limit` more bytes of a refused upload, so that a small one is answered after it has
    been received whole (a status sent while the client still streams can reach it as INTERNAL); a larger
    one is answered at the limit (the gateway then closes its connection)."""
    remaining = limit
    try:
        while remaining > 0 and (block := reader.read(min(PIECE_BYTES, remaining))):
            remaining -= len(block)
    except (DomainError, OSError, ValueError):
        pass


class _StreamReader(io.RawIOBase):
    """A read-only file over an iterator of byte chunks (the gRPC upload), for tarfile's stream mode;
    TooLarge once more than `max_bytes` arrive."""

    def __init__(self, chunks: Iterable[bytes], max_bytes: int) -> None:
        self._chunks = iter(chunks)
        self._buffer = b""
        self._max_bytes = max_bytes
        self.received = 0

    def readable(self) -> bool:
        return True

    def readinto(self, target) -> int:  # type: ignore[override]
        while not self._buffer:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self.received += len(chunk)
            if self.received > self._max_bytes:
                raise TooLarge(f"The backup file is over the limit of {self._max_bytes} bytes.")
            self._buffer = chunk
        size = min(len(target), len(self._buffer))
        target[:size] = self._buffer[:size]
        self._buffer = self._buffer[size:]
        return size


class Backups:
    """The admin operations. One runs at a time (a second one meanwhile is a 409)."""

    def __init__(self, owners: Owners, settings: OpsSettings) -> None:
        self._owners = owners
        self._settings = settings
        self._busy = threading.Lock()

    # --- helpers -------------------------------------------------------------------------------------
    def _exclusive(self):
        if not self._busy.acquire(blocking=False):
            raise Conflict("Another export, import, reset or reindex is running; try again when it ends.")
        return self._busy

    def _present(self) -> tuple[dict[str, tuple[Owner, admin_pb2.AdminDescription]], dict[str, str]]:
        """Owners that implement Admin (with their description) and those that do not (with why).
        An owner that is down raises Unavailable: no admin operation runs on part of the data."""
        present: dict[str, tuple[Owner, admin_pb2.AdminDescription]] = {}
        absent: dict[str, str] = {}
        for owner in self._owners:
            description = owner.describe(self._settings.rpc_timeout_s)
            if description is None:
                absent[owner.name] = "the service does not implement the Admin contract yet"
            else:
                present[owner.name] = (owner, description)
        return present, absent

    # --- export --------------------------------------------------------------------------------------
    def export(self) -> Iterator[bytes]:
        """The archive as byte chunks (see the module docstring). Every owner is asked first, so an owner that
        is down fails the export before its first byte (Unavailable); one that fails mid-way ends the stream
        with its error (the client's download is then incomplete, without a manifest)."""
        lock = self._exclusive()
        try:
            present, absent = self._present()
            members: dict[str, dict] = {}
            services: dict[str, dict] = {}
            offset = 0
            for name, (owner, _) in present.items():
                current: str | None = None
                digest = hashlib.sha256()
                remaining = size = 0
                try:
                    for piece in owner.admin.ExportData(admin_pb2.AdminEmpty(), timeout=self._settings.admin_timeout_s):
                        kind = piece.WhichOneof("piece")
                        if kind == "description":
                            services[name] = {"schema_version": piece.description.schema_version,
                                              "counts": dict(sorted(piece.description.counts.items()))}
                        elif kind == "member":
                            header = _tar_header(piece.member.name, piece.member.size, piece.member.mtime_s)
                            current, size, remaining, digest = piece.member.name, piece.member.size, piece.member.size, \
                                hashlib.sha256()
                            offset += len(header)
                            yield header
                            if remaining == 0:
                                members[current] = {"size": 0, "sha256": digest.hexdigest()}
                        else:
                            if current is None or len(piece.data) > remaining:
                                raise InvalidArgument(f"{name}: its export sent data outside a member.")
                            digest.update(piece.data)
                            remaining -= len(piece.data)
                            offset += len(piece.data)
                            yield piece.data
                            if remaining == 0:
                                members[current] = {"size": size, "sha256": digest.hexdigest()}
                                pad = _padding(size)
                                offset += len(pad)
                                yield pad
                except grpc.RpcError as error:
                    raise owner_error(name, error) from None
                if remaining:
                    raise InvalidArgument(f"{name}: its export ended inside member {current!r}.")
            manifest = json.dumps({"format": FORMAT, "format_version": FORMAT_VERSION,
                                   "created_at_ms": int(time.time() * 1000), "services": services,
                                   "absent": absent, "members": members}, indent=1, sort_keys=False).encode()
            header = _tar_header(MANIFEST, len(manifest), int(time.time()))
            end = tarfile.NUL * (2 * tarfile.BLOCKSIZE)
            offset += len(header) + len(manifest) + len(_padding(len(manifest))) + len(end)
            record_pad = (-offset) % tarfile.RECORDSIZE
            yield header + manifest + _padding(len(manifest)) + end + tarfile.NUL * record_pad
        finally:
            lock.release()

    # --- import --------------------------------------------------------------------------------------
    def import_archive(self, chunks: Iterable[bytes]) -> Outcome:
        """Validates the streamed archive completely, then replaces each owner's data with its part.
        Errors (nothing changed): InvalidArgument (not a TAR, unsafe or unexpected member, bad manifest,
        checksum or size mismatch, newer format version), TooLarge (upload, member, total or member-count
        limits), FailedPrecondition (a schema version differs from the running service's), Unavailable (an
        owner is down), Conflict (another admin operation is running)."""
        lock = self._exclusive()
        staging = self._settings.staging_dir / uuid.uuid4().hex
        try:
            staging.mkdir(parents=True)
            hashes = self._receive(chunks, staging)
            manifest = self._check_manifest(staging, hashes)
            present, _ = self._present()
            parts = self._parts(manifest, present)
            staged: list[tuple[Owner, str]] = []
            try:
                for owner, part in parts:
                    reply = self._stage(owner, manifest, part, staging)
                    staged.append((owner, reply.import_id))
                    expected = {k: v for k, v in manifest["services"][owner.name]["counts"].items()}
                    if {k: expected.get(k) for k in reply.counts} != dict(reply.counts):
                        raise InvalidArgument(f"{owner.name}: the backup's rows or files do not match the manifest's "
                                              f"counts.")
            except BaseException:
                for owner, import_id in staged:
                    self._discard(owner, import_id)
                raise
            outcome = Outcome("Import successful. Data has been restored.")
            for index, (owner, import_id) in enumerate(staged):
                try:
                    reply = owner.admin.CommitImport(admin_pb2.StagedImportRef(import_id=import_id),
                                                     timeout=self._settings.admin_timeout_s)
                    outcome.counts.update({f"{owner.name}.{k}": v for k, v in reply.counts.items()})
                except grpc.RpcError as error:
                    done = [o.name for o, _ in staged[:index]]
                    for later, later_id in staged[index + 1:]:
                        self._discard(later, later_id)
                    raise owner_error(owner.name, error) from DomainError(
                        f"import committed for {done} only")
            outcome.errors.extend(self._reindex_quietly())
            return outcome
        finally:
            shutil.rmtree(staging, ignore_errors=True)
            lock.release()

    def _receive(self, chunks: Iterable[bytes], staging: Path) -> dict[str, tuple[int, str]]:
        """Extracts the archive's members below `staging/members` (names checked by tarfile's `data` filter and
        the rules above); returns name → (size, sha256)."""
        settings = self._settings
        members_dir = staging / "members"
        members_dir.mkdir()
        reader = _StreamReader(chunks, settings.import_max_bytes)
        hashes: dict[str, tuple[int, str]] = {}
        total = 0
        allowed_roots = {*(o.name for o in self._owners)}
        try:
            with tarfile.open(fileobj=io.BufferedReader(reader, PIECE_BYTES), mode="r|*") as archive:
                for count, member in enumerate(archive, start=1):
                    if count > settings.import_max_members:
                        raise TooLarge(f"The backup has more than {settings.import_max_members} members.")
                    try:
                        safe = tarfile.data_filter(member, str(members_dir))
                    except tarfile.FilterError as error:
                        raise InvalidArgument(f"Unsafe member {member.name!r} in the backup: {error}") from None
                    if safe.isdir():
                        continue
                    if not safe.isreg():
                        raise InvalidArgument(f"Member {member.name!r} is not a regular file (links, devices and "
                                              f"FIFOs are refused).")
                    name = safe.name
                    if name != MANIFEST and name.split("/", 1)[0] not in allowed_roots:
                        raise InvalidArgument(f"Unexpected member {name!r} in the backup.")
                    if name in hashes:
                        raise InvalidArgument(f"Member {name!r} appears twice in the backup.")
                    limit = MANIFEST_MAX_BYTES if name == MANIFEST else settings.import_max_member_bytes
                    if safe.size > limit:
                        raise TooLarge(f"Member {name!r} is {safe.size} bytes, over the limit of {limit}.")
                    total += safe.size
                    if total > settings.import_max_total_bytes:
                        raise TooLarge(f"The backup's members are over {settings.import_max_total_bytes} bytes in all.")
                    hashes[name] = self._extract(archive, member, members_dir / name)
            while reader.read(PIECE_BYTES):   # the record padding after the end of the archive: the whole upload is
                pass                          # received before answering (limit still counted)
        except (tarfile.TarError, EOFError, OSError, ValueError) as error:
            _drain(reader, REFUSAL_DRAIN_BYTES)
            raise InvalidArgument(f"The backup is not a readable TAR archive: {error}") from None
        except DomainError as error:
            if not isinstance(error, TooLarge) or "backup file is over" not in error.message:
                _drain(reader, REFUSAL_DRAIN_BYTES)
            raise
        return hashes

    @staticmethod
    def _extract(archive: tarfile.TarFile, member: tarfile.TarInfo, target: Path) -> tuple[int, str]:
        target.parent.mkdir(parents=True, exist_ok=True)
        source = archive.extractfile(member)
        if source is None:
            raise InvalidArgument(f"Member {member.name!r} has no data.")
        digest = hashlib.sha256()
        size = 0
        with target.open("xb") as handle:
            for block in iter(lambda: source.read(PIECE_BYTES), b""):
                digest.update(block)
                handle.write(block)
                size += len(block)
        return size, digest.hexdigest()

    @staticmethod
    def _check_manifest(staging: Path, hashes: dict[str, tuple[int, str]]) -> dict:
        path = staging / "members" / MANIFEST
        if MANIFEST not in hashes:
            raise InvalidArgument("The backup has no manifest.json (not a Therascript backup, or cut off).")
        try:
            manifest = json.loads(path.read_bytes())
        except ValueError:
            raise InvalidArgument("The backup's manifest.json is not JSON.") from None
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise InvalidArgument("The backup's manifest is not a Therascript backup manifest.")
        version = manifest.get("format_version")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise InvalidArgument("The backup's manifest has no valid format_version.")
        if version > FORMAT_VERSION:
            raise InvalidArgument(f"The backup has format version {version}, newer than this system's "
                                  f"{FORMAT_VERSION}: upgrade Therascript before importing it.")
        listed, services = manifest.get("members"), manifest.get("services")
        if not isinstance(listed, dict) or not isinstance(services, dict):
            raise InvalidArgument("The backup's manifest lacks its members or services.")
        present = {name for name in hashes if name != MANIFEST}
        if set(listed) != present:
            missing, extra = sorted(set(listed) - present), sorted(present - set(listed))
            raise InvalidArgument("The backup's members do not match its manifest.",
                                  {"missing": missing[:20], "unlisted": extra[:20]})
        for name, entry in listed.items():
            if not isinstance(entry, dict) or (entry.get("size"), entry.get("sha256")) != hashes[name]:
                raise InvalidArgument(f"Checksum or size mismatch for {name!r}: the backup is damaged.")
        for service, entry in services.items():
            if (not isinstance(entry, dict) or not isinstance(entry.get("schema_version"), str)
                    or not isinstance(entry.get("counts"), dict)):
                raise InvalidArgument(f"The manifest's entry for {service!r} is malformed.")
        for name in present:
            if name.split("/", 1)[0] not in services:
                raise InvalidArgument(f"Member {name!r} belongs to no service of the manifest.")
        return manifest

    def _parts(self, manifest: dict, present: dict[str, tuple[Owner, admin_pb2.AdminDescription]]
               ) -> list[tuple[Owner, list[str]]]:
        """(owner, its member names in archive order) for every service of the manifest, after checking the
        service is here and at the same schema version."""
        parts = []
        for service, entry in manifest["services"].items():
            if service not in present:
                raise FailedPrecondition(f"The backup holds data of {service!r}, which cannot import it here.")
            owner, description = present[service]
            if entry["schema_version"] != description.schema_version:
                raise FailedPrecondition(
                    f"{service}: the backup's schema version {entry['schema_version']!r} differs from the running "
                    f"service's {description.schema_version!r}; import it into a system of the same version.")
            names = [n for n in manifest["members"] if n.split("/", 1)[0] == service]
            parts.append((owner, names))
        return parts

    def _stage(self, owner: Owner, manifest: dict, names: list[str], staging: Path) -> admin_pb2.StagedImport:
        def pieces() -> Iterator[admin_pb2.ImportPiece]:
            yield admin_pb2.ImportPiece(header=admin_pb2.ImportHeader(
                schema_version=manifest["services"][owner.name]["schema_version"],
                format_version=manifest["format_version"]))
            for name in names:
                path = staging / "members" / name
                with path.open("rb") as handle:
                    size = path.stat().st_size
                    yield admin_pb2.ImportPiece(member=admin_pb2.MemberHeader(name=name, size=size,
                                                                              mtime_s=int(time.time())))
                    for block in iter(lambda: handle.read(PIECE_BYTES), b""):
                        yield admin_pb2.ImportPiece(data=block)

        try:
            return owner.admin.StageImport(pieces(), timeout=self._settings.admin_timeout_s)
        except grpc.RpcError as error:
            raise owner_error(owner.name, error) from None

    def _discard(self, owner: Owner, import_id: str) -> None:
        try:
            owner.admin.DiscardImport(admin_pb2.StagedImportRef(import_id=import_id), timeout=self._settings.rpc_timeout_s)
        except grpc.RpcError as error:
            log.warning("could not discard %s's staged import %s: %s", owner.name, import_id, error.code())

    # --- reset and reindex ---------------------------------------------------------------------------
    def reset(self) -> Outcome:
        """Every owner empties its data (tables, files, queued jobs); the search indexes are rebuilt (empty).
        An owner that fails is reported in `errors` (the others are still reset)."""
        lock = self._exclusive()
        try:
            present, absent = self._present()
            outcome = Outcome("All data has been reset.")
            for name, (owner, _) in present.items():
                try:
                    reply = owner.admin.ResetData(admin_pb2.AdminEmpty(), timeout=self._settings.admin_timeout_s)
                    outcome.counts.update({f"{name}.{k}": v for k, v in reply.counts.items()})
                except grpc.RpcError as error:
                    outcome.errors.append(owner_error(name, error).message)
            if absent:   # a service without the contract (analysis before its issue) holds no data to reset
                outcome.message += " Not included: " + "; ".join(f"{n} ({why})" for n, why in absent.items()) + "."
            outcome.errors.extend(self._reindex_quietly())
            if outcome.errors:
                outcome.message = "Reset finished with errors."
            return outcome
        finally:
            lock.release()

    def reindex(self) -> Outcome:
        """Every owner rebuilds its search documents from its database."""
        lock = self._exclusive()
        try:
            return self._reindex()
        finally:
            lock.release()

    def _reindex(self) -> Outcome:
        present, _ = self._present()
        outcome = Outcome("Search indexes rebuilt.", search_configured=False)
        for name, (owner, _) in present.items():
            try:
                reply = owner.admin.RebuildSearchIndex(admin_pb2.AdminEmpty(), timeout=self._settings.admin_timeout_s)
            except grpc.RpcError as error:
                outcome.errors.append(owner_error(name, error).message)
                continue
            if reply.configured:
                outcome.search_configured = True
                outcome.transcripts_indexed += reply.transcripts_indexed
                outcome.messages_indexed += reply.messages_indexed
                outcome.errors.extend(reply.errors)
        if not outcome.search_configured:
            outcome.message = "Search is not configured: no service has a search server, nothing was reindexed."
            outcome.errors.append("search is not configured")
        return outcome

    def _reindex_quietly(self) -> list[str]:
        """The errors of a reindex after an import or reset ('not configured' is not one)."""
        try:
            outcome = self._reindex()
        except DomainError as error:
            return [f"search index not rebuilt: {error.message}"]
        return [] if not outcome.search_configured else outcome.errors
