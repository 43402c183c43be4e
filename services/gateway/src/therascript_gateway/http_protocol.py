"""uvicorn's httptools protocol with a cap on the request head (request line + headers).

uvicorn bounds an incomplete request head only for its h11 implementation (`h11_max_incomplete_event_size`); with
httptools, which it picks when installed (and which the gateway uses: it is the faster parser), a client could send
megabytes of headers or URL and the gateway kept buffering them (issue 13's hostile-input test: an 8 MB header was
answered 200). This subclass counts the bytes received while a request's head is still incomplete and answers
431 with the contract's error body, closing the connection, once they pass MAX_HEAD_BYTES — so one connection
costs at most MAX_HEAD_BYTES plus two socket reads before it is refused.
"""

from __future__ import annotations

import json

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

MAX_HEAD_BYTES = 64 * 1024  # the same bound uvicorn applies with h11 (main.py's h11_max_incomplete_event_size)

_BODY = json.dumps({"error": "RequestHeaderFieldsTooLarge",
                    "message": f"Request line and headers exceed {MAX_HEAD_BYTES} bytes."}).encode()
_RESPONSE = (b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\n"
             b"content-length: " + str(len(_BODY)).encode() + b"\r\nconnection: close\r\n\r\n" + _BODY)


async def _refuse(scope, receive, send) -> None:
    """The ASGI answer to a request whose head was over the limit: 431, the error body, connection closed."""
    await send({"type": "http.response.start", "status": 431,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(_BODY)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": _BODY})


class BoundedHeadHttpToolsProtocol(HttpToolsProtocol):
    """HttpToolsProtocol that refuses a request whose head is still incomplete after MAX_HEAD_BYTES bytes
    (431, JSON error body, connection closed). Pass it as uvicorn's `http=`."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._awaiting_head = True
        self._head_bytes = 0
        self._heads_completed = 0
        self._head_size = 0   # request line + headers of the head being parsed, as the parser reports them

    def on_url(self, url: bytes) -> None:
        self._head_size += len(url)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_size += len(name) + len(value) + 4
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        """A head that arrived complete (perhaps in one read with its body) is judged by its own size; over the
        limit, the request is answered 431 by `_refuse` instead of the app (its body is read and dropped)."""
        self._awaiting_head = False
        self._heads_completed += 1
        too_large, self._head_size = self._head_size > MAX_HEAD_BYTES, 0
        if not too_large:
            super().on_headers_complete()
            return
        self.logger.warning("Request head over %d bytes: answered 431.", MAX_HEAD_BYTES)
        app, self.app = self.app, _refuse
        try:
            super().on_headers_complete()
        finally:
            self.app = app

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._awaiting_head, self._head_bytes = True, 0

    def data_received(self, data: bytes) -> None:
        # Only a chunk that arrived wholly inside an incomplete head counts: one in which the previous message
        # ended may be mostly that message's body (an upload's last 256 KiB read), and one in which a head was
        # completed may hold that whole request (a 128 KiB multipart POST in one read: it was answered 431).
        head_was_open, heads_before = self._awaiting_head, self._heads_completed
        super().data_received(data)
        if (not (head_was_open and self._awaiting_head) or self._heads_completed != heads_before
                or self.transport.is_closing()):
            return
        self._head_bytes += len(data)
        if self._head_bytes > MAX_HEAD_BYTES:
            self.logger.warning("Request head over %d bytes: answered 431.", MAX_HEAD_BYTES)
            self.transport.write(_RESPONSE)
            self.transport.close()
