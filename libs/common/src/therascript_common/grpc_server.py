"""gRPC server bootstrap shared by every backend service.

`serve()` builds a thread-pool gRPC server with:
- the standard health protocol (`grpc.health.v1`), SERVING for each registered service;
- an interceptor that puts the caller's `x-request-id` into the logging context and maps
  DomainError (errors.py) to its gRPC status once, for unary and streaming handlers alike;
- graceful shutdown on SIGTERM/SIGINT (in-flight calls get `grace_s` seconds).
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Iterable
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from .errors import DomainError, details_metadata
from .grpc_client import KEEPALIVE_TIME_MS
from .logging import REQUEST_ID_METADATA_KEY, configure_logging, request_id_var

log = logging.getLogger(__name__)


def _request_id(context: grpc.ServicerContext) -> str:
    for key, value in context.invocation_metadata() or ():
        if key == REQUEST_ID_METADATA_KEY:
            return value
    return "-"


def _abort(context: grpc.ServicerContext, error: DomainError) -> None:
    context.set_trailing_metadata(details_metadata(error))
    context.abort(error.code, error.message)


def _wrap_unary(behavior: Callable) -> Callable:
    def wrapped(request, context):
        token = request_id_var.set(_request_id(context))
        try:
            return behavior(request, context)
        except DomainError as error:
            _abort(context, error)
        finally:
            request_id_var.reset(token)

    return wrapped


def _wrap_streaming(behavior: Callable) -> Callable:
    def wrapped(request, context):
        token = request_id_var.set(_request_id(context))
        try:
            yield from behavior(request, context)
        except DomainError as error:
            _abort(context, error)
        finally:
            request_id_var.reset(token)

    return wrapped


class DomainErrorInterceptor(grpc.ServerInterceptor):
    """Request-id context + DomainError → gRPC status, for every RPC of the server."""

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                _wrap_unary(handler.unary_unary), handler.request_deserializer, handler.response_serializer
            )
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                _wrap_streaming(handler.unary_stream), handler.request_deserializer, handler.response_serializer
            )
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(
                _wrap_unary(handler.stream_unary), handler.request_deserializer, handler.response_serializer
            )
        return grpc.stream_stream_rpc_method_handler(
            _wrap_streaming(handler.stream_stream), handler.request_deserializer, handler.response_serializer
        )


def server_keepalive_options(keepalive_ms: int = KEEPALIVE_TIME_MS) -> list[tuple[str, int]]:
    """Server options matching grpc_client.client_keepalive_options(keepalive_ms): pings are accepted with or
    without calls and as often as every `keepalive_ms / 2` ms, so no client of ours is ever sent GOAWAY
    "too_many_pings" (issue 7 item 7). Every server of the system (sync or aio) takes these options."""
    return [
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", keepalive_ms // 2),
        ("grpc.http2.max_ping_strikes", 2),
    ]


def build_server(
    registrations: Iterable[tuple[Callable[[object, grpc.Server], None], object, str]],
    address: str,
    workers: int = 16,
    keepalive_ms: int = KEEPALIVE_TIME_MS,
) -> tuple[grpc.Server, health.HealthServicer, int]:
    """Creates (not starts) a server bound to `address` ("host:port"; port 0 picks a free one).

    `registrations` are `(add_XServicer_to_server, servicer, full_service_name)` triples.
    Returns the server, its health servicer and the bound port.
    """
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=workers),
        interceptors=[DomainErrorInterceptor()],
        options=[("grpc.max_receive_message_length", 8 * 1024 * 1024), *server_keepalive_options(keepalive_ms)],
    )
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for add_to_server, servicer, name in registrations:
        add_to_server(servicer, server)
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    port = server.add_insecure_port(address)
    return server, health_servicer, port


def serve_forever(server: grpc.Server, health_servicer: health.HealthServicer, grace_s: float = 10.0) -> None:
    """Starts `server` and blocks until SIGTERM/SIGINT, then drains for `grace_s` seconds."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    server.start()
    log.info("gRPC server started")
    stop.wait()
    health_servicer.enter_graceful_shutdown()
    server.stop(grace_s).wait()
    log.info("gRPC server stopped")


def registration(module_pb2, module_pb2_grpc, service: str, servicer: object):
    """The `(add_to_server, servicer, full_name)` triple for `service` (e.g. "SessionsService")."""
    add_to_server = getattr(module_pb2_grpc, f"add_{service}Servicer_to_server")
    return add_to_server, servicer, module_pb2.DESCRIPTOR.services_by_name[service].full_name


def run(service: str, settings, registrations) -> None:
    """Configures logging for `service`, builds the server on settings.grpc_host:grpc_port, serves until SIGTERM."""
    configure_logging(service, settings.log_level)
    server, health_servicer, _ = build_server(
        registrations, f"{settings.grpc_host}:{settings.grpc_port}", settings.grpc_workers
    )
    serve_forever(server, health_servicer)
