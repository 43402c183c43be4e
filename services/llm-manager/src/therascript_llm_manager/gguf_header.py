"""Reads a GGUF file's header (metadata key/values and tensor shapes) without touching the weights.

gguf's GGUFReader memory-maps and indexes every tensor (seconds for a small model); listing the
store needs only the header, so this reads it sequentially. Layout (GGUF v2/v3, little-endian):
magic "GGUF", u32 version, u64 tensor_count, u64 kv_count, kv pairs, tensor infos.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import gguf

MAGIC = b"GGUF"
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9
_SKIPPED_ARRAYS = ("tokenizer.ggml.tokens", "tokenizer.ggml.merges", "tokenizer.ggml.token_type", "tokenizer.ggml.scores")


class GgufError(ValueError):
    """The file is not a readable GGUF model."""


@dataclass(frozen=True)
class GgufHeader:
    """What the store and the VRAM estimate need from a GGUF header."""

    metadata: dict[str, object]
    weights_bytes: int  # sum of tensor data sizes, bytes
    parameter_count: int  # sum of tensor elements
    tensor_types: dict[str, int]  # ggml type name -> tensor count

    @property
    def architecture(self) -> str:
        return str(self.metadata.get("general.architecture", "unknown"))

    def arch_value(self, key: str) -> int | None:
        """`<architecture>.<key>` as an int (e.g. "context_length", "block_count"), or None."""
        value = self.metadata.get(f"{self.architecture}.{key}")
        return int(value) if isinstance(value, int | float) else None

    @property
    def context_length(self) -> int | None:
        """The model's trained context window, tokens."""
        return self.arch_value("context_length")

    @property
    def quantization(self) -> str:
        """E.g. "Q4_1", from general.file_type, else the most common tensor type."""
        file_type = self.metadata.get("general.file_type")
        if isinstance(file_type, int):
            try:
                return gguf.LlamaFileType(file_type).name.removeprefix("MOSTLY_")
            except ValueError:
                pass
        return max(self.tensor_types, key=lambda name: self.tensor_types[name], default="unknown")

    @property
    def parameter_size(self) -> str:
        """E.g. "135M": general.size_label, else the tensor element count rounded."""
        label = self.metadata.get("general.size_label")
        if isinstance(label, str) and label:
            return label
        for unit, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
            if self.parameter_count >= scale:
                return f"{self.parameter_count / scale:.3g}{unit}"
        return str(self.parameter_count)


def _read(stream: BinaryIO, fmt: str) -> Any:
    size = struct.calcsize(fmt)
    data = stream.read(size)
    if len(data) != size:
        raise GgufError("truncated GGUF header")
    return struct.unpack(fmt, data)[0]


def _read_string(stream: BinaryIO) -> str:
    length = int(_read(stream, "<Q"))
    if length > 1 << 26:
        raise GgufError("implausible string length in GGUF header")
    return stream.read(length).decode("utf-8", errors="replace")


def _read_value(stream: BinaryIO, value_type: int, keep: bool) -> object:
    if value_type in _SCALARS:
        return _read(stream, _SCALARS[value_type])
    if value_type == _STRING:
        return _read_string(stream)
    if value_type == _ARRAY:
        item_type, count = int(_read(stream, "<I")), int(_read(stream, "<Q"))
        if item_type in _SCALARS and not keep:
            stream.seek(struct.calcsize(_SCALARS[item_type]) * count, 1)
            return None
        items = [_read_value(stream, item_type, keep) for _ in range(count)]
        return items if keep else None
    raise GgufError(f"unknown GGUF value type {value_type}")


def _tensor_bytes(type_id: int, elements: int) -> tuple[str, int]:
    try:
        quant = gguf.GGMLQuantizationType(type_id)
        block, type_size = gguf.GGML_QUANT_SIZES[quant]
    except (ValueError, KeyError) as error:
        raise GgufError(f"unknown ggml tensor type {type_id}") from error
    return quant.name, elements // block * type_size


def read_header(path: Path) -> GgufHeader:
    """Parses the header of the GGUF file at `path`. Raises GgufError if it is not GGUF or is truncated."""
    with path.open("rb", buffering=1 << 20) as stream:  # many tiny reads: a large buffer
        if stream.read(4) != MAGIC:
            raise GgufError(f"{path.name} is not a GGUF file")
        version = int(_read(stream, "<I"))
        if version not in (2, 3):
            raise GgufError(f"unsupported GGUF version {version}")
        tensor_count, kv_count = int(_read(stream, "<Q")), int(_read(stream, "<Q"))
        metadata: dict[str, object] = {}
        for _ in range(kv_count):
            key = _read_string(stream)
            value = _read_value(stream, int(_read(stream, "<I")), keep=key not in _SKIPPED_ARRAYS)
            if value is not None:
                metadata[key] = value
        weights = parameters = 0
        types: dict[str, int] = {}
        for _ in range(tensor_count):
            _read_string(stream)
            dims = [int(_read(stream, "<Q")) for _ in range(int(_read(stream, "<I")))]
            elements = 1
            for dim in dims:
                elements *= dim
            type_name, size = _tensor_bytes(int(_read(stream, "<I")), elements)
            _read(stream, "<Q")  # data offset
            weights, parameters = weights + size, parameters + elements
            types[type_name] = types.get(type_name, 0) + 1
    return GgufHeader(metadata, weights, parameters, types)


def is_gguf(path: Path) -> bool:
    """True when the file starts with the GGUF magic."""
    with path.open("rb") as stream:
        return stream.read(4) == MAGIC

