"""gRPC client channels: every outgoing call carries the request id and a deadline.

Services call each other through `sync_channel()`; the (async) gateway through `aio_channel()`.
Both install interceptors that add `x-request-id` metadata from the logging context and a default
deadline (`default_timeout_s`) to any call made without an explicit `timeout=`, so no call can hang
forever (ARCHITECTURE.md; issue 2: "deadlines on every outgoing call").
"""

from __future__ import annotations

from typing import Any

import grpc

from .errors import DomainError, InvalidArgument, NotFound, Unavailable
from .logging import REQUEST_ID_METADATA_KEY, request_id_var

#: Keepalive: one policy for both ends of every channel (issue 7 item 7). Clients ping every KEEPALIVE_TIME_MS, with
#: or without calls and however long a stream sends nothing (a held upload, a reply waiting on a model load), so a
#: dead peer is found; servers (grpc_server.server_keepalive_options) accept pings twice as often. gRPC's server
#: default accepted one ping per 5 minutes without data and answered more with GOAWAY "too_many_pings", which
#: failed every stream on that connection (an unrelated 1 GB upload among them).
KEEPALIVE_TIME_MS = 30_000

#: Reconnect backoff cap. gRPC's default lets the wait between reconnect attempts grow to 120 s, so after an outage
#: of a minute a client kept answering 503 for up to two more minutes after the service was back (found by
#: tests/e2e/test_faults.py, issue 13). 2 s bounds that, at the cost of one refused connection per 2 s per channel
#: while a peer is down.
MAX_RECONNECT_BACKOFF_MS = 2_000


def client_keepalive_options(keepalive_ms: int = KEEPALIVE_TIME_MS) -> list[tuple[str, int]]:
    """Channel options: a ping every `keepalive_ms` ms, answered within a third of that (at least 1 s)."""
    return [
        ("grpc.keepalive_time_ms", keepalive_ms),
        ("grpc.keepalive_timeout_ms", max(1000, keepalive_ms // 3)),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),  # keep pinging through a stream that sends nothing
    ]


def _channel_options(keepalive_ms: int) -> list[tuple[str, int]]:
    return [
        ("grpc.max_receive_message_length", 8 * 1024 * 1024),
        ("grpc.max_reconnect_backoff_ms", MAX_RECONNECT_BACKOFF_MS),
        *client_keepalive_options(keepalive_ms),
    ]


def _with_defaults(details: Any, default_timeout_s: float) -> Any:
    """`details` with the request id added and a deadline set (both call-details types are namedtuples)."""
    metadata = list(details.metadata or [])
    if not any(key == REQUEST_ID_METADATA_KEY for key, _ in metadata):
        metadata.append((REQUEST_ID_METADATA_KEY, request_id_var.get()))
    timeout = details.timeout if details.timeout is not None else default_timeout_s
    return details._replace(metadata=metadata, timeout=timeout)


class _SyncDefaults(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    def __init__(self, default_timeout_s: float) -> None:
        self._timeout = default_timeout_s

    def _call(self, continuation, details, request):
        return continuation(_with_defaults(details, self._timeout), request)

    intercept_unary_unary = _call
    intercept_unary_stream = _call
    intercept_stream_unary = _call
    intercept_stream_stream = _call


def sync_channel(target: str, default_timeout_s: float = 10.0, keepalive_ms: int = KEEPALIVE_TIME_MS) -> grpc.Channel:
    """A blocking channel to `target` ("host:port") with request-id and default-deadline interceptors."""
    channel = grpc.insecure_channel(target, options=_channel_options(keepalive_ms))
    return grpc.intercept_channel(channel, _SyncDefaults(default_timeout_s))


class _AioDefaults(
    grpc.aio.UnaryUnaryClientInterceptor,
    grpc.aio.UnaryStreamClientInterceptor,
    grpc.aio.StreamUnaryClientInterceptor,
    grpc.aio.StreamStreamClientInterceptor,
):
    def __init__(self, default_timeout_s: float) -> None:
        self._timeout = default_timeout_s

    async def _call(self, continuation, details, request):
        return await continuation(_with_defaults(details, self._timeout), request)

    intercept_unary_unary = _call
    intercept_unary_stream = _call
    intercept_stream_unary = _call
    intercept_stream_stream = _call


def aio_channel(target: str, default_timeout_s: float = 10.0,
                keepalive_ms: int = KEEPALIVE_TIME_MS) -> grpc.aio.Channel:
    """An asyncio channel to `target` with request-id and default-deadline interceptors."""
    return grpc.aio.insecure_channel(
        target, options=_channel_options(keepalive_ms), interceptors=[_AioDefaults(default_timeout_s)]
    )


_PASS_THROUGH: dict[grpc.StatusCode, type[DomainError]] = {
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
}


def domain_error(service: str, error: grpc.RpcError) -> DomainError:
    """The domain error for a failed call to `service`: NOT_FOUND/INVALID_ARGUMENT keep their meaning (and the
    callee's message); anything else means the dependency is unavailable (Unavailable, 503)."""
    kind = _PASS_THROUGH.get(error.code())
    if kind is not None:
        return kind(error.details() or error.code().name)
    return Unavailable(f"The {service} service is unavailable ({error.code().name}).")
