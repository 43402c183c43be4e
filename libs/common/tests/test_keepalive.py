"""Client keepalive and server ping policy agree (issue 7 item 7), on real gRPC servers and channels over
loopback. The keepalive interval is 1 s here instead of 30 s so the test runs in seconds; the policy is the
same function of the interval.

Before: channels pinged every 30 s while servers kept gRPC's default (one ping per 5 minutes without data,
then GOAWAY "too_many_pings"), so a stream held without data long enough was cut with UNAVAILABLE, and every
other stream on that connection with it."""

from __future__ import annotations

import asyncio
import time
from concurrent import futures

import grpc
import pytest

from therascript_common.grpc_client import aio_channel, client_keepalive_options
from therascript_common.grpc_server import build_server

KEEPALIVE_MS = 1000
HOLD_S = 6.0  # several pings, more than max_ping_strikes (2) of them


def _upload(request_iterator, context) -> bytes:
    return str(sum(len(chunk) for chunk in request_iterator)).encode()


_HANDLER = grpc.method_handlers_generic_handler("test.Hold", {"Upload": grpc.stream_unary_rpc_method_handler(_upload)})


def _add(_servicer: object, server: grpc.Server) -> None:
    server.add_generic_rpc_handlers((_HANDLER,))


async def _hold_a_stream(target: str) -> bytes:
    """A client stream that sends one byte, then nothing for HOLD_S seconds (the client pings meanwhile), then
    ends: the service's answer, or the AioRpcError that cut it."""

    async def requests():
        yield b"x"
        await asyncio.sleep(HOLD_S)
        yield b"y"

    async with aio_channel(target, default_timeout_s=30, keepalive_ms=KEEPALIVE_MS) as channel:
        call = channel.stream_unary("/test.Hold/Upload")(requests())
        return await call


def test_a_held_stream_with_pings_is_not_cut_by_our_servers():
    server, _, port = build_server([(_add, None, "test.Hold")], "127.0.0.1:0", keepalive_ms=KEEPALIVE_MS)
    server.start()
    try:
        started = time.monotonic()
        assert asyncio.run(_hold_a_stream(f"127.0.0.1:{port}")) == b"2"
        assert time.monotonic() - started >= HOLD_S
    finally:
        server.stop(0)


def test_the_same_stream_is_cut_by_a_server_with_grpcs_default_ping_policy():
    """The control: the same client against a server without our options (what every service had) gets
    GOAWAY too_many_pings — so the test above can fail, and fails for the reason of the issue."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    _add(None, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with pytest.raises(grpc.aio.AioRpcError) as cut:
            asyncio.run(_hold_a_stream(f"127.0.0.1:{port}"))
        assert cut.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "too many pings" in (cut.value.details() or "").lower()
    finally:
        server.stop(0)


def test_client_options_ping_through_streams_that_send_nothing():
    options = dict(client_keepalive_options(KEEPALIVE_MS))
    assert options["grpc.keepalive_time_ms"] == KEEPALIVE_MS and options["grpc.http2.max_pings_without_data"] == 0
