"""Switches and their interfaces (inventory through the API)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, Response, status
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from app.api.deps import Admin, Offset, PodQuery, SessionDep, Viewer
from app.api.schemas import (
    InterfaceCreate,
    InterfacePublic,
    InterfaceUpdate,
    SwitchCreate,
    SwitchDetail,
    SwitchList,
    SwitchPublic,
    SwitchUpdate,
)
from app.audit import record
from app.db.models import Interface, Switch, SwitchLock
from app.inventory import MAX_INTERFACES, SWITCH_NAME_PATTERN, apply_switch_entry

router = APIRouter(prefix="/switches", tags=["switches"])

SwitchNameParam = Annotated[str, "switch name"]


def switch_public(switch: Switch, *, detail: bool = False) -> SwitchPublic:
    data = {
        column: getattr(switch, column)
        for column in SwitchPublic.model_fields
        if column not in ("has_credentials", "interface_count", "interfaces")
    }
    data["has_credentials"] = bool(switch.credentials_ref)
    data["interface_count"] = len(switch.interfaces)
    if detail:
        data["interfaces"] = [InterfacePublic.model_validate(i) for i in switch.interfaces]
        return SwitchDetail.model_validate(data)
    return SwitchPublic.model_validate(data)


def refuse_if_locked(session: Session, switch: Switch) -> None:
    """A switch a change is applying to may not be edited or deleted meanwhile."""
    holder = session.scalar(select(SwitchLock.change_id).where(SwitchLock.switch_id == switch.id))
    if holder is not None:
        raise HTTPException(status.HTTP_409_CONFLICT,
                            f"switch {switch.name!r} is locked by change {holder}")


def _flush_or_conflict(session: Session, conflict: str) -> None:
    """Write now; a unique key a concurrent request took first is a 409, not a 500 (the
    check before the write cannot see an uncommitted twin)."""
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        raise HTTPException(status.HTTP_409_CONFLICT, conflict) from None


def get_switch_or_404(session: Session, name: str) -> Switch:
    switch = session.scalars(
        select(Switch).where(Switch.name == name).options(selectinload(Switch.interfaces))
    ).first()
    if switch is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"switch {name!r} not found")
    return switch


@router.get("", response_model=SwitchList)
def list_switches(
    session: SessionDep,
    _: Viewer,
    role: Literal["spine", "leaf", "tor"] | None = None,
    pod: PodQuery = None,
    enabled: bool | None = None,
    health: Literal["up", "down", "unknown"] | None = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    offset: Offset = 0,
) -> SwitchList:
    """List switches, filtered by role, pod, enabled flag or health."""
    query = select(Switch)
    if role is not None:
        query = query.where(Switch.role == role)
    if pod is not None:
        query = query.where(Switch.pod == pod)
    if enabled is not None:
        query = query.where(Switch.enabled == enabled)
    if health is not None:
        query = query.where(Switch.health == health)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(
        query.options(selectinload(Switch.interfaces)).order_by(Switch.name).limit(limit).offset(offset)
    ).all()
    return SwitchList(total=total, items=[switch_public(s) for s in rows])


@router.get("/{name}", response_model=SwitchDetail)
def get_switch(name: SwitchNameParam, session: SessionDep, _: Viewer) -> SwitchPublic:
    return switch_public(get_switch_or_404(session, name), detail=True)


@router.post("", response_model=SwitchDetail, status_code=status.HTTP_201_CREATED)
def create_switch(body: SwitchCreate, session: SessionDep, who: Admin) -> SwitchPublic:
    if session.scalars(select(Switch.id).where(Switch.name == body.name)).first() is not None:
        raise HTTPException(status.HTTP_409_CONFLICT, f"switch {body.name!r} already exists")
    names = [i.name for i in body.interfaces]
    if len(names) != len(set(names)):
        raise HTTPException(422, "interfaces: duplicate interface name")
    switch = Switch(name=body.name)
    session.add(switch)
    apply_switch_entry(switch, body)
    _flush_or_conflict(session, f"switch {body.name!r} already exists")
    record(session, who.name, "switch.create", switch_name=switch.name)
    return switch_public(switch, detail=True)


@router.patch("/{name}", response_model=SwitchDetail)
def update_switch(
    name: SwitchNameParam, body: SwitchUpdate, session: SessionDep, who: Admin
) -> SwitchPublic:
    switch = get_switch_or_404(session, name)
    refuse_if_locked(session, switch)
    changes = body.model_dump(exclude_unset=True)
    for field, value in changes.items():
        if value is None and field not in ("pod", "poll_interval_s"):
            raise HTTPException(422, f"{field}: may not be null")
        setattr(switch, field, value)
    session.flush()
    record(session, who.name, "switch.update", switch_name=name, detail={"fields": sorted(changes)})
    return switch_public(switch, detail=True)


@router.delete("/{name}", status_code=status.HTTP_204_NO_CONTENT)
def delete_switch(name: SwitchNameParam, session: SessionDep, who: Admin) -> Response:
    switch = get_switch_or_404(session, name)
    refuse_if_locked(session, switch)
    # one statement whose row count says who deleted it: of concurrent deletes one is 204, the
    # others 404 (the database cascades to the switch's interfaces and state)
    session.expunge(switch)
    gone = session.execute(delete(Switch).where(Switch.id == switch.id))
    if getattr(gone, "rowcount", 0) != 1:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"switch {name!r} not found")
    record(session, who.name, "switch.delete", switch_name=name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{name}/interfaces", response_model=list[InterfacePublic])
def list_interfaces(name: SwitchNameParam, session: SessionDep, _: Viewer) -> list[InterfacePublic]:
    switch = get_switch_or_404(session, name)
    return [InterfacePublic.model_validate(i) for i in switch.interfaces]


def _interface_or_404(switch: Switch, ifname: str) -> Interface:
    for interface in switch.interfaces:
        if interface.name == ifname:
            return interface
    raise HTTPException(
        status.HTTP_404_NOT_FOUND, f"switch {switch.name!r} has no interface {ifname!r}"
    )


@router.get("/{name}/interfaces/{ifname:path}", response_model=InterfacePublic)
def get_interface(name: SwitchNameParam, ifname: str, session: SessionDep, _: Viewer) -> InterfacePublic:
    return InterfacePublic.model_validate(_interface_or_404(get_switch_or_404(session, name), ifname))


@router.post(
    "/{name}/interfaces", response_model=InterfacePublic, status_code=status.HTTP_201_CREATED
)
def create_interface(
    name: SwitchNameParam, body: InterfaceCreate, session: SessionDep, who: Admin
) -> InterfacePublic:
    switch = get_switch_or_404(session, name)
    refuse_if_locked(session, switch)
    if len(switch.interfaces) >= MAX_INTERFACES:  # as an inventory entry may list
        raise HTTPException(422, f"interfaces: switch {name!r} already has {MAX_INTERFACES}")
    if any(i.name == body.name for i in switch.interfaces):
        raise HTTPException(status.HTTP_409_CONFLICT, f"interface {body.name!r} already exists")
    interface = Interface(
        name=body.name, speed_gbps=body.speed_gbps, peer=body.peer, cable_m=body.cable_m
    )
    switch.interfaces.append(interface)
    _flush_or_conflict(session, f"interface {body.name!r} already exists")
    record(session, who.name, "interface.create", switch_name=name, detail={"interface": body.name})
    return InterfacePublic.model_validate(interface)


@router.patch("/{name}/interfaces/{ifname:path}", response_model=InterfacePublic)
def update_interface(
    name: SwitchNameParam, ifname: str, body: InterfaceUpdate, session: SessionDep, who: Admin
) -> InterfacePublic:
    switch = get_switch_or_404(session, name)
    refuse_if_locked(session, switch)
    interface = _interface_or_404(switch, ifname)
    changes = body.model_dump(exclude_unset=True)
    for field, value in changes.items():
        if value is None:
            raise HTTPException(422, f"{field}: may not be null")
        setattr(interface, field, value)
    session.flush()
    record(session, who.name, "interface.update", switch_name=name,
           detail={"interface": ifname, "fields": sorted(changes)})
    return InterfacePublic.model_validate(interface)


@router.delete("/{name}/interfaces/{ifname:path}", status_code=status.HTTP_204_NO_CONTENT)
def delete_interface(name: SwitchNameParam, ifname: str, session: SessionDep, who: Admin) -> Response:
    switch = get_switch_or_404(session, name)
    refuse_if_locked(session, switch)
    switch.interfaces.remove(_interface_or_404(switch, ifname))
    record(session, who.name, "interface.delete", switch_name=name, detail={"interface": ifname})
    return Response(status_code=status.HTTP_204_NO_CONTENT)


__all__ = ["SWITCH_NAME_PATTERN", "get_switch_or_404", "router", "switch_public"]
