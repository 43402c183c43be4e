"""Gateway-wide behaviour on real gRPC servers: unbuilt RPCs are 501 (never 500), unknown routes 404,
the bearer token is enforced except on health and docs, trailing slashes are accepted, CORS headers."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from therascript.analysis.v1 import analysis_pb2, analysis_pb2_grpc
from therascript.ops.v1 import ops_pb2, ops_pb2_grpc
from therascript_common.grpc_server import build_server, registration
from therascript_gateway.app import create_app
from therascript_gateway.settings import GatewaySettings

TOKEN = "s3cret-token"


@pytest.fixture(scope="module")
def stub_services():
    """The real analysis and ops servers as they stand before their issues: health only, RPCs UNIMPLEMENTED."""
    servers = {}
    for name, pb2, pb2_grpc, service in (("analysis", analysis_pb2, analysis_pb2_grpc, "AnalysisService"),
                                         ("ops", ops_pb2, ops_pb2_grpc, "OpsService")):
        servicer = getattr(pb2_grpc, f"{service}Servicer")()
        server, _, port = build_server([registration(pb2, pb2_grpc, service, servicer)], "127.0.0.1:0")
        server.start()
        servers[name] = (server, f"127.0.0.1:{port}")
    yield {name: target for name, (_, target) in servers.items()}
    for server, _ in servers.values():
        server.stop(0)


@pytest.fixture(scope="module")
def client(stub_services):
    settings = GatewaySettings(api_token=TOKEN, analysis_target=stub_services["analysis"],
                               ops_target=stub_services["ops"], sessions_target="127.0.0.1:1", grpc_timeout_s=3)
    with TestClient(create_app(settings), headers={"Authorization": f"Bearer {TOKEN}"}) as test_client:
        yield test_client


@pytest.mark.parametrize("path", ["/api/analysis-jobs", "/api/docker/status", "/api/system/gpu-stats",
                                  "/api/usage/stats"])
def test_unbuilt_endpoints_are_501_with_the_error_body(client, path):
    response = client.get(path)
    assert response.status_code == 501
    assert response.json()["error"] == "NotImplementedError" and response.json()["message"]


def test_unbuilt_admin_streams_are_501(client):
    assert client.get("/api/admin/export-data").status_code == 501
    files = {"backupFile": ("b.tar", b"x", "application/x-tar")}
    assert client.post("/api/admin/import-data", files=files).status_code == 501
    assert client.post("/api/admin/import-data").status_code == 400   # not multipart: refused at the edge


def test_a_down_service_is_503_not_500(client):
    response = client.get("/api/sessions")
    assert response.status_code == 503 and response.json()["error"] == "ServiceUnavailableError"


def test_unknown_routes_are_404_with_the_error_body(client):
    response = client.get("/api/nothing-here")
    assert response.status_code == 404 and response.json() == {
        "error": "NotFound", "message": "Route GET /api/nothing-here not found."}


def test_the_token_is_required_except_for_health_and_docs(client):
    saved = client.headers.pop("Authorization")
    try:
        assert client.get("/api/analysis-jobs").status_code == 401
        assert client.get("/api/analysis-jobs").json()["error"] == "UnauthorizedError"
        assert client.get("/api/analysis-jobs", headers={"Authorization": "Bearer wrong"}).status_code == 401
        docs = client.get("/api/docs")
        assert docs.status_code == 200 and "cdn." not in docs.text  # no third-party CDN: nothing leaves
        assert "/api/docs/assets/swagger-ui-bundle.js" in docs.text
        assert client.get("/api/docs/assets/swagger-ui-bundle.js").status_code == 200
        assert client.get("/api/docs/json").status_code == 200
        assert client.get("/api/schema", follow_redirects=False).headers["location"] == "/api/docs"
        assert client.get("/api/health").status_code in (200, 503)
    finally:
        client.headers["Authorization"] = saved


def test_trailing_slashes_reach_the_same_route(client):
    assert client.get("/api/analysis-jobs/").status_code == 501


def test_cors_preflight_and_exposed_headers(client):
    origin = "http://localhost:3002"
    preflight = client.options("/api/sessions/1/chats/2/messages", headers={
        "Origin": origin, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,authorization"})
    assert preflight.status_code == 200 and preflight.headers["access-control-allow-origin"] == origin
    response = client.get("/api/analysis-jobs", headers={"Origin": origin})
    assert response.headers["access-control-allow-origin"] == origin
    assert "x-user-message-id" in response.headers["access-control-expose-headers"].lower()
    assert client.get("/api/analysis-jobs", headers={"Origin": "https://evil.example"}).headers.get(
        "access-control-allow-origin") is None


def test_every_response_carries_a_request_id(client):
    assert len(client.get("/api/analysis-jobs").headers["x-request-id"]) == 32
    assert client.get("/api/analysis-jobs", headers={"X-Request-Id": "abc-1"}).headers["x-request-id"] == "abc-1"


def test_405_lists_every_method_served_at_the_path(client):
    """Before: Starlette's 405 named only the first route's methods (`Allow: POST` on /api/analysis-jobs, which
    also serves GET), so the header contradicted the OpenAPI document (schemathesis ST205)."""
    response = client.request("OPTIONS", "/api/analysis-jobs")
    assert response.status_code == 405 and response.headers["allow"] == "GET, POST"
    assert response.json()["error"] == "MethodNotAllowedError"
    assert client.put("/api/sessions/1").headers["allow"] == "DELETE, GET"
