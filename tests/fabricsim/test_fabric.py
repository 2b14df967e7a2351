"""VirtualFabric: switch-like counters over representative class windows."""

from __future__ import annotations

import dataclasses

import pytest

from fabricsim.fabric import COUNTER_NAMES, PortCounters, VirtualFabric
from fabricsim.physics import Thresholds
from fabricsim.scenario import Scenario
from fabricsim.topology import FabricParams, generate_fabric

FAST = {"window_ms": 1.0, "warmup_ms": 0.5}  # short class windows keep the tests quick


@pytest.fixture(scope="module")
def inventory() -> dict:
    return generate_fabric(FabricParams(pods=1, tors_per_pod=2, leaves_per_pod=1, spines=1,
                                        hosts_per_tor=4))


def _by_key(rows: list[PortCounters]) -> dict[tuple[str, int], PortCounters]:
    return {(r.interface, r.priority): r for r in rows}


def test_counters_are_monotonic_and_plausible(inventory: dict) -> None:
    vf = VirtualFabric.from_inventory(inventory, seed=3, live=False, **FAST)
    prev: dict[str, dict] = {}
    for _ in range(4):
        vf.advance(5.0)
        for sw in vf.switches():
            rows = vf.read_counters(sw)
            assert {r.priority for r in rows} == {3, 4}
            assert len(rows) == 2 * len(vf.interfaces(sw))
            for r in rows:
                assert r.watermark_bytes >= r.occupancy_bytes >= 0
                assert r.ecn_marked_packets <= r.tx_packets
                assert r.tx_bytes >= r.tx_packets * 64 or r.tx_packets == 0
                assert r.wred_drop_packets == 0  # lossless queues mark, they do not WRED-drop
                old = prev.get(sw, {}).get((r.interface, r.priority))
                if old is not None:
                    for name in COUNTER_NAMES:
                        assert getattr(r, name) >= getattr(old, name), name
            prev[sw] = _by_key(rows)
    busy = [r for rows in prev.values() for r in rows.values() if r.tx_bytes > 0]
    assert busy, "the default mix carries traffic"
    # ports are not identical even within a class
    assert len({r.tx_bytes for r in busy}) > len(busy) // 2
    # line rate is respected: 20 s at <= 400G
    assert max(r.tx_bytes for r in busy) <= 400e9 / 8 * 20


def test_reading_more_often_does_not_change_the_counters(inventory: dict) -> None:
    a = VirtualFabric.from_inventory(inventory, seed=5, live=False, **FAST)
    b = VirtualFabric.from_inventory(inventory, seed=5, live=False, **FAST)
    a.advance(12.0)
    for _ in range(4):
        b.advance(3.0)
        b.read_counters("tor-p1-1")
    ra, rb = _by_key(a.read_counters("tor-p1-1")), _by_key(b.read_counters("tor-p1-1"))
    for key, row in ra.items():
        for name in COUNTER_NAMES:
            assert abs(getattr(row, name) - getattr(rb[key], name)) <= 1


def test_thresholds_change_ecn_marking(inventory: dict) -> None:
    scen = {"default": {"profile": "allreduce", "params": {"flows": 8}}}
    # steady state: past DCQCN's start-up transient
    vf = VirtualFabric.from_inventory(inventory, seed=1, live=False, scenario=scen,
                                      window_ms=1.0, warmup_ms=2.0)
    sw = "tor-p1-1"
    itf = vf.interfaces(sw)[0]
    vf.advance(10.0)
    before = _by_key(vf.read_counters(sw))[(itf, 3)]
    ratio_default = before.ecn_marked_packets / before.tx_packets
    kpis_default = vf.kpis(sw, itf, 3)
    vf.set_thresholds(sw, 3, Thresholds(5_000, 50_000, 0.2))
    assert vf.get_qos(sw).thresholds[3] == Thresholds(5_000, 50_000, 0.2)
    vf.advance(10.0)
    after = _by_key(vf.read_counters(sw))[(itf, 3)]
    ratio_low = ((after.ecn_marked_packets - before.ecn_marked_packets)
                 / (after.tx_packets - before.tx_packets))
    # DCQCN needs about the same marking probability whatever the waterlines; what changes
    # is where the queue settles, and how much SONiC's oscillating queue over-marks
    assert abs(ratio_low - ratio_default) > 0.3 * ratio_default
    assert vf.kpis(sw, itf, 3)["queue_p99_bytes"] < 0.5 * kpis_default["queue_p99_bytes"]
    # waterlines above any queue: marking stops from now on
    vf.set_thresholds(sw, 3, Thresholds(20_000_000, 40_000_000, 0.05))
    vf.advance(10.0)
    last = _by_key(vf.read_counters(sw))[(itf, 3)]
    assert last.ecn_marked_packets == after.ecn_marked_packets
    assert last.tx_packets > after.tx_packets
    # the other priority and the other switch keep their waterlines
    assert vf.get_qos(sw).thresholds[4].kmin_bytes == 1 << 20
    assert vf.get_qos("tor-p1-2").thresholds[3].kmin_bytes == 1 << 20
    with pytest.raises(ValueError):
        vf.set_thresholds(sw, 3, Thresholds(10, 5, 0.1))


