"""``create_app(settings)``: the FastAPI composition root."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

import psycopg
import psycopg_pool
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import HTMLResponse, JSONResponse, Response
from sqlalchemy import exc as sql_exc
from starlette.exceptions import HTTPException as StarletteHTTPException

from core.errors import KefuError
from core.settings import Settings
from core.types import Channel
from serving import (
    audit_routes,
    console,
    conversations,
    customers,
    dashboard,
    experiments_routes,
    insights_routes,
    wechat,
)
from serving.api import router
from serving.auth import TokenSigner, load_secret
from serving.errors import retry_after_of, status_of
from serving.redis_limits import limiter_factory
from serving.service import KefuService

__all__ = ["create_app"]

log = logging.getLogger(__name__)

_STATIC_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
_ASSETS = ("widget.js", "widget.css", "console.js", "console.css", "dashboard.js", "dashboard.css")


def _static(name: str) -> str:
    return resources.files("serving").joinpath("static", name).read_text(encoding="utf-8")


def _asset_route(name: str) -> Callable[[], Response]:
    media_type = _STATIC_TYPES[name[name.rindex(".") :]]

    def serve() -> Response:
        try:
            body = _static(name)
        except FileNotFoundError as exc:
            raise HTTPException(404, f"{name} is not installed") from exc
        return Response(body, media_type=media_type, headers={"Cache-Control": "no-cache"})

    return serve


def create_app(settings: Settings, *, service_factory: Callable[[Settings], KefuService] | None = None) -> FastAPI:
    """Build the app; the service (and the LLM server it may start) lives as long as the app runs."""
    factory = service_factory or KefuService.start

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service = factory(settings)
        app.state.service = service
        app.state.signer = TokenSigner(load_secret(settings), settings.session_ttl_s)
        app.state.wechat = None
        if settings.wechat_token is not None:
            channel = wechat.WeChatChannel(settings, service)
            app.state.wechat = channel
            service.register_outbound(Channel.WECHAT, channel.deliver)
        log.info("Kefu is ready: chat at http://%s:%d", settings.host, settings.port)
        try:
            yield
        finally:
            if app.state.wechat is not None:
                app.state.wechat.close()
            service.close()

    app = FastAPI(
        title="Kefu",
        version="0.1.0",
        summary="Self-hosted AI customer service: conversation API, web widget, WeChat, human-agent console.",
        description="Credentials, events and channels are explained in docs/channels.md.",
        lifespan=lifespan,
    )
    limiter = limiter_factory(settings)  # shared by the replicas through Redis when redis_url is set
    app.state.key_limiter = limiter(settings.rate_per_key_per_min, "credential")
    app.state.conversation_limiter = limiter(settings.rate_per_conversation_per_min, "conversation")
    app.state.login_limiter = limiter(10, "login name")
    app.include_router(router)
    app.include_router(conversations.router)
    app.include_router(console.router)
    app.include_router(customers.router)
    app.include_router(audit_routes.router)
    app.include_router(experiments_routes.router)
    app.include_router(insights_routes.router)
    app.include_router(dashboard.router)
    app.include_router(wechat.router)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "Accept", "X-Kefu-Key"],
            max_age=600,
        )

    def _count(status: int) -> None:
        service = getattr(app.state, "service", None)
        if service is not None and status >= 400:
            service.metrics.rejected.labels(str(status)).inc()

    @app.middleware("http")
    async def limit_body(request: Request, call_next: Callable[[Request], Any]) -> Response:
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > settings.max_body_bytes):
            _count(413)
            return JSONResponse(
                {"detail": f"request body larger than {settings.max_body_bytes} bytes"}, status_code=413
            )
        response: Response = await call_next(request)
        return response

    @app.exception_handler(KefuError)
    async def kefu_error(_request: Request, exc: KefuError) -> JSONResponse:
        status = status_of(exc)
        _count(status)
        retry_after = retry_after_of(exc)
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
        if status == 401:
            headers = {"WWW-Authenticate": "Bearer"}
        return JSONResponse({"detail": str(exc)}, status_code=status, headers=headers)

    async def storage_busy(_request: Request, exc: Exception) -> JSONResponse:
        # A locked or unreachable database outside the chat path (which says more itself): retry later.
        log.warning("storage unavailable: %s", exc)
        _count(503)
        retry_after = str(max(1, round(settings.db_busy_timeout_s)))
        detail = "the database is locked or unavailable; retry later"
        return JSONResponse({"detail": detail}, status_code=503, headers={"Retry-After": retry_after})

    app.add_exception_handler(sql_exc.OperationalError, storage_busy)
    app.add_exception_handler(sqlite3.OperationalError, storage_busy)
    app.add_exception_handler(psycopg.OperationalError, storage_busy)
    app.add_exception_handler(psycopg_pool.PoolTimeout, storage_busy)

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        _count(422)
        errors = [{k: v for k, v in e.items() if k in ("loc", "msg", "type")} for e in exc.errors()]
        return JSONResponse({"detail": errors}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        _count(exc.status_code)
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index() -> str:
        if not settings.demo_pages:
            return "<!doctype html><title>Kefu</title><p>Kefu is running. API: <a href='/docs'>/docs</a>."
        return _static("index.html")

    @app.get("/demo/shop", response_class=HTMLResponse, include_in_schema=False)
    def shop() -> str:
        if not settings.demo_pages:
            raise HTTPException(404, "the demo pages are turned off (KEFU_DEMO_PAGES=false)")
        return _static("shop.html")

    @app.get("/console", response_class=HTMLResponse, include_in_schema=False)
    def console_page() -> str:
        return _static("console.html")

    @app.get("/dashboard", response_class=HTMLResponse, include_in_schema=False)
    def dashboard_page() -> str:
        return _static("dashboard.html")

    for asset in _ASSETS:
        app.add_api_route(f"/{asset}", _asset_route(asset), methods=["GET"], include_in_schema=False)

    return app
