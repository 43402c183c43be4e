"""Streaming multipart uploads: parse the body as it arrives (streaming-form-data) and forward the
file's bytes to the sessions service as a gRPC client stream, so neither process ever holds the
whole recording in memory, and the size limit is enforced while streaming (413).

The form's text fields may come before or after the file; they are validated (pydantic) when the
body ends and sent as the stream's last message. Each field may appear once: a repeated part (two
`audioFile`s, two `clientName`s) is 400, not silently concatenated.

Every upstream stream is bounded (issue 7 item 6): at most `upload_max_concurrent` at once (more are
503 at once), a deadline of `upload_deadline_s`, and `upload_idle_timeout_s` of silence from the client
ends the upload with 408. Whatever ends an upload early — a bad field, a stalled or vanished client, a
gateway bug — cancels the gRPC call at once, which frees the sessions service's worker thread and lets
it remove its partial file.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

import grpc
from fastapi import Request
from pydantic import BaseModel, BeforeValidator, ValidationError
from starlette.requests import ClientDisconnect
from streaming_form_data import StreamingFormDataParser
from streaming_form_data.parser import ParseFailedException
from streaming_form_data.targets import BaseTarget, ValueTarget
from streaming_form_data.validators import MaxSizeValidator
from streaming_form_data.validators import ValidationError as SizeError

from therascript.sessions.v1 import sessions_pb2 as pb
from therascript.sessions.v1 import sessions_pb2_grpc

from .errors import ApiError
from .fields import DateText, Name200
from .streams import StreamSlots

log = logging.getLogger(__name__)

FIELD_MAX_BYTES = 1024
MULTIPART_OVERHEAD_BYTES = 64 * 1024
FILE_FIELD = "audioFile"


_DECIMAL_INTEGER = re.compile(r"[+-]?[0-9]{1,9}")


def _decimal_integer(value: object) -> object:
    """Only plain decimal digits (no `inf`, `nan`, `1e309`, `2.5`, `1_0`): anything else fails validation."""
    if isinstance(value, str) and not _DECIMAL_INTEGER.fullmatch(value):
        raise ValueError("must be a whole number written in decimal digits")
    return value


class UploadForm(BaseModel):
    """The text fields of the upload form (original §1.1; numSpeakers per API-CONTRACT.md Part A):
    `numSpeakers` is an integer (a decimal, `inf`, `nan` or `1e309` is 400), clamped to 1..10."""

    clientName: Name200
    sessionName: Name200
    date: DateText
    sessionType: Name200
    therapy: Name200
    numSpeakers: Annotated[int, BeforeValidator(_decimal_integer)] = 2

    def speakers(self) -> int:
        return max(1, min(10, self.numSpeakers))


@dataclass(frozen=True)
class UploadLimits:
    """Bounds of one upload: bytes of the file, seconds of client silence, seconds in all."""

    max_bytes: int
    idle_timeout_s: float
    deadline_s: float


def _repeated(name: str) -> ApiError:
    return ApiError(400, f"The form field '{name}' appears more than once.", [{"field": name, "message": "repeated"}],
                    kind="ValidationError")


class _OnceValue(ValueTarget):
    """A text field's value; a second part of the same name is 400."""

    def __init__(self, name: str) -> None:
        super().__init__(validator=MaxSizeValidator(FIELD_MAX_BYTES))
        self._name = name
        self.parts = 0

    async def on_start_async(self) -> None:
        self.parts += 1
        if self.parts > 1:
            raise _repeated(self._name)


