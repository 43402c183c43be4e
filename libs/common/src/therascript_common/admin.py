"""The Admin contract (proto/therascript/common/v1/admin.proto) over one service's own data, shared by every
data owner so that export/import/reset behave the same everywhere. A service's `admin.py` describes its data
with an `AdminData` (engine, the tables in foreign-key order, its file folders, hooks) and registers an
`AdminServicer`.

Members a service exports (names relative, '/'-separated):
- `<service>/db/<table>.jsonl`: one JSON object per row, keys = column names, rows in primary-key order;
- `<service>/files/<folder>/<relative path>`: every regular file below each of its folders (symlinks skipped).

Import is two-phase: `StageImport` writes the members below `<data_dir>/.admin-staging/<id>/`, checks names,
sizes and rows, and TRIES the whole replacement inside a database transaction that it rolls back (so every
constraint is checked, nothing changes); `CommitImport` then does it for real: files swapped in by rename,
rows replaced in one transaction, files swapped back if that transaction fails.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

import sqlalchemy as sa
from alembic.runtime.migration import MigrationContext

from therascript.common.v1 import admin_pb2 as pb
from therascript.common.v1 import admin_pb2_grpc

from .errors import FailedPrecondition, InvalidArgument, NotFound, TooLarge

log = logging.getLogger(__name__)

PIECE_BYTES = 1024 * 1024
_INSERT_BATCH = 500
_SPOOL_BYTES = 8 * 1024 * 1024


@dataclass
class AdminData:
    """One service's data as the Admin contract sees it.

    - `tables`: the exported and replaced tables, parents before children (insert order);
    - `transient_tables`: emptied on reset and import, never exported (outbox rows, queues);
    - `folders`: name → folder of files owned by the service (e.g. {"uploads": <data>/uploads});
    - `before_change`: runs before a reset or a committed import (e.g. empty the job queue);
    - `after_change`: runs after either (e.g. seed the system templates again);
    - `validate_rows`: extra checks on a staged import: (rows per table, staged file names per folder) →
      raise InvalidArgument;
    - limits in bytes: `max_member_bytes` per member, `max_total_bytes` per staged import.
    """

    service: str
    engine: sa.Engine
    tables: list[sa.Table]
    staging_dir: Path
    transient_tables: list[sa.Table] = field(default_factory=list)
    folders: dict[str, Path] = field(default_factory=dict)
    before_change: Callable[[], None] | None = None
    after_change: Callable[[], None] | None = None
    validate_rows: Callable[[dict[str, list[dict]], dict[str, set[str]]], None] | None = None
    max_member_bytes: int = 4 * 1024**3
    max_total_bytes: int = 256 * 1024**3
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    # --- description -----------------------------------------------------------------------------
    def schema_version(self, connection: sa.Connection | None = None) -> str:
        """The database's Alembic revision ("" when it was never migrated)."""
        if connection is not None:
            return MigrationContext.configure(connection).get_current_revision() or ""
        with self.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision() or ""

    def _files(self) -> Iterator[tuple[str, Path]]:
        """(member name, path) of every regular file in the folders, sorted by name."""
        for folder_name, folder in sorted(self.folders.items()):
            if not folder.is_dir():
                continue
            found: list[tuple[str, Path]] = []
            for root, dirs, files in os.walk(folder):
                dirs[:] = [d for d in dirs if not d.startswith(".admin-")]
                for file_name in files:
                    path = Path(root) / file_name
                    if path.is_symlink() or not path.is_file():
                        continue
                    relative = path.relative_to(folder).as_posix()
                    found.append((f"{self.service}/files/{folder_name}/{relative}", path))
            yield from sorted(found)

    def describe(self, connection: sa.Connection | None = None) -> pb.AdminDescription:
        """Schema version and counts: rows per table, `files` and `file_bytes`."""

        def counts(conn: sa.Connection) -> dict[str, int]:
            result = {t.name: int(conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one())
                      for t in self.tables}
            sizes = [path.stat().st_size for _, path in self._files()]
            result["files"] = len(sizes)
            result["file_bytes"] = sum(sizes)
            return result

        if connection is not None:
            return pb.AdminDescription(service=self.service, schema_version=self.schema_version(connection),
                                       counts=counts(connection))
        with self.engine.connect() as conn:
            return pb.AdminDescription(service=self.service, schema_version=self.schema_version(conn),
                                       counts=counts(conn))

    # --- export ----------------------------------------------------------------------------------
    def export(self) -> Iterator[pb.ExportPiece]:
        """Description, then every table dump and file as members (see the module docstring). The rows come
        from one read transaction (a consistent snapshot); each table is spooled (memory up to 8 MiB, then a
        temporary file) only to learn its size; files are streamed in 1 MiB pieces."""
        self.staging_dir.mkdir(parents=True, exist_ok=True)
        with self.engine.connect() as conn, conn.begin():
            yield pb.ExportPiece(description=self.describe(conn))
            now_s = int(time.time())
            for table in self.tables:
                with tempfile.SpooledTemporaryFile(_SPOOL_BYTES, mode="w+b", dir=str(self.staging_dir)) as spool:
                    order = list(table.primary_key.columns) or list(table.columns)
                    for row in conn.execute(sa.select(table).order_by(*order)).mappings():
                        spool.write(_row_line(row))
                    size = spool.tell()
                    spool.seek(0)
                    yield pb.ExportPiece(member=pb.MemberHeader(name=f"{self.service}/db/{table.name}.jsonl",
                                                                size=size, mtime_s=now_s))
                    yield from _pieces(spool, size)
        for name, path in self._files():
            with path.open("rb") as handle:
                stat = os.fstat(handle.fileno())
                yield pb.ExportPiece(member=pb.MemberHeader(name=name, size=stat.st_size, mtime_s=int(stat.st_mtime)))
                yield from _pieces(handle, stat.st_size)

    # --- import ----------------------------------------------------------------------------------
    def stage(self, pieces: Iterable[pb.ImportPiece]) -> pb.StagedImport:
        """Receives an import (header, then members), validates it completely and returns its id; the live
        data is not changed. Errors: FailedPrecondition (schema version), InvalidArgument, TooLarge."""
        import_id = uuid.uuid4().hex
        root = self._staging(import_id)
        root.mkdir(parents=True)
        try:
            self._receive(pieces, root)
            rows = self._read_rows(root)
            files = {name: {p.relative_to(root / "files" / name).as_posix()
                            for p in (root / "files" / name).rglob("*") if p.is_file()}
                     for name in self.folders if (root / "files" / name).is_dir()}
            if self.validate_rows is not None:
                self.validate_rows(rows, files)
            with self.engine.connect() as conn:
                transaction = conn.begin()
                try:
                    self._replace_rows(conn, rows)   # every constraint checked here ...
                finally:
                    transaction.rollback()          # ... and nothing kept
            counts = {table: len(table_rows) for table, table_rows in rows.items()}
            counts["files"] = sum(len(names) for names in files.values())
            counts["file_bytes"] = sum((root / "files" / n / f).stat().st_size for n, fs in files.items() for f in fs)
            return pb.StagedImport(import_id=import_id, counts=counts)
        except sa.exc.IntegrityError as error:
            shutil.rmtree(root, ignore_errors=True)
            raise InvalidArgument(f"{self.service}: the backup's rows break a constraint: {error.orig}") from None
        except sa.exc.StatementError as error:
            shutil.rmtree(root, ignore_errors=True)
            raise InvalidArgument(f"{self.service}: the backup's rows do not fit the schema: {error.orig}") from None
        except BaseException:
            shutil.rmtree(root, ignore_errors=True)
            raise

    def _staging(self, import_id: str) -> Path:
        if not import_id or not all(c in "0123456789abcdef" for c in import_id):
            raise NotFound(f"{self.service}: unknown staged import {import_id!r}.")
        return self.staging_dir / import_id

    def _receive(self, pieces: Iterable[pb.ImportPiece], root: Path) -> None:
        header: pb.ImportHeader | None = None
        current: BinaryIO | None = None
        remaining = 0
        total = 0
        seen: set[str] = set()
        live_version = self.schema_version()
        try:
            for piece in pieces:
                kind = piece.WhichOneof("piece")
                if kind == "header":
                    header = piece.header
                    if header.schema_version != live_version:
                        raise FailedPrecondition(
                            f"{self.service}: the backup's schema version {header.schema_version!r} differs from "
                            f"this service's {live_version!r}.")
                    continue
                if header is None:
                    raise InvalidArgument(f"{self.service}: the import must start with its header.")
                if kind == "member":
                    if remaining:
                        raise InvalidArgument(f"{self.service}: member ended {remaining} bytes early.")
                    if current is not None:
                        current.close()
                    member = piece.member
                    if member.size < 0 or member.size > self.max_member_bytes:
                        raise TooLarge(f"{self.service}: member {member.name!r} is over {self.max_member_bytes} bytes.")
                    total += member.size
                    if total > self.max_total_bytes:
                        raise TooLarge(f"{self.service}: the import is over {self.max_total_bytes} bytes.")
                    target = root / self._member_path(member.name)
                    if member.name in seen:
                        raise InvalidArgument(f"{self.service}: member {member.name!r} appears twice.")
                    seen.add(member.name)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    current = target.open("xb")
                    remaining = member.size
                elif kind == "data":
                    if current is None or len(piece.data) > remaining:
                        raise InvalidArgument(f"{self.service}: data outside a member, or more than its size.")
                    current.write(piece.data)
                    remaining -= len(piece.data)
            if remaining:
                raise InvalidArgument(f"{self.service}: the last member ended {remaining} bytes early.")
            if header is None:
                raise InvalidArgument(f"{self.service}: empty import.")
        finally:
            if current is not None:
                current.close()

    def _member_path(self, name: str) -> PurePosixPath:
        """The staging path of a member: `db/<table>.jsonl` or `files/<folder>/<path>`; InvalidArgument for
        anything else (other services, unknown tables or folders, absolute, `..`, empty parts)."""
        parts = name.split("/")
        bad = (not name or name.startswith("/") or "\\" in name or "\x00" in name
               or any(p in ("", ".", "..") for p in parts) or parts[0] != self.service)
        if not bad and len(parts) == 3 and parts[1] == "db" and parts[2] in {f"{t.name}.jsonl" for t in self.tables}:
            return PurePosixPath("db", parts[2])
        if not bad and len(parts) >= 4 and parts[1] == "files" and parts[2] in self.folders:
            return PurePosixPath("files", *parts[2:])
        raise InvalidArgument(f"{self.service}: unexpected member name {name!r}.")

    def _read_rows(self, root: Path) -> dict[str, list[dict]]:
        rows: dict[str, list[dict]] = {}
        for table in self.tables:
            path = root / "db" / f"{table.name}.jsonl"
            if not path.exists():
                raise InvalidArgument(f"{self.service}: the backup has no {table.name} table.")
            columns = {c.name for c in table.columns}
            table_rows: list[dict] = []
            with path.open("rb") as handle:
                for number, line in enumerate(handle, start=1):
                    try:
                        row = json.loads(line)
                    except ValueError:
                        raise InvalidArgument(f"{self.service}: {table.name} line {number} is not JSON.") from None
                    if not isinstance(row, dict) or set(row) != columns:
                        raise InvalidArgument(f"{self.service}: {table.name} line {number} does not have exactly "
                                              f"the table's columns.")
                    for column in table.columns:
                        if not _fits(column, row[column.name]):
                            raise InvalidArgument(f"{self.service}: {table.name} line {number}: {column.name} has "
                                                  f"the wrong type.")
                    table_rows.append(row)
            rows[table.name] = table_rows
        return rows

    def _replace_rows(self, conn: sa.Connection, rows: dict[str, list[dict]]) -> None:
        self._delete_rows(conn)
        for table in self.tables:
            table_rows = rows.get(table.name, [])
            for start in range(0, len(table_rows), _INSERT_BATCH):
                conn.execute(sa.insert(table), table_rows[start:start + _INSERT_BATCH])
        self._sync_sequences(conn)

    def _sync_sequences(self, conn: sa.Connection, restart: bool = False) -> None:
        """PostgreSQL: each integer id sequence continues after the largest id (or restarts at 1), so rows
        inserted with their ids do not collide with the next generated one. SQLite keeps its own counters."""
        if conn.dialect.name != "postgresql":
            return
        for table in self.transient_tables + self.tables:
            keys = list(table.primary_key.columns)
            if len(keys) != 1 or not isinstance(keys[0].type, sa.Integer):
                continue
            sequence = conn.execute(sa.select(sa.func.pg_get_serial_sequence(table.name, keys[0].name))).scalar()
            if sequence is None:
                continue
            if restart:
                conn.execute(sa.select(sa.func.setval(sequence, 1, False)))
            else:
                conn.execute(sa.text(f'SELECT setval(:seq, COALESCE(MAX("{keys[0].name}"), 1), MAX("{keys[0].name}") '
                                     f'IS NOT NULL) FROM "{table.name}"'), {"seq": sequence})

    def _delete_rows(self, conn: sa.Connection) -> None:
        for table in reversed(self.transient_tables + self.tables):
            conn.execute(sa.delete(table))

    def commit(self, import_id: str) -> pb.AdminReply:
        """Replaces this service's rows and files with a staged import, all or nothing."""
        root = self._staging(import_id)
        if not root.is_dir():
            raise NotFound(f"{self.service}: unknown staged import {import_id!r}.")
        with self._lock:
            rows = self._read_rows(root)
            if self.before_change is not None:
                self.before_change()
            swapped = self._swap_in({name: root / "files" / name for name in self.folders}, import_id)
            try:
                with self.engine.begin() as conn:
                    self._replace_rows(conn, rows)
            except BaseException:
                self._swap_back(swapped)
                raise
            self._drop_old(swapped)
            shutil.rmtree(root, ignore_errors=True)
            if self.after_change is not None:
                self.after_change()
        counts = {table: len(table_rows) for table, table_rows in rows.items()}
        return pb.AdminReply(message=f"{self.service}: data replaced from the backup.", counts=counts)

    def discard(self, import_id: str) -> pb.AdminReply:
        shutil.rmtree(self._staging(import_id), ignore_errors=True)
        return pb.AdminReply(message=f"{self.service}: staged import discarded.")

    def _swap_in(self, new_folders: dict[str, Path], tag: str) -> list[tuple[Path, Path]]:
        """Renames each live folder aside and the new one (or an empty one) into place; returns (live, aside)."""
        swapped: list[tuple[Path, Path]] = []
        try:
            for name, live in self.folders.items():
                aside = live.with_name(f".admin-old-{live.name}-{tag}")
                if live.exists():
                    live.rename(aside)
                else:
                    aside.mkdir(parents=True)
                swapped.append((live, aside))
                source = new_folders.get(name)
                if source is not None and source.is_dir():
                    source.rename(live)
                else:
                    live.mkdir(parents=True)
        except BaseException:
            self._swap_back(swapped)
            raise
        return swapped

    @staticmethod
    def _swap_back(swapped: list[tuple[Path, Path]]) -> None:
        for live, aside in reversed(swapped):
            shutil.rmtree(live, ignore_errors=True)
            aside.rename(live)

    @staticmethod
    def _drop_old(swapped: list[tuple[Path, Path]]) -> None:
        for _, aside in swapped:
            shutil.rmtree(aside, ignore_errors=True)

    # --- reset -----------------------------------------------------------------------------------
    def reset(self) -> pb.AdminReply:
        """Empties every table (transient ones included; SQLite's id counters restart) and every folder, then
        runs `after_change` (seeding). The schema stays the current one, so the running service and its
        workers go on without a restart."""
        with self._lock:
            if self.before_change is not None:
                self.before_change()
            with self.engine.begin() as conn:
                counts = {t.name: int(conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one())
                          for t in self.tables}
                self._delete_rows(conn)
                if conn.dialect.name == "sqlite" and conn.execute(
                        sa.text("SELECT 1 FROM sqlite_master WHERE name='sqlite_sequence'")).first():
                    names = [t.name for t in self.transient_tables + self.tables]
                    conn.execute(sa.text("DELETE FROM sqlite_sequence WHERE name IN :names")
                                 .bindparams(sa.bindparam("names", expanding=True)), {"names": names})
                self._sync_sequences(conn, restart=True)
            swapped = self._swap_in({}, uuid.uuid4().hex)
            self._drop_old(swapped)
            if self.after_change is not None:
                self.after_change()
        return pb.AdminReply(message=f"{self.service}: all data removed.", counts=counts)


