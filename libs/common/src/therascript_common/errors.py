"""Domain errors raised by service layers, and their one mapping to gRPC status codes.

A service's domain code raises these; the gRPC server interceptor (grpc_server.py) turns them into
a gRPC status; the gateway turns that status into an HTTP status and the contract's error body
(API-CONTRACT.md Part B). So each error is mapped exactly once on each hop.
"""

from __future__ import annotations

import json
from typing import Any

import grpc

#: Trailing-metadata key carrying JSON `details` (e.g. the failing fields of a validation error).
DETAILS_METADATA_KEY = "x-error-details"


class DomainError(Exception):
    """Base class. `code` is the gRPC status the error maps to; `details` is optional JSON-able data."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL

    def __init__(self, message: str, details: Any | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class InvalidArgument(DomainError):
    """Bad input: HTTP 400."""

    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(DomainError):
    """Unknown resource: HTTP 404."""

    code = grpc.StatusCode.NOT_FOUND


class Conflict(DomainError):
    """A write that conflicts with existing data (duplicate title): HTTP 409."""

    code = grpc.StatusCode.ALREADY_EXISTS


class FailedPrecondition(DomainError):
    """The resource is not in a state that allows the call: HTTP 400 (the original's choice) or 409."""

    code = grpc.StatusCode.FAILED_PRECONDITION


class TooLarge(DomainError):
    """A payload over its size limit: HTTP 413."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Unavailable(DomainError):
    """A dependency (model, queue, runtime) is not ready: HTTP 503."""

    code = grpc.StatusCode.UNAVAILABLE


def details_metadata(error: DomainError) -> tuple[tuple[str, str], ...]:
    """Trailing metadata for an error's details; empty when it has none."""
    if error.details is None:
        return ()
    return ((DETAILS_METADATA_KEY, json.dumps(error.details)),)