def test_default_qos_is_sonic_like(inventory: dict) -> None:
    vf = VirtualFabric.from_inventory(inventory, seed=0, live=False, **FAST)
    qos = vf.get_qos("tor-p1-1")
    assert qos.pfc_priorities == (3, 4) and qos.ecn_queues == (3, 4)
    th = qos.thresholds[3]
    assert (th.kmin_bytes, th.kmax_bytes, th.pmax) == (1 << 20, 2 << 20, 0.05)
    assert th.headroom_bytes and th.headroom_bytes > 50_000
    vf.set_pfc_priorities("tor-p1-1", [3])
    vf.set_ecn_queues("tor-p1-1", [3])
    qos2 = vf.get_qos("tor-p1-1")
    assert qos2.pfc_priorities == (3,) and qos2.ecn_queues == (3,)
    assert vf.get_qos("tor-p1-1") is not vf.get_qos("tor-p1-1")  # callers get copies


def test_disabling_ecn_stops_marking(inventory: dict) -> None:
    scen = {"default": {"profile": "allreduce", "params": {"flows": 8}}}
    vf = VirtualFabric.from_inventory(inventory, seed=1, live=False, scenario=scen, **FAST)
    sw = "tor-p1-2"
    vf.set_ecn_queues(sw, [])
    vf.advance(5.0)
    assert all(r.ecn_marked_packets == 0 for r in vf.read_counters(sw))
    assert any(r.tx_packets > 0 for r in vf.read_counters(sw))


def test_reset_and_clear_watermarks(inventory: dict) -> None:
    vf = VirtualFabric.from_inventory(inventory, seed=2, live=False, **FAST)
    sw = "leaf-p1-1"
    vf.advance(10.0)
    assert any(r.tx_bytes > 0 for r in vf.read_counters(sw))
    vf.reset_counters(sw)
    rows = vf.read_counters(sw)
    assert all(getattr(r, n) == 0 for r in rows for n in COUNTER_NAMES)
    assert all(r.watermark_bytes == r.occupancy_bytes for r in rows)
    vf.advance(10.0)
    assert any(r.tx_bytes > 0 for r in vf.read_counters(sw))
    vf.clear_watermarks(sw)
    assert all(r.watermark_bytes == r.occupancy_bytes for r in vf.read_counters(sw))
    # another switch kept its counters
    assert any(r.tx_bytes > 10e9 for r in vf.read_counters("tor-p1-1"))