def _fits(column: sa.Column, value: Any) -> bool:
    """Whether a JSON value suits the column's type (SQLite would store anything)."""
    if value is None:
        return bool(column.nullable) or column.primary_key
    kind = column.type
    if isinstance(kind, sa.JSON):
        return True
    if isinstance(kind, sa.Boolean):
        return isinstance(value, bool)
    if isinstance(kind, sa.Integer):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(kind, sa.Float | sa.Numeric):
        return isinstance(value, int | float) and not isinstance(value, bool)
    if isinstance(kind, sa.String):
        return isinstance(value, str) and (kind.length is None or len(value) <= kind.length)
    return True


def _row_line(row: Any) -> bytes:
    return json.dumps(dict(row), ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode() + b"\n"


def _pieces(handle: Any, size: int) -> Iterator[pb.ExportPiece]:
    """Exactly `size` bytes of `handle` (a binary file) as data pieces; OSError if the file shrank meanwhile."""
    remaining = size
    while remaining:
        data = handle.read(min(PIECE_BYTES, remaining))
        if not data:
            raise OSError(f"file ended {remaining} bytes early while exporting")
        remaining -= len(data)
        yield pb.ExportPiece(data=data)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(PIECE_BYTES), b""):
            digest.update(block)
    return digest.hexdigest()


