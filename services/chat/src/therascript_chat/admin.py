"""The chat service's Admin RPCs (proto/therascript/common/v1/admin.proto) over its own data: the chats,
messages and templates tables (chat owns no files). After a reset or an import the system templates that
are missing are seeded again, so the running service keeps its prompts without a restart."""

from __future__ import annotations

from therascript.common.v1 import admin_pb2 as pb
from therascript_common.admin import AdminData, AdminServicer
from therascript_common.search import SearchUnavailable

from .deps import ChatDeps
from .search import MessageSearch
from .storage.tables import ChatRow, MessageRow, SearchOutboxRow, TemplateRow
from .templates import seed_system_templates


def build_admin(deps: ChatDeps) -> AdminServicer:
    data = AdminData(
        service="chat",
        engine=deps.db.kw["bind"],
        tables=[ChatRow.__table__, MessageRow.__table__, TemplateRow.__table__],  # type: ignore[list-item]
        transient_tables=[SearchOutboxRow.__table__],  # type: ignore[list-item]
        staging_dir=deps.settings.data_dir / ".admin-staging",
        after_change=lambda: _seed(deps),
    )
    search = deps.search
    return AdminServicer(data, rebuild_search=(lambda: rebuild_search(search)) if search is not None else None)


def rebuild_search(search: MessageSearch) -> pb.RebuildSearchIndexReply:
    """RebuildSearchIndex: the message index re-created from the database (new versioned index, alias swap);
    an Elasticsearch failure is reported in `errors`, not raised."""
    try:
        count = search.rebuild()
    except SearchUnavailable as error:
        return pb.RebuildSearchIndexReply(configured=True, message="chat: message index not rebuilt.",
                                          errors=[f"chat: {error}"])
    return pb.RebuildSearchIndexReply(configured=True, messages_indexed=count,
                                      message=f"chat: {count} messages indexed.")


def _seed(deps: ChatDeps) -> None:
    seed_system_templates(deps.db)
