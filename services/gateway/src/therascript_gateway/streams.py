"""Bounds on the long gRPC streams the gateway holds to the sessions service (issue 7 item 6). Each one pins a
worker thread of that service for as long as it is open, so none may outlive its HTTP request, wait on a client
that has stopped, or be opened beyond a fixed number at once.

- `StreamSlots`: at most N streams of a kind at once; one more is 503 at once (never a queue that stalls).
- `RelayedStream`: a StreamingResponse of a gRPC server stream whose call is cancelled whenever the response
  ends (done, client gone, client not reading for `idle_timeout_s`, any error), and whose slot is released.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Mapping

import grpc
from starlette.requests import ClientDisconnect
from starlette.responses import StreamingResponse
from starlette.types import Message, Receive, Scope, Send

from .errors import ApiError

log = logging.getLogger(__name__)


class StreamSlots:
    """At most `limit` streams of one kind at once; `acquire()` is 503 (not a wait) when all are taken.
    Used from the event loop only, so no lock."""

    def __init__(self, limit: int, what: str) -> None:
        self._free = limit
        self._what = what

    def acquire(self) -> None:
        if self._free <= 0:
            raise ApiError(503, f"Too many {self._what} in progress; try again shortly.", headers={"Retry-After": "5"})
        self._free -= 1

    def release(self) -> None:
        self._free += 1


class RelayedStream(StreamingResponse):
    """Streams `chunks` (read from `call`) to the client; when the response ends for any reason the call is
    cancelled and `on_close` runs. A client that accepts no bytes for `idle_timeout_s` seconds is dropped."""

    def __init__(self, call: grpc.aio.Call, chunks: AsyncIterator[bytes], idle_timeout_s: float,
                 on_close: Callable[[], None], status_code: int = 200, media_type: str | None = None,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(chunks, status_code=status_code, media_type=media_type, headers=headers)
        self._call = call
        self._idle_timeout_s = idle_timeout_s
        self._on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def timed_send(message: Message) -> None:
            try:
                await asyncio.wait_for(send(message), self._idle_timeout_s)
            except TimeoutError:
                raise ClientDisconnect(f"the client read nothing for {self._idle_timeout_s:g} s") from None

        try:
            await super().__call__(scope, receive, timed_send)
        except ClientDisconnect as gone:
            log.info("stream abandoned: %s", gone or "client disconnected")
        finally:
            self._call.cancel()
            self._on_close()
