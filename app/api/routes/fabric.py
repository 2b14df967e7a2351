"""Fabric-wide views: RoCE consistency (like `netq check roce`)."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel

from app.api.deps import SessionDep, Viewer
from app.qos_state import check_consistency

router = APIRouter(prefix="/fabric", tags=["fabric"])


class InconsistentSwitch(BaseModel):
    switch: str
    problems: list[str]
    observed_at: datetime | None


class ConsistencyOut(BaseModel):
    checked: int
    consistent: int
    inconsistent: list[InconsistentSwitch]


@router.get("/consistency", response_model=ConsistencyOut)
def consistency(session: SessionDep, _: Viewer) -> ConsistencyOut:
    """Switches whose observed RoCE settings (read by the collector and by changes) differ from
    the intent: PFC on the lossless priorities, ECN on their queues, the pushed waterlines."""
    checked, bad = check_consistency(session)
    return ConsistencyOut(
        checked=checked, consistent=checked - len(bad),
        inconsistent=[InconsistentSwitch(switch=b.switch, problems=b.problems,
                                         observed_at=b.observed_at) for b in bad])
