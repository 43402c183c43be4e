"""The OpenAPI document says what the API really answers (issue 7): the contract's error body as a schema,
and on every operation the error statuses it can answer, instead of FastAPI's default 422 (which the gateway
never sends: validation failures are 400, errors.py).

Which statuses an operation declares follows from what can produce them:
- 400 `ValidationError`/`BadRequestError`: it takes parameters or a body (edge validation), or calls a backend
  (INVALID_ARGUMENT);
- 401: it is protected (EdgeGuardMiddleware; the bearer scheme is declared by `require_token`);
- 404: it names a resource (path parameters) or takes a body naming one (NOT_FOUND);
- 409: it changes something (POST/PUT/PATCH/DELETE: ALREADY_EXISTS, FAILED_PRECONDITION);
- 413: it takes a body (the body cap, or the upload limit);
- 501/503/504: it calls a backend service (UNIMPLEMENTED, UNAVAILABLE, DEADLINE_EXCEEDED);
- 431: any request whose line and headers pass the head cap (http_protocol.py), before routing;
- the upload also 408 (a silent client), and the audio stream 416 (a range past the end).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "Error",
    "description": "The error body of every error (API-CONTRACT.md Part B).",
    "required": ["error", "message"],
    "properties": {
        "error": {"type": "string", "description": "Error kind, e.g. ValidationError, NotFoundError"},
        "message": {"type": "string", "description": "A human sentence"},
        "details": {"description": "Optional: the failing fields of a ValidationError, or other context"},
    },
}
ERROR_REF = {"$ref": "#/components/schemas/Error"}

_DESCRIPTIONS = {
    400: "Bad request: a parameter or body field failed validation",
    401: "A valid bearer token is required",
    404: "Not found",
    408: "The client sent nothing for the idle timeout",
    409: "Conflict with the current state",
    413: "The body is larger than allowed",
    416: "Range not satisfiable",
    431: "The request line and headers are larger than allowed",
    501: "Not implemented yet",
    503: "A backend service is unavailable, or the server is busy",
    504: "A backend service did not answer in time",
}
_CHANGING = {"post", "put", "patch", "delete"}
#: Answered by the gateway alone, or probes that turn every backend error into their own body.
_LOCAL = {"/api/schema", "/api/health", "/api/status/readiness"}
_PUBLIC = {"/api/health", "/api/schema"}
_EXTRA = {("post", "/api/sessions/upload"): {408, 413}, ("get", "/api/sessions/{session_id}/audio"): {416}}


def _statuses(method: str, path: str, operation: dict[str, Any]) -> set[int]:
    parameters = operation.get("parameters", [])
    has_body = "requestBody" in operation
    statuses: set[int] = {431}
    if parameters or has_body or path not in _LOCAL:
        statuses.add(400)
    if path not in _PUBLIC:
        statuses.add(401)
    if any(p.get("in") == "path" for p in parameters) or has_body:
        statuses.add(404)
    if method in _CHANGING:
        statuses.add(409)
    if has_body:
        statuses.add(413)
    if path not in _LOCAL:
        statuses |= {501, 503, 504}
    return statuses | _EXTRA.get((method, path), set())


def document_errors(schema: dict[str, Any]) -> dict[str, Any]:
    """Adds the Error schema and each operation's error responses to `schema` (in place, idempotent); removes
    FastAPI's 422 and its HTTPValidationError schemas. Returns `schema`."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["Error"] = ERROR_SCHEMA
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    for path, item in schema.get("paths", {}).items():
        for method, operation in item.items():
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)
            for status in sorted(_statuses(method, path, operation)):
                responses.setdefault(str(status), {
                    "description": _DESCRIPTIONS[status],
                    "content": {"application/json": {"schema": ERROR_REF}},
                })
    return schema


def install_openapi(app: FastAPI) -> None:
    """Makes `app.openapi()` (served at /api/docs/json) return the document with the error responses."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        return document_errors(build())

    app.openapi = openapi  # type: ignore[method-assign]
