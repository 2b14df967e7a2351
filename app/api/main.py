"""The FastAPI application factory."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as SATimeoutError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.exc import StaleDataError

from app.api.routes import audit, changes, health, switches, telemetry, topology, tuner
from app.api.routes import fabric as fabric_routes
from app.api.routes.fabric import virtual_fabric_kpis
from app.auth import token_is_live
from app.changes.service import ChangeService, DriverOpener
from app.config import Settings, get_settings
from app.daemon import DaemonOptions, TunerDaemon
from app.db.session import make_engine, make_session_factory
from app.metrics import FabricCollector, VirtualFabricCollector, new_registry
from app.telemetry import load_snapshot

log = logging.getLogger("waterline.api")

API_PREFIX = "/api/v1"
PUBLIC_PATHS = (API_PREFIX + "/healthz", API_PREFIX + "/readyz")
# the largest request body the API reads: an inventory of 1,000 switches x 64 ports as JSON
# is ~8 MB
MAX_BODY_BYTES = 32 << 20


_NOT_FINITE = ("nan", "inf", "+inf", "-inf", "infinity", "+infinity", "-infinity")


def _field_and_reason(err: dict[str, Any]) -> tuple[str, str]:
    """An error's field (dotted, without "body") and its reason in words, never echoing the
    value: a JSON syntax error names the character, not a "field" of that number; NaN and
    infinities are not numbers out of range; a body that is no JSON object says so."""
    loc = [p for p in err["loc"] if p != "body"]
    reason = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "json_invalid":
        at = f" at character {loc[0]}" if loc and isinstance(loc[0], int) else ""
        detail = str((err.get("ctx") or {}).get("error", "")).split(":")[0]
        return "body", f"not valid JSON{at}" + (f" ({detail})" if detail else "")
    value = err.get("input")
    if isinstance(value, float | str) and str(value).strip().lower() in _NOT_FINITE:
        reason = "must be a finite number"
    elif err["type"] == "model_attributes_type" and not loc:
        reason = "must be a JSON object (send Content-Type: application/json)"
    return ".".join(str(p) for p in loc) or "body", reason


def _validation_handler(_: Request, exc: RequestValidationError) -> JSONResponse:
    """422 with each offending field and the reason, never echoing the submitted values."""
    errors = []
    for err in exc.errors():
        field, reason = _field_and_reason(err)
        errors.append({"field": field, "reason": reason, "type": err["type"]})
    summary = "; ".join(f"{e['field']}: {e['reason']}" for e in errors[:5])
    return JSONResponse({"detail": summary, "errors": errors}, status_code=422)


class LimitBody:
    """ASGI middleware, the one place of the body limit: a Content-Length over ``limit`` is
    answered 413 before the body is read; a body without one (chunked) is counted as the app
    reads it and answered 413 once it passes ``limit`` -- the app then reads a disconnect,
    and whatever it would answer is dropped."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        size = dict(scope.get("headers") or []).get(b"content-length", b"")
        if size.isdigit() and int(size) > self.limit:  # refused before a byte is read
            await self._refuse(scope, receive, send)
            return
        seen, refused = 0, False

        async def counted() -> Any:
            nonlocal seen, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message.get("type") == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    refused = True
                    await self._refuse(scope, receive, send)
                    return {"type": "http.disconnect"}
            return message

        async def answer(message: Any) -> None:
            if not refused:
                await send(message)

        await self.app(scope, counted, answer)

    async def _refuse(self, scope: Any, receive: Any, send: Any) -> None:
        await JSONResponse({"detail": f"request body over the limit of {self.limit:,} bytes"},
                           status_code=413)(scope, receive, send)


def _conflict_handler(_: Request, exc: IntegrityError) -> JSONResponse:
    """409 for a write the database refused for its constraints -- in practice a concurrent
    request that created the same object first (the routes check before they write)."""
    first = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else ""
    return JSONResponse({"detail": "conflicts with the stored state (a concurrent request "
                                   f"came first?): {first[:200]}"}, status_code=409)


def _stale_handler(_: Request, exc: StaleDataError) -> JSONResponse:
    """409 for a write whose row a concurrent request changed or deleted meanwhile."""
    return JSONResponse({"detail": "changed or deleted by a concurrent request; read it again"},
                        status_code=409)


