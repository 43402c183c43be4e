"""/api/llm through the real gateway app against a real llm-manager (llama.cpp + packaged SmolLM2),
with pulls served by a real local HTTP server."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from therascript_gateway.app import create_app
from therascript_gateway.settings import GatewaySettings
from therascript_llm_manager.store import packaged_model_path
from therascript_llm_manager.testing import start_llm_manager

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "llm-manager" / "tests"))
from modelserver import ModelServer

PACKAGED = packaged_model_path()
NAME = PACKAGED.name if PACKAGED else ""


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    target, stop = start_llm_manager(tmp_path_factory.mktemp("llm-gw"), pull_allowed_hosts="127.0.0.1",
                                     pull_allow_private_addresses=True)
    app = create_app(GatewaySettings(llm_target=target))
    with TestClient(app) as client:
        yield client
    stop()


@pytest.fixture
def model_server() -> Iterator[ModelServer]:
    server = ModelServer()
    yield server
    server.close()


def test_available_models_have_the_original_shape(api: TestClient) -> None:
    reply = api.get("/api/llm/available-models")
    assert reply.status_code == 200
    model = next(m for m in reply.json()["models"] if m["name"] == NAME)
    assert model["size"] == PACKAGED.stat().st_size and model["defaultContextSize"] == 8192
    assert model["details"] == {"format": "gguf", "family": "llama", "families": None, "parameter_size": "135M",
                                "quantization_level": "Q4_1"}
    assert model["digest"].startswith("sha256:") and model["modified_at"].endswith("Z")


def test_status_reports_the_loaded_packaged_model(api: TestClient) -> None:
    body = api.get("/api/llm/status").json()
    assert body["status"] == "available" and body["activeModel"] == body["modelChecked"] == NAME
    # loaded with the model's full context (8192 for SmolLM2), the default since issue 9
    assert body["loaded"] is True and body["state"] == "loaded" and body["loadedContextSize"] == 8192
    assert body["configuredContextSize"] is None and body["configuredTemperature"] == pytest.approx(0.7)
    assert body["details"]["name"] == NAME and body["details"]["size_vram"] > 0
    other = api.get("/api/llm/status", params={"modelName": "absent.gguf"}).json()
    assert other["modelChecked"] == "absent.gguf" and other["loaded"] is False and "details" not in other


def test_set_model_loads_and_validates_its_body(api: TestClient) -> None:
    reply = api.post("/api/llm/set-model", json={"modelName": NAME, "contextSize": 1024, "temperature": 0.5,
                                                 "topP": 0.9, "repeatPenalty": 1.1, "numGpuLayers": None,
                                                 "thinkingBudget": None})
    assert reply.status_code == 200 and NAME in reply.json()["message"]
    assert api.get("/api/llm/status").json()["loadedContextSize"] == 1024
    bad = api.post("/api/llm/set-model", json={"modelName": NAME, "temperature": 5})
    assert bad.status_code == 400 and bad.json()["error"] == "ValidationError"
    assert api.post("/api/llm/set-model", json={"modelName": "missing.gguf"}).status_code == 404
    assert api.post("/api/llm/set-model", json={"modelName": "../x.gguf"}).status_code == 400
    assert api.post("/api/llm/set-model", json={"modelName": NAME}).status_code == 200


def test_set_model_takes_any_thinking_budget_minus_one_unrestricted(api: TestClient) -> None:
    """Issue 7 item 14. Before: `thinkingBudget: -1` (what the original UI sends by default) was 400, so the UI
    could not load a model. After: -1 (any negative) = unrestricted (null), a number = tokens (rounded)."""
    for sent, configured in ((-1, None), (512.4, 512), (0, 0), (-0.5, None), (None, None)):
        reply = api.post("/api/llm/set-model", json={"modelName": NAME, "contextSize": 1024, "thinkingBudget": sent})
        assert reply.status_code == 200, (sent, reply.text)
        assert api.get("/api/llm/status").json()["configuredThinkingBudget"] == configured, sent
    for bad in ({"thinkingBudget": "lots"}, {"contextSize": 99_999_999_999}, {"numGpuLayers": 2**31}):
        reply = api.post("/api/llm/set-model", json={"modelName": NAME, **bad})
        assert reply.status_code == 400 and reply.json()["error"] == "ValidationError", (bad, reply.text)


def test_estimate_vram_has_the_original_shape(api: TestClient) -> None:
    body = api.get(f"/api/llm/models/{NAME}/estimate-vram", params={"context_size": 4096}).json()
    assert body["context_size"] == 4096 and body["estimated_vram_bytes"] > body["breakdown"]["kv_cache_bytes"] > 0
    assert set(body["breakdown"]) >= {"weights_vram_bytes", "kv_cache_bytes", "overhead_bytes"}
    assert api.get("/api/llm/models/none.gguf/estimate-vram").status_code == 404
    assert api.get(f"/api/llm/models/{NAME}/estimate-vram", params={"context_size": 0}).status_code == 400


def test_pull_model_answers_202_and_pull_status_tracks_it(api: TestClient, model_server: ModelServer) -> None:
    model_server.files["/x/gw-pulled.gguf"] = PACKAGED
    reply = api.post("/api/llm/pull-model", json={"modelUrl": model_server.url("/x/gw-pulled.gguf")})
    assert reply.status_code == 202 and reply.json()["jobId"]
    job_id = reply.json()["jobId"]
    deadline = time.monotonic() + 60
    while (status := api.get(f"/api/llm/pull-status/{job_id}").json())["status"] not in ("completed", "failed"):
        assert status["status"] in ("queued", "downloading", "verifying") and status["jobId"] == job_id
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert status["status"] == "completed" and status["progress"] == 100 and status["modelName"] == "gw-pulled.gguf"
    assert status["totalBytes"] == status["completedBytes"] == PACKAGED.stat().st_size and "endTime" in status
    cancel = api.post(f"/api/llm/cancel-pull/{job_id}")
    assert cancel.status_code == 409 and "status is completed" in cancel.json()["message"]
    assert api.post("/api/llm/delete-model", json={"modelName": "gw-pulled.gguf"}).json() == \
        {"message": "Deleted model gw-pulled.gguf"}


def test_pull_model_refuses_hosts_off_the_allow_list(api: TestClient) -> None:
    reply = api.post("/api/llm/pull-model", json={"modelUrl": "http://169.254.169.254/latest/meta.gguf"})
    assert reply.status_code == 400 and "allow-list" in reply.json()["message"]
    assert api.post("/api/llm/pull-model", json={}).status_code == 400


def test_pull_status_and_cancel_of_unknown_or_malformed_ids(api: TestClient) -> None:
    assert api.get("/api/llm/pull-status/00000000-0000-0000-0000-000000000000").status_code == 404
    assert api.post("/api/llm/cancel-pull/00000000-0000-0000-0000-000000000000").status_code == 404
    assert api.get("/api/llm/pull-status/not;an-id").status_code == 400


def test_delete_model_refuses_the_loaded_model_and_unsafe_names(api: TestClient) -> None:
    assert api.post("/api/llm/delete-model", json={"modelName": NAME}).status_code == 409
    assert api.post("/api/llm/delete-model", json={"modelName": "../../etc/passwd"}).status_code == 400
    assert api.post("/api/llm/delete-model", json={"modelName": "gone.gguf"}).status_code == 404


def test_unload_then_status_says_unloaded(api: TestClient) -> None:
    assert api.post("/api/llm/unload").json() == {"message": "1 model instance(s) unloaded successfully."}
    body = api.get("/api/llm/status").json()
    assert body["loaded"] is False and body["state"] == "unloaded"
    assert api.post("/api/llm/unload/").json() == {"message": "No models were loaded."}
