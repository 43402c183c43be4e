"""Memory estimate for running a GGUF model: weights + KV cache + compute overhead, from its header.

weights: the tensor data, split between GPU and CPU in proportion to the offloaded layers.
KV cache: 2 (K and V) × layers × context tokens × KV heads × head size × 2 bytes (f16); it sits
where the layers run (GPU when any layer is offloaded, as llama.cpp's default KV offload).
overhead: llama.cpp's compute buffers, approximated as a 512-token batch of logits and activations
plus a fixed 64 MiB.
"""

from __future__ import annotations

from dataclasses import dataclass

from .gguf_header import GgufHeader

F16_BYTES = 2
BATCH_TOKENS = 512
FIXED_OVERHEAD_BYTES = 64 * 1024**2


@dataclass(frozen=True)
class VramEstimate:
    """Bytes, for `context_size` tokens with `gpu_layers` of `layers` offloaded."""

    context_size: int
    gpu_layers: int
    layers: int
    weights_bytes: int
    weights_vram_bytes: int
    weights_ram_bytes: int
    kv_cache_bytes: int
    kv_bytes_per_token: int
    overhead_bytes: int
    vram_bytes: int
    ram_bytes: int


def kv_bytes_per_token(header: GgufHeader) -> int:
    """KV cache bytes per context token (f16 K and V across all layers)."""
    layers = header.arch_value("block_count") or 0
    heads = header.arch_value("attention.head_count") or 1
    kv_heads = header.arch_value("attention.head_count_kv") or heads
    embedding = header.arch_value("embedding_length") or 0
    key_size = header.arch_value("attention.key_length") or embedding // heads
    value_size = header.arch_value("attention.value_length") or embedding // heads
    return layers * kv_heads * (key_size + value_size) * F16_BYTES


def estimate(header: GgufHeader, context_size: int, num_gpu_layers: int | None) -> VramEstimate:
    """The estimate for `context_size` tokens; `num_gpu_layers` None or < 0 = every layer on the GPU."""
    layers = header.arch_value("block_count") or 1
    gpu_layers = layers if num_gpu_layers is None or num_gpu_layers < 0 else min(num_gpu_layers, layers)
    fraction = gpu_layers / layers
    weights_vram = round(header.weights_bytes * fraction)
    per_token = kv_bytes_per_token(header)
    kv_cache = per_token * context_size
    vocab = header.arch_value("vocab_size") or 32000
    overhead = FIXED_OVERHEAD_BYTES + BATCH_TOKENS * (vocab + 4 * (header.arch_value("embedding_length") or 0)) * 4
    on_gpu = gpu_layers > 0
    return VramEstimate(
        context_size=context_size, gpu_layers=gpu_layers, layers=layers,
        weights_bytes=header.weights_bytes, weights_vram_bytes=weights_vram,
        weights_ram_bytes=header.weights_bytes - weights_vram, kv_cache_bytes=kv_cache,
        kv_bytes_per_token=per_token, overhead_bytes=overhead,
        vram_bytes=weights_vram + (kv_cache + overhead if on_gpu else 0),
        ram_bytes=header.weights_bytes - weights_vram + (0 if on_gpu else kv_cache + overhead),
    )
