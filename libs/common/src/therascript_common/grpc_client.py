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

_CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", 8 * 1024 * 1024),
    ("grpc.keepalive_time_ms", 30_000),
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


def sync_channel(target: str, default_timeout_s: float = 10.0) -> grpc.Channel:
    """A blocking channel to `target` ("host:port") with request-id and default-deadline interceptors."""
    channel = grpc.insecure_channel(target, options=_CHANNEL_OPTIONS)
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


def aio_channel(target: str, default_timeout_s: float = 10.0) -> grpc.aio.Channel:
    """An asyncio channel to `target` with request-id and default-deadline interceptors."""
    return grpc.aio.insecure_channel(
        target, options=_CHANNEL_OPTIONS, interceptors=[_AioDefaults(default_timeout_s)]
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
