"""/api/sessions, /api/transcription, /api/jobs — the sessions service's REST surface
(original §1.1, §1.7, §1.11; field names and shapes per ui-contract.md §2)."""

from __future__ import annotations

import grpc
from fastapi import APIRouter, Body, Depends, Path, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema
from werkzeug.http import parse_range_header

from therascript.analysis.v1 import analysis_pb2
from therascript.chat.v1 import chat_pb2
from therascript.sessions.v1 import sessions_pb2 as pb

from ..clients import ServiceClients, get_clients, get_settings, optional_call
from ..errors import ApiError, grpc_error_response
from ..fields import NON_BLANK_PATTERN, DateText, FileName, Name100, Name200
from ..json_body import enum_names, json_response
from ..params import ParagraphIndex, SessionId
from ..settings import GatewaySettings
from ..streams import RelayedStream
from ..uploads import FILE_FIELD, UploadForm, UploadLimits, receive_upload

router = APIRouter(tags=["sessions"])


# --- JSON shapes --------------------------------------------------------------------------------
def _lower_enum(value: int, enum, prefix: str) -> str:
    return enum.Name(value).removeprefix(prefix).lower()


SESSION_STATUS = enum_names(pb.SessionStatus, "SESSION_STATUS_")


def session_json(s: pb.Session) -> dict:
    """The original Session DTO (§1.1): camelCase, `showSpeakers` an integer, nulls kept."""
    return {
        "id": s.id, "fileName": s.file_name, "clientName": s.client_name, "sessionName": s.session_name,
        "date": s.date, "sessionType": s.session_type, "therapy": s.therapy,
        "audioPath": s.audio_path if s.HasField("audio_path") else None,
        "status": SESSION_STATUS[s.status],
        "whisperJobId": s.whisper_job_id if s.HasField("whisper_job_id") else None,
        "transcriptTokenCount": s.transcript_token_count if s.HasField("transcript_token_count") else None,
        "duration": s.duration_s if s.HasField("duration_s") else None,
        "errorMessage": s.error_message if s.HasField("error_message") else None,
        "showSpeakers": s.show_speakers,
    }


def transcript_json(t: pb.Transcript) -> list[dict]:
    """`[{id, timestamp (ms), text, speaker?}]`; `speaker` is left out when unset (original)."""
    out = []
    for p in t.paragraphs:
        item = {"id": p.id, "timestamp": p.timestamp_ms, "text": p.text}
        if p.HasField("speaker"):
            item["speaker"] = p.speaker
        out.append(item)
    return out


def transcript_words_json(t: pb.Transcript) -> list[dict]:
    """`transcript_json`'s paragraphs, each with `words: [{start, end (ms), text, probability}]` (issue 11)."""
    return [dict(item, words=[{"start": w.start_ms, "end": w.end_ms, "text": w.text,
                               "probability": round(w.probability, 3)} for w in p.words])
            for item, p in zip(transcript_json(t), t.paragraphs, strict=True)]


def chat_summary_json(c: chat_pb2.Chat) -> dict:
    return {"id": c.id, "sessionId": c.session_id if c.HasField("session_id") else None,
            "timestamp": c.timestamp_ms, "name": c.name if c.HasField("name") else None}


# --- request bodies -----------------------------------------------------------------------------
class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")  # server-owned fields (audioPath, status, …) are refused