def test_scenario_yaml_applies_over_time(inventory: dict) -> None:
    text = """
seed: 9
default: {profile: allreduce, params: {flows: 4}}
schedule:
  - at_s: 0
    match: {role: tor, priority: 4}
    profile: idle
  - at_s: 5
    match: {switch: tor-p1-*, interface: Ethernet0}
    profile: incast
    params: {incast_degree: 8, load: 0.2}
  - at_s: 8
    match: {switch: tor-p1-2}
    profile: idle
"""
    scen = Scenario.from_yaml(text)
    assert scen.seed == 9 and len(scen.schedule) == 3
    vf = VirtualFabric.from_inventory(inventory, live=False, scenario=scen, **FAST)
    assert vf.seed == 9
    assert vf.traffic("tor-p1-1", "Ethernet0", 3)["profile"] == "allreduce"
    assert vf.traffic("tor-p1-1", "Ethernet0", 4)["profile"] == "idle"
    assert vf.traffic("leaf-p1-1", vf.interfaces("leaf-p1-1")[0], 4)["profile"] == "allreduce"
    vf.advance(6.0)
    t = vf.traffic("tor-p1-1", "Ethernet0", 3)
    assert t == {"profile": "incast", "params": {"incast_degree": 8, "load": 0.2}}
    assert vf.traffic("tor-p1-1", "Ethernet4", 3)["profile"] == "allreduce"
    vf.advance(3.0)
    assert vf.traffic("tor-p1-2", "Ethernet4", 3)["profile"] == "idle"
    frozen = vf.read_counters("tor-p1-2")
    vf.advance(5.0)
    assert vf.read_counters("tor-p1-2") == frozen  # idle ports stand still
    assert vf.kpis("tor-p1-2", "Ethernet4", 3)["utilisation"] == 0.0


def test_set_profile_programmatically(inventory: dict) -> None:
    vf = VirtualFabric.from_inventory(inventory, seed=4, live=False, **FAST)
    vf.set_profile("websearch", {"load": 0.5}, switch="tor-p1-1", priority=3)
    assert vf.traffic("tor-p1-1", "Ethernet0", 3)["profile"] == "websearch"
    vf.set_profile("idle", switch="tor-p1-1", interface="Ethernet0", at_s=20.0)
    vf.advance(10.0)
    assert vf.traffic("tor-p1-1", "Ethernet0", 3)["profile"] == "websearch"
    vf.advance(11.0)
    assert vf.traffic("tor-p1-1", "Ethernet0", 3)["profile"] == "idle"
    with pytest.raises(ValueError):
        vf.set_profile("bogus")


def test_pause_frames_are_symmetric_on_links(inventory: dict) -> None:
    scen = {"default": {"profile": "incast",
                        "params": {"incast_degree": 32, "load": 0.8, "size_bytes": 500_000,
                                   "ingress_ports": 4}}}
    vf = VirtualFabric.from_inventory(inventory, seed=1, live=False, scenario=scen, **FAST)
    for sw in vf.switches():
        for p in (3, 4):
            th = vf.get_qos(sw).thresholds[p]
            vf.set_thresholds(sw, p, dataclasses.replace(th, alpha=1 / 64))
    vf.advance(10.0)
    link = next(lk for lk in inventory["links"] if lk["a_switch"].startswith("tor"))
    a = _by_key(vf.read_counters(link["a_switch"]))[(link["a_interface"], 3)]
    b = _by_key(vf.read_counters(link["b_switch"]))[(link["b_interface"], 3)]
    assert a.tx_pause_frames > 0 and b.tx_pause_frames > 0
    assert abs(a.rx_pause_frames - b.tx_pause_frames) <= 1
    assert abs(b.rx_pause_frames - a.tx_pause_frames) <= 1
    host = _by_key(vf.read_counters("tor-p1-1"))[("Ethernet0", 3)]
    assert host.rx_pause_frames == 0  # GPU NICs do not pause the switch here


def test_live_mode_follows_the_clock(inventory: dict) -> None:
    now = [100.0]
    vf = VirtualFabric.from_inventory(inventory, seed=1, live=True, clock=lambda: now[0],
                                      **FAST)
    first = vf.read_counters("tor-p1-1")
    assert all(r.tx_bytes == 0 for r in first)
    now[0] += 10.0
    assert vf.now_s == pytest.approx(10.0)
    second = vf.read_counters("tor-p1-1")
    assert any(r.tx_bytes > 0 for r in second)


def test_unknown_names(inventory: dict) -> None:
    vf = VirtualFabric.from_inventory(inventory, live=False, **FAST)
    with pytest.raises(KeyError):
        vf.read_counters("nope")
    with pytest.raises(KeyError):
        vf.kpis("tor-p1-1", "nope", 3)
    rows = vf.read_counters("tor-p1-1", priorities=[0, 3])
    assert {r.priority for r in rows} == {0, 3}
    assert all(r.tx_bytes == 0 for r in rows if r.priority == 0)
