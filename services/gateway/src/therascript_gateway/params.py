"""Shared path/query parameter types: every number a client puts in a path or query string is bounded here,
at the edge (issue 7 item 12), so nothing past what the gRPC field holds (int32/int64) reaches a protobuf
constructor (which raised `ValueError: Value out of range` → 500). Anything else is 400 (API-CONTRACT.md
Part B), which FastAPI's validation error handler produces. Every route takes its numbers from here;
test_openapi_contract checks that every integer parameter of the document has a maximum."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query

INT32_MAX = 2**31 - 1
#: Ids are int64 in the contracts; 2**62 leaves room for any arithmetic a service does on them.
ID_MAX = 2**62
#: Epoch milliseconds up to the year 9999.
EPOCH_MS_MAX = 253_402_300_799_999

SessionId = Annotated[int, Path(gt=0, le=ID_MAX, description="Session id (positive integer)")]
ChatId = Annotated[int, Path(gt=0, le=ID_MAX, description="Chat id (positive integer)")]
JobId = Annotated[int, Path(gt=0, le=ID_MAX, description="Job id (positive integer)")]
TemplateId = Annotated[int, Path(gt=0, le=ID_MAX, description="Template id (positive integer)")]
ParagraphIndex = Annotated[int, Path(ge=0, le=INT32_MAX, description="Paragraph index (0-based)")]

#: Paging: how many items to skip (int32, as common.v1.Page and the services' offsets).
Offset = Annotated[int, Query(ge=0, le=INT32_MAX, description="Items to skip (0-based)")]
#: Search paging: `from` (alias), the offset of the first hit.
SearchFrom = Annotated[int, Query(ge=0, le=INT32_MAX, alias="from", description="Offset of the first result")]
#: A time bound in epoch milliseconds (optional).
EpochMs = Annotated[int | None, Query(ge=0, le=EPOCH_MS_MAX, description="Epoch milliseconds")]
