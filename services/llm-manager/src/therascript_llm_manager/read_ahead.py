"""Read-ahead for Generate (issue 13, the chat reply relay): coalesce what arrives while the sender is busy.

A relay that reads one item, sends it, then reads the next pays the whole per-message cost (a gRPC send, a
thread hand-off in grpcio; downstream, in chat and the gateway, the same again plus a JSON encoding and an SSE
write) for every token. `read_ahead` reads the
source on its own thread into a buffer, so the items that arrive while the consumer is still sending the previous
batch wait there, and the consumer takes all of them at once, to send as one message. Nothing waits for company:
when the consumer is idle, the first item that arrives is handed over at once, alone. There is no timer, so no
added latency: batches form only when the consumer was busy anyway (a fast GPU, a loaded CPU, a slow reader
downstream), which is when sending fewer messages lets the relay catch up.

The buffer is unbounded: it holds what the source produced and the consumer has not taken yet (for a reply,
at most the reply's own text), so a stalled consumer delays nothing upstream either.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable, Iterable, Iterator
from queue import SimpleQueue
from typing import TypeVar

T = TypeVar("T")


def read_ahead(source: Iterable[T], stop: Callable[[], None], name: str) -> Iterator[list[T]]:
    """Yields lists of `source`'s items in order: each list is everything that arrived since the previous one was
    taken (never empty; one item when the consumer keeps up). An exception raised by `source` is raised here after
    the items that came before it. `source` runs on a daemon thread named `name` (with the caller's context
    variables, so its log lines keep the request id). When the consumer stops early (closes this generator),
    `stop()` is called: it must make `source` end soon (cancel the gRPC call, close the HTTP stream)."""
    # A SimpleQueue, not a Condition: put/get are C calls, so the hand-off adds little to each token's cost.
    queue: SimpleQueue[T | _End] = SimpleQueue()

    def pump() -> None:
        try:
            for item in source:
                queue.put(item)
        except BaseException as error:  # handed to the consumer, which raises it in its own thread
            queue.put(_End(error))
        else:
            queue.put(_End(None))

    thread = threading.Thread(target=contextvars.copy_context().run, args=(pump,), name=name, daemon=True)
    thread.start()
    end: _End | None = None
    try:
        while end is None:
            batch: list[T] = []
            entry = queue.get()  # waits for the next item; the ones already behind it are taken without waiting
            while True:
                if isinstance(entry, _End):
                    end = entry
                    break
                batch.append(entry)
                if queue.empty():
                    break
                entry = queue.get()
            if batch:
                yield batch
        if end.error is not None:
            raise end.error
    finally:
        if end is None:
            stop()


class _End:
    """Put after the source's last item: it ended normally (error None) or by raising `error`."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException | None) -> None:
        self.error = error
