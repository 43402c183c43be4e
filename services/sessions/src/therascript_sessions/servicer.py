"""The gRPC layer of the sessions service: proto ⇄ service-layer calls, nothing else.
Domain errors raised below are mapped to gRPC status codes by therascript_common's interceptor."""

from __future__ import annotations

from collections.abc import Iterator

from therascript.common.v1 import common_pb2
from therascript.sessions.v1 import sessions_pb2 as pb
from therascript.sessions.v1 import sessions_pb2_grpc
from therascript_common.errors import InvalidArgument, Unavailable

from .audio import AudioService
from .jobs import TranscriptionJobs
from .search import TranscriptSearch
from .sessions import MetadataUpdate, SessionService
from .storage.tables import ParagraphRow, SessionRow, TranscriptionJobRow
from .transcripts import SpeakerRename, TranscriptService
from .uploads import UploadRequest, UploadService

_SESSION_STATUS = {
    "pending": pb.SESSION_STATUS_PENDING, "queued": pb.SESSION_STATUS_QUEUED,
    "transcribing": pb.SESSION_STATUS_TRANSCRIBING, "completed": pb.SESSION_STATUS_COMPLETED,
    "failed": pb.SESSION_STATUS_FAILED,
}
_JOB_STATUS = {
    "queued": pb.TRANSCRIPTION_JOB_STATUS_QUEUED, "model_loading": pb.TRANSCRIPTION_JOB_STATUS_MODEL_LOADING,
    "transcribing": pb.TRANSCRIPTION_JOB_STATUS_TRANSCRIBING, "diarizing": pb.TRANSCRIPTION_JOB_STATUS_DIARIZING,
    "completed": pb.TRANSCRIPTION_JOB_STATUS_COMPLETED, "failed": pb.TRANSCRIPTION_JOB_STATUS_FAILED,
    "canceled": pb.TRANSCRIPTION_JOB_STATUS_CANCELED,
}


def session_message(row: SessionRow) -> pb.Session:
    return pb.Session(
        id=row.id, file_name=row.file_name, client_name=row.client_name, session_name=row.session_name,
        date=row.date, session_type=row.session_type, therapy=row.therapy, audio_path=row.audio_path,
        status=_SESSION_STATUS[row.status], whisper_job_id=row.whisper_job_id,
        transcript_token_count=row.transcript_token_count, duration_s=row.duration_s,
        error_message=row.error_message, show_speakers=row.show_speakers,
    )


def transcript_message(rows: list[ParagraphRow], with_words: bool = False) -> pb.Transcript:
    """Paragraph rows → Transcript; `with_words` adds each paragraph's stored words (none when NULL)."""
    return pb.Transcript(paragraphs=[
        pb.Paragraph(id=p.paragraph_index, timestamp_ms=p.timestamp_ms, text=p.text, speaker=p.speaker,
                     words=[pb.TranscriptWord(**w) for w in (p.words or [])] if with_words else None)
        for p in rows
    ])


def job_message(row: TranscriptionJobRow) -> pb.TranscriptionStatus:
    return pb.TranscriptionStatus(
        job_id=row.id, status=_JOB_STATUS[row.status], progress=row.progress, error=row.error,
        duration_s=row.duration_s, message=row.message, stage_seconds=row.stage_seconds or {}, device=row.device or "",
        attempt=row.attempt,
    )


def _ack(message: str) -> common_pb2.Ack:
    return common_pb2.Ack(message=message)


