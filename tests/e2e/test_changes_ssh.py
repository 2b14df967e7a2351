"""The change workflow through the API and netmiko over SSH to virtual Comware and SONiC
switches: exact dry-run diff, canary waves, read-back, physics follows, exact rollback,
injection refused before any line, faults, 409."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from fabricsim.ssh import Lab
from tests.conftest import Api
from tests.e2e.conftest import read_qos

pytestmark = pytest.mark.ssh

NEW = {"kmin_bytes": 51_200, "kmax_bytes": 409_600, "pmax": 0.2}
HOUSEKEEPING = ("config checkpoint", "config delete-checkpoint", "system-view", "return", "quit",
                "sonic-clear")


def change(api: Api, body: dict[str, Any]) -> dict[str, Any]:
    r = api.post("/api/v1/changes", role="operator", json=body)
    assert r.status_code == 201, r.text
    result: dict[str, Any] = r.json()
    return result


def apply(api: Api, change_id: int) -> dict[str, Any]:
    assert api.post(f"/api/v1/changes/{change_id}/approve", role="operator").status_code == 200
    r = api.post(f"/api/v1/changes/{change_id}/apply", role="operator")
    assert r.status_code == 202, r.text
    return wait(api, change_id)


def wait(api: Api, change_id: int) -> dict[str, Any]:
    assert api.client.app.state.changes.wait(change_id, 120)  # type: ignore[attr-defined]
    result: dict[str, Any] = api.get(f"/api/v1/changes/{change_id}").json()
    return result


def pushed(lab: Lab, switch: str, since: int) -> list[str]:
    """Config lines a switch received after index ``since``, without session housekeeping."""
    return [line for line in lab.config_lines(switch)[since:]
            if not line.startswith(HOUSEKEEPING)]


def test_dry_run_diff_is_exactly_what_apply_sends(ssh_api: Api, lab: Lab) -> None:
    names = lab.names()
    before = {n: read_qos(lab, n) for n in names}
    sent = {n: len(lab.config_lines(n)) for n in names}
    dry = change(ssh_api, {"targets": {"all": True}, "waterlines": {"3": NEW, "4": NEW},
                           "dry_run": True})
    assert dry["status"] == "dry_run"
    assert {n: len(lab.config_lines(n)) for n in names} == sent  # a dry run sends no config
    diffs = {r["switch"]: r["diff"].splitlines() for r in dry["results"]}
    assert all(diffs.values())
    real = change(ssh_api, {"targets": {"all": True}, "waterlines": {"3": NEW, "4": NEW},
                            "wave_size": 2})
    done = apply(ssh_api, real["id"])
    assert done["status"] == "applied", done
    for name in names:
        lines = pushed(lab, name, sent[name])
        assert lines == [line for line in diffs[name] if not line.startswith(HOUSEKEEPING)], (
            name, lines, diffs[name])
    # canary first: one switch alone in wave 0, the TORs before the leaf and the spine
    waves = sorted((r["wave"], r["switch"]) for r in done["results"])
    assert [w for w, _ in waves] == [0, 1, 1, 2]
    assert waves[0][1].startswith("tor")
    audit = ssh_api.get("/api/v1/audit", params={"change_id": real["id"],
                                                 "action": "switch.commit"}).json()["items"]
    assert audit[0]["switch"] == waves[0][1]
    # read-back matches the intent on every switch
    for name in names:
        qos = read_qos(lab, name)
        for priority in (3, 4):
            w = qos.waterlines[priority]
            # Comware counts in buffer cells: the switch holds the intent rounded to a cell.
            assert abs(w.kmin_bytes - 51_200) < 256 and abs(w.kmax_bytes - 409_600) < 256, w
            assert w.pmax == 0.2
        assert qos.pfc_priorities == before[name].pfc_priorities
    # the explicit rollback restores every touched switch exactly
    r = ssh_api.post(f"/api/v1/changes/{real['id']}/rollback", role="operator")
    assert r.status_code == 202, r.text
    assert wait(ssh_api, real["id"])["status"] == "rolled_back"
    assert {n: read_qos(lab, n) for n in names} == before


def test_telemetry_of_the_simulated_fabric_follows(ssh_api: Api, lab: Lab) -> None:
    tor = next(n for n in lab.names() if n.startswith("tor"))
    fabric = lab.fabric

    def marks_per_packet() -> float:
        lab.switch(tor).flush()  # config reaches the physics at the switch's next read
        a = {(c.interface, c.priority): c for c in fabric.read_counters(tor)}
        fabric.advance(20.0)
        b = fabric.read_counters(tor)
        marks = sum(c.ecn_marked_packets - a[(c.interface, c.priority)].ecn_marked_packets
                    for c in b)
        packets = sum(c.tx_packets - a[(c.interface, c.priority)].tx_packets for c in b)
        return marks / max(1, packets)

    before = marks_per_packet()
    low = {"kmin_bytes": 10_240, "kmax_bytes": 102_400, "pmax": 1.0}
    done = apply(ssh_api, change(ssh_api, {"targets": {"switches": [tor]},
                                           "waterlines": {"3": low, "4": low}})["id"])
    assert done["status"] == "applied", done
    after = marks_per_packet()
    assert after > 2 * before and after > 0.001, (before, after)


@pytest.mark.parametrize("body,reason", [
    ({"targets": {"switches": ["tor-p1-1"], "interfaces": ["Ethernet0\nconfig reload -y"]}},
     "targets.interfaces"),
    ({"targets": {"switches": ["tor-p1-1"], "interfaces": ["HundredGigE1/0/1;reboot"]}},
     "targets.interfaces"),
    ({"targets": {"switches": ["tor-p1-1|sh"]}}, "targets.switches"),
    ({"waterlines": {"3": {**NEW, "kmin_bytes": "51200\nreboot"}}}, "kmin_bytes"),
    ({"waterlines": {"3": {**NEW, "pmax": "0.2; rm -rf /"}}}, "pmax"),
    ({"waterlines": {"3": {**NEW, "kmax_bytes": -1}}}, "kmax_bytes"),
    ({"waterlines": {"3": {**NEW, "kmax_bytes": 10**12}}}, "kmax_bytes"),
    ({"waterlines": {"3": {**NEW, "kmin_bytes": 409_600}}}, "must be below kmax_bytes"),
    ({"waterlines": {"3": {**NEW, "xoff_bytes": 5_000, "xon_bytes": 1_000,
                           "headroom_bytes": 6_000}}}, "below the headroom formula"),
    ({"description": "tune\x1b[2J"}, "description"),
])
def test_nonsense_gets_422_and_no_switch_receives_a_line(ssh_api: Api, lab: Lab,
                                                         body: dict[str, Any], reason: str) -> None:
    received = {n: len(lab.command_log(n)) for n in lab.names()}
    payload: dict[str, Any] = {"targets": {"all": True}, "waterlines": {"3": NEW}} | body
    r = ssh_api.post("/api/v1/changes", role="operator", json=payload)
    assert r.status_code == 422, r.text
    assert reason in r.text
    # not a single line, not even a show command, reached any switch
    assert {n: len(lab.command_log(n)) for n in lab.names()} == received


def _fault(lab: Lab, switch: str, kind: str) -> None:
    nos = lab.nos_of(switch)
    config_line = r"^ecnconfig -p" if nos == "sonic" else r"drop-level 0 low-limit"
    if kind == "unreachable":
        lab.faults.unreachable(switch)
    elif kind == "auth":
        lab.faults.wrong_password(switch)
    elif kind == "commit_timeout":
        lab.faults.hang(switch, 8.0, on=config_line)
    elif kind == "garbage":
        lab.faults.garbage(switch, on=r"^(show|display|ecnconfig -q) ")
    elif kind == "reject":
        lab.faults.reject(switch, on=r"^config mmu " if nos == "sonic" else r"drop-level 1 ")


@pytest.mark.parametrize("kind,expect", [
    ("unreachable", "ConnectionFailed"), ("auth", "AuthFailed"),
    ("commit_timeout", "DriverTimeout"), ("garbage", "ParseError"), ("reject", "CommitFailed"),
])
def test_faults_during_apply(ssh_api: Api, lab: Lab, kind: str, expect: str) -> None:
    names = lab.names()
    before = {n: read_qos(lab, n) for n in names}
    new = {"kmin_bytes": 51_200, "kmax_bytes": 409_600, "pmax": 0.2, "alpha": 0.25}
    planned = change(ssh_api, {"targets": {"all": True}, "waterlines": {"3": new, "4": new},
                               "wave_size": 1})
    order = [r["switch"] for r in sorted(planned["results"], key=lambda r: r["wave"])]
    victim = order[1]  # the first switch after the canary
    ssh_api.post(f"/api/v1/changes/{planned['id']}/approve", role="operator")
    _fault(lab, victim, kind)
    ssh_api.post(f"/api/v1/changes/{planned['id']}/apply", role="operator")
    done = wait(ssh_api, planned["id"])
    lab.faults.clear(victim)
    time.sleep(0.2)
    states = {r["switch"]: r for r in done["results"]}
    assert done["status"] == "failed"
    assert victim in done["reason"] and expect in states[victim]["reason"], states[victim]
    assert states[order[0]]["state"] == "verified"  # policy stop: the canary keeps the change
    for later in order[2:]:
        assert states[later]["state"] == "skipped"
        assert read_qos(lab, later) == before[later]  # never touched
    # the failed switch is exactly at its old config: never half-configured
    assert read_qos(lab, victim) == before[victim]


def test_two_concurrent_changes_409_nothing_interleaves(ssh_api: Api, lab: Lab) -> None:
    tor = sorted(n for n in lab.names() if n.startswith("tor"))[0]
    nos = lab.nos_of(tor)
    other = {**NEW, "pmax": 0.1}
    first = change(ssh_api, {"targets": {"switches": [tor]},
                             "waterlines": {"3": NEW, "4": NEW}})["id"]
    second = change(ssh_api, {"targets": {"switches": [tor]},
                              "waterlines": {"3": other, "4": other}})["id"]
    for cid in (first, second):
        ssh_api.post(f"/api/v1/changes/{cid}/approve", role="operator")
    lab.faults.hang(tor, 3.0, on=r"^ecnconfig -p" if nos == "sonic" else r"low-limit")
    results: dict[int, int] = {}

    def go(cid: int) -> None:
        results[cid] = ssh_api.post(f"/api/v1/changes/{cid}/apply",
                                    role="operator").status_code

    threads = [threading.Thread(target=go, args=(cid,)) for cid in (first, second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results.values()) == [202, 409], results
    winner = first if results[first] == 202 else second
    assert wait(ssh_api, winner)["status"] == "applied"
    pmax = read_qos(lab, tor).waterlines[3].pmax
    assert pmax == (0.2 if winner == first else 0.1)


def test_switch_with_differing_ports_is_refused_before_any_config_line(ssh_api: Api,
                                                                       lab: Lab) -> None:
    """Waterline manages one RoCE config per switch; a switch whose ports were configured
    differently by hand would be summed up lossily, so a change on it is a 422."""
    from tests.ssh.conftest import Shell

    tor = sorted(n for n in lab.names() if n.startswith("tor"))[0]
    sw = next(s for s in lab.inventory["switches"] if s["name"] == tor)
    first_port = sw["interfaces"][0]["name"]
    shell = Shell(lab.port_of(tor), tor, password=lab.password)
    try:
        if lab.nos_of(tor) == "sonic":
            shell.chan.send("sudo -s\n")
            shell.read_until(r"\[sudo\] password for admin: $")
            shell.cmd(lab.password)
            shell.cmd(f"config interface pfc priority {first_port} 4 off")
        else:
            shell.cmd("system-view")
            shell.cmd(f"interface {first_port}")
            shell.cmd("priority-flow-control dot1p 3 headroom 999")
            shell.cmd("return")
    finally:
        shell.close()
    sent = len(lab.config_lines(tor))
    r = ssh_api.post("/api/v1/changes", role="operator", json={
        "targets": {"switches": [tor]}, "waterlines": {"3": NEW, "4": NEW}})
    assert r.status_code == 422, r.text
    assert "differ" in r.text and "uniform" in r.text
    assert len(lab.config_lines(tor)) == sent
