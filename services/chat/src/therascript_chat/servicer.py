"""ChatService over gRPC: each RPC unpacks the request, calls one domain function, packs the answer.
Domain errors become gRPC statuses in therascript_common.grpc_server's interceptor."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import grpc

from therascript.chat.v1 import chat_pb2, chat_pb2_grpc
from therascript.common.v1 import common_pb2
from therascript_common.errors import InvalidArgument, Unavailable

from . import chats, context_usage, convert, messages, replies, templates
from .deps import ChatDeps


def _session_id(request) -> int | None:
    """The optional `session_id` of a request: None = standalone scope."""
    return request.session_id if request.HasField("session_id") else None


def _require_id(value: int, name: str) -> int:
    if value <= 0:
        raise InvalidArgument(f"{name} must be a positive integer.", [{"field": name, "message": "positive integer"}])
    return value


def _on_end(context: grpc.ServicerContext) -> Callable[[Callable[[], None]], None]:
    """Registers a callback for the end of the RPC; runs it at once if the RPC has already ended."""
    def register(callback: Callable[[], None]) -> None:
        if not context.add_callback(callback):
            callback()
    return register


class ChatServicer(chat_pb2_grpc.ChatServiceServicer):
    def __init__(self, deps: ChatDeps) -> None:
        self.deps = deps
        self.reply_slots = replies.ReplySlots(deps.settings.max_concurrent_replies)

    def CreateChat(self, request, context):
        session_id = _session_id(request)
        if session_id is not None:
            self.deps.sessions.get_session(_require_id(session_id, "sessionId"))
        return convert.chat(chats.create_chat(self.deps.db, session_id))

    def GetChat(self, request, context):
        chat = chats.get_chat(self.deps.db, request.chat_id, _session_id(request))
        rows = messages.list_messages(self.deps.db, chat.id)
        return chat_pb2.ChatDetail(chat=convert.chat(chat), messages=[convert.message(r) for r in rows])

    def ListStandaloneChats(self, request, context):
        rows = chats.list_standalone_chats(self.deps.db, request.page.limit, request.page.offset)
        return chat_pb2.ListChatsResponse(chats=[convert.chat(r) for r in rows])

    def ListSessionChats(self, request, context):
        rows = chats.list_session_chats(self.deps.db, request.session_id)
        return chat_pb2.ListChatsResponse(chats=[convert.chat(r) for r in rows])

    def RenameChat(self, request, context):
        name = request.name if request.HasField("name") else None
        return convert.chat(chats.rename_chat(self.deps.db, request.chat_id, request.session_id, name))

    def UpdateChatDetails(self, request, context):
        name = request.name if request.HasField("name") else None
        tags = list(request.tags) if request.has_tags else None
        return convert.chat(chats.update_chat_details(self.deps.db, request.chat_id, name, tags))

    def DeleteChat(self, request, context):
        chats.delete_chat(self.deps.db, request.chat_id, _session_id(request))
        return common_pb2.Ack(message=f"Chat {request.chat_id} deleted successfully.")

    def DeleteSessionChats(self, request, context):
        cutoff = request.created_at_or_before_ms if request.HasField("created_at_or_before_ms") else None
        count = chats.delete_session_chats(self.deps.db, request.session_id, cutoff)
        return chat_pb2.DeleteSessionChatsResponse(chats_deleted=count)

    def SearchMessages(self, request, context):
        if self.deps.search is None:
            raise Unavailable("Message search is not configured.")
        client = request.client_name if request.HasField("client_name") else None
        hits, total = self.deps.search.search(request.query, client, getattr(request, "from"), request.limit)
        return chat_pb2.SearchMessagesResponse(total=total, hits=[chat_pb2.MessageHit(
            id=h.id, chat_id=h.chat_id, session_id=h.session_id, sender=convert.SENDERS[h.sender],
            timestamp_ms=h.timestamp_ms, snippet=h.snippet, score=h.score, highlights=h.highlights,
            client_name=h.client_name, tags=h.tags) for h in hits])

    def ReindexSessionChats(self, request, context):
        if self.deps.search is None:
            return chat_pb2.ReindexSessionChatsResponse(chats_queued=0)
        queued = self.deps.search.reindex_session(self.deps.db, _require_id(request.session_id, "sessionId"))
        return chat_pb2.ReindexSessionChatsResponse(chats_queued=queued)

    def SendMessage(self, request, context) -> Iterator[chat_pb2.ChatEvent]:
        release = self.reply_slots.take()  # UNAVAILABLE at once beyond CHAT_MAX_CONCURRENT_REPLIES
        on_end = _on_end(context)
        on_end(release)
        try:
            yield from replies.stream_reply(self.deps, request.chat_id, _session_id(request), request.text, on_end)
        finally:
            release()

    def GetContextUsage(self, request, context):
        return context_usage.get_context_usage(self.deps, request.chat_id, _session_id(request),
                                               request.input_draft, request.reserved_output_tokens)

    def ListTemplates(self, request, context):
        rows = templates.list_templates(self.deps.db)
        return chat_pb2.ListTemplatesResponse(templates=[convert.template(r) for r in rows])

    def CreateTemplate(self, request, context):
        return convert.template(templates.create_template(self.deps.db, request.title, request.text))

    def UpdateTemplate(self, request, context):
        body = request.template
        return convert.template(templates.update_template(self.deps.db, request.id, body.title, body.text))

    def DeleteTemplate(self, request, context):
        templates.delete_template(self.deps.db, request.id)
        return common_pb2.Ack(message=f"Template with ID {request.id} deleted successfully.")