class _StreamTarget(BaseTarget):
    """Forwards each chunk of the file part to the gRPC stream (awaiting its flow control); a second
    file part is 400."""

    def __init__(self, call: grpc.aio.StreamUnaryCall, max_bytes: int) -> None:
        super().__init__()
        self._call = call
        self._max_bytes = max_bytes
        self.size = 0
        self.parts = 0

    async def on_start_async(self) -> None:
        self.parts += 1
        if self.parts > 1:
            raise _repeated(FILE_FIELD)

    async def on_data_received_async(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self._max_bytes:
            raise ApiError(413, f"File size exceeds limit of {self._max_bytes} bytes.")
        if chunk:
            await self._call.write(pb.UploadSessionRequest(data=chunk))


async def _chunks(request: Request, idle_timeout_s: float) -> AsyncIterator[bytes]:
    """The request body as it arrives; 408 after `idle_timeout_s` seconds without a byte."""
    stream = request.stream().__aiter__()
    while True:
        try:
            chunk = await asyncio.wait_for(stream.__anext__(), idle_timeout_s)
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise ApiError(408, f"The upload sent nothing for {idle_timeout_s:g} s; it was abandoned.",
                           kind="RequestTimeoutError") from None
        except ClientDisconnect:
            raise ApiError(400, "The client closed the connection before the upload ended.") from None
        yield chunk


async def receive_upload(request: Request, stub: sessions_pb2_grpc.SessionsServiceStub, limits: UploadLimits,
                         slots: StreamSlots) -> pb.UploadSessionResponse:
    """Streams the multipart body of `request` into SessionsService.UploadSession.

    Raises ApiError 400 (not multipart, missing or repeated part, bad fields), 408 (client silent for
    `idle_timeout_s`), 413 (too large, by Content-Length at once or while streaming), 503 (all upload
    slots taken); the service's gRPC errors propagate to the error handler (a broken stream is UNAVAILABLE
    → 503). The gRPC call is cancelled on every path that does not end in the service's answer."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limits.max_bytes + MULTIPART_OVERHEAD_BYTES:
        raise ApiError(413, f"File size exceeds limit of {limits.max_bytes} bytes.")
    try:
        parser = StreamingFormDataParser(headers=request.headers)
    except Exception:
        raise ApiError(400, "Expected a multipart/form-data body.") from None
    slots.acquire()
    call = stub.UploadSession(timeout=limits.deadline_s)
    try:
        file_target = _StreamTarget(call, limits.max_bytes)
        fields = {name: _OnceValue(name) for name in UploadForm.model_fields}
        parser.register(FILE_FIELD, file_target)
        for name, target in fields.items():
            parser.register(name, target)
        try:
            async for chunk in _chunks(request, limits.idle_timeout_s):
                await parser.adata_received(chunk)
                if call.done():
                    break  # the service refused the upload; its status is raised below
            if not call.done():
                form = _validated_form(fields, file_target)
                await call.write(pb.UploadSessionRequest(metadata=pb.UploadMetadata(
                    file_name=file_target.multipart_filename or "upload",
                    declared_content_type=file_target.multipart_content_type or "",
                    client_name=form.clientName, session_name=form.sessionName, date=form.date,
                    session_type=form.sessionType, therapy=form.therapy, num_speakers=form.speakers(),
                )))
                await call.done_writing()
        except (SizeError, ParseFailedException, UnicodeDecodeError) as error:
            raise ApiError(400, f"Malformed upload: {error}") from None
        except (grpc.aio.UsageError, grpc.aio.AioRpcError, asyncio.InvalidStateError):
            write_failed = True  # the call already ended; awaiting it below raises its real status
        else:
            write_failed = False
        try:
            return await call
        except grpc.aio.AioRpcError as error:
            if write_failed and error.code() == grpc.StatusCode.INTERNAL:
                # grpcio's asyncio client replaces the status with INTERNAL "Internal error from Core" when a
                # write fails as the stream ends (grpc/grpc#36066, fix pending in #43486): the service went away
                # (killed mid-upload: UNAVAILABLE) or ended the stream as this chunk left. Either way the real
                # status is lost; the upload did not happen and may be retried.
                raise ApiError(503, "The sessions service ended the upload stream; try again.",
                               kind="ServiceUnavailableError") from None
            raise
    finally:
        if not call.done():
            call.cancel()
        slots.release()


def _text(target: ValueTarget) -> str:
    return target.value.decode("utf-8", errors="strict").strip()


def _validated_form(fields: dict[str, _OnceValue], file_target: _StreamTarget) -> UploadForm:
    if not file_target.parts:
        raise ApiError(400, "Audio file is missing or invalid.", {"field": FILE_FIELD})
    present = {name: _text(t) for name, t in fields.items() if t.value}
    try:
        return UploadForm.model_validate(present)
    except ValidationError as error:
        details = [{"field": ".".join(map(str, e["loc"])), "message": e["msg"]} for e in error.errors()]
        raise ApiError(400, "Request validation failed.", details, kind="ValidationError") from None
