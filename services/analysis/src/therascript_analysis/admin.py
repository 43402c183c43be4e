"""The analysis service's Admin RPCs (proto/therascript/common/v1/admin.proto) over its own data: jobs, their
summaries and intermediate answers (no files). Before a reset or an import the `analysis` queue is emptied, so no
queued job runs against rows that are gone (a run in flight sees its row gone and stops)."""

from __future__ import annotations

from rq import Queue

from therascript_common.admin import AdminData, AdminServicer

from .settings import AnalysisSettings
from .storage.database import Database
from .storage.tables import AnalysisJobRow, AnswerRow, SummaryRow


def build_admin(db: Database, queue: Queue, settings: AnalysisSettings) -> AdminServicer:
    data = AdminData(
        service="analysis",
        engine=db.engine,
        tables=[AnalysisJobRow.__table__, SummaryRow.__table__, AnswerRow.__table__],  # type: ignore[list-item]
        staging_dir=settings.data_dir / ".admin-staging",
        before_change=queue.empty,
    )
    return AdminServicer(data)