def _busy_handler(_: Request, exc: Exception) -> JSONResponse:
    """503 (retry) when the database is too busy to serve the request in time: no pooled
    connection free, or SQLite's write lock held past its timeout. Anything else the
    database raised is a server error, logged."""
    message = str(exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc)
    if isinstance(exc, SATimeoutError) or "database is locked" in message:
        return JSONResponse({"detail": "the database is busy; retry shortly"},
                            status_code=503, headers={"Retry-After": "1"})
    log.error("database error: %s", message.splitlines()[0] if message else type(exc))
    return JSONResponse({"detail": "database error"}, status_code=500)


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Start the embedded collector (single-process mode) and stop it on shutdown."""
    settings: Settings = app.state.settings
    service = None
    daemon: TunerDaemon = app.state.daemon
    if app.state.background:
        try:
            install_virtual_fabric(app.state.session_factory, settings)
        except Exception:  # the API and real switches must still come up
            log.exception("the virtual fabric could not be built; mock switches will not answer")
        recovered = app.state.changes.recover(wait=False)
        if recovered:
            log.warning("recovering changes left in flight by a crash: %s", recovered)
        app.state.changes.start_sweeper()
    if settings.embedded_collector != "off" and app.state.background:
        from collectors.service import CollectorOptions, CollectorService

        service = CollectorService(app.state.engine, CollectorOptions.from_settings(
            settings, drivers="mock" if settings.embedded_collector == "mock" else "all"))
        service.start()
        log.info("embedded collector started")
    if settings.embedded_daemon and app.state.background:
        daemon.start()
        log.info("embedded tuning daemon started")
    app.state.collector = service
    try:
        yield
    finally:
        app.state.changes.stop_sweeper()
        daemon.stop()
        if service is not None:
            service.stop()


def install_virtual_fabric(factory: sessionmaker[Session], settings: Settings) -> bool:
    """Build the process's virtual fabric for the inventory's mock switches (if any)."""
    from app.drivers import mock
    from app.inventory import export_inventory

    def inventory() -> dict[str, Any]:
        with factory() as session:
            return export_inventory(session)

    data = inventory()
    mock.set_inventory_provider(inventory)
    if not any(s["driver"] == "mock" for s in data["switches"]):
        return False
    scenario: Any = None
    if settings.sim_scenario:
        scenario = Path(settings.sim_scenario).read_text()
    mock.install(data, seed=settings.sim_seed, scenario=scenario)
    log.info("virtual fabric ready for %d mock switches",
             sum(1 for s in data["switches"] if s["driver"] == "mock"))
    return True


def create_app(
    settings: Settings | None = None,
    *,
    engine: Engine | None = None,
    background: bool = False,
    driver_opener: DriverOpener | None = None,
    models_loader: Callable[[], Any] | None = None,
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
    app.state.daemon = TunerDaemon(
        app.state.session_factory, app.state.changes, models_loader=models_loader,
        options=DaemonOptions(
            interval_s=settings.tuner_interval_s, window_s=settings.tuner_window_s,
            verify_s=settings.tuner_verify_s, initial_mode=settings.tuner_mode))
    app.add_exception_handler(RequestValidationError, _validation_handler)  # type: ignore[arg-type]
    app.add_middleware(LimitBody, limit=MAX_BODY_BYTES)
    app.add_exception_handler(StaleDataError, _stale_handler)  # type: ignore[arg-type]
    app.add_exception_handler(IntegrityError, _conflict_handler)  # type: ignore[arg-type]
    app.add_exception_handler(OperationalError, _busy_handler)
    app.add_exception_handler(SATimeoutError, _busy_handler)

    def token_live(token: str) -> bool:
        with app.state.session_factory() as session:
            return token_is_live(session, token)

    @app.middleware("http")
    async def require_bearer(request: Request, call_next: Callable[[Request], Any]) -> Any:
        """No live bearer token, no API: a 401 before the body is even read (otherwise an
        anonymous caller would get a bad body's 422, and could make the service read and
        parse any amount of data; ``LimitBody``, inside this, bounds the body of the others).
        The routes authenticate again, record the token's use and check its role."""
        path = request.url.path
        if path.startswith(API_PREFIX + "/") and path not in PUBLIC_PATHS:
            scheme, _, token = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                return JSONResponse({"detail": "missing bearer token"}, status_code=401,
                                    headers={"WWW-Authenticate": "Bearer"})
            try:
                live = await run_in_threadpool(token_live, token.strip())
            except (OperationalError, SATimeoutError) as exc:
                return _busy_handler(request, exc)
            if not live:
                return JSONResponse({"detail": "invalid or revoked token"}, status_code=401,
                                    headers={"WWW-Authenticate": "Bearer"})
        return await call_next(request)
    app.include_router(health.router)
    app.include_router(health.router, prefix=API_PREFIX)
    for module in (switches, telemetry, topology, changes, audit, fabric_routes, tuner):
        app.include_router(module.router, prefix=API_PREFIX)

    fabric = FabricCollector(lambda: load_snapshot(engine)) if settings.fabric_metrics else None
    virtual = VirtualFabricCollector(virtual_fabric_kpis)

    @app.get("/metrics", include_in_schema=False)
    def prometheus_metrics() -> Response:
        """Service metrics and (unless disabled) fabric telemetry from the latest snapshot."""
        body = generate_latest(REGISTRY)
        if fabric is not None:
            body += generate_latest(new_registry(fabric, virtual))
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    @app.get("/", include_in_schema=False)
    def root() -> dict[str, Any]:
        return {"service": "waterline", "docs": "/docs", "api": API_PREFIX}

    return app
