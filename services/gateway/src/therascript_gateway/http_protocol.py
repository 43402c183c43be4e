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


class BoundedHeadHttpToolsProtocol(HttpToolsProtocol):
    """HttpToolsProtocol that refuses a request whose head is still incomplete after MAX_HEAD_BYTES bytes
    (431, JSON error body, connection closed). Pass it as uvicorn's `http=`."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._awaiting_head = True
        self._head_bytes = 0

    def on_headers_complete(self) -> None:
        self._awaiting_head = False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._awaiting_head, self._head_bytes = True, 0

    def data_received(self, data: bytes) -> None:
        # Only a chunk that arrived wholly inside an incomplete head counts: one in which the previous message
        # ended may be mostly that message's body (an upload's last 256 KiB read).
        head_was_open = self._awaiting_head
        super().data_received(data)
        if not (head_was_open and self._awaiting_head) or self.transport.is_closing():
            return
        self._head_bytes += len(data)
        if self._head_bytes > MAX_HEAD_BYTES:
            self.logger.warning("Request head over %d bytes: answered 431.", MAX_HEAD_BYTES)
            self.transport.write(_RESPONSE)
            self.transport.close()
