"""therascript_common.admin.AdminData on a real SQLite and a real PostgreSQL database: export → stage → commit
restores rows (ids, JSON, booleans, NULLs) and files byte for byte; ids continue after the imported ones; a bad
stage (wrong schema version, unknown member, rows that break a constraint) changes nothing; reset empties rows
and files and restarts the ids."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa

from therascript.common.v1 import admin_pb2 as pb
from therascript_common.admin import AdminData
from therascript_common.errors import FailedPrecondition, InvalidArgument

metadata = sa.MetaData()
parents = sa.Table("parents", metadata, sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
                   sa.Column("name", sa.String(50), nullable=False, unique=True),
                   sa.Column("extra", sa.JSON), sa.Column("flag", sa.Boolean, nullable=False),
                   sqlite_autoincrement=True)
children = sa.Table("children", metadata, sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
                    sa.Column("parent_id", sa.ForeignKey("parents.id", ondelete="CASCADE"), nullable=False),
                    sa.Column("score", sa.Float), sqlite_autoincrement=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, tmp_path):
    if request.param == "sqlite":
        from therascript_common.db import make_engine

        engine = make_engine(f"sqlite:///{tmp_path / 'admin.sqlite'}")
    else:
        server = request.getfixturevalue("postgres_url")
        name = f"admin_{uuid.uuid4().hex[:12]}"
        admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        engine = sa.create_engine(server.rsplit("/", 1)[0] + f"/{name}")
    metadata.create_all(engine)
    with engine.begin() as conn:   # an Alembic revision, as the services' migrations leave
        conn.execute(sa.text("CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY)"))
        conn.execute(sa.text("INSERT INTO alembic_version (version_num) VALUES ('0007')"))
    yield engine
    engine.dispose()


def _data(engine, tmp_path) -> AdminData:
    return AdminData(service="demo", engine=engine, tables=[parents, children], staging_dir=tmp_path / "staging",
                     folders={"files": tmp_path / "files"})


def _as_import(pieces: list[pb.ExportPiece], schema_version: str | None = None):
    header = pb.ImportHeader(schema_version=schema_version or pieces[0].description.schema_version, format_version=1)
    yield pb.ImportPiece(header=header)
    for piece in pieces[1:]:
        if piece.WhichOneof("piece") == "member":
            yield pb.ImportPiece(member=piece.member)
        else:
            yield pb.ImportPiece(data=piece.data)


def _rows(engine) -> list:
    with engine.connect() as conn:
        return [list(conn.execute(sa.select(t).order_by(t.c.id))) for t in (parents, children)]


def test_round_trip_ids_continue_and_bad_stages_change_nothing(engine, tmp_path):
    data = _data(engine, tmp_path)
    (tmp_path / "files" / "sub").mkdir(parents=True)
    (tmp_path / "files" / "sub" / "a.bin").write_bytes(bytes(range(256)) * 4000)
    with engine.begin() as conn:
        conn.execute(sa.insert(parents), [{"name": "one", "extra": {"k": [1, 2]}, "flag": True},
                                          {"name": "two", "extra": None, "flag": False}])
        conn.execute(sa.insert(children), [{"parent_id": 2, "score": 0.5}, {"parent_id": 2, "score": None}])
    before = _rows(engine)
    pieces = list(data.export())
    assert pieces[0].description.schema_version == "0007"
    assert dict(pieces[0].description.counts) == {"parents": 2, "children": 2, "files": 1, "file_bytes": 1_024_000}

    with pytest.raises(FailedPrecondition):
        data.stage(_as_import(pieces, schema_version="0006"))
    bad_member = [*pieces, pb.ExportPiece(member=pb.MemberHeader(name="demo/../../x", size=0))]
    with pytest.raises(InvalidArgument):
        data.stage(_as_import(bad_member))
    duplicate = list(pieces)
    rows = b'{"extra":null,"flag":true,"id":1,"name":"same"}\n{"extra":null,"flag":true,"id":2,"name":"same"}\n'
    index = next(i for i, p in enumerate(duplicate) if p.member.name == "demo/db/parents.jsonl")
    duplicate[index:index + 2] = [pb.ExportPiece(member=pb.MemberHeader(name="demo/db/parents.jsonl", size=len(rows))),
                                  pb.ExportPiece(data=rows)]
    with pytest.raises(InvalidArgument, match="constraint"):
        data.stage(_as_import(duplicate))
    assert _rows(engine) == before

    data.reset()
    assert _rows(engine) == [[], []] and list((tmp_path / "files").iterdir()) == []
    staged = data.stage(_as_import(pieces))
    assert _rows(engine) == [[], []]                          # staging changes nothing
    data.commit(staged.import_id)
    assert _rows(engine) == before
    assert (tmp_path / "files" / "sub" / "a.bin").read_bytes() == bytes(range(256)) * 4000
    with engine.begin() as conn:                              # the next id follows the imported ones
        new_id = conn.execute(sa.insert(parents).values(name="three", flag=True).returning(parents.c.id)).scalar()
    assert new_id == 3
    again = list(data.export())
    strip = [(p.member.name, p.member.size) if p.WhichOneof("piece") == "member" else p.data for p in pieces[1:]]
    assert strip != [(p.member.name, p.member.size) if p.WhichOneof("piece") == "member" else p.data
                     for p in again[1:]]                     # the new row is in the export

    data.reset()
    with engine.begin() as conn:                              # ids restart after a reset
        assert conn.execute(sa.insert(parents).values(name="fresh", flag=True).returning(parents.c.id)).scalar() == 1
