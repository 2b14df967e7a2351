"""The tuner's API through HTTP: mode and freeze windows (admin), proposals (list, get, reject,
approve through the change workflow), port profiles and trials -- roles, validation, 404/409."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import select

from app.changes.service import ChangeError
from app.db.models import ChangeSet, Interface, PortProfile, Proposal, Switch, SwitchLock
from app.drivers import mock
from tests.changes.conftest import wait_done
from tests.conftest import Api


def _proposal(api: Api, switch: str, *, kmin: int = 400_000) -> int:
    with api.db.session() as s:
        sw = s.scalars(select(Switch).where(Switch.name == switch)).one()
        current = {"kmin_bytes": 1 << 20, "kmax_bytes": 2 << 20, "pmax": 0.05,
                   "xoff_bytes": None, "xon_bytes": None, "headroom_bytes": None, "alpha": None}
        row = Proposal(switch_id=sw.id, priority=3, interfaces=["Ethernet0"],
                       profile="websearch", probability=0.9, current=current,
                       proposed={**current, "kmin_bytes": kmin, "kmax_bytes": 1_600_000,
                                 "pmax": 0.2},
                       predicted={"objective_current": 5.0, "objective_proposed": 4.0},
                       confidence=0.8, explanation={"method": "model", "reason": "test",
                                                    "feature_vector": [0.0, 1.0]})
        s.add(row)
        s.commit()
        return row.id


def test_mode_and_freeze_windows(api: Api, fabric: mock.MockFabric) -> None:
    body = api.get("/api/v1/tuner").json()
    assert body["mode"] == "propose" and body["freeze_windows"] == []
    new = {"mode": "observe", "freeze_windows": [
        {"start": "08:00", "end": "18:00", "days": ["mon", "tue"]},
        {"start_at": "2026-12-24T00:00:00Z", "end_at": "2026-12-27T00:00:00Z"}]}
    assert api.put("/api/v1/tuner", role="operator", json=new).status_code == 403
    r = api.put("/api/v1/tuner", json=new)
    assert r.status_code == 200, r.text
    assert r.json()["mode"] == "observe" and len(r.json()["freeze_windows"]) == 2
    assert api.get("/api/v1/tuner").json()["updated_by"] == "test-admin"
    for bad in ({"mode": "turbo"}, {"mode": "auto", "freeze_windows": [{"start": "08:00"}]},
                {"mode": "auto", "freeze_windows": [{"start": "25:00", "end": "26:00"}]},
                {"mode": "auto", "freeze_windows": [{"start_at": "2026-12-27T00:00:00Z",
                                                     "end_at": "2026-12-24T00:00:00Z"}]},
                {"mode": "auto", "extra": 1},
                {"mode": "auto", "freeze_windows": [{"start": "08:00", "end": "08:00"}]},
                {"mode": "auto", "freeze_windows": [{"start": "08:00", "end": "09:00",
                                                     "start_at": "2026-12-24T00:00:00Z"}]},
                {"mode": "auto", "freeze_windows": [{"start": "08:00", "end": "09:00",
                                                     "days": ["mon"] * 8}]},
                {"mode": "auto", "freeze_windows": [{"start": "08:00", "end": "09:00",
                                                     "days": ["mon", "mon"]}]}):
        r = api.put("/api/v1/tuner", json=bad)
        assert r.status_code == 422, (bad, r.text)
    assert api.get("/api/v1/tuner").json()["mode"] == "observe"  # nothing half-applied


def test_proposals_list_get_reject(api: Api, fabric: mock.MockFabric) -> None:
    pid = _proposal(api, "tor-p1-1")
    rows = api.get("/api/v1/proposals", params={"status": "pending"}).json()
    assert [r["id"] for r in rows] == [pid]
    one = api.get(f"/api/v1/proposals/{pid}").json()
    assert one["switch"] == "tor-p1-1" and one["explanation"]["reason"] == "test"
    assert "feature_vector" not in one["explanation"]
    assert api.get("/api/v1/proposals/999999").status_code == 404
    assert api.get("/api/v1/proposals/0").status_code == 422
    assert api.post(f"/api/v1/proposals/{pid}/reject", role="viewer").status_code == 403
    r = api.post(f"/api/v1/proposals/{pid}/reject", role="operator")
    assert r.status_code == 200 and r.json()["status"] == "rejected"
    assert r.json()["decided_by"] == "test-operator"
    assert api.post(f"/api/v1/proposals/{pid}/reject", role="operator").status_code == 409
    assert api.post(f"/api/v1/proposals/{pid}/approve", role="operator").status_code == 409


def test_approve_applies_through_the_change_workflow(api: Api,
                                                     fabric: mock.MockFabric) -> None:
    pid = _proposal(api, "tor-p1-2", kmin=300_000)
    r = api.post(f"/api/v1/proposals/{pid}/approve", role="operator")
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    assert body["status"] == "applied" and body["change_id"]
    change = wait_done(api, body["change_id"])
    assert change["status"] == "applied", change
    assert fabric.config["tor-p1-2"].waterlines[3].kmin_bytes == 300_000
    audit = api.get("/api/v1/audit", params={"limit": 200}).json()
    items = audit["items"] if isinstance(audit, dict) else audit
    assert any(e.get("actor") == "test-operator" for e in items)


def test_concurrent_decisions_on_one_proposal_have_one_winner(
        api: Api, fabric: mock.MockFabric) -> None:
    """Four approvals and a rejection of one proposal at once: exactly one decision wins,
    the others get 409, and the only change created for it is the one that ran."""
    pid = _proposal(api, "tor-p1-1", kmin=350_000)
    calls = [("approve", "operator")] * 4 + [("reject", "operator")]
    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        codes = list(pool.map(
            lambda c: api.post(f"/api/v1/proposals/{pid}/{c[0]}", role=c[1]).status_code,
            calls))
    assert sorted(codes) == [200, 409, 409, 409, 409], codes
    final = api.get(f"/api/v1/proposals/{pid}").json()
    with api.db.session() as s:
        changes = s.scalars(select(ChangeSet).order_by(ChangeSet.id)).all()
        statuses = [c.status for c in changes]
    if final["status"] == "rejected":
        assert changes == [] and final["change_id"] is None
    else:
        assert final["status"] == "applied" and [c.id for c in changes] == [final["change_id"]]
        assert wait_done(api, final["change_id"])["status"] == "applied", statuses
        assert fabric.config["tor-p1-1"].waterlines[3].kmin_bytes == 350_000


def test_an_approval_that_cannot_start_leaves_the_proposal_pending(
        api: Api, fabric: mock.MockFabric, monkeypatch: pytest.MonkeyPatch) -> None:
    """The switch is locked by another change: the approval gets 409 naming the lock, its
    change is rejected, and the proposal is pending again -- nothing half-applied."""
    pid = _proposal(api, "tor-p1-2")
    other = api.post("/api/v1/changes", role="operator", json={
        "targets": {"switches": ["tor-p1-2"]},
        "waterlines": {"3": {"kmin_bytes": 400_000, "kmax_bytes": 1_600_000, "pmax": 0.2}}})
    assert other.status_code == 201, other.text
    holder = other.json()["id"]
    with api.db.session() as s:  # as if it were being applied
        sw = s.scalars(select(Switch).where(Switch.name == "tor-p1-2")).one()
        s.add(SwitchLock(switch_id=sw.id, change_id=holder))
        s.commit()
    r = api.post(f"/api/v1/proposals/{pid}/approve", role="operator")
    assert r.status_code == 409 and f"locked by change {holder}" in r.text, r.text
    body = api.get(f"/api/v1/proposals/{pid}").json()
    assert (body["status"], body["change_id"], body["decided_by"]) == ("pending", None, None)
    with api.db.session() as s:
        # refused at planning (no change) or at the start (its change rejected): none waits
        left = {c.id: c.status for c in s.scalars(select(ChangeSet)) if c.id != holder}
        assert set(left.values()) <= {"rejected"}, left
        s.query(SwitchLock).delete()
        s.commit()
    # planned and approved, but refused at the start: the change is rejected
    service = api.client.app.state.changes  # type: ignore[attr-defined]

    def refuse(change_id: int, actor: str, **_: Any) -> None:
        raise ChangeError(409, f"switch tor-p1-2 is locked by change {holder}")

    monkeypatch.setattr(service, "start_apply", refuse)
    r = api.post(f"/api/v1/proposals/{pid}/approve", role="operator")
    assert r.status_code == 409, r.text
    body = api.get(f"/api/v1/proposals/{pid}").json()
    assert (body["status"], body["change_id"], body["decided_by"]) == ("pending", None, None)
    with api.db.session() as s:
        left = {c.id: c.status for c in s.scalars(select(ChangeSet)) if c.id != holder}
        assert list(left.values()) == ["rejected"], left
    monkeypatch.undo()
    r = api.post(f"/api/v1/proposals/{pid}/approve", role="operator")  # and it still can be
    assert r.status_code == 200 and r.json()["status"] == "applied", r.text
    assert wait_done(api, r.json()["change_id"])["status"] == "applied"


def test_the_proposal_status_filter_is_validated(api: Api, fabric: mock.MockFabric) -> None:
    r = api.get("/api/v1/proposals", params={"status": "bogus"})
    assert r.status_code == 422 and "pending" in r.text


def test_profiles_and_trials(api: Api, fabric: mock.MockFabric) -> None:
    with api.db.session() as s:
        sw = s.scalars(select(Switch).where(Switch.name == "tor-p1-1")).one()
        itf = s.scalars(select(Interface).where(Interface.switch_id == sw.id)).first()
        assert itf is not None
        s.add(PortProfile(switch_id=sw.id, interface_id=itf.id, priority=3, profile="incast",
                          probability=0.8, since_ms=1_800_000_000_000,
                          updated_ms=1_800_000_000_000))
        s.commit()
    rows = api.get("/api/v1/tuner/profiles", params={"switch": "tor-p1-1"}).json()
    assert [(r["switch"], r["profile"], r["probability"]) for r in rows] == [
        ("tor-p1-1", "incast", 0.8)]
    assert api.get("/api/v1/tuner/profiles", params={"profile": "hadoop"}).json() == []
    assert api.get("/api/v1/tuner/profiles", params={"limit": 0}).status_code == 422
    assert api.get("/api/v1/tuner/trials").json() == []
    assert api.client.get("/api/v1/tuner/trials").status_code == 401  # type: ignore[attr-defined]


def test_a_whole_day_freeze_window_ends_at_24_00(api: Api, fabric: mock.MockFabric) -> None:
    from datetime import UTC, datetime

    from app.daemon import frozen

    r = api.put("/api/v1/tuner", json={"mode": "auto", "freeze_windows": [
        {"start": "00:00", "end": "24:00", "days": ["sat", "sun"]}]})
    assert r.status_code == 200, r.text
    windows = r.json()["freeze_windows"]
    assert frozen(windows, datetime(2026, 12, 5, 23, 59, 30, tzinfo=UTC))  # a Saturday
    assert frozen(windows, datetime(2026, 12, 6, 0, 0, tzinfo=UTC))
    assert not frozen(windows, datetime(2026, 12, 7, 0, 0, tzinfo=UTC))  # Monday


def test_a_marking_probability_under_one_percent_is_refused(api: Api,
                                                            fabric: mock.MockFabric) -> None:
    r = api.post("/api/v1/changes", role="operator", json={
        "targets": {"switches": ["tor-p1-1"]},
        "waterlines": {"3": {"kmin_bytes": 400_000, "kmax_bytes": 1_600_000, "pmax": 1e-12}}})
    assert r.status_code == 422 and "whole percent from 1 %" in r.text, r.text
