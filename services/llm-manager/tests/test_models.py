"""The model store, set-model/unload/status, delete and the VRAM estimate, on a real llm-manager."""

from __future__ import annotations

import shutil

import grpc
import pytest
from llm_fixtures import PACKAGED, PACKAGED_NAME, Running

from therascript.llm.v1 import llm_pb2
from therascript_llm_manager.gguf_header import read_header


def _code(call) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as error:
        call()
    return error.value.code()


def test_packaged_model_is_in_the_store_active_and_loaded_on_a_fresh_start(llm: Running) -> None:
    status = llm.stub.GetStatus(llm_pb2.GetStatusRequest())
    assert status.active_model == PACKAGED_NAME and status.loaded
    assert status.state == llm_pb2.LOAD_STATE_LOADED and status.runtime_healthy
    # no context size configured: the largest the model supports (issue 9: a 50-minute session is 8-12k tokens)
    assert status.loaded_context_size == 8192 and status.model_max_context == 8192
    assert status.details.size_vram > status.details.size_bytes // 2
    assert (llm.data_dir / "models" / PACKAGED_NAME).is_file()


def test_available_models_carry_gguf_metadata(llm: Running) -> None:
    models = llm.stub.ListAvailableModels(llm_pb2.ListAvailableModelsRequest()).models
    smol = next(m for m in models if m.name == PACKAGED_NAME)
    assert smol.size_bytes == PACKAGED.stat().st_size
    assert smol.default_context_size == 8192
    assert (smol.details.format, smol.details.family) == ("gguf", "llama")
    assert (smol.details.parameter_size, smol.details.quantization_level) == ("135M", "Q4_1")
    assert smol.digest.startswith("sha256:") and len(smol.digest) == 71


def test_header_reader_agrees_with_the_gguf_library() -> None:
    from gguf import GGUFReader

    mine = read_header(PACKAGED)
    reference = GGUFReader(PACKAGED)
    assert mine.weights_bytes == sum(t.n_bytes for t in reference.tensors)
    assert mine.context_length == reference.fields["llama.context_length"].contents()
    assert mine.architecture == reference.fields["general.architecture"].contents()


def test_set_model_loads_with_the_requested_context_and_persists_it(llm: Running) -> None:
    reply = llm.stub.SetModel(llm_pb2.SetModelRequest(model_name=PACKAGED_NAME, context_size=1024,
                                                      temperature=0.2), timeout=120)
    assert "Active model set to" in reply.message
    status = llm.stub.GetStatus(llm_pb2.GetStatusRequest())
    assert status.loaded and status.loaded_context_size == 1024 and status.configured_context_size == 1024
    assert status.configured_temperature == pytest.approx(0.2)
    assert llm.manager.models.snapshot().settings == llm.manager.models._repo.load()  # persisted
    llm.stub.SetModel(llm_pb2.SetModelRequest(model_name=PACKAGED_NAME), timeout=120)


def test_set_model_refuses_unknown_unsafe_and_oversized_requests(llm: Running) -> None:
    stub = llm.stub
    assert _code(lambda: stub.SetModel(llm_pb2.SetModelRequest(model_name="missing.gguf"))) == \
        grpc.StatusCode.NOT_FOUND
    assert _code(lambda: stub.SetModel(llm_pb2.SetModelRequest(model_name="../../etc/passwd.gguf"))) == \
        grpc.StatusCode.INVALID_ARGUMENT
    assert _code(lambda: stub.SetModel(llm_pb2.SetModelRequest(model_name=PACKAGED_NAME, context_size=9000))) == \
        grpc.StatusCode.INVALID_ARGUMENT
    assert _code(lambda: stub.SetModel(llm_pb2.SetModelRequest(model_name=PACKAGED_NAME, top_p=3))) == \
        grpc.StatusCode.INVALID_ARGUMENT
    assert llm.stub.GetStatus(llm_pb2.GetStatusRequest()).loaded  # nothing changed


def test_status_of_another_model_says_not_loaded(llm: Running) -> None:
    shutil.copyfile(PACKAGED, llm.data_dir / "models" / "copy.gguf")
    status = llm.stub.GetStatus(llm_pb2.GetStatusRequest(model_name="copy.gguf"))
    assert status.model_checked == "copy.gguf" and not status.loaded
    assert status.details.name == "copy.gguf" and not status.details.HasField("size_vram")


@pytest.mark.parametrize("name", ["../escape.gguf", "/etc/passwd", "a/b.gguf", "..gguf", "model.bin", ""])
def test_delete_refuses_names_outside_the_store(llm: Running, name: str) -> None:
    code = _code(lambda: llm.stub.DeleteModel(llm_pb2.DeleteModelRequest(model_name=name)))
    assert code == grpc.StatusCode.INVALID_ARGUMENT


def test_delete_refuses_the_loaded_model_until_unloaded(llm: Running) -> None:
    shutil.copyfile(PACKAGED, llm.data_dir / "models" / "spare.gguf")
    assert llm.stub.DeleteModel(llm_pb2.DeleteModelRequest(model_name="spare.gguf")).message == \
        "Deleted model spare.gguf"
    assert not (llm.data_dir / "models" / "spare.gguf").exists()
    assert _code(lambda: llm.stub.DeleteModel(llm_pb2.DeleteModelRequest(model_name="spare.gguf"))) == \
        grpc.StatusCode.NOT_FOUND
    assert _code(lambda: llm.stub.DeleteModel(llm_pb2.DeleteModelRequest(model_name=PACKAGED_NAME))) == \
        grpc.StatusCode.FAILED_PRECONDITION


def test_estimate_vram_scales_with_context_and_gpu_layers(llm: Running) -> None:
    small = llm.stub.EstimateVram(llm_pb2.EstimateVramRequest(model_name=PACKAGED_NAME, context_size=1024))
    large = llm.stub.EstimateVram(llm_pb2.EstimateVramRequest(model_name=PACKAGED_NAME, context_size=8192))
    cpu = llm.stub.EstimateVram(llm_pb2.EstimateVramRequest(model_name=PACKAGED_NAME, context_size=1024,
                                                             num_gpu_layers=0))
    # SmolLM2-135M: 30 layers x 3 KV heads x (64 + 64) x 2 bytes = 23040 bytes per token
    assert small.vram_per_token_bytes == 23040 and small.kv_cache_bytes == 23040 * 1024
    assert large.estimated_vram_bytes - small.estimated_vram_bytes == 23040 * (8192 - 1024)
    assert small.weights_vram_bytes == small.weights_bytes > 90_000_000
    assert cpu.estimated_vram_bytes == 0 and cpu.estimated_ram_bytes > small.weights_bytes
    assert _code(lambda: llm.stub.EstimateVram(llm_pb2.EstimateVramRequest(model_name="nope.gguf"))) == \
        grpc.StatusCode.NOT_FOUND


def test_model_settings_survive_a_restart(tmp_path) -> None:
    from llm_fixtures import start

    first, stop_first = start(tmp_path)
    first.stub.SetModel(llm_pb2.SetModelRequest(model_name=PACKAGED_NAME, context_size=1024, top_p=0.5), timeout=120)
    first.stop()
    stop_first()
    second, stop_second = start(tmp_path)
    try:
        status = second.stub.GetStatus(llm_pb2.GetStatusRequest())
        assert status.configured_context_size == 1024 and status.loaded_context_size == 1024
        assert status.configured_top_p == pytest.approx(0.5) and status.loaded
    finally:
        second.stop()
        stop_second()
