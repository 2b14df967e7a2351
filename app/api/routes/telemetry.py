"""Telemetry: time series, hot spots and switch health."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel
from sqlalchemy import desc, func, select

from app import telemetry
from app.api.deps import PodQuery, SessionDep, Viewer
from app.api.routes.switches import get_switch_or_404
from app.db.models import PollError, Switch
from app.timestamps import UtcDatetime

router = APIRouter(prefix="/telemetry", tags=["telemetry"])

Metric = Literal[
    "tx_bytes_per_s", "tx_packets_per_s", "ecn_marked_packets_per_s", "rx_pause_frames_per_s",
    "tx_pause_frames_per_s", "drop_packets_per_s", "utilisation", "occupancy_bytes",
    "watermark_bytes", "ecn_mark_ratio",
]


MAX_TIME_S = 2**33  # the year 2242: far enough, and safe for every integer column


def parse_time_ms(value: str | None, name: str, default_ms: int) -> int:
    """Unix seconds (`1764300000.5`) or ISO 8601 (`2026-11-28T10:00:00Z`)."""
    if value is None or value == "":
        return default_ms
    try:
        seconds = float(value)
    except ValueError:
        seconds = None
    if seconds is not None:
        if not 0 <= seconds <= MAX_TIME_S:
            raise HTTPException(422, f"{name}: unix seconds must be within 0..{MAX_TIME_S:.0f}")
        return int(seconds * 1000)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise HTTPException(
            422, f"{name}: expected unix seconds or ISO 8601 time, got {value[:40]!r}"
        ) from None
    if parsed.tzinfo is None:
        raise HTTPException(422, f"{name}: ISO 8601 time needs a timezone (e.g. Z)")
    if not 0 <= parsed.timestamp() <= MAX_TIME_S:
        raise HTTPException(422, f"{name}: time out of range")
    return int(parsed.timestamp() * 1000)


class SeriesOut(BaseModel):
    switch: str
    interface: str
    priority: int
    metric: str
    step_s: float
    source: str
    points: list[tuple[float, float | None]]


@router.get("/series", response_model=SeriesOut)
def get_series(
    session: SessionDep,
    _: Viewer,
    switch: Annotated[str, Query(min_length=1, max_length=64)],
    interface: Annotated[str, Query(min_length=1, max_length=64)],
    metric: Metric,
    priority: Annotated[int, Query(ge=0, le=7)] = 3,
    start: Annotated[str | None, Query(description="unix seconds or ISO 8601; default end-1h")] = None,
    end: Annotated[str | None, Query(description="unix seconds or ISO 8601; default now")] = None,
    step: Annotated[float | None, Query(gt=0, le=86_400 * 7, description="seconds")] = None,
) -> Any:
    """One port x priority over time. The step picks the storage: raw samples below 1 min,
    the 1-minute rollup up to 1 h, the hourly rollup above."""
    end_ms = parse_time_ms(end, "end", int(time.time() * 1000))
    start_ms = parse_time_ms(start, "start", end_ms - 3_600_000)
    if start_ms >= end_ms:
        raise HTTPException(422, "start: must be before end")
    span_s = (end_ms - start_ms) / 1000
    step_s = step if step is not None else max(10.0, span_s / 300)
    if span_s / step_s > telemetry.MAX_POINTS:
        raise HTTPException(
            422, f"step: {span_s / step_s:.0f} points requested; at most "
            f"{telemetry.MAX_POINTS} (use a larger step or a shorter range)"
        )
    try:
        result = telemetry.series(
            session, switch=switch, interface=interface, priority=priority, metric=metric,
            start_ms=start_ms, end_ms=end_ms, step_s=step_s,
        )
    except telemetry.NotFound as exc:
        raise HTTPException(404, str(exc)) from None
    return SeriesOut(**result.__dict__)


class HotspotOut(BaseModel):
    switch: str
    interface: str
    priority: int
    value: float
    speed_gbps: int


@router.get("/hotspots", response_model=list[HotspotOut])
def get_hotspots(
    session: SessionDep,
    _: Viewer,
    metric: Metric = "ecn_marked_packets_per_s",
    window: Annotated[float, Query(gt=0, le=86_400, description="seconds back from now")] = 300,
    limit: Annotated[int, Query(ge=1, le=1000)] = 10,
    role: Literal["spine", "leaf", "tor"] | None = None,
    pod: PodQuery = None,
) -> Any:
    """The top ports by a metric over the last ``window`` seconds."""
    end_ms = int(time.time() * 1000)
    rows = telemetry.hotspots(
        session, metric=metric, start_ms=end_ms - int(window * 1000), end_ms=end_ms,
        limit=limit, role=role, pod=pod,
    )
    return [HotspotOut(**r.__dict__) for r in rows]


class PollErrorOut(BaseModel):
    ts: float
    reason: str
    message: str


class HealthOut(BaseModel):
    switch: str
    health: str
    reason: str
    last_poll_at: UtcDatetime | None
    last_ok_at: UtcDatetime | None
    recent_errors: list[PollErrorOut]


class FabricHealthOut(BaseModel):
    counts: dict[str, int]
    down: list[HealthOut]


@router.get("/health", response_model=FabricHealthOut)
def fabric_health(session: SessionDep, _: Viewer) -> Any:
    """How many switches are up, down or not yet polled, and why the down ones are down."""
    counts = {
        str(health): int(n)
        for health, n in session.execute(
            select(Switch.health, func.count()).group_by(Switch.health)
        )
    }
    down = session.scalars(select(Switch).where(Switch.health == "down").order_by(Switch.name))
    return FabricHealthOut(
        counts=counts,
        down=[_health(session, s, errors=3) for s in down],
    )


@router.get("/health/{name}", response_model=HealthOut)
def switch_health(name: str, session: SessionDep, _: Viewer) -> Any:
    """One switch's poll health with its recent errors."""
    return _health(session, get_switch_or_404(session, name), errors=20)


def _health(session: Any, switch: Switch, errors: int) -> HealthOut:
    rows = session.scalars(
        select(PollError).where(PollError.switch_id == switch.id)
        .order_by(desc(PollError.ts_ms)).limit(errors)
    )
    return HealthOut(
        switch=switch.name, health=switch.health, reason=switch.health_reason,
        last_poll_at=switch.last_poll_at, last_ok_at=switch.last_ok_at,
        recent_errors=[PollErrorOut(ts=e.ts_ms / 1000, reason=e.reason, message=e.message)
                       for e in rows],
    )