class MetadataBody(_Strict):
    """At least one field. Names are NFC, trimmed, free of control/bidi/zero-width characters (fields.py, issue 7
    item 13)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"minProperties": 1})

    # null is accepted and means "unchanged"; the document leaves it out, so a generated body always changes one.
    clientName: Name200 | SkipJsonSchema[None] = None
    sessionName: Name200 | SkipJsonSchema[None] = None
    date: DateText | SkipJsonSchema[None] = None
    sessionType: Name200 | SkipJsonSchema[None] = None
    therapy: Name200 | SkipJsonSchema[None] = None
    fileName: FileName | SkipJsonSchema[None] = None
    showSpeakers: bool | SkipJsonSchema[None] = None


class ParagraphEditBody(_Strict):
    paragraphIndex: int = Field(ge=0, le=2**31 - 1)
    newText: str = Field(min_length=1, max_length=10_000, json_schema_extra={"pattern": NON_BLANK_PATTERN})


class SpeakerBody(_Strict):
    speaker: Name100


class SpeakerRenameBody(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    source: Name100 = Field(alias="from")
    to: Name100


# --- sessions -----------------------------------------------------------------------------------
@router.get("/sessions", summary="List all sessions (metadata only)", response_model=list[dict])
async def list_sessions(clients: ServiceClients = Depends(get_clients)) -> Response:
    reply = await clients.sessions.ListSessions(pb.ListSessionsRequest())
    return json_response([session_json(s) for s in reply.sessions])  # serialized once (json_body.py)


def _upload_request_body() -> dict:
    """The multipart form as an OpenAPI requestBody (the route reads the body itself, as a stream); the text
    fields' schemas are UploadForm's own, so the document and the validation cannot drift apart."""
    form = UploadForm.model_json_schema()
    text = {name: schema for name, schema in form["properties"].items() if name != "numSpeakers"}
    properties = {FILE_FIELD: {"type": "string", "format": "binary"}, **text, "numSpeakers": {
        "type": "integer", "minimum": -99_999_999, "maximum": 999_999_999, "default": 2,
        "description": "Speakers in the recording; clamped to 1..10"}}
    schema = {"type": "object", "required": [FILE_FIELD, *form["required"]], "properties": properties}
    return {"required": True, "content": {"multipart/form-data": {"schema": schema}}}


@router.post("/sessions/upload", status_code=202, summary="Upload a recording and start its transcription",
             openapi_extra={"requestBody": _upload_request_body()}, response_model=dict)
async def upload_session(
    request: Request,
    clients: ServiceClients = Depends(get_clients),
    settings: GatewaySettings = Depends(get_settings),
) -> Response:
    """Multipart form: `audioFile` (the recording), `clientName`, `sessionName`, `date` (YYYY-MM-DD),
    `sessionType`, `therapy`, `numSpeakers` (an integer, clamped to 1..10, default 2); each field once.
    Streamed to the sessions service as it arrives (never whole in memory). 202 `{sessionId, jobId,
    message}`; 400 bad or repeated fields, or not audio; 408 the client went silent; 413 over the size
    limit; 503 diarization not ready, too many uploads at once, or the sessions service went away."""
    limits = UploadLimits(settings.upload_max_bytes, settings.upload_idle_timeout_s, settings.upload_deadline_s)
    try:
        reply = await receive_upload(request, clients.sessions, limits, request.app.state.upload_slots)
    except ApiError as error:
        # A refused upload may leave body bytes unread: close the connection, so none is read as a next request.
        error.headers = {**(error.headers or {}), "Connection": "close"}
        raise
    except grpc.aio.AioRpcError as error:
        response = grpc_error_response(error)
        response.headers["Connection"] = "close"
        return response
    return JSONResponse({"sessionId": reply.session_id, "jobId": reply.job_id, "message": reply.message},
                        status_code=202)


@router.get("/sessions/{session_id}", summary="Session metadata and its chats")
async def get_session(session_id: SessionId, clients: ServiceClients = Depends(get_clients)) -> dict:
    session = await clients.sessions.GetSession(pb.SessionRef(session_id=session_id))
    listed = clients.chat.ListSessionChats(chat_pb2.ListSessionChatsRequest(session_id=session_id))
    chats = (await optional_call(listed, chat_pb2.ListChatsResponse(), "chat service")).chats
    return {**session_json(session), "chats": [chat_summary_json(c) for c in chats]}


@router.put("/sessions/{session_id}/metadata", summary="Update session metadata")
async def update_metadata(session_id: SessionId, body: MetadataBody,
                          clients: ServiceClients = Depends(get_clients)) -> dict:
    fields = {
        "client_name": body.clientName, "session_name": body.sessionName, "date": body.date,
        "session_type": body.sessionType, "therapy": body.therapy, "file_name": body.fileName,
        "show_speakers": body.showSpeakers,
    }
    request = pb.UpdateSessionMetadataRequest(session_id=session_id,
                                              **{k: v for k, v in fields.items() if v is not None})
    return session_json(await clients.sessions.UpdateSessionMetadata(request))


@router.delete("/sessions/{session_id}", summary="Delete a session, its audio, transcript and chats")
async def delete_session(session_id: SessionId, clients: ServiceClients = Depends(get_clients)) -> dict:
    reply = await clients.sessions.DeleteSession(pb.SessionRef(session_id=session_id))
    return {"message": reply.message}


# --- transcript ---------------------------------------------------------------------------------
@router.get("/sessions/{session_id}/transcript", summary="The transcript's paragraphs", response_model=list[dict])
async def get_transcript(session_id: SessionId, clients: ServiceClients = Depends(get_clients)) -> Response:
    reply = await clients.sessions.GetTranscript(pb.SessionRef(session_id=session_id))
    return json_response(transcript_json(reply))  # serialized once (json_body.py)


@router.get("/sessions/{session_id}/transcript/words", summary="The transcript's paragraphs with word timings",
            response_model=list[dict])
async def get_transcript_words(session_id: SessionId, clients: ServiceClients = Depends(get_clients)) -> Response:
    reply = await clients.sessions.GetTranscriptWords(pb.SessionRef(session_id=session_id))
    return json_response(transcript_words_json(reply))


@router.patch("/sessions/{session_id}/transcript", summary="Update one paragraph's text")
async def update_paragraph(session_id: SessionId, body: ParagraphEditBody,
                           clients: ServiceClients = Depends(get_clients)) -> list[dict]:
    request = pb.UpdateParagraphRequest(session_id=session_id, paragraph_index=body.paragraphIndex,
                                        new_text=body.newText)
    return transcript_json(await clients.sessions.UpdateParagraph(request))


@router.delete("/sessions/{session_id}/transcript/{paragraph_index}", summary="Delete one paragraph")
async def delete_paragraph(session_id: SessionId, paragraph_index: ParagraphIndex,
                           clients: ServiceClients = Depends(get_clients)) -> list[dict]:
    ref = pb.ParagraphRef(session_id=session_id, paragraph_index=paragraph_index)
    return transcript_json(await clients.sessions.DeleteParagraph(ref))


@router.patch("/sessions/{session_id}/transcript/{paragraph_index}/speaker", summary="Set one paragraph's speaker")
async def set_paragraph_speaker(session_id: SessionId, paragraph_index: ParagraphIndex, body: SpeakerBody,
                                clients: ServiceClients = Depends(get_clients)) -> dict:
    request = pb.SetParagraphSpeakerRequest(session_id=session_id, paragraph_index=paragraph_index,
                                            speaker=body.speaker)
    return {"message": (await clients.sessions.SetParagraphSpeaker(request)).message}


@router.patch("/sessions/{session_id}/speakers", summary="Rename speaker labels (all pairs at once)")
async def rename_speakers(session_id: SessionId,
                          body: list[SpeakerRenameBody] = Body(..., max_length=100),
                          clients: ServiceClients = Depends(get_clients)) -> dict:
    renames = [pb.SpeakerRename(**{"from": r.source, "to": r.to}) for r in body]
    reply = await clients.sessions.RenameSpeakers(pb.RenameSpeakersRequest(session_id=session_id, renames=renames))
    return {"message": reply.message}


# --- audio --------------------------------------------------------------------------------------
@router.get("/sessions/{session_id}/audio", summary="Stream the recording (HTTP Range supported)")
async def get_audio(session_id: SessionId, request: Request, clients: ServiceClients = Depends(get_clients),
                    settings: GatewaySettings = Depends(get_settings)) -> StreamingResponse:
    """200 with the whole file, or 206 for one satisfiable range (`bytes=a-b`, `bytes=a-`, `bytes=-n`,
    an end past EOF is clamped, RFC 9110 §14); 416 with `Content-Range: bytes */size` when unsatisfiable.
    A malformed, non-bytes or multi-range header is ignored (full 200), as RFC 9110 allows. At most
    `audio_max_concurrent` streams at once (503 beyond); a client that reads nothing for `audio_idle_timeout_s`
    is dropped and the upstream stream cancelled (streams.py)."""
    info = await clients.sessions.GetAudioInfo(pb.SessionRef(session_id=session_id))
    size = info.size_bytes
    headers = {"Accept-Ranges": "bytes"}
    start, stop, status = 0, size, 200
    parsed = parse_range_header(request.headers.get("range"))
    if parsed is not None and parsed.units == "bytes" and len(parsed.ranges) == 1:
        bounds = parsed.range_for_length(size)
        if bounds is None:
            raise ApiError(416, "Range Not Satisfiable", headers={"Content-Range": f"bytes */{size}"})
        start, stop = bounds
        status = 206
        headers["Content-Range"] = f"bytes {start}-{stop - 1}/{size}"
    headers["Content-Length"] = str(stop - start)
    slots = request.app.state.audio_slots
    slots.acquire()
    call = clients.sessions.ReadAudio(pb.ReadAudioRequest(session_id=session_id, offset=start, length=stop - start),
                                      timeout=settings.upload_deadline_s)

    async def body():
        async for chunk in call:
            yield chunk.data

    return RelayedStream(call, body(), settings.audio_idle_timeout_s, slots.release, status_code=status,
                         media_type=info.content_type, headers=headers)


@router.delete("/sessions/{session_id}/audio", summary="Delete only the recording")
async def delete_audio(session_id: SessionId, clients: ServiceClients = Depends(get_clients)) -> dict:
    return {"message": (await clients.sessions.DeleteAudio(pb.SessionRef(session_id=session_id))).message}


# --- transcription jobs -------------------------------------------------------------------------
@router.get("/transcription/status/{job_id}", summary="Status of a transcription job")
async def transcription_status(
    job_id: str = Path(pattern=r"^[A-Za-z0-9_-]{1,64}$"),
    clients: ServiceClients = Depends(get_clients),
) -> dict:
    """`{job_id, status, progress (0..100), error, duration (s), message}` as the original, plus
    `stageSeconds` (wall time per stage, s), `device` and `attempt` (1, or more after retries)."""
    s = await clients.sessions.GetTranscriptionStatus(pb.TranscriptionJobRef(job_id=job_id))
    return {
        "job_id": s.job_id,
        "status": _lower_enum(s.status, pb.TranscriptionJobStatus, "TRANSCRIPTION_JOB_STATUS_"),
        "progress": s.progress if s.HasField("progress") else None,
        "error": s.error if s.HasField("error") else None,
        "duration": s.duration_s if s.HasField("duration_s") else None,
        "message": s.message if s.HasField("message") else None,
        "stageSeconds": dict(s.stage_seconds),
        "device": s.device or None,
        "attempt": s.attempt,
    }


@router.get("/jobs/active-count", summary="Active and waiting background jobs")
async def active_count(clients: ServiceClients = Depends(get_clients)) -> dict:
    transcription = (await clients.sessions.GetActiveJobCount(pb.GetActiveJobCountRequest())).transcription
    counted = clients.analysis.GetActiveJobCount(analysis_pb2.GetActiveJobCountRequest())
    analysis = (await optional_call(counted, analysis_pb2.ActiveJobCount(), "analysis service")).analysis
    return {"total": transcription + analysis, "transcription": transcription, "analysis": analysis}


@router.post("/jobs/reset-transcription", summary="Clear queued/running transcription jobs")
async def reset_transcription(clients: ServiceClients = Depends(get_clients)) -> dict:
    reply = await clients.sessions.ResetTranscriptionJobs(pb.ResetTranscriptionJobsRequest())
    return {"success": reply.success, "jobsRemoved": reply.jobs_removed, "sessionsFailed": reply.sessions_failed}
