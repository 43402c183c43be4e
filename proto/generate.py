"""Generates the Python gRPC stubs of every .proto under proto/therascript into proto/src.

Usage: python proto/generate.py [--out DIR]   (needs grpcio-tools)
The generated tree is build output (git-ignored); the runner and CI run this before installing
`proto/` as the `therascript-proto` package, and tests/test_proto_current.py checks it is current.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from grpc_tools import protoc

PROTO_ROOT = Path(__file__).resolve().parent


def proto_files() -> list[Path]:
    return sorted(PROTO_ROOT.glob("therascript/**/*.proto"))


def generate(out_dir: Path) -> None:
    """Writes *_pb2.py, *_pb2.pyi and *_pb2_grpc.py for every contract into `out_dir` (with __init__.py files)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    include = Path(protoc.__file__).parent / "_proto"
    args = [
        "protoc",
        f"-I{PROTO_ROOT}",
        f"-I{include}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *[str(p.relative_to(PROTO_ROOT)) for p in proto_files()],
    ]
    if protoc.main(args) != 0:
        sys.exit("protoc failed")
    for folder in [out_dir / "therascript", *(out_dir / "therascript").rglob("*")]:
        if folder.is_dir():
            (folder / "__init__.py").touch()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=PROTO_ROOT / "src")
    generate(parser.parse_args().out)
