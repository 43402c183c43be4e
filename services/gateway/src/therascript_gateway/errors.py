"""The one error body of the API, and the one gRPC-status → HTTP-status mapping.

Body (API-CONTRACT.md Part B): `{"error": "<Kind>", "message": "<sentence>", "details"?: ...}`.
Never a stack trace; a 500 only for what is truly unexpected.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

import grpc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from therascript_common.errors import DETAILS_METADATA_KEY

log = logging.getLogger(__name__)

# gRPC status → (HTTP status, error kind). The backend services raise domain errors that map to
# these codes (therascript_common.errors), so this table is the only place HTTP statuses are chosen.
GRPC_TO_HTTP: dict[grpc.StatusCode, tuple[int, str]] = {
    grpc.StatusCode.INVALID_ARGUMENT: (400, "BadRequestError"),
    grpc.StatusCode.OUT_OF_RANGE: (400, "BadRequestError"),
    grpc.StatusCode.NOT_FOUND: (404, "NotFoundError"),
    grpc.StatusCode.ALREADY_EXISTS: (409, "ConflictError"),
    grpc.StatusCode.FAILED_PRECONDITION: (409, "ConflictError"),
    grpc.StatusCode.ABORTED: (409, "ConflictError"),
    grpc.StatusCode.RESOURCE_EXHAUSTED: (413, "PayloadTooLargeError"),
    grpc.StatusCode.UNAUTHENTICATED: (401, "UnauthorizedError"),
    grpc.StatusCode.PERMISSION_DENIED: (403, "ForbiddenError"),
    grpc.StatusCode.UNIMPLEMENTED: (501, "NotImplementedError"),
    grpc.StatusCode.UNAVAILABLE: (503, "ServiceUnavailableError"),
    grpc.StatusCode.DEADLINE_EXCEEDED: (504, "GatewayTimeoutError"),
    grpc.StatusCode.CANCELLED: (499, "ClientClosedRequest"),
}

_STATUS_KINDS = {
    400: "BadRequestError",
    401: "UnauthorizedError",
    403: "ForbiddenError",
    404: "NotFoundError",
    405: "MethodNotAllowedError",
    408: "RequestTimeoutError",
    409: "ConflictError",
    413: "PayloadTooLargeError",
    415: "UnsupportedMediaTypeError",
    416: "RangeNotSatisfiableError",
    501: "NotImplementedError",
    503: "ServiceUnavailableError",
}


class ApiError(Exception):
    """An error the gateway itself raises (validation at the edge, auth, ranges)."""

    def __init__(self, status: int, message: str, details: Any = None, kind: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.details = details
        self.kind = kind or _STATUS_KINDS.get(status, "Error")
        self.headers = headers


def error_response(status: int, kind: str, message: str, details: Any = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"error": kind, "message": message}
    if details is not None:
        body["details"] = details
    return JSONResponse(body, status_code=status, headers=headers)


def grpc_error_response(error: grpc.RpcError) -> JSONResponse:
    """Maps a failed gRPC call to the HTTP status and error body (details from trailing metadata)."""
    code = error.code()
    status, kind = GRPC_TO_HTTP.get(code, (502, "BadGatewayError"))
    message = error.details() or code.name
    details = None
    for key, value in error.trailing_metadata() or ():
        if key == DETAILS_METADATA_KEY:
            details = json.loads(value)
    if status == 502:
        log.error("backend call failed: %s %s", code.name, message)
        message = "A backend service failed to answer."
    if status == 501 and not error.details():
        message = "This endpoint is not implemented yet."
    return error_response(status, kind, message, details)


def _allowed_methods(request: Request) -> list[str]:
    """Every method the API serves at this path, from its OpenAPI document (Starlette's own 405 names only the
    methods of the first route that matched the path, not of the others at the same path)."""
    table = getattr(request.app.state, "allowed_methods", None)
    if table is None:
        table = [(re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(path)) + "$"),
                  {method.upper() for method in item})
                 for path, item in request.app.openapi()["paths"].items()]
        request.app.state.allowed_methods = table
    path = request.scope["path"]
    return sorted({m for pattern, methods in table if pattern.match(path) for m in methods})


def install_error_handlers(app: FastAPI) -> None:
    """Registers handlers so that every error leaves the gateway in the contract's body."""

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.kind, exc.message, exc.details, exc.headers)

    @app.exception_handler(grpc.RpcError)
    async def _grpc_error(_: Request, exc: grpc.RpcError) -> JSONResponse:
        return grpc_error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        fields = [
            {"field": ".".join(str(p) for p in err["loc"] if p != "body") or "body", "message": err["msg"]}
            for err in exc.errors()
        ]
        return error_response(400, "ValidationError", "Request validation failed.", fields)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404 and exc.detail == "Not Found":
            message = f"Route {request.method} {request.url.path} not found."
            return error_response(404, "NotFound", message)
        if exc.status_code == 405:
            allow = ", ".join(_allowed_methods(request))
            return error_response(405, "MethodNotAllowedError", f"{request.method} is not allowed here; use {allow}.",
                                  headers={"Allow": allow})
        return error_response(exc.status_code, _STATUS_KINDS.get(exc.status_code, "Error"), str(exc.detail),
                              headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return error_response(500, "InternalServerError", "An unexpected error occurred.")
