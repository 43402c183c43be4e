"""The llm-manager service: the only caller of the LLM runtime (llama.cpp).

Domains: `store` (GGUF files + metadata), `runtime` (the llama.cpp process), `models` (the active
model: load/unload/restart), `generation` (streaming chat completions, token counting), `pulls`
(download jobs), `netpolicy` (which URLs a pull may touch), `vram` (memory estimates).
`servicer` is the thin gRPC layer; `server` wires everything.
"""
