"""ASGI middleware: request ids and trailing-slash tolerance; the bearer-token check and the request-body cap,
both before any body is read (EdgeGuardMiddleware)."""

from __future__ import annotations

import hmac
import uuid

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from therascript_common.logging import request_id_var

from .errors import ApiError, error_response

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
    """Route dependency: 401 unless `Authorization: Bearer <THERASCRIPT_API_TOKEN>` (when one is set).
    EdgeGuardMiddleware has already checked the same before the body was read; this dependency stays so the
    OpenAPI document declares the bearer scheme on every protected route."""
    expected = request.app.state.settings.api_token
    if not expected:
        return
    supplied = credentials.credentials if credentials else ""
    if not hmac.compare_digest(supplied.encode(), expected.encode()):
        raise _unauthorized()


#: Routes open without the token (API-CONTRACT.md Part C: health and the docs).
PUBLIC_PATHS = frozenset({"/api/health", "/api/schema", "/api/docs", "/api/docs/json", "/api/docs/oauth2-redirect"})
PUBLIC_PREFIXES = ("/api/docs/assets/",)
#: Routes that stream their body with their own limit (the recording upload, the archive import).
STREAMED_BODY_PATHS = frozenset({"/api/sessions/upload", "/api/admin/import-data"})


def token_matches(header: str, expected: str) -> bool:
    """True when `header` is `Bearer <expected>` (scheme case-insensitive; constant-time comparison)."""
    scheme, _, supplied = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(supplied.strip().encode(), expected.encode())


def _unauthorized() -> ApiError:
    return ApiError(401, "A valid bearer token is required.", headers={"WWW-Authenticate": "Bearer"})


class EdgeGuardMiddleware:
    """Runs before routing, so before any byte of a request body is read (issue 7 item 8):

    - the bearer token (when one is configured) on every route but PUBLIC_PATHS: 401 at once, the body
      left unread;
    - a cap of `max_body_bytes` on every body but STREAMED_BODY_PATHS: 413 at once when Content-Length
      says more, else 413 as soon as the bytes received pass it (counted as they arrive, never buffered
      here), so a huge body costs the gateway at most the cap.
    CORS preflights (OPTIONS) pass untouched; this middleware sits inside the CORS one, so its 401/413
    carry the CORS headers."""

    def __init__(self, app: ASGIApp, api_token: str | None, max_body_bytes: int) -> None:
        self.app = app
        self.api_token = api_token
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] == "OPTIONS":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        headers = dict(scope["headers"])
        protected = path not in PUBLIC_PATHS and not path.startswith(PUBLIC_PREFIXES)
        supplied = headers.get(b"authorization", b"").decode("latin-1")
        if self.api_token and protected and not token_matches(supplied, self.api_token):
            await self._refuse(_unauthorized(), scope, receive, send)
            return
        if path in STREAMED_BODY_PATHS:
            await self.app(scope, receive, send)
            return
        cap = self.max_body_bytes
        declared = headers.get(b"content-length", b"").decode("latin-1")
        if declared.isdigit() and int(declared) > cap:
            await self._refuse(_too_large(cap), scope, receive, send)
            return
        received = 0

        async def capped_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > cap:
                    # Raised inside the route's body read: the error handlers turn it into the 413 body.
                    raise StarletteHTTPException(413, _too_large(cap).message, headers={"Connection": "close"})
            return message

        await self.app(scope, capped_receive, send)

    @staticmethod
    async def _refuse(error: ApiError, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(error.status, error.kind, error.message, error.details, error.headers)
        # Connection: close — the unread body must not be taken for the next request on this connection.
        response.headers["Connection"] = "close"
        await response(scope, receive, send)


def _too_large(cap: int) -> ApiError:
    return ApiError(413, f"Request body exceeds limit of {cap} bytes.")
