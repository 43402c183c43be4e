"""Builds the FastAPI application: middleware, error handlers, and one router per resource."""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi_offline import FastAPIOffline

from .clients import ServiceClients
from .errors import install_error_handlers
from .middleware import EdgeGuardMiddleware, RequestContextMiddleware, require_token
from .openapi import install_openapi
from .routes import analysis, chats, llm, meta, ops, search, sessions, templates
from .settings import GatewaySettings
from .streams import StreamSlots

API_VERSION = "1.0.0"
DOCS_ASSETS_URL = "/api/docs/assets"


def create_app(settings: GatewaySettings, clients: ServiceClients | None = None) -> FastAPI:
    """The gateway app. `clients` defaults to channels built from `settings` on start-up."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if clients is None:
            app.state.clients = ServiceClients.connect(settings)
        yield
        await app.state.clients.close()

    # Swagger UI's assets are served by the gateway itself (fastapi-offline), not from a CDN: nothing
    # leaves the deployment, and the docs work on an offline network.
    app = FastAPIOffline(
        title="Therascript API",
        version=API_VERSION,
        docs_url="/api/docs",
        openapi_url="/api/docs/json",
        redoc_url=None,
        static_url=DOCS_ASSETS_URL,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.upload_slots = StreamSlots(settings.upload_max_concurrent, "uploads")
    app.state.audio_slots = StreamSlots(settings.audio_max_concurrent, "audio streams")
    if clients is not None:
        app.state.clients = clients
    install_error_handlers(app)
    install_openapi(app)
    # Innermost first: the token and body cap run before routing (so before a body is read), inside CORS.
    app.add_middleware(EdgeGuardMiddleware, api_token=settings.api_token, max_body_bytes=settings.json_body_max_bytes)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origin_list,
        allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
        allow_headers=["Content-Type", "Authorization", "Range", "Last-Event-ID", "X-Request-Id"],
        expose_headers=["X-User-Message-Id", "Content-Range", "Accept-Ranges", "Content-Length", "X-Request-Id"],
        allow_credentials=False,
    )
    app.add_middleware(RequestContextMiddleware)

    app.include_router(meta.public_router, prefix="/api")
    protected = [Depends(require_token)]
    for module in (sessions, chats, templates, analysis, search, llm, ops, meta):
        app.include_router(module.router, prefix="/api", dependencies=protected)
    return app
