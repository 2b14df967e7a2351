"""The audit log: every step of every change, and inventory edits."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel
from sqlalchemy import func, select

from app.api.deps import IdQuery, Offset, SessionDep, Viewer
from app.db.models import AuditEvent
from app.timestamps import UtcDatetime

router = APIRouter(prefix="/audit", tags=["audit"])


class AuditOut(BaseModel):
    id: int
    ts: UtcDatetime
    actor: str
    action: str
    outcome: str
    change_id: int | None
    switch: str | None
    detail: dict[str, Any]


class AuditList(BaseModel):
    total: int
    items: list[AuditOut]


@router.get("", response_model=AuditList)
def list_audit(
    session: SessionDep,
    _: Viewer,
    change_id: IdQuery = None,
    actor: str | None = None,
    action: str | None = None,
    switch: str | None = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
    offset: Offset = 0,
) -> AuditList:
    """Events oldest first, filtered by change, actor, action or switch."""
    query = select(AuditEvent)
    if change_id is not None:
        query = query.where(AuditEvent.change_id == change_id)
    if actor is not None:
        query = query.where(AuditEvent.actor == actor)
    if action is not None:
        query = query.where(AuditEvent.action == action)
    if switch is not None:
        query = query.where(AuditEvent.switch_name == switch)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(query.order_by(AuditEvent.id).limit(limit).offset(offset))
    return AuditList(total=total, items=[
        AuditOut(id=e.id, ts=e.ts, actor=e.actor, action=e.action, outcome=e.outcome,
                 change_id=e.change_id, switch=e.switch_name, detail=e.detail) for e in rows])
