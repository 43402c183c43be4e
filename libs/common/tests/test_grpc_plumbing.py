"""The shared gRPC plumbing on a real server: request ids travel in metadata, every call gets a
deadline, and domain errors map to their status codes (with details) once, for unary and streams."""

from __future__ import annotations

import json
import socket
import threading
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from therascript.common.v1 import common_pb2
from therascript.sessions.v1 import sessions_pb2, sessions_pb2_grpc
from therascript_common.errors import DETAILS_METADATA_KEY, InvalidArgument, NotFound
from therascript_common.grpc_client import sync_channel
from therascript_common.grpc_server import build_server, registration
from therascript_common.logging import request_id_var


class _Servicer(sessions_pb2_grpc.SessionsServiceServicer):
    """Just enough of a servicer to observe the plumbing."""

    def __init__(self) -> None:
        self.seen_request_ids: list[str] = []
        self.release = threading.Event()

    def GetSession(self, request, context):
        self.seen_request_ids.append(request_id_var.get())
        if request.session_id == 404:
            raise NotFound("Session with ID 404 not found.")
        if request.session_id == 400:
            raise InvalidArgument("bad date", {"field": "date"})
        if request.session_id == 999:
            self.release.wait(5)
        return sessions_pb2.Session(id=request.session_id)

    def ReadAudio(self, request, context):
        yield sessions_pb2.AudioChunk(data=b"one")
        raise NotFound("gone mid-stream")

    def DeleteSession(self, request, context):
        return common_pb2.Ack(message="ok")


@pytest.fixture(scope="module")
def served():
    servicer = _Servicer()
    server, _, port = build_server([registration(sessions_pb2, sessions_pb2_grpc, "SessionsService", servicer)],
                                   "127.0.0.1:0")
    server.start()
    yield servicer, f"127.0.0.1:{port}"
    servicer.release.set()
    server.stop(0)


def test_health_is_serving_for_the_registered_service(served):
    _, target = served
    health = health_pb2_grpc.HealthStub(grpc.insecure_channel(target))
    name = "therascript.sessions.v1.SessionsService"
    assert health.Check(health_pb2.HealthCheckRequest(service=name)).status == health_pb2.HealthCheckResponse.SERVING


def test_the_request_id_travels_to_the_server(served):
    servicer, target = served
    stub = sessions_pb2_grpc.SessionsServiceStub(sync_channel(target))
    token = request_id_var.set("req-123")
    try:
        stub.GetSession(sessions_pb2.SessionRef(session_id=1))
    finally:
        request_id_var.reset(token)
    assert servicer.seen_request_ids[-1] == "req-123"


def test_domain_errors_map_to_status_codes_with_details(served):
    _, target = served
    stub = sessions_pb2_grpc.SessionsServiceStub(sync_channel(target))
    with pytest.raises(grpc.RpcError) as missing:
        stub.GetSession(sessions_pb2.SessionRef(session_id=404))
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    assert missing.value.details() == "Session with ID 404 not found."
    with pytest.raises(grpc.RpcError) as invalid:
        stub.GetSession(sessions_pb2.SessionRef(session_id=400))
    assert invalid.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = dict(invalid.value.trailing_metadata())[DETAILS_METADATA_KEY]
    assert json.loads(details) == {"field": "date"}


def test_errors_inside_a_server_stream_keep_their_code(served):
    _, target = served
    stream = sessions_pb2_grpc.SessionsServiceStub(sync_channel(target)).ReadAudio(sessions_pb2.ReadAudioRequest())
    with pytest.raises(grpc.RpcError) as error:
        assert [c.data for c in stream] == [b"one"]
    assert error.value.code() == grpc.StatusCode.NOT_FOUND


def test_unbuilt_rpcs_answer_unimplemented(served):
    _, target = served
    stub = sessions_pb2_grpc.SessionsServiceStub(sync_channel(target))
    with pytest.raises(grpc.RpcError) as error:
        stub.ListSessions(sessions_pb2.ListSessionsRequest())
    assert error.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_every_call_has_a_default_deadline(served):
    _, target = served
    stub = sessions_pb2_grpc.SessionsServiceStub(sync_channel(target, default_timeout_s=0.3))
    started = time.monotonic()
    with pytest.raises(grpc.RpcError) as error:
        stub.GetSession(sessions_pb2.SessionRef(session_id=999))  # the server holds it for 5 s
    assert error.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert time.monotonic() - started < 2


def test_a_channel_reconnects_within_the_backoff_cap_after_a_long_outage():
    """After 10 s with nothing listening, gRPC's default backoff (1 s × 1.6ⁿ, ±20 %) would next try ~15.8 s in,
    ~5.8 s after the server below is back; with MAX_RECONNECT_BACKOFF_MS (2 s) the channel is ready within ~2.4 s."""
    from therascript_common.grpc_client import MAX_RECONNECT_BACKOFF_MS

    with socket.socket() as probe:  # a free port nothing listens on yet
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    stub = sessions_pb2_grpc.SessionsServiceStub(sync_channel(f"127.0.0.1:{port}"))
    outage_end = time.monotonic() + 10
    while time.monotonic() < outage_end:  # calls fail fast (UNAVAILABLE) while the channel backs off
        with pytest.raises(grpc.RpcError):
            stub.DeleteSession(sessions_pb2.SessionRef(session_id=1), timeout=1)
        time.sleep(0.5)

    server, _, bound = build_server(
        [registration(sessions_pb2, sessions_pb2_grpc, "SessionsService", _Servicer())], f"127.0.0.1:{port}")
    assert bound == port
    server.start()
    try:
        back = time.monotonic()
        stub.DeleteSession(sessions_pb2.SessionRef(session_id=1), timeout=30, wait_for_ready=True)
        reconnect_s = time.monotonic() - back
    finally:
        server.stop(0)
    assert reconnect_s < MAX_RECONNECT_BACKOFF_MS / 1000 * 1.2 + 1.0, f"reconnected after {reconnect_s:.1f} s"
