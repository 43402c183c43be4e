"""JSON answers of the heavy reads, serialized once (issue 13's gateway-hop profile).

A FastAPI route that returns a value is answered by validating that value against the route's declared return
type and then serializing it: for `list[dict]` a full validation pass over every element, then a second pass to
JSON. The gateway's routes build plain dicts from protobuf messages that already have the contract's shape, so the
validation pass finds nothing; on `GET /api/sessions` (1 000 sessions) it cost as much as the JSON encoding itself.
Routes on that path return `json_response(content)` (one pass, pydantic-core's encoder, the same bytes FastAPI
would write) and declare their shape with `response_model=` for the OpenAPI document.
"""

from __future__ import annotations

from typing import Any

from google.protobuf.internal.enum_type_wrapper import EnumTypeWrapper
from pydantic_core import to_json
from starlette.responses import Response


def json_response(content: Any, status_code: int = 200) -> Response:
    """`content` (dicts, lists, str, int, float, bool, None) as an `application/json` response, compact UTF-8."""
    return Response(to_json(content), status_code=status_code, media_type="application/json")


def enum_names(enum: EnumTypeWrapper, prefix: str) -> dict[int, str]:
    """{number: name without `prefix`, lower case} of a protobuf enum, e.g. SESSION_STATUS_COMPLETED → "completed"
    (a dict lookup per message instead of EnumTypeWrapper.Name, which was a third of session_json's time)."""
    return {number: name.removeprefix(prefix).lower() for name, number in enum.items()}