UsageLister = Callable[[pb.UsageQuery], list[pb.UsageRecord]]
SearchRebuilder = Callable[[], pb.RebuildSearchIndexReply]


def search_not_configured(service: str) -> SearchRebuilder:
    """The RebuildSearchIndex of a service without a search server: `configured` false, nothing done."""
    return lambda: pb.RebuildSearchIndexReply(configured=False, message=f"{service}: search is not configured.")


class AdminServicer(admin_pb2_grpc.AdminServicer):
    """The Admin gRPC service over an AdminData; thin (the logic is in AdminData)."""

    def __init__(self, data: AdminData, rebuild_search: SearchRebuilder | None = None,
                 list_usage: UsageLister | None = None) -> None:
        self.data = data
        self._rebuild_search = rebuild_search or search_not_configured(data.service)
        self._list_usage = list_usage

    def Describe(self, request, context):
        return self.data.describe()

    def ExportData(self, request, context):
        yield from self.data.export()

    def StageImport(self, request_iterator, context):
        return self.data.stage(request_iterator)

    def CommitImport(self, request, context):
        return self.data.commit(request.import_id)

    def DiscardImport(self, request, context):
        return self.data.discard(request.import_id)

    def ResetData(self, request, context):
        return self.data.reset()

    def RebuildSearchIndex(self, request, context):
        return self._rebuild_search()

    def ListUsage(self, request, context):
        return pb.UsageRecords(records=self._list_usage(request) if self._list_usage else [])


def admin_registration(servicer: AdminServicer):
    """The `(add_to_server, servicer, full_name)` triple for grpc_server.build_server/run."""
    return (admin_pb2_grpc.add_AdminServicer_to_server, servicer, pb.DESCRIPTOR.services_by_name["Admin"].full_name)
