"""Races and overlaps between changes: one executor per change, other changes' settings are
never undone, rollbacks restore only what the change set, all switches are attempted."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from app.drivers import mock
from tests.changes.conftest import wait_done
from tests.changes.test_changes_mock import HPCC_100G, create
from tests.conftest import Api

OTHER = {"kmin_bytes": 200_000, "kmax_bytes": 800_000, "pmax": 0.1}


def planned(api: Api, body: dict[str, Any]) -> int:
    r = create(api, body)
    assert r.status_code == 201, r.text
    cid: int = r.json()["id"]
    assert api.post(f"/api/v1/changes/{cid}/approve", role="operator").status_code == 200
    return cid


def test_parallel_applies_of_one_change_start_one_executor(api: Api,
                                                           fabric: mock.MockFabric) -> None:
    cid = planned(api, {"targets": {"switches": ["tor-p1-1"]}, "waterlines": {"3": HPCC_100G}})
    gate = threading.Event()
    fabric.gates["tor-p1-1"] = gate
    codes: list[int] = []
    threads = [threading.Thread(target=lambda: codes.append(
        api.post(f"/api/v1/changes/{cid}/apply", role="operator").status_code))
        for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    gate.set()
    assert sorted(codes) == [202, 409, 409, 409]
    done = wait_done(api, cid)
    assert done["status"] == "applied"
    assert done["results"][0]["before"]["waterlines"]["3"]["kmin_bytes"] == 1_048_576
    # reject after apply: refused
    assert api.post(f"/api/v1/changes/{cid}/reject", role="operator").status_code == 409


def test_other_changes_settings_survive_apply_and_rollback(api: Api,
                                                          fabric: mock.MockFabric) -> None:
    a = planned(api, {"targets": {"switches": ["tor-p1-1"]}, "waterlines": {"3": HPCC_100G}})
    b = planned(api, {"targets": {"switches": ["tor-p1-1"]}, "waterlines": {"4": OTHER}})
    api.post(f"/api/v1/changes/{b}/apply", role="operator")
    assert wait_done(api, b)["status"] == "applied"
    api.post(f"/api/v1/changes/{a}/apply", role="operator")
    assert wait_done(api, a)["status"] == "applied"  # its own diff is unchanged: it goes
    config = fabric.config["tor-p1-1"]
    assert config.waterlines[3].kmin_bytes == 400_000 and config.waterlines[4].kmin_bytes == 200_000
    # rolling back A restores priority 3 only; B's priority 4 stays
    api.post(f"/api/v1/changes/{a}/rollback", role="operator")
    assert wait_done(api, a)["status"] == "rolled_back"
    config = fabric.config["tor-p1-1"]
    assert config.waterlines[3].kmin_bytes == 1_048_576 and config.waterlines[4].kmin_bytes == 200_000


def test_rollback_refuses_settings_changed_since(api: Api, fabric: mock.MockFabric) -> None:
    a = planned(api, {"targets": {"switches": ["tor-p1-1"]}, "waterlines": {"3": HPCC_100G}})
    api.post(f"/api/v1/changes/{a}/apply", role="operator")
    assert wait_done(api, a)["status"] == "applied"
    b = planned(api, {"targets": {"switches": ["tor-p1-1"]}, "waterlines": {"3": OTHER}})
    api.post(f"/api/v1/changes/{b}/apply", role="operator")
    assert wait_done(api, b)["status"] == "applied"
    api.post(f"/api/v1/changes/{a}/rollback", role="operator")
    done = wait_done(api, a)
    assert done["status"] == "rollback_failed"
    assert "changed since this change" in done["results"][0]["reason"]
    assert fabric.config["tor-p1-1"].waterlines[3].kmin_bytes == 200_000  # B's stays


def test_rollback_all_attempts_every_switch(api: Api, fabric: mock.MockFabric) -> None:
    before = dict(fabric.config)
    cid = planned(api, {"targets": {"all": True}, "waterlines": {"3": HPCC_100G},
                        "wave_size": 2, "on_failure": "rollback_all"})
    original_open = mock.MockDriver.open
    calls: dict[str, int] = {}

    def flaky_open(self: mock.MockDriver) -> None:
        calls[self.name] = calls.get(self.name, 0) + 1
        # tor-p1-1 (the canary) becomes unreachable once it has been applied
        if self.name == "tor-p1-1" and calls[self.name] > 1:
            from app.drivers.errors import ConnectionFailed
            raise ConnectionFailed("gone", switch=self.name)
        original_open(self)

    fabric.faults["spine-1"] = "reject"
    api.client.app.state.changes.restore_backoff_s = 0.01  # type: ignore[attr-defined]
    mock.MockDriver.open = flaky_open  # type: ignore[method-assign]
    try:
        api.post(f"/api/v1/changes/{cid}/apply", role="operator")
        done = wait_done(api, cid)
    finally:
        mock.MockDriver.open = original_open  # type: ignore[method-assign]
    states = {r["switch"]: r["state"] for r in done["results"]}
    assert done["status"] == "rollback_failed"
    assert states["tor-p1-1"] == "rollback_failed"
    # the others were all restored although the canary's restore failed first
    assert states["tor-p1-2"] == states["leaf-p1-1"] == "rolled_back"
    assert fabric.config["tor-p1-2"] == before["tor-p1-2"]
    assert fabric.config["leaf-p1-1"] == before["leaf-p1-1"]


def test_database_error_after_commit_restores_the_switch(api: Api, fabric: mock.MockFabric,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    before = fabric.config["tor-p1-1"]
    cid = planned(api, {"targets": {"switches": ["tor-p1-1"]}, "waterlines": {"3": HPCC_100G}})
    service = api.client.app.state.changes  # type: ignore[attr-defined]
    real = service._set_result

    def failing(change_id: int, switch_id: int, **values: Any) -> None:
        if values.get("state") == "committed":
            raise OperationalError("UPDATE", {}, Exception("database is locked"))
        real(change_id, switch_id, **values)

    monkeypatch.setattr(service, "_set_result", failing)
    api.post(f"/api/v1/changes/{cid}/apply", role="operator")
    done = wait_done(api, cid)
    assert done["status"] == "failed"
    assert done["results"][0]["state"] == "rolled_back"
    assert "database is locked" in done["results"][0]["reason"]
    assert fabric.config["tor-p1-1"] == before


def test_locked_switch_cannot_be_edited_or_deleted(api: Api, fabric: mock.MockFabric) -> None:
    cid = planned(api, {"targets": {"switches": ["tor-p1-1"]}, "waterlines": {"3": HPCC_100G}})
    gate = threading.Event()
    fabric.gates["tor-p1-1"] = gate
    api.post(f"/api/v1/changes/{cid}/apply", role="operator")
    try:
        r = api.delete("/api/v1/switches/tor-p1-1")
        assert r.status_code == 409 and f"change {cid}" in r.text
        assert api.patch("/api/v1/switches/tor-p1-1",
                         json={"mgmt_host": "10.9.9.9"}).status_code == 409
    finally:
        gate.set()
    assert wait_done(api, cid)["status"] == "applied"
    assert api.patch("/api/v1/switches/tor-p1-1", json={"enabled": True}).status_code == 200


def test_fractional_percent_refused(api: Api, fabric: mock.MockFabric) -> None:
    r = create(api, {"targets": {"all": True}, "waterlines": {"3": {**HPCC_100G, "pmax": 0.001}}})
    assert r.status_code == 422 and "whole percent" in r.text


def test_disabled_switch_named_explicitly_is_422(api: Api, fabric: mock.MockFabric) -> None:
    api.patch("/api/v1/switches/tor-p1-2", json={"enabled": False})
    r = create(api, {"targets": {"switches": ["tor-p1-2"]}, "waterlines": {"3": HPCC_100G}})
    assert r.status_code == 422 and "disabled" in r.text


def test_recovery_takes_over_only_stale_changes_of_other_hosts(api: Api,
                                                               fabric: mock.MockFabric) -> None:
    import time

    from sqlalchemy import update

    from app.db.models import ChangeSet, SwitchLock

    service = api.client.app.state.changes  # type: ignore[attr-defined]
    cid = planned(api, {"targets": {"switches": ["tor-p1-1"]}, "waterlines": {"3": HPCC_100G}})
    now_ms = int(time.time() * 1000)
    with api.db.session() as s:
        s.execute(update(ChangeSet).where(ChangeSet.id == cid).values(
            status="applying", owner="another-host:1:abcd", heartbeat_ms=now_ms - 2_000))
        s.commit()
    assert service.recover() == []  # alive elsewhere: its heartbeat is fresh
    with api.db.session() as s:
        s.execute(update(ChangeSet).where(ChangeSet.id == cid).values(
            heartbeat_ms=now_ms - 60_000))
        s.commit()
    assert service.recover() == [cid]
    done = wait_done(api, cid)
    assert done["status"] == "rolled_back"
    assert done["results"][0]["state"] == "skipped"  # it never reached the switch
    # a lock left by a change that is no longer in flight is released by the sweep
    with api.db.session() as s:
        s.add(SwitchLock(switch_id=1, change_id=cid))
        s.commit()
    assert service.release_stale_locks() == 1


def test_a_new_mock_switch_keeps_the_fabric_configs(api: Api, fabric: mock.MockFabric) -> None:
    from app.drivers.base import SwitchTarget, get_driver
    from app.inventory import export_inventory

    cid = planned(api, {"targets": {"switches": ["tor-p1-1"]}, "waterlines": {"3": HPCC_100G}})
    api.post(f"/api/v1/changes/{cid}/apply", role="operator")
    assert wait_done(api, cid)["status"] == "applied"

    def inventory() -> dict[str, Any]:
        with api.db.session() as s:
            return export_inventory(s)

    mock.set_inventory_provider(inventory)
    try:
        r = api.post("/api/v1/switches", json={
            "name": "tor-p1-9", "role": "tor", "pod": 1, "mgmt_host": "127.0.0.1",
            "driver": "mock", "buffer_bytes": 44040192,
            "interfaces": [{"name": "Ethernet0", "speed_gbps": 100, "cable_m": 3}]})
        assert r.status_code == 201, r.text
        driver = get_driver("mock", SwitchTarget(name="tor-p1-9", host="127.0.0.1", port=22))
        driver.open()  # the fabric is rebuilt with the new switch
        state = mock.current()
        assert state is not None and "tor-p1-9" in state.config
        assert state.config["tor-p1-1"].waterlines[3].kmin_bytes == 400_000
    finally:
        mock.set_inventory_provider(None)
