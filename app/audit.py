"""Audit trail: one row per step, written in the caller's transaction."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from app.db.models import AuditEvent


def record(
    session: Session,
    actor: str,
    action: str,
    *,
    outcome: str = "ok",
    change_id: int | None = None,
    switch_name: str | None = None,
    detail: dict[str, Any] | None = None,
) -> AuditEvent:
    event = AuditEvent(
        actor=actor,
        action=action,
        outcome=outcome,
        change_id=change_id,
        switch_name=switch_name,
        detail=detail or {},
    )
    session.add(event)
    return event
