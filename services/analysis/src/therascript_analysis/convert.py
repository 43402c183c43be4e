"""Rows → protobuf messages of analysis.proto."""

from __future__ import annotations

from therascript.analysis.v1 import analysis_pb2 as pb

from .jobs import JobView
from .storage.tables import AnalysisJobRow, SummaryRow

STATUSES = {
    "pending": pb.JOB_STATUS_PENDING,
    "generating_strategy": pb.JOB_STATUS_GENERATING_STRATEGY,
    "mapping": pb.JOB_STATUS_MAPPING,
    "reducing": pb.JOB_STATUS_REDUCING,
    "completed": pb.JOB_STATUS_COMPLETED,
    "failed": pb.JOB_STATUS_FAILED,
    "canceling": pb.JOB_STATUS_CANCELING,
    "canceled": pb.JOB_STATUS_CANCELED,
}


def job_pb(row: AnalysisJobRow) -> pb.Job:
    return pb.Job(id=row.id, original_prompt=row.original_prompt, short_prompt=row.short_prompt,
                  status=STATUSES[row.status], final_result=row.final_result, error_message=row.error_message,
                  created_at_ms=row.created_at_ms, completed_at_ms=row.completed_at_ms, model_name=row.model_name,
                  context_size=row.context_size, use_advanced_strategy=row.use_advanced_strategy)


def summary_pb(row: SummaryRow) -> pb.Summary:
    return pb.Summary(id=row.id, session_id=row.session_id, summary_text=row.summary_text, status=row.status,
                      error_message=row.error_message, session_name=row.session_name,
                      session_date=row.session_date, chunk_count=row.chunk_count)


def detail_pb(view: JobView) -> pb.JobDetail:
    detail = pb.JobDetail(job=job_pb(view.job), summaries=[summary_pb(s) for s in view.summaries])
    strategy = view.job.strategy_json
    if strategy:
        detail.strategy.CopyFrom(pb.Strategy(intermediate_question=strategy["intermediate_question"],
                                             final_synthesis_instructions=strategy["final_synthesis_instructions"]))
    return detail
