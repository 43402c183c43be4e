"""Entry point: `therascript-gateway` (or `python -m therascript_gateway.main`)."""

from __future__ import annotations

import ipaddress
import logging
import sys

import uvicorn

from therascript_common.logging import configure_logging

from .app import create_app
from .http_protocol import BoundedHeadHttpToolsProtocol
from .settings import GatewaySettings

log = logging.getLogger("therascript_gateway")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def main() -> None:
    settings = GatewaySettings()
    configure_logging("gateway")
    if not settings.api_token:
        if not _is_loopback(settings.host):
            sys.exit(f"THERASCRIPT_API_TOKEN is not set: refusing to listen on {settings.host}. "
                     "Set a token or bind to 127.0.0.1.")
        log.warning("THERASCRIPT_API_TOKEN is not set: authentication is OFF, listening on loopback only (%s).",
                    settings.host)
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_config=None,
                timeout_keep_alive=5, h11_max_incomplete_event_size=64 * 1024, http=BoundedHeadHttpToolsProtocol)


if __name__ == "__main__":
    main()
