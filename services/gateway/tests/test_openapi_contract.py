"""The gateway's OpenAPI document against ../shared/endpoints.tsv (every endpoint of the contract):
each (method, path) must be served, so no endpoint is silently missing."""

from __future__ import annotations

import csv
import os
import re
import subprocess
from pathlib import Path

import pytest

from therascript_gateway.app import create_app
from therascript_gateway.settings import GatewaySettings

ROOT = Path(__file__).resolve().parents[3]


def _shared_dir() -> Path:
    """Where ../shared is: THERASCRIPT_SHARED_DIR, else beside this checkout, else beside the repository this one
    was cloned from (CI and `git clone . "$(mktemp -d)"` clone into a folder with no ../shared of its own)."""
    if "THERASCRIPT_SHARED_DIR" in os.environ:
        return Path(os.environ["THERASCRIPT_SHARED_DIR"])
    candidates = [ROOT.parent / "shared"]
    origin = subprocess.run(["git", "-C", str(ROOT), "config", "remote.origin.url"], capture_output=True, text=True)
    if origin.returncode == 0 and origin.stdout.strip() and "://" not in origin.stdout:
        candidates.append(Path(origin.stdout.strip()).resolve().parent / "shared")
    return next((c for c in candidates if (c / "endpoints.tsv").exists()), candidates[0])


# The contract lives beside the repository (../shared), not in it.
ENDPOINTS = _shared_dir() / "endpoints.tsv"


def _normalise(path: str) -> str:
    """`/api/sessions/:sessionId` and `/api/sessions/{session_id}` both become `/api/sessions/{}`."""
    return re.sub(r"\{[^}]+\}|:[A-Za-z_]+", "{}", path)


def _contract() -> set[tuple[str, str]]:
    if not ENDPOINTS.exists():
        pytest.skip(f"the shared contract {ENDPOINTS} is not on this machine (set THERASCRIPT_SHARED_DIR)")
    rows = [r for r in csv.reader(ENDPOINTS.read_text().splitlines(), delimiter="\t") if r and not r[0].startswith("#")]
    return {(method.lower(), _normalise(path)) for method, path, *_ in rows[1:]}


def _served() -> set[tuple[str, str]]:
    spec = create_app(GatewaySettings()).openapi()
    return {(method, _normalise(path)) for path, item in spec["paths"].items() for method in item}


def test_every_contract_endpoint_is_in_the_openapi_document():
    missing = sorted(_contract() - _served())
    assert not missing, f"endpoints of the contract the gateway does not serve: {missing}"


def test_docs_are_served_at_api_docs():
    spec = create_app(GatewaySettings()).openapi()
    assert spec["info"]["title"] == "Therascript API"


# --- the document describes what the API answers (issue 7) ------------------------------------------
def _document() -> dict:
    """/api/docs/json as a client fetches it."""
    from fastapi.testclient import TestClient

    with TestClient(create_app(GatewaySettings(api_token="t"))) as client:
        response = client.get("/api/docs/json")
    assert response.status_code == 200
    return response.json()


def _operations(spec: dict):
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            yield method, path, operation


def test_every_operation_declares_its_error_responses_with_the_error_schema():
    """Before: only 200 and 422 were declared (the API never answers 422, and schemathesis found 114 responses
    with undocumented 400/401/404/409/413/503 codes)."""
    spec = _document()
    error = spec["components"]["schemas"]["Error"]
    assert set(error["required"]) == {"error", "message"}
    public = {"/api/health", "/api/schema"}
    for method, path, operation in _operations(spec):
        responses = operation["responses"]
        where = f"{method.upper()} {path}"
        assert "422" not in responses, where
        if path not in public:
            assert "401" in responses, where
        if path not in public | {"/api/status/readiness"}:
            assert {"501", "503", "504"} <= set(responses), where
        if operation.get("parameters") or "requestBody" in operation:
            assert "400" in responses, where
        if "requestBody" in operation:
            assert "413" in responses, where
        if method in ("post", "put", "patch", "delete"):
            assert "409" in responses, where
        for status, response in responses.items():
            if int(status) >= 400 and not (path in public | {"/api/status/readiness"} and status == "503"):
                assert response["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}, \
                    (where, status)


def test_the_upload_declares_its_multipart_form():
    """Before: the upload had no requestBody, so no client or fuzzer could generate one."""
    operation = _document()["paths"]["/api/sessions/upload"]["post"]
    form = operation["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert form["properties"]["audioFile"] == {"type": "string", "format": "binary"}
    assert set(form["required"]) == {"audioFile", "clientName", "sessionName", "date", "sessionType", "therapy"}
    assert form["properties"]["numSpeakers"]["type"] == "integer"
    assert {"400", "408", "413", "503"} <= set(operation["responses"])


def test_every_integer_parameter_is_bounded():
    """Issue 7 item 12: every number in a path or query has a maximum (params.py), so none can overflow a
    protobuf int32/int64 field (500) — including routes that still answer 501."""
    unbounded = []
    for method, path, operation in _operations(_document()):
        for parameter in operation.get("parameters", []):
            schema = parameter["schema"]
            options = schema.get("anyOf", [schema])
            if any(o.get("type") == "integer" and "maximum" not in o and "exclusiveMaximum" not in o for o in options):
                unbounded.append(f"{method.upper()} {path} {parameter['name']}")
    assert not unbounded, unbounded
