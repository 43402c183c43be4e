"""The gateway's OpenAPI document against ../shared/endpoints.tsv (every endpoint of the contract):
each (method, path) must be served, so no endpoint is silently missing."""

from __future__ import annotations

import csv
import os
import re
from pathlib import Path

import pytest

from therascript_gateway.app import create_app
from therascript_gateway.settings import GatewaySettings

ROOT = Path(__file__).resolve().parents[3]
# The contract lives beside the repository (../shared), not in it; THERASCRIPT_SHARED_DIR may point elsewhere.
ENDPOINTS = Path(os.environ.get("THERASCRIPT_SHARED_DIR", ROOT.parent / "shared")) / "endpoints.tsv"


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
