"""Change sets: plan (with dry run), approve, apply in waves, roll back, status."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request, status

from app.api.deps import IdPath, Offset, Operator, Viewer
from app.changes.schemas import ChangeCreate, ChangeList, ChangeOut
from app.changes.service import ChangeError, ChangeService

router = APIRouter(prefix="/changes", tags=["changes"])


def _service(request: Request) -> ChangeService:
    service: ChangeService = request.app.state.changes
    return service


def _call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return fn(*args, **kwargs)
    except ChangeError as exc:
        raise HTTPException(exc.status, str(exc)) from None


@router.post("", response_model=ChangeOut, status_code=status.HTTP_201_CREATED)
def create_change(body: ChangeCreate, request: Request, who: Operator) -> ChangeOut:
    """Validate and plan a change: every target's current config is read and the exact CLI
    diff rendered per switch. With ``dry_run`` nothing more happens; otherwise the change waits
    for approval."""
    service = _service(request)
    change_id = _call(service.create, body, who.name)
    return service.get(change_id)


ChangeStatus = Literal["planned", "approved", "applying", "applied", "failed", "rolling_back",
                       "rolled_back", "rollback_failed", "rejected", "dry_run"]


@router.get("", response_model=ChangeList)
def list_changes(
    request: Request, _: Viewer,
    status_filter: Annotated[ChangeStatus | None, Query(alias="status")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100, offset: Offset = 0,
) -> ChangeList:
    total, items = _service(request).list(status=status_filter, limit=limit, offset=offset)
    return ChangeList(total=total, items=items)


@router.get("/{change_id}", response_model=ChangeOut)
def get_change(change_id: IdPath, request: Request, _: Viewer) -> ChangeOut:
    """Status with each switch's wave, state, reason, diff and before/after configs."""
    return _call(_service(request).get, change_id)  # type: ignore[no-any-return]


@router.post("/{change_id}/approve", response_model=ChangeOut)
def approve_change(change_id: IdPath, request: Request, who: Operator) -> ChangeOut:
    service = _service(request)
    _call(service.approve, change_id, who.name)
    return service.get(change_id)


@router.post("/{change_id}/reject", response_model=ChangeOut)
def reject_change(change_id: IdPath, request: Request, who: Operator) -> ChangeOut:
    service = _service(request)
    _call(service.reject, change_id, who.name)
    return service.get(change_id)


@router.post("/{change_id}/apply", response_model=ChangeOut,
             status_code=status.HTTP_202_ACCEPTED)
def apply_change(change_id: IdPath, request: Request, who: Operator) -> ChangeOut:
    """Lock every target switch (409 if another change holds one) and roll out in waves:
    one canary switch, then waves of at most ``wave_size``. Poll the change for progress."""
    service = _service(request)
    _call(service.start_apply, change_id, who.name)
    return service.get(change_id)


@router.post("/{change_id}/rollback", response_model=ChangeOut,
             status_code=status.HTTP_202_ACCEPTED)
def rollback_change(change_id: IdPath, request: Request, who: Operator) -> ChangeOut:
    """Restore every switch the change touched to its pre-change config."""
    service = _service(request)
    _call(service.start_rollback, change_id, who.name)
    return service.get(change_id)
