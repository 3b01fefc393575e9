"""``create_app(settings)``: the FastAPI composition root."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from core.errors import BackendError, ConfigError, InvalidInputError, KefuError, NotFoundError
from core.settings import Settings
from serving.api import router
from serving.service import KefuService

__all__ = ["MAX_BODY_BYTES", "create_app"]

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
"""Requests larger than this are refused with 413 before they are parsed."""

_STATUS: dict[type[KefuError], int] = {
    InvalidInputError: 422,
    NotFoundError: 404,
    BackendError: 503,
    ConfigError: 500,
}


def create_app(settings: Settings, *, service_factory: Callable[[Settings], KefuService] | None = None) -> FastAPI:
    """Build the app; the service (and the LLM server it may start) lives as long as the app runs."""
    factory = service_factory or KefuService.start

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service = factory(settings)
        app.state.service = service
        log.info("Kefu is ready: chat at http://%s:%d", settings.host, settings.port)
        try:
            yield
        finally:
            service.close()

    app = FastAPI(
        title="Kefu",
        version="0.1.0",
        summary="Self-hosted AI customer service: chat API and web chat.",
        lifespan=lifespan,
    )
    app.include_router(router)

    @app.middleware("http")
    async def limit_body(request: Request, call_next: Callable[[Request], Any]) -> Response:
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
            return JSONResponse({"detail": f"request body larger than {MAX_BODY_BYTES} bytes"}, status_code=413)
        response: Response = await call_next(request)
        return response

    @app.exception_handler(KefuError)
    async def kefu_error(_request: Request, exc: KefuError) -> JSONResponse:
        status = next((code for kind, code in _STATUS.items() if isinstance(exc, kind)), 500)
        return JSONResponse({"detail": str(exc)}, status_code=status)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index() -> str:
        return resources.files("serving").joinpath("static", "index.html").read_text(encoding="utf-8")

    return app
