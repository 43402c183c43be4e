"""ASGI middleware: request ids and trailing-slash tolerance, and the bearer-token check."""

from __future__ import annotations

import hmac
import uuid

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from therascript_common.logging import request_id_var

from .errors import ApiError

_bearer = HTTPBearer(auto_error=False, description="THERASCRIPT_API_TOKEN")


class RequestContextMiddleware:
    """Gives each request an id (the client's `X-Request-Id` if sane, else a new one), puts it in the
    logging context (it then travels as gRPC metadata), echoes it in the response; and strips one
    trailing slash so `/api/sessions/` and `/api/sessions` reach the same route (ui-contract.md §4)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if len(path) > 1 and path.endswith("/"):
            scope = dict(scope, path=path.rstrip("/") or "/")
        supplied = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = supplied if supplied.isascii() and 0 < len(supplied) <= 64 else uuid.uuid4().hex
        token = request_id_var.set(request_id)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", []).append((b"x-request-id", request_id.encode()))
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id_var.reset(token)


async def require_token(
    request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)
) -> None:
    """Route dependency: 401 unless `Authorization: Bearer <THERASCRIPT_API_TOKEN>` (when one is set)."""
    expected = request.app.state.settings.api_token
    if not expected:
        return
    supplied = credentials.credentials if credentials else ""
    if not hmac.compare_digest(supplied.encode(), expected.encode()):
        raise ApiError(401, "A valid bearer token is required.", headers={"WWW-Authenticate": "Bearer"})
