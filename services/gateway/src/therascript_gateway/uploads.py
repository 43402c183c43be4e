"""Streaming multipart uploads: parse the body as it arrives (streaming-form-data) and forward the
file's bytes to the sessions service as a gRPC client stream, so neither process ever holds the
whole recording in memory, and the size limit is enforced while streaming (413).

The form's text fields may come before or after the file; they are validated (pydantic) when the
body ends and sent as the stream's last message.
"""

from __future__ import annotations

import grpc
from fastapi import Request
from pydantic import BaseModel, Field, ValidationError
from streaming_form_data import StreamingFormDataParser
from streaming_form_data.targets import BaseTarget, ValueTarget
from streaming_form_data.validators import MaxSizeValidator
from streaming_form_data.validators import ValidationError as SizeError

from therascript.sessions.v1 import sessions_pb2 as pb
from therascript.sessions.v1 import sessions_pb2_grpc

from .errors import ApiError

FIELD_MAX_BYTES = 1024
MULTIPART_OVERHEAD_BYTES = 64 * 1024


class UploadForm(BaseModel):
    """The text fields of the upload form (original §1.1; numSpeakers per API-CONTRACT.md Part A)."""

    clientName: str = Field(min_length=1, max_length=200)
    sessionName: str = Field(min_length=1, max_length=200)
    date: str = Field(pattern=r"^\d{4}-\d{2}-\d{2}$")
    sessionType: str = Field(min_length=1, max_length=200)
    therapy: str = Field(min_length=1, max_length=200)
    numSpeakers: float = 2

    def speakers(self) -> int:
        return max(1, min(10, round(self.numSpeakers)))


class _StreamTarget(BaseTarget):
    """Forwards each chunk of the file part to the gRPC stream (awaiting its flow control)."""

    def __init__(self, call: grpc.aio.StreamUnaryCall, max_bytes: int) -> None:
        super().__init__()
        self._call = call
        self._max_bytes = max_bytes
        self.size = 0
        self.seen = False

    async def on_start_async(self) -> None:
        self.seen = True

    async def on_data_received_async(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self._max_bytes:
            raise ApiError(413, f"File size exceeds limit of {self._max_bytes} bytes.")
        if chunk:
            await self._call.write(pb.UploadSessionRequest(data=chunk))


def _text(target: ValueTarget) -> str:
    return target.value.decode("utf-8", errors="replace").strip()


async def receive_upload(request: Request, stub: sessions_pb2_grpc.SessionsServiceStub,
                         max_bytes: int) -> pb.UploadSessionResponse:
    """Streams the multipart body of `request` into SessionsService.UploadSession.

    Raises ApiError 400 (not multipart, missing file, bad fields), 413 (too large, by Content-Length
    at once or while streaming); gRPC errors of the service propagate to the error handler."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes + MULTIPART_OVERHEAD_BYTES:
        raise ApiError(413, f"File size exceeds limit of {max_bytes} bytes.")
    try:
        parser = StreamingFormDataParser(headers=request.headers)
    except Exception:
        raise ApiError(400, "Expected a multipart/form-data body.") from None
    call = stub.UploadSession(timeout=3600)
    file_target = _StreamTarget(call, max_bytes)
    fields = {name: ValueTarget(validator=MaxSizeValidator(FIELD_MAX_BYTES)) for name in UploadForm.model_fields}
    parser.register("audioFile", file_target)
    for name, target in fields.items():
        parser.register(name, target)
    try:
        async for chunk in request.stream():
            await parser.adata_received(chunk)
            if call.done():
                break  # the service refused the upload; its status is raised below
        form = _validated_form(fields, file_target)
        await call.write(pb.UploadSessionRequest(metadata=pb.UploadMetadata(
            file_name=file_target.multipart_filename or "upload",
            declared_content_type=file_target.multipart_content_type or "",
            client_name=form.clientName, session_name=form.sessionName, date=form.date,
            session_type=form.sessionType, therapy=form.therapy, num_speakers=form.speakers(),
        )))
        await call.done_writing()
    except (ApiError, SizeError, ValueError) as error:
        call.cancel()
        if isinstance(error, ApiError):
            raise
        raise ApiError(400, f"Malformed upload: {error}") from None
    except (grpc.aio.UsageError, grpc.aio.AioRpcError, RuntimeError):
        pass  # the call already ended; awaiting it below raises its real status
    return await call


def _validated_form(fields: dict[str, ValueTarget], file_target: _StreamTarget) -> UploadForm:
    if not file_target.seen:
        raise ApiError(400, "Audio file is missing or invalid.", {"field": "audioFile"})
    present = {name: _text(t) for name, t in fields.items() if t.value}
    try:
        return UploadForm.model_validate(present)
    except ValidationError as error:
        details = [{"field": ".".join(map(str, e["loc"])), "message": e["msg"]} for e in error.errors()]
        raise ApiError(400, "Request validation failed.", details, kind="ValidationError") from None
