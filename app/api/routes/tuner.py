"""The tuner: daemon mode and freeze windows, port profiles, trials; proposals."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select, update

from app.api.deps import Admin, IdPath, Operator, SessionDep, Viewer
from app.api.routes.switches import get_switch_or_404
from app.changes.service import ChangeError
from app.daemon import FreezeWindow, TunerDaemon
from app.db.models import (
    Interface,
    ModelVersion,
    PortProfile,
    Proposal,
    Switch,
    TunerTrial,
)
from app.timestamps import UtcDatetime, as_utc

router = APIRouter(tags=["tuner"])


def _daemon(request: Request) -> TunerDaemon:
    daemon: TunerDaemon = request.app.state.daemon
    return daemon


class TunerOut(BaseModel):
    mode: str
    freeze_windows: list[dict[str, Any]]
    frozen_now: bool
    cycles: int
    last_cycle_at: UtcDatetime | None
    last_error: str
    updated_by: str
    models: list[dict[str, Any]]
    trials_open: int


class TunerUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: Literal["off", "observe", "propose", "auto"]
    freeze_windows: list[FreezeWindow] | None = Field(None, max_length=50)


def _tuner_out(session: Any, daemon: TunerDaemon) -> TunerOut:
    from app.daemon import frozen

    state = daemon.state(session)
    models = [{"kind": m.kind, "version": m.version,
               "created_at": as_utc(m.created_at).isoformat().replace("+00:00", "Z"),
               "meta": m.meta}
              for m in session.scalars(select(ModelVersion).where(ModelVersion.active.is_(True)))]
    open_trials = len(session.scalars(select(TunerTrial.id).where(
        TunerTrial.status.in_(("applying", "verifying")))).all())
    return TunerOut(
        mode=state.mode, freeze_windows=list(state.freeze_windows or []),
        frozen_now=frozen(state.freeze_windows or [], datetime.now(UTC)),
        cycles=state.cycles,
        last_cycle_at=(datetime.fromtimestamp(state.last_cycle_ms / 1000, UTC)
                       if state.last_cycle_ms else None),
        last_error=state.last_error, updated_by=state.updated_by, models=models,
        trials_open=open_trials)


@router.get("/tuner", response_model=TunerOut)
def get_tuner(session: SessionDep, request: Request, _: Viewer) -> TunerOut:
    """The daemon's mode, freeze windows, progress and active model versions."""
    out = _tuner_out(session, _daemon(request))
    session.commit()
    return out


@router.put("/tuner", response_model=TunerOut)
def set_tuner(body: TunerUpdate, session: SessionDep, request: Request, who: Admin) -> TunerOut:
    """Set the mode (off, observe, propose, auto) and optionally the freeze windows."""
    daemon = _daemon(request)
    windows = None if body.freeze_windows is None else [
        w.model_dump(mode="json", exclude_none=True) for w in body.freeze_windows]
    daemon.set_mode(body.mode, who.name, windows)
    session.expire_all()
    return _tuner_out(session, daemon)


class PortProfileOut(BaseModel):
    switch: str
    interface: str
    priority: int
    profile: str
    probability: float
    since: UtcDatetime


@router.get("/tuner/profiles", response_model=list[PortProfileOut])
def port_profiles(
    session: SessionDep, _: Viewer, switch: str | None = None,
    profile: Literal["allreduce", "incast", "websearch", "hadoop", "idle"] | None = None,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 10_000,
) -> list[PortProfileOut]:
    """The traffic profile the classifier sees on each port x priority (404: no such
    switch)."""
    if switch:
        get_switch_or_404(session, switch)
    query = (select(Switch.name, Interface.name, PortProfile)
             .join(Switch, Switch.id == PortProfile.switch_id)
             .join(Interface, Interface.id == PortProfile.interface_id))
    if switch:
        query = query.where(Switch.name == switch)
    if profile:
        query = query.where(PortProfile.profile == profile)
    rows = session.execute(query.order_by(Switch.name, Interface.name).limit(limit)).all()
    return [PortProfileOut(switch=s, interface=i, priority=p.priority, profile=p.profile,
                           probability=p.probability,
                           since=datetime.fromtimestamp(p.since_ms / 1000, UTC))
            for s, i, p in rows]


class TrialOut(BaseModel):
    id: int
    change_id: int
    profile: str
    priority: int
    switches: list[str]
    status: str
    reason: str
    kpis_before: dict[str, Any]
    kpis_after: dict[str, Any] | None
    applied_at: UtcDatetime
    verify_after: UtcDatetime


