"""The FastAPI application factory."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from sqlalchemy import Engine

from app.api.routes import audit, changes, health, switches, telemetry, topology
from app.api.routes import fabric as fabric_routes
from app.changes.service import ChangeService, DriverOpener
from app.config import Settings, get_settings
from app.db.session import make_engine, make_session_factory
from app.metrics import FabricCollector, new_registry
from app.telemetry import load_snapshot

log = logging.getLogger("waterline.api")

API_PREFIX = "/api/v1"


def _validation_handler(_: Request, exc: RequestValidationError) -> JSONResponse:
    """422 with each offending field and the reason, never echoing the submitted values."""
    errors = [
        {
            "field": ".".join(str(p) for p in err["loc"] if p != "body") or "body",
            "reason": str(err["msg"]).removeprefix("Value error, "),
            "type": err["type"],
        }
        for err in exc.errors()
    ]
    summary = "; ".join(f"{e['field']}: {e['reason']}" for e in errors[:5])
    return JSONResponse({"detail": summary, "errors": errors}, status_code=422)


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Start the embedded collector (single-process mode) and stop it on shutdown."""
    settings: Settings = app.state.settings
    service = None
    if app.state.background:
        recovered = app.state.changes.recover(wait=False)
        if recovered:
            log.warning("recovering changes left in flight by a crash: %s", recovered)
    if settings.embedded_collector and app.state.background:
        from collectors.service import CollectorOptions, CollectorService

        service = CollectorService(app.state.engine, CollectorOptions.from_settings(settings))
        service.start()
        log.info("embedded collector started")
    app.state.collector = service
    try:
        yield
    finally:
        if service is not None:
            service.stop()


def create_app(
    settings: Settings | None = None,
    *,
    engine: Engine | None = None,
    background: bool = False,
    driver_opener: DriverOpener | None = None,
) -> FastAPI:
    """The API. ``background`` starts the embedded collector (and later the daemon) with the
    app; `waterline serve` sets it, tests that only exercise HTTP do not."""
    settings = settings or get_settings()
    engine = engine or make_engine(settings.database_url)
    app = FastAPI(
        lifespan=_lifespan,
        title="Waterline",
        version="0.1.0",
        description="Open controller for RoCE lossless fabrics: telemetry, ECN/PFC waterline "
        "tuning and safe config push.",
    )
    app.state.settings = settings
    app.state.background = background
    app.state.engine = engine
    app.state.session_factory = make_session_factory(engine)
    app.state.changes = ChangeService(app.state.session_factory, driver_opener)
    app.add_exception_handler(RequestValidationError, _validation_handler)  # type: ignore[arg-type]
    app.include_router(health.router)
    app.include_router(health.router, prefix=API_PREFIX)
    for module in (switches, telemetry, topology, changes, audit, fabric_routes):
        app.include_router(module.router, prefix=API_PREFIX)

    fabric = FabricCollector(lambda: load_snapshot(engine)) if settings.fabric_metrics else None

    @app.get("/metrics", include_in_schema=False)
    def prometheus_metrics() -> Response:
        """Service metrics and (unless disabled) fabric telemetry from the latest snapshot."""
        body = generate_latest(REGISTRY)
        if fabric is not None:
            body += generate_latest(new_registry(fabric))
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    @app.get("/", include_in_schema=False)
    def root() -> dict[str, Any]:
        return {"service": "waterline", "docs": "/docs", "api": API_PREFIX}

    return app
