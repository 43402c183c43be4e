"""Logging with a request id on every line.

The gateway mints a request id per HTTP request (or takes the client's `X-Request-Id`), sends it as
gRPC metadata `x-request-id`, and each service puts it in `request_id_var` for the duration of the
call (grpc_server.RequestIdServerInterceptor), so every log line of that request carries it.
"""

from __future__ import annotations

import contextvars
import logging
import sys

REQUEST_ID_METADATA_KEY = "x-request-id"
request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


def configure_logging(service: str, level: str = "INFO") -> None:
    """Configures the root logger: `time level service request_id logger: message` on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_RequestIdFilter())
    handler.setFormatter(
        logging.Formatter(f"%(asctime)s %(levelname)s {service} rid=%(request_id)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