@router.get("/tuner/trials", response_model=list[TrialOut])
def trials(session: SessionDep, _: Viewer,
           limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[TrialOut]:
    """Tuner changes and their verdicts (kept, rolled back, failed), newest first."""
    names = dict(session.execute(select(Switch.id, Switch.name)).tuples().all())
    rows = session.scalars(select(TunerTrial).order_by(TunerTrial.id.desc()).limit(limit))
    return [TrialOut(
        id=t.id, change_id=t.change_id, profile=t.profile, priority=t.priority,
        switches=[names.get(int(s), str(s)) for s in t.switch_ids], status=t.status,
        reason=t.reason, kpis_before=t.kpis_before,
        kpis_after={k: v for k, v in (t.kpis_after or {}).items() if k != "outcome"} or None,
        applied_at=datetime.fromtimestamp(t.applied_ms / 1000, UTC),
        verify_after=datetime.fromtimestamp(t.verify_after_ms / 1000, UTC)) for t in rows]


class ProposalOut(BaseModel):
    id: int
    created_at: UtcDatetime
    switch: str
    priority: int
    interfaces: list[str]
    profile: str
    probability: float
    current: dict[str, Any]
    proposed: dict[str, Any]
    predicted: dict[str, Any]
    confidence: float
    explanation: dict[str, Any]
    status: str
    decided_by: str | None
    change_id: int | None


def _proposal_out(p: Proposal, switch: str) -> ProposalOut:
    explanation = {k: v for k, v in p.explanation.items() if k != "feature_vector"}
    return ProposalOut(
        id=p.id, created_at=p.created_at, switch=switch, priority=p.priority,
        interfaces=list(p.interfaces), profile=p.profile, probability=p.probability,
        current=p.current, proposed=p.proposed, predicted=p.predicted, confidence=p.confidence,
        explanation=explanation, status=p.status, decided_by=p.decided_by,
        change_id=p.change_id)


ProposalStatus = Literal["pending", "applying", "applied", "rejected", "superseded"]


@router.get("/proposals", response_model=list[ProposalOut])
def list_proposals(
    session: SessionDep, _: Viewer, status: ProposalStatus | None = None,
    switch: str | None = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 200,
) -> list[ProposalOut]:
    """Waterline proposals with their explanation: profile and probability, feature summary,
    current vs proposed waterlines, predicted KPI change, confidence."""
    if switch:
        get_switch_or_404(session, switch)
    query = select(Proposal, Switch.name).join(Switch, Switch.id == Proposal.switch_id)
    if status:
        query = query.where(Proposal.status == status)
    if switch:
        query = query.where(Switch.name == switch)
    rows = session.execute(query.order_by(Proposal.id.desc()).limit(limit)).all()
    return [_proposal_out(p, name) for p, name in rows]


def _get_proposal(session: Any, proposal_id: int) -> tuple[Proposal, str]:
    row = session.execute(select(Proposal, Switch.name).join(
        Switch, Switch.id == Proposal.switch_id).where(Proposal.id == proposal_id)).first()
    if row is None:
        raise HTTPException(404, f"proposal {proposal_id} not found")
    return row[0], row[1]


@router.get("/proposals/{proposal_id}", response_model=ProposalOut)
def get_proposal(proposal_id: IdPath, session: SessionDep, _: Viewer) -> ProposalOut:
    p, name = _get_proposal(session, proposal_id)
    return _proposal_out(p, name)


@router.post("/proposals/{proposal_id}/approve", response_model=ProposalOut)
def approve_proposal(proposal_id: IdPath, session: SessionDep, request: Request,
                     who: Operator) -> ProposalOut:
    """Apply the proposal through the change workflow (a change approved by the caller)."""
    _get_proposal(session, proposal_id)
    # the change workflow writes through its own sessions: end this read transaction first
    # (on SQLite an open reader blocks every writer until it ends)
    session.rollback()
    try:
        _daemon(request).apply_proposals([proposal_id], actor=who.name, source="proposal")
    except ChangeError as exc:
        raise HTTPException(exc.status, str(exc)) from None
    session.expire_all()
    p, name = _get_proposal(session, proposal_id)
    return _proposal_out(p, name)


@router.post("/proposals/{proposal_id}/reject", response_model=ProposalOut)
def reject_proposal(proposal_id: IdPath, session: SessionDep, who: Operator) -> ProposalOut:
    from app.audit import record

    p, name = _get_proposal(session, proposal_id)
    if p.status != "pending":
        raise HTTPException(409, f"proposal {proposal_id} is {p.status}")
    # only from pending, in one statement: a concurrent approval (``apply_proposals`` claims
    # the proposal the same way) and this rejection cannot both win
    done = session.execute(
        update(Proposal).where(Proposal.id == proposal_id, Proposal.status == "pending")
        .values(status="rejected", decided_by=who.name, decided_at=datetime.now(UTC)))
    if getattr(done, "rowcount", 0) != 1:
        session.rollback()
        p, name = _get_proposal(session, proposal_id)
        raise HTTPException(409, f"proposal {proposal_id} is {p.status}")
    record(session, who.name, "proposal.reject", switch_name=name,
           detail={"proposal": proposal_id})
    session.flush()
    session.expire_all()
    p, name = _get_proposal(session, proposal_id)
    return _proposal_out(p, name)