class SessionsServicer(sessions_pb2_grpc.SessionsServiceServicer):
    def __init__(self, sessions: SessionService, transcripts: TranscriptService, audio: AudioService,
                 uploads: UploadService, jobs: TranscriptionJobs, search: TranscriptSearch | None = None) -> None:
        self.sessions = sessions
        self.transcripts = transcripts
        self.audio = audio
        self.uploads = uploads
        self.jobs = jobs
        self.search = search

    def ListSessions(self, request, context):
        rows = self.sessions.list(request.page.limit, request.page.offset)
        return pb.ListSessionsResponse(sessions=[session_message(r) for r in rows])

    def UploadSession(self, request_iterator, context):
        metadata: list[pb.UploadMetadata] = []

        def chunks() -> Iterator[bytes]:
            for part in request_iterator:
                if part.HasField("metadata"):
                    metadata.append(part.metadata)
                else:
                    yield part.data

        def request_of() -> UploadRequest:
            if not metadata:
                raise InvalidArgument("Upload metadata is missing.")
            m = metadata[-1]
            return UploadRequest(m.file_name, m.client_name, m.session_name, m.date, m.session_type, m.therapy,
                                 m.num_speakers)

        session_id, job_id = self.uploads.receive(request_of, chunks())
        return pb.UploadSessionResponse(session_id=session_id, job_id=job_id,
                                        message="Upload successful, transcription queued.")

    def GetSession(self, request, context):
        return session_message(self.sessions.get(request.session_id))

    def UpdateSessionMetadata(self, request, context):
        fields = ("client_name", "session_name", "date", "session_type", "therapy", "file_name", "show_speakers")
        update = MetadataUpdate(**{f: getattr(request, f) for f in fields if request.HasField(f)})
        return session_message(self.sessions.update_metadata(request.session_id, update))

    def DeleteSession(self, request, context):
        self.sessions.delete(request.session_id)
        return _ack(f"Session {request.session_id} and associated data deleted successfully.")

    def GetTranscript(self, request, context):
        return transcript_message(self.transcripts.get(request.session_id))

    def GetTranscriptWords(self, request, context):
        return transcript_message(self.transcripts.get(request.session_id), with_words=True)

    def UpdateParagraph(self, request, context):
        rows = self.transcripts.update_paragraph(request.session_id, request.paragraph_index, request.new_text)
        return transcript_message(rows)

    def DeleteParagraph(self, request, context):
        return transcript_message(self.transcripts.delete_paragraph(request.session_id, request.paragraph_index))

    def SetParagraphSpeaker(self, request, context):
        self.transcripts.set_paragraph_speaker(request.session_id, request.paragraph_index, request.speaker)
        return _ack(f"Speaker updated for paragraph {request.paragraph_index}.")

    def RenameSpeakers(self, request, context):
        renames = [SpeakerRename(getattr(r, "from"), r.to) for r in request.renames]  # `from` is a keyword
        applied = self.transcripts.rename_speakers(request.session_id, renames)
        return _ack(f"Speaker labels updated for session {request.session_id}." if applied else "No changes needed.")

    def GetAudioInfo(self, request, context):
        audio = self.audio.info(request.session_id)
        return pb.AudioInfo(size_bytes=audio.size_bytes, content_type=audio.content_type, file_name=audio.path.name)

    def ReadAudio(self, request, context):
        for chunk in self.audio.read(request.session_id, request.offset, request.length):
            yield pb.AudioChunk(data=chunk)

    def DeleteAudio(self, request, context):
        self.audio.delete(request.session_id)
        return _ack(f"Audio file for session {request.session_id} deleted successfully.")

    def GetTranscriptionStatus(self, request, context):
        return job_message(self.jobs.status(request.job_id))

    def GetActiveJobCount(self, request, context):
        return pb.ActiveJobCount(transcription=self.jobs.active_count())

    def ResetTranscriptionJobs(self, request, context):
        removed, failed = self.jobs.reset()
        return pb.ResetTranscriptionJobsResponse(success=True, jobs_removed=removed, sessions_failed=failed)

    def CheckDiarizationReadiness(self, request, context):
        r = self.jobs.readiness()
        return pb.DiarizationReadiness(ready=r.diarization_ready, model_cached=r.diarization_ready,
                                       prefetch_in_progress=r.prefetch_in_progress, error=r.error)

    def SearchTranscripts(self, request, context):
        if self.search is None:
            raise Unavailable("Transcript search is not configured.")
        hits, total = self.search.search(request.query, request.client_name if request.HasField("client_name") else None,
                                         getattr(request, "from"), request.limit)
        return pb.SearchTranscriptsResponse(total=total, hits=[
            pb.TranscriptHit(id=h.id, session_id=h.session_id, timestamp_ms=h.timestamp_ms, snippet=h.snippet,
                             score=h.score, highlights=h.highlights, client_name=h.client_name) for h in hits
        ])
