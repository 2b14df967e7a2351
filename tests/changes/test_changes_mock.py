"""The change workflow through the API on the mock driver (in-process virtual fabric)."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from app.drivers import mock
from app.drivers.models import QosConfig
from tests.changes.conftest import wait_done
from tests.conftest import Api

HPCC_100G = {"kmin_bytes": 400_000, "kmax_bytes": 1_600_000, "pmax": 0.2}


def create(api: Api, body: dict[str, Any], role: str = "operator") -> Any:
    return api.post("/api/v1/changes", role=role, json=body)


def run_change(api: Api, body: dict[str, Any]) -> dict[str, Any]:
    r = create(api, body)
    assert r.status_code == 201, r.text
    cid = r.json()["id"]
    assert api.post(f"/api/v1/changes/{cid}/approve", role="operator").status_code == 200
    r = api.post(f"/api/v1/changes/{cid}/apply", role="operator")
    assert r.status_code == 202, r.text
    return wait_done(api, cid)


def test_dry_run_returns_exact_diff_and_touches_nothing(api: Api, fabric: mock.MockFabric) -> None:
    r = create(api, {"targets": {"roles": ["tor"]}, "waterlines": {"3": HPCC_100G},
                     "dry_run": True})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["status"] == "dry_run"
    assert [x["switch"] for x in body["results"]] == ["tor-p1-1", "tor-p1-2"]
    assert body["results"][0]["diff"].splitlines() == [
        "waterlines priority 3 kmin_bytes 400000",
        "waterlines priority 3 kmax_bytes 1600000",
        "waterlines priority 3 pmax 0.2",
    ]
    assert fabric.command_log == {}
    # a dry run cannot be approved
    assert api.post(f"/api/v1/changes/{body['id']}/approve", role="operator").status_code == 409


def test_apply_in_waves_canary_first_then_rollback(api: Api, fabric: mock.MockFabric) -> None:
    before = {n: fabric.config[n] for n in fabric.config}
    done = run_change(api, {"targets": {"all": True}, "waterlines": {"3": HPCC_100G},
                            "wave_size": 2})
    assert done["status"] == "applied", done
    waves = {r["switch"]: r["wave"] for r in done["results"]}
    # canary: one TOR alone in wave 0, then waves of at most 2, TORs before leaves and spines
    assert waves == {"tor-p1-1": 0, "tor-p1-2": 1, "leaf-p1-1": 1, "spine-1": 2}
    assert {r["state"] for r in done["results"]} == {"verified"}
    for name in fabric.config:
        w = fabric.config[name].waterlines[3]
        assert (w.kmin_bytes, w.kmax_bytes, w.pmax) == (400_000, 1_600_000, 0.2)
        assert fabric.config[name].waterlines[4] == before[name].waterlines[4]  # untouched
    audit = api.get("/api/v1/audit", params={"change_id": done["id"]}).json()["items"]
    commits = [e["switch"] for e in audit if e["action"] == "switch.commit"]
    assert commits[0] == "tor-p1-1" and len(commits) == 4
    assert {e["actor"] for e in audit} == {"test-operator"}
    # the explicit rollback restores every touched switch exactly
    r = api.post(f"/api/v1/changes/{done['id']}/rollback", role="operator")
    assert r.status_code == 202, r.text
    rolled = wait_done(api, done["id"])
    assert rolled["status"] == "rolled_back"
    assert {n: fabric.config[n] for n in fabric.config} == before


def test_readback_matches_and_consistency(api: Api, fabric: mock.MockFabric) -> None:
    done = run_change(api, {"targets": {"switches": ["tor-p1-1"]},
                            "waterlines": {"3": HPCC_100G},
                            "baseline": {"pfc_priorities": [3, 4], "ecn_queues": [3, 4]}})
    assert done["status"] == "applied"
    assert done["results"][0]["after"]["waterlines"]["3"]["kmin_bytes"] == 400_000
    report = api.get("/api/v1/fabric/consistency").json()
    # only the changed switch has been read; the rest were never observed
    bad = {b["switch"]: b["problems"] for b in report["inconsistent"]}
    assert "tor-p1-1" not in bad and bad["spine-1"] == ["QoS config never read from the switch"]
    # drift on the switch behind Waterline's back shows up
    drifted = fabric.config["tor-p1-1"]
    w3 = drifted.waterlines[3].model_copy(update={"kmin_bytes": 5000})
    from app.db.models import Switch
    from app.qos_state import store_qos

    with api.db.session() as s:
        sw = s.query(Switch).filter_by(name="tor-p1-1").one()
        store_qos(s, sw.id, observed=QosConfig(pfc_priorities=(3,), ecn_queues=(3, 4),
                                               waterlines={**drifted.waterlines, 3: w3}))
        s.commit()
    bad = {b["switch"]: b["problems"] for b in
           api.get("/api/v1/fabric/consistency").json()["inconsistent"]}
    assert "PFC is off on lossless priority 4" in bad["tor-p1-1"]
    assert "priority 3: kmin_bytes is 5000, intent 400000" in bad["tor-p1-1"]


def test_telemetry_follows_the_change(api: Api, fabric: mock.MockFabric) -> None:
    vf = fabric.fabric

    def ecn_ratio(switch: str) -> float:
        first = {(r.interface, r.priority): r for r in vf.read_counters(switch)}
        vf.advance(10.0)
        second = vf.read_counters(switch)
        marks = sum(r.ecn_marked_packets - first[(r.interface, r.priority)].ecn_marked_packets
                    for r in second)
        packets = sum(r.tx_packets - first[(r.interface, r.priority)].tx_packets
                      for r in second)
        return marks / max(1, packets)

    before = ecn_ratio("tor-p1-1")
    done = run_change(api, {"targets": {"switches": ["tor-p1-1"]},
                            "waterlines": {"3": {"kmin_bytes": 5_000, "kmax_bytes": 50_000,
                                                 "pmax": 1.0},
                                           "4": {"kmin_bytes": 5_000, "kmax_bytes": 50_000,
                                                 "pmax": 1.0}}})
    assert done["status"] == "applied"
    after = ecn_ratio("tor-p1-1")
    assert after > before * 2 and after > 0.001, (before, after)


INJECTIONS = [
    ({"targets": {"switches": ["tor-p1-1\nreboot"]}}, "targets.switches"),
    ({"targets": {"switches": ["tor-p1-1;reload"]}}, "targets.switches"),
    ({"targets": {"switches": ["tor|p1"]}}, "targets.switches"),
    ({"targets": {"switches": ["tor-p1-1"], "interfaces": ["Ethernet0\r\nquit"]}},
     "targets.interfaces"),
    ({"targets": {"switches": ["tor-p1-1"], "interfaces": ["Ethernet0;reboot"]}},
     "targets.interfaces"),
    ({"targets": {"switches": ["tor-p1-1"], "interfaces": ["Ethernet\x000"]}},
     "targets.interfaces"),
    ({"targets": {"switches": ["tor-p1-1"], "interfaces": ["Ethernet99"]}},
     "has no interface 'Ethernet99'"),
    ({"waterlines": {"3": {**HPCC_100G, "kmin_bytes": "400000\nreboot"}}}, "kmin_bytes"),
    ({"waterlines": {"3": {**HPCC_100G, "kmin_bytes": -5}}}, "kmin_bytes"),
    ({"waterlines": {"3": {**HPCC_100G, "kmax_bytes": 10**15}}}, "kmax_bytes"),
    ({"waterlines": {"3": {**HPCC_100G, "kmin_bytes": 2_000_000}}}, "must be below kmax_bytes"),
    ({"waterlines": {"3": {**HPCC_100G, "pmax": 1.5}}}, "pmax"),
    ({"waterlines": {"3": {**HPCC_100G, "pmax": "0.2"}}}, "pmax"),
    ({"waterlines": {"3": {**HPCC_100G, "alpha": 0.3}}}, "power of two"),
    ({"waterlines": {"9": HPCC_100G}}, "waterlines"),
    ({"waterlines": {"3": {**HPCC_100G, "xoff_bytes": 2000, "xon_bytes": 1000,
                           "headroom_bytes": 3000}}}, "below the headroom formula"),
    ({"waterlines": {"3": {**HPCC_100G, "kmax_bytes": 30_000_000}}}, "buffer share"),
    ({"description": "ok\nrm -rf"}, "description"),
]


@pytest.mark.parametrize("patch,reason", INJECTIONS, ids=[str(i) for i in range(len(INJECTIONS))])
def test_injection_and_nonsense_refused_before_any_line(api: Api, fabric: mock.MockFabric,
                                                        patch: dict[str, Any], reason: str) -> None:
    body: dict[str, Any] = {"targets": {"switches": ["tor-p1-1"]}, "waterlines": {"3": HPCC_100G}}
    body.update(patch)
    r = create(api, body)
    assert r.status_code == 422, r.text
    assert reason in r.text
    assert fabric.command_log == {}
    assert api.get("/api/v1/changes").json()["total"] == 0


def test_role_checks(api: Api, fabric: mock.MockFabric) -> None:
    body = {"targets": {"all": True}, "waterlines": {"3": HPCC_100G}}
    assert create(api, body, role="viewer").status_code == 403
    assert api.client.post("/api/v1/changes", json=body).status_code == 401  # type: ignore[attr-defined]


@pytest.mark.parametrize("fault,expect", [
    ("unreachable", "ConnectionFailed"),
    ("reject", "CommitFailed"),
    ("commit_timeout", "DriverTimeout"),
    ("garbage", "ParseError"),
])
def test_fault_on_one_switch_stops_rollout_and_restores_it(
        api: Api, fabric: mock.MockFabric, fault: str, expect: str) -> None:
    before = {n: fabric.config[n] for n in fabric.config}
    r = create(api, {"targets": {"all": True}, "waterlines": {"3": HPCC_100G}, "wave_size": 1})
    cid = r.json()["id"]
    api.post(f"/api/v1/changes/{cid}/approve", role="operator")
    fabric.faults["tor-p1-2"] = fault  # the switch after the canary breaks during apply
    api.post(f"/api/v1/changes/{cid}/apply", role="operator")
    done = wait_done(api, cid)
    fabric.faults.clear()
    states = {x["switch"]: (x["state"], x["reason"]) for x in done["results"]}
    assert done["status"] == "failed"
    assert "tor-p1-2" in done["reason"] and expect in done["reason"]
    assert states["tor-p1-1"][0] == "verified"  # the canary went through (policy: stop)
    assert states["leaf-p1-1"][0] == "skipped" and states["spine-1"][0] == "skipped"
    assert expect in states["tor-p1-2"][1]
    # the failed switch holds exactly its old config; the untouched ones too
    assert fabric.config["tor-p1-2"] == before["tor-p1-2"]
    assert fabric.config["leaf-p1-1"] == before["leaf-p1-1"]
    if fault in ("reject", "commit_timeout"):
        assert states["tor-p1-2"][0] == "rolled_back"


def test_rollback_all_policy(api: Api, fabric: mock.MockFabric) -> None:
    before = {n: fabric.config[n] for n in fabric.config}
    r = create(api, {"targets": {"all": True}, "waterlines": {"3": HPCC_100G}, "wave_size": 1,
                     "on_failure": "rollback_all"})
    cid = r.json()["id"]
    api.post(f"/api/v1/changes/{cid}/approve", role="operator")
    fabric.faults["leaf-p1-1"] = "reject"
    api.post(f"/api/v1/changes/{cid}/apply", role="operator")
    done = wait_done(api, cid)
    assert done["status"] == "rolled_back"
    assert {n: fabric.config[n] for n in fabric.config} == before


def test_concurrent_changes_on_one_switch_409(api: Api, fabric: mock.MockFabric) -> None:
    first = create(api, {"targets": {"switches": ["tor-p1-1", "tor-p1-2"]},
                         "waterlines": {"3": HPCC_100G}}).json()["id"]
    second = create(api, {"targets": {"switches": ["tor-p1-2"]},
                          "waterlines": {"3": {**HPCC_100G, "pmax": 0.1}}}).json()["id"]
    for cid in (first, second):
        api.post(f"/api/v1/changes/{cid}/approve", role="operator")
    gate = threading.Event()
    fabric.gates["tor-p1-1"] = gate  # the first change holds its locks while the canary commits
    assert api.post(f"/api/v1/changes/{first}/apply", role="operator").status_code == 202
    r = api.post(f"/api/v1/changes/{second}/apply", role="operator")
    assert r.status_code == 409 and "tor-p1-2" in r.text and f"change {first}" in r.text
    # a new change on a locked switch is refused too
    r = create(api, {"targets": {"switches": ["tor-p1-2"]}, "waterlines": {"3": HPCC_100G}})
    assert r.status_code == 409
    gate.set()
    assert wait_done(api, first)["status"] == "applied"
    assert fabric.config["tor-p1-2"].waterlines[3].pmax == 0.2  # nothing interleaved
    # once the first is done the second may go, but it was planned against a switch that has
    # changed since: it sends nothing and asks for a new plan
    sent = list(fabric.command_log.get("tor-p1-2", []))
    assert api.post(f"/api/v1/changes/{second}/apply", role="operator").status_code == 202
    stale = wait_done(api, second)
    assert stale["status"] == "failed" and "changed since the plan" in stale["reason"]
    assert fabric.command_log.get("tor-p1-2", []) == sent
    assert fabric.config["tor-p1-2"].waterlines[3].pmax == 0.2
    fresh = create(api, {"targets": {"switches": ["tor-p1-2"]},
                         "waterlines": {"3": {**HPCC_100G, "pmax": 0.1}}}).json()["id"]
    api.post(f"/api/v1/changes/{fresh}/approve", role="operator")
    api.post(f"/api/v1/changes/{fresh}/apply", role="operator")
    assert wait_done(api, fresh)["status"] == "applied"
    assert fabric.config["tor-p1-2"].waterlines[3].pmax == 0.1


def test_unreachable_at_plan_time_is_502_and_nothing_stored(api: Api,
                                                            fabric: mock.MockFabric) -> None:
    fabric.faults["spine-1"] = "unreachable"
    r = create(api, {"targets": {"all": True}, "waterlines": {"3": HPCC_100G}})
    assert r.status_code == 502 and "spine-1" in r.text
    assert api.get("/api/v1/changes").json()["total"] == 0


def test_unknown_change_404_and_states(api: Api, fabric: mock.MockFabric) -> None:
    assert api.get("/api/v1/changes/999").status_code == 404
    cid = create(api, {"targets": {"all": True}, "waterlines": {"3": HPCC_100G}}).json()["id"]
    assert api.post(f"/api/v1/changes/{cid}/apply", role="operator").status_code == 409
    assert api.post(f"/api/v1/changes/{cid}/rollback", role="operator").status_code == 409
    assert api.post(f"/api/v1/changes/{cid}/reject", role="operator").json()["status"] == "rejected"


def test_virtual_fabric_ground_truth_per_profile(api: Api, fabric: mock.MockFabric) -> None:
    """/fabric/kpis and /metrics report the simulator's KPIs over the virtual fabric's busy
    ports and per profile the ports truly carry; the per-profile means add up to the whole."""
    vf = fabric.fabric
    truth: dict[str, list[float]] = {}
    for switch in vf.switches():
        for interface in vf.interfaces(switch):
            for priority in vf.lossless_priorities:
                profile = vf.traffic(switch, interface, priority)["profile"]
                if profile != "idle":
                    truth.setdefault(profile, []).append(
                        vf.kpis(switch, interface, priority)["objective"])
    assert len(truth) >= 2  # the built-in mix puts several profiles on this small fabric
    body = api.get("/api/v1/fabric/kpis").json()
    whole = body["virtual_fabric"]
    per = {p["profile"]: p for p in body["virtual_fabric_by_profile"]}
    assert set(per) == set(truth)
    for profile, values in truth.items():
        assert per[profile]["ports"] == len(values)
        assert per[profile]["kpis"]["objective"] == pytest.approx(sum(values) / len(values))
    assert whole["ports"] == sum(len(v) for v in truth.values())
    assert whole["objective"] == pytest.approx(
        sum(p["kpis"]["objective"] * p["ports"] for p in per.values()) / whole["ports"])
    text = api.client.get("/metrics").text  # type: ignore[attr-defined]
    for profile in truth:
        line = next(x for x in text.splitlines() if x.startswith(
            "waterline_virtual_fabric_profile_kpi{") and f'profile="{profile}"' in x
            and 'kpi="objective"' in x)
        assert float(line.rsplit(" ", 1)[1]) == pytest.approx(per[profile]["kpis"]["objective"])
    assert any(x.startswith('waterline_virtual_fabric_kpi{kpi="objective"}')
               for x in text.splitlines())


def test_a_switch_disabled_after_planning_is_not_changed(api: Api,
                                                         fabric: mock.MockFabric) -> None:
    r = create(api, {"targets": {"switches": ["tor-p1-1"]}, "waterlines": {"3": HPCC_100G}})
    assert r.status_code == 201, r.text
    cid = r.json()["id"]
    assert api.post(f"/api/v1/changes/{cid}/approve", role="operator").status_code == 200
    assert api.patch("/api/v1/switches/tor-p1-1", json={"enabled": False}).status_code == 200
    r = api.post(f"/api/v1/changes/{cid}/apply", role="operator")
    assert r.status_code == 409 and "'tor-p1-1' was disabled" in r.json()["detail"], r.text
    assert api.get(f"/api/v1/changes/{cid}").json()["status"] == "approved"
    assert fabric.command_log == {}


def test_pfc_fields_are_checked_with_the_switch_s_other_values(
        api: Api, fabric: mock.MockFabric) -> None:
    """xoff and xon without headroom_bytes: the switch keeps its headroom, so the set it would
    run (xoff + xon over that headroom) is refused -- not just the intent's own numbers."""
    r = create(api, {"targets": {"switches": ["tor-p1-1"]}, "waterlines": {"3": {
        **HPCC_100G, "xoff_bytes": 300_000, "xon_bytes": 18_432}}})
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert "with the switch's other values" in detail and "headroom_bytes" in detail, detail
    assert fabric.command_log == {}
    # with the headroom to hold them it plans
    r = create(api, {"targets": {"switches": ["tor-p1-1"]}, "waterlines": {"3": {
        **HPCC_100G, "xoff_bytes": 300_000, "xon_bytes": 18_432, "headroom_bytes": 318_432}}})
    assert r.status_code == 201, r.text
