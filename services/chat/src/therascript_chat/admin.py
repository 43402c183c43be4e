"""The chat service's Admin RPCs (proto/therascript/common/v1/admin.proto) over its own data: the chats,
messages and templates tables (chat owns no files). After a reset or an import the system templates that
are missing are seeded again, so the running service keeps its prompts without a restart."""

from __future__ import annotations

from therascript_common.admin import AdminData, AdminServicer

from .deps import ChatDeps
from .storage.tables import ChatRow, MessageRow, TemplateRow
from .templates import seed_system_templates


def build_admin(deps: ChatDeps) -> AdminServicer:
    data = AdminData(
        service="chat",
        engine=deps.db.kw["bind"],
        tables=[ChatRow.__table__, MessageRow.__table__, TemplateRow.__table__],  # type: ignore[list-item]
        staging_dir=deps.settings.data_dir / ".admin-staging",
        after_change=lambda: _seed(deps),
    )
    return AdminServicer(data)


def _seed(deps: ChatDeps) -> None:
    seed_system_templates(deps.db)
