"""AnalysisService over gRPC: thin — validation, storage and the stream live in jobs.py and streams.py."""

from __future__ import annotations

import json

from therascript.analysis.v1 import analysis_pb2 as pb
from therascript.analysis.v1 import analysis_pb2_grpc
from therascript.common.v1 import common_pb2

from .convert import detail_pb, job_pb
from .jobs import AnalysisJobs
from .streams import JobStreams


class AnalysisServicer(analysis_pb2_grpc.AnalysisServiceServicer):
    def __init__(self, jobs: AnalysisJobs, streams: JobStreams) -> None:
        self._jobs = jobs
        self._streams = streams

    def CreateJob(self, request: pb.CreateJobRequest, context) -> pb.CreateJobResponse:
        job_id = self._jobs.create(request.prompt, list(request.session_ids),
                                   request.model_name if request.HasField("model_name") else None,
                                   request.use_advanced_strategy)
        return pb.CreateJobResponse(job_id=job_id)

    def ListJobs(self, request: pb.ListJobsRequest, context) -> pb.ListJobsResponse:
        rows = self._jobs.list_jobs(request.page.limit, request.page.offset)
        return pb.ListJobsResponse(jobs=[job_pb(row) for row in rows])

    def GetJob(self, request: pb.JobRef, context) -> pb.JobDetail:
        return detail_pb(self._jobs.get(request.job_id))

    def StreamJob(self, request: pb.StreamJobRequest, context):
        last = request.last_event_id if request.HasField("last_event_id") else None
        for item in self._streams.stream(request.job_id, last, context.is_active):
            event = pb.JobEvent(id=item.id, terminal=item.terminal)
            if item.snapshot is not None:
                event.snapshot.CopyFrom(detail_pb(item.snapshot))
            else:
                event.payload_json = json.dumps(item.payload, separators=(",", ":"), ensure_ascii=False)
            yield event

    def CancelJob(self, request: pb.JobRef, context) -> common_pb2.Ack:
        return common_pb2.Ack(message=self._jobs.cancel(request.job_id))

    def DeleteJob(self, request: pb.JobRef, context) -> common_pb2.Ack:
        return common_pb2.Ack(message=self._jobs.delete(request.job_id))

    def GetActiveJobCount(self, request: pb.GetActiveJobCountRequest, context) -> pb.ActiveJobCount:
        return pb.ActiveJobCount(analysis=self._jobs.active_count())
