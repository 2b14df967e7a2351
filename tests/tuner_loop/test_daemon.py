"""The auto-tuning daemon in closed loop on the virtual fabric: the collector polls the mock
switches, the daemon classifies, proposes and applies through the change workflow, and keeps
or rolls back after the verification window. Simulated time drives everything."""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import numpy as np
import pytest
from sqlalchemy import delete, select

from app.changes.service import ChangeService
from app.daemon import (
    CycleReport,
    DaemonOptions,
    TunerDaemon,
    _for_every_port,
    _Job,
    _slowest_speed,
)
from app.db.models import (
    ChangeSet,
    Interface,
    PortProfile,
    ProfileTrack,
    Proposal,
    Switch,
    SwitchLock,
    TunerTrial,
)
from app.drivers import mock
from app.inventory import dump_yaml, import_inventory, parse_inventory
from collectors.poller import Poller
from fabricsim.topology import FabricParams, generate_fabric
from tests.conftest import Database
from tuning import mixed
from tuning.features import PROFILES
from tuning.guard import Waterline, check_waterlines
from tuning.tracker import TrafficTracker
from tuning.verify import Tolerance, paused_link_frames_per_s, regression

pytestmark = pytest.mark.slow

if not (Path(__file__).resolve().parents[2] / "tuning" / "models" / "classifier.joblib").exists():
    pytest.skip("the trained tuner models are not in the tree yet", allow_module_level=True)

T0 = 1_800_000_000.0
POLL_S = 10.0


@functools.lru_cache(maxsize=1)
def models() -> Any:
    from tuning.models import default_models

    return default_models()


@dataclass
class Loop:
    db: Database
    state: mock.MockFabric
    poller: Poller
    changes: ChangeService
    daemon: TunerDaemon

    @property
    def now(self) -> float:
        return T0 + self.state.fabric.now_s

    def polls(self, n: int) -> None:
        for _ in range(n):
            self.state.fabric.advance(POLL_S)
            report = self.poller.poll_cycle()
            assert report.failed == 0, report

    def cycle(self, polls: int = 6) -> Any:
        self.polls(polls)
        report = self.daemon.cycle()
        for run in list(self.changes._runs):
            self.changes.wait(run, 60)
        return report

    def objective(self, switch: str, interfaces: list[str],
                  priorities: tuple[int, ...] = (3, 4)) -> float:
        """The ground truth: the simulator's objective, averaged over the ports and the
        lossless priorities."""
        vf = self.state.fabric
        values = [vf.kpis(switch, i, p)["objective"] for i in interfaces for p in priorities]
        return sum(values) / len(values)


def make_loop(db: Database, scenario: dict[str, Any], mode: str = "auto",
              access_speed_gbps: int = 100) -> Loop:
    inv = generate_fabric(FabricParams(pods=1, tors_per_pod=2, leaves_per_pod=1, spines=1,
                                       hosts_per_tor=4, access_speed_gbps=access_speed_gbps))
    with db.session() as s:
        import_inventory(s, parse_inventory(dump_yaml(inv)))
        s.commit()
    state = mock.install(inv, seed=5, scenario=scenario, live=False)
    clock = lambda: T0 + state.fabric.now_s  # noqa: E731
    poller = Poller(db.engine, concurrency=8, clock=clock, default_interval_s=POLL_S,
                    qos_refresh_s=0.0)
    poller.load_targets()
    changes = ChangeService(db.factory)
    daemon = TunerDaemon(db.factory, changes, models_loader=models, clock=clock,
                         options=DaemonOptions(interval_s=60, window_s=60, verify_s=60,
                                               settle_s=5, initial_mode=mode))  # type: ignore[arg-type]
    return Loop(db, state, poller, changes, daemon)


@pytest.fixture
def loop_factory(sqlite_db: Database) -> Iterator[Any]:
    made: list[Loop] = []

    def build(scenario: dict[str, Any], mode: str = "auto", access_speed_gbps: int = 100
              ) -> Loop:
        loop = make_loop(sqlite_db, scenario, mode, access_speed_gbps)
        made.append(loop)
        return loop

    yield build
    for loop in made:
        loop.poller.close()
    mock.uninstall()


TOR_PORTS = [f"Ethernet{4 * i}" for i in range(4)]


def allreduce_on_tor1() -> dict[str, Any]:
    """The scenario most tests run: allreduce of 8 flows on tor-p1-1, the rest idle."""
    return {"default": {"profile": "idle"}, "schedule": [
        {"at_s": 0, "match": {"switch": "tor-p1-1"}, "profile": "allreduce",
         "params": {"flows": 8}}]}


def test_observe_classifies_ports_like_the_ground_truth(loop_factory: Any) -> None:
    scenario = {"default": {"profile": "idle"}, "schedule": [
        {"at_s": 0, "match": {"switch": "tor-p1-1"}, "profile": "allreduce",
         "params": {"flows": 8}},
        {"at_s": 0, "match": {"switch": "tor-p1-2"}, "profile": "incast",
         "params": {"incast_degree": 32}}]}
    loop = loop_factory(scenario, mode="observe")
    loop.cycle()
    with loop.db.session() as s:
        names = dict(s.execute(select(Switch.id, Switch.name)).tuples().all())
        profiles = [(names[p.switch_id], p.profile) for p in s.scalars(select(PortProfile))]
        assert s.scalars(select(Proposal)).first() is None  # observe never proposes
    tor1 = [p for sw, p in profiles if sw == "tor-p1-1"]
    tor2 = [p for sw, p in profiles if sw == "tor-p1-2"]
    # per port, one window: the classifier's held-out accuracy per window is ~0.64 and its
    # usual mistake is a Poisson mix for incast or allreduce; it never calls busy ports idle
    # nor incast allreduce ...
    assert tor1.count("allreduce") >= 0.3 * len(tor1) and "idle" not in tor1, tor1
    assert tor2.count("incast") >= 0.2 * len(tor2), tor2
    assert "idle" not in tor2 and "allreduce" not in tor2, tor2
    # ... and what the tuner acts on, the switch's posterior over its ports: allreduce is
    # recognised; incast is a plausible hypothesis (a known miss: this incast looks like
    # hadoop to the shipped classifier), never allreduce or idle
    with loop.db.session() as s:
        for name, truth in (("tor-p1-1", "allreduce"), ("tor-p1-2", "incast")):
            sw = s.scalars(select(Switch).where(Switch.name == name)).one()
            track = s.get(ProfileTrack, (sw.id, 3))
            assert track is not None
            post = TrafficTracker.from_state(track.state).posterior
            assert post[PROFILES.index(truth)] >= (0.5 if truth == "allreduce" else 0.2), (
                name, post)
            if truth == "incast":
                assert max(post[PROFILES.index("allreduce")], post[PROFILES.index("idle")]) < 0.1


def test_profile_evidence_is_stored_and_survives_a_restart(loop_factory: Any) -> None:
    """The daemon tracks each switch's profile posterior over cycles in the database; a new
    daemon (a restart) carries on from the stored evidence instead of starting over."""
    scenario = allreduce_on_tor1()
    loop = loop_factory(scenario, mode="observe")
    loop.cycle()

    def scores() -> list[float]:
        with loop.db.session() as s:
            tor = s.scalars(select(Switch).where(Switch.name == "tor-p1-1")).one()
            track = s.get(ProfileTrack, (tor.id, 3))
            assert track is not None
            assert "allreduce" in track.state["descriptors"]
            return list(track.state["scores"])

    first = scores()
    assert len(first) == 5 and first.index(max(first)) == 0  # allreduce
    loop.daemon = TunerDaemon(loop.db.factory, loop.changes, models_loader=models,
                              clock=lambda: loop.now,
                              options=DaemonOptions(interval_s=60, window_s=60, verify_s=60,
                                                    settle_s=5, initial_mode="observe"))
    loop.cycle()
    second = scores()
    assert second.index(max(second)) == 0
    # the evidence against the other profiles accumulated across the restart
    assert min(second) < 1.2 * min(first) < 0


def test_auto_improves_the_fabric_and_keeps_the_change(loop_factory: Any) -> None:
    # allreduce: the profile the shipped models tune best (websearch/hadoop under SONiC's
    # thresholds are confused with incast and mostly held: see the README's results)
    scenario = allreduce_on_tor1()
    loop = loop_factory(scenario)
    loop.polls(1)
    start = loop.objective("tor-p1-1", TOR_PORTS)
    for _ in range(6):
        loop.cycle()
    end = loop.objective("tor-p1-1", TOR_PORTS)
    with loop.db.session() as s:
        trials = s.scalars(select(TunerTrial)).all()
        proposals = s.scalars(select(Proposal)).all()
    assert proposals and all(p.explanation.get("reason") is not None for p in proposals)
    assert any(t.status == "kept" for t in trials), [(t.status, t.reason) for t in trials]
    assert end < 0.8 * start, (start, end, [(p.priority, p.proposed) for p in proposals])


def _pending(loop: Loop, tor_id: int, priority: int, change: dict[str, Any],
             speed_gbps: int = 100, **explained: Any) -> int:
    """A pending proposal for ``tor_id`` at ``priority`` (its interfaces TOR_PORTS):
    ``change`` over tor-p1-1's waterlines there."""
    current = loop.state.config["tor-p1-1"].waterlines[priority].model_dump()
    with loop.db.session() as s:
        row = Proposal(switch_id=tor_id, priority=priority, interfaces=TOR_PORTS,
                       profile="allreduce", probability=1.0, current=current,
                       proposed={**current, **change}, predicted={}, confidence=1.0,
                       explanation={"reason": "forced by the test", "speed_gbps": speed_gbps,
                                    "cable_m": 3.0, **explained})
        s.add(row)
        s.commit()
        return row.id

def _force(loop: Loop, change: dict[str, Any], speed_gbps: int = 100, **explained: Any
           ) -> tuple[int, int]:
    """A deliberate proposal for tor-p1-1 priority 3 (``change`` over its current
    waterlines), applied through the daemon's own path as an auto cycle takes it: measure,
    apply, open a trial. (switch id, trial id)."""
    with loop.db.session() as s:
        tor_id = s.scalars(select(Switch.id).where(Switch.name == "tor-p1-1")).one()
    proposal_id = _pending(loop, tor_id, 3, change, speed_gbps, **explained)
    loop.daemon.set_mode("auto", "test")
    now_ms = int(loop.now * 1000)
    report = CycleReport(mode="auto")
    loop.daemon._classify(now_ms, report, loop.daemon._observed_waterlines())
    loop.daemon._apply([proposal_id], now_ms, report)
    assert not report.errors, report.errors
    for run in list(loop.changes._runs):
        loop.changes.wait(run, 60)
    with loop.db.session() as s:
        trial = s.scalars(select(TunerTrial)).one()
        assert trial.kpis_before["utilisation"] > 0.3, trial.kpis_before
        return tor_id, trial.id


def _rolled_back(loop: Loop, trial_id: int, cycles: int = 3) -> TunerTrial:
    """The trial after ``cycles`` more daemon cycles, which must have rolled it back."""
    for _ in range(cycles):
        loop.cycle()
    with loop.db.session() as s:
        trial = s.get(TunerTrial, trial_id)
        assert trial is not None
        assert trial.status == "rolled_back", (trial.status, trial.reason, trial.kpis_after)
        s.expunge(trial)
        return trial


def test_a_change_that_makes_things_worse_is_rolled_back(loop_factory: Any) -> None:
    scenario = allreduce_on_tor1()
    loop = loop_factory(scenario, mode="observe")
    loop.cycle()
    before = loop.state.config["tor-p1-1"]
    # a deliberately bad proposal: mark everything from a few KB on, starving throughput
    tor_id, trial_id = _force(loop, {"kmin_bytes": 1_000, "kmax_bytes": 2_000, "pmax": 1.0})
    assert loop.state.config["tor-p1-1"].waterlines[3].kmax_bytes == 2_000
    trial = _rolled_back(loop, trial_id)
    assert "utilisation fell" in trial.reason
    with loop.db.session() as s:
        # the rolled-back set goes on the switch's avoid list: not proposed there again soon
        track = s.get(ProfileTrack, (tor_id, 3))
        assert track is not None
        avoid = TrafficTracker.from_state(track.state).avoid_view()
    assert loop.state.config["tor-p1-1"].waterlines[3] == before.waterlines[3]
    assert len(avoid) == 1 and avoid[0][2] == pytest.approx(0.0)  # log2(Pmax 1.0)


def _elephants_on_tor1(flows: int) -> dict[str, Any]:
    return {"default": {"profile": "idle"}, "schedule": [
        {"at_s": 0, "match": {"switch": "tor-p1-1"}, "profile": "allreduce",
         "params": {"flows": flows}}]}


def test_pauses_that_buy_throughput_are_kept(loop_factory: Any) -> None:
    """Allreduce of 16 elephants under SONiC's 1 MB / 2 MB: the marks hold the senders at
    0.87 of line rate. A deep ramp (2.5 MB / 4.5 MB) lets the queue stand: utilisation 0.96,
    and the switch pauses its peers now and then (~1,200 frames/s, a fifth of one held
    link's worth). Kept: a trade, not a regression (``tuning.verify``)."""
    loop = loop_factory(_elephants_on_tor1(16), mode="observe")
    loop.cycle()
    _tor_id, trial_id = _force(loop, {"kmin_bytes": 2_500_000, "kmax_bytes": 4_500_000,
                                      "pmax": 0.2})
    for _ in range(3):
        loop.cycle()
    with loop.db.session() as s:
        trial = s.get(TunerTrial, trial_id)
        assert trial is not None
        before, after = trial.kpis_before, trial.kpis_after or {}
        assert trial.status == "kept", (trial.reason, before, after)
    assert after["speed_gbps"] == 100.0
    assert after["utilisation"] >= 1.10 * before["utilisation"]
    assert before["tx_pause_per_s"] < 5.0  # none before ...
    assert 1_000.0 < after["tx_pause_per_s"] <= paused_link_frames_per_s(100)  # ... some now


def test_a_pause_storm_is_rolled_back_though_it_gained_throughput(loop_factory: Any) -> None:
    """The same elephants, the ramp a little deeper (3.2 MB / 5.5 MB, against the PFC
    threshold): as much throughput as above, but the queue sits at XOFF and the switch
    pauses its peers 20 links' worth (~130,000 frames/s). Rolled back for the pauses."""
    loop = loop_factory(_elephants_on_tor1(16), mode="observe")
    loop.cycle()
    _tor_id, trial_id = _force(loop, {"kmin_bytes": 3_200_000, "kmax_bytes": 5_500_000,
                                      "pmax": 0.2})
    trial = _rolled_back(loop, trial_id)
    assert trial.reason.startswith("tx_pause_per_s rose from 0.0 to"), trial.reason
    after = trial.kpis_after or {}
    assert after["utilisation"] >= 1.10 * trial.kpis_before["utilisation"]
    assert after["tx_pause_per_s"] > 10 * paused_link_frames_per_s(100)


def test_a_way_back_from_a_probe_is_kept_without_verification(loop_factory: Any) -> None:
    """A change the optimiser marks as a way back (to the set in place before a probe:
    ``tuning.optimiser.way_back``) is not verified against the window before it -- the
    probe's -- so even telemetry that would roll any other change back (the starving set of
    the test above) keeps it: the daemon trusts the mark, which the optimiser gives only to
    a return to a set judged before the probe."""
    scenario = allreduce_on_tor1()
    loop = loop_factory(scenario, mode="observe")
    loop.cycle()
    _tor_id, trial_id = _force(loop, {"kmin_bytes": 1_000, "kmax_bytes": 2_000, "pmax": 1.0},
                               way_back=True)
    for _ in range(3):
        loop.cycle()
    with loop.db.session() as s:
        trial = s.get(TunerTrial, trial_id)
        assert trial is not None
        assert trial.status == "kept", (trial.status, trial.reason)
        # the window after it was read (and would have failed the rule)
        after = trial.kpis_after or {}
        assert after["utilisation"] < 0.9 * trial.kpis_before["utilisation"]
        # (the auto cycles after it may tune the switch on from there, as from any set)
        assert not [t for t in s.scalars(select(TunerTrial)) if t.status == "rolled_back"]


@pytest.mark.parametrize("recorded_gbps", [200, 400])
def test_a_deep_change_that_buys_no_throughput_is_rolled_back(loop_factory: Any,
                                                               recorded_gbps: int) -> None:
    """A websearch mix at load 0.9 on 200G ports, taken deeper than every static reference
    (2 MB / 4 MB, twice the SONiC default): no drops, no pause frames, no utilisation lost,
    but a standing queue several times as long that buys nothing (its mice pay: 1.09 x the
    objective in the evaluation's simulator). The daemon rolls it back -- also when the
    proposal was made in a 400G port's context (a switch priority of 100G and 400G ports is
    set in its fastest port's), where the HPCC reference (3.2 MB deep) would cover the ramp:
    the references are those of the slowest port it sets (the demo fabric's 1.6 MB /
    5.5 MB on a ToR's 100G and 400G ports doubled the queue for nothing and left its hadoop
    and incast ports 10-23 % slower)."""
    scenario = {"default": {"profile": "idle"}, "schedule": [
        {"at_s": 0, "match": {"switch": "tor-p1-1"}, "profile": "websearch",
         "params": {"load": 0.9}}]}
    loop = loop_factory(scenario, mode="observe", access_speed_gbps=200)
    loop.cycle()
    before = loop.state.config["tor-p1-1"]
    _tor_id, trial_id = _force(loop, {"kmin_bytes": 2_000_000, "kmax_bytes": 4_000_000,
                                      "pmax": 0.05}, speed_gbps=recorded_gbps)
    assert loop.state.config["tor-p1-1"].waterlines[3].kmax_bytes == 4_000_000
    trial = _rolled_back(loop, trial_id)
    assert "deeper than every static reference" in trial.reason, trial.reason
    after = trial.kpis_after or {}
    assert after["utilisation"] < 1.02 * trial.kpis_before["utilisation"]
    assert loop.state.config["tor-p1-1"].waterlines[3] == before.waterlines[3]


def test_profile_change_is_detected_and_retuned_within_three_cycles(loop_factory: Any) -> None:
    scenario = allreduce_on_tor1()
    loop = loop_factory(scenario)
    for _ in range(3):
        loop.cycle()
    loop.state.fabric.set_profile("incast", {"incast_degree": 32}, switch="tor-p1-1")
    changed_at = loop.now
    detected = retuned = None
    for cycle in range(1, 4):
        loop.cycle()
        with loop.db.session() as s:
            tor = s.scalars(select(Switch).where(Switch.name == "tor-p1-1")).one()
            profiles = [p.profile for p in s.scalars(select(PortProfile).where(
                PortProfile.switch_id == tor.id, PortProfile.priority == 3))]
            incast_proposals = s.scalars(select(Proposal).where(
                Proposal.switch_id == tor.id, Proposal.profile == "incast",
                Proposal.created_at >= Proposal.created_at)).all()
        if detected is None and profiles.count("incast") > len(profiles) / 2:
            detected = cycle
        if retuned is None and incast_proposals:
            retuned = cycle
    assert detected is not None and detected <= 3, (profiles, changed_at)
    assert retuned is not None and retuned <= 3


MIXED_TOR = [
    {"at_s": 0, "match": {"switch": "tor-p1-1"}, "profile": "allreduce", "params": {"flows": 4}},
    {"at_s": 0, "match": {"switch": "tor-p1-1", "interface": "Ethernet4"}, "profile": "incast",
     "params": {"incast_degree": 8, "load": 0.2}},
    {"at_s": 0, "match": {"switch": "tor-p1-1", "interface": "Ethernet8"}, "profile": "hadoop",
     "params": {"load": 0.5}}]


def test_a_switch_of_mixed_traffic_is_not_tuned_at_its_other_ports_expense(
        loop_factory: Any) -> None:
    """One ToR priority, three kinds of traffic: allreduce on most ports, an incast and a
    hadoop mix on one port each. The switch takes one set of waterlines; the daemon proposes
    for the allreduce ports and keeps the others aside, taking no change the landscape
    predicts to slow them down -- ground truth: the incast port is not made slower."""
    loop = loop_factory({"default": {"profile": "idle"}, "schedule": MIXED_TOR})
    loop.polls(1)
    start = {i: loop.state.fabric.kpis("tor-p1-1", i, 3)["objective"]
             for i in ("Ethernet0", "Ethernet4", "Ethernet8")}
    reports = [loop.cycle() for _ in range(6)]
    end = {i: loop.state.fabric.kpis("tor-p1-1", i, 3)["objective"] for i in start}
    with loop.db.session() as s:
        tor = s.scalars(select(Switch).where(Switch.name == "tor-p1-1")).one()
        proposals = s.scalars(select(Proposal).where(Proposal.switch_id == tor.id,
                                                     Proposal.priority == 3)).all()
        track = s.get(ProfileTrack, (tor.id, 3))
        assert track is not None
        posterior = TrafficTracker.from_state(track.state).posterior
    # the switch's evidence is its allreduce ports' (the others do not blur it) ...
    assert posterior[PROFILES.index("allreduce")] > 0.8, posterior
    # ... the daemon did propose for them, each proposal with the other ports and (a move
    # of the landscape's) their predicted fate in its explanation, none predicted to slow
    # them down
    assert proposals
    for p in proposals:
        assert p.profile == "allreduce", (p.profile, p.explanation)
        assert "Ethernet4" not in p.explanation["tuned_for"], p.explanation
        others = {i: o for o in p.explanation["other_ports"] for i in o["interfaces"]}
        assert "Ethernet4" in others, p.explanation["other_ports"]
        for o in p.explanation["other_ports"]:  # (a landscape move carries predictions)
            for name, change in o.get("change_pct", {}).items():
                if o["weights"][name] >= mixed.PLAUSIBLE:
                    assert change <= 100 * math.expm1(mixed.HARM_LOG_J), o
                    assert (o["from_origin_pct"][name] <= 100 * math.expm1(mixed.HARM_LOG_J)
                            or change <= 0), o
    # ground truth: the incast port is not made slower (without the split it ends 1.49 x
    # its start here, the hadoop port 0.66 x; 5 %: the simulator's window-to-window noise)
    assert end["Ethernet4"] <= 1.05 * start["Ethernet4"], (start, end, reports)


MIXED_FAMILY = [
    {"at_s": 0, "match": {"switch": "tor-p1-1"}, "profile": "websearch", "params": {"load": 0.7}},
    {"at_s": 0, "match": {"switch": "tor-p1-1", "interface": "Ethernet4"}, "profile": "incast",
     "params": {"incast_degree": 16, "load": 0.4}},
    {"at_s": 0, "match": {"switch": "tor-p1-1", "interface": "Ethernet8"}, "profile": "hadoop",
     "params": {"load": 0.5}}]


def test_a_group_of_look_alike_traffic_is_judged_port_by_port(loop_factory: Any) -> None:
    """One ToR priority whose ports carry traffic that reads alike under SONiC's default
    (websearch on most ports, an incast and a hadoop mix on one port each -- spine-1 of the
    demo fabric in small): one group, so the deep-to-shallow diagnostic runs for the switch.
    It records every port's own window along the path (stored with the tracker, so a restart
    keeps them), and whatever it decides, no port ends slower (ground truth, 5 %: the
    simulator's window-to-window noise) -- the vendor guide would make the incast port ~1.5 x
    slower."""
    loop = loop_factory({"default": {"profile": "idle"}, "schedule": MIXED_FAMILY})
    loop.polls(1)
    ports = ("Ethernet0", "Ethernet4", "Ethernet8")
    start = {i: loop.state.fabric.kpis("tor-p1-1", i, 3)["objective"] for i in ports}
    probes = []
    for _ in range(8):
        loop.cycle()
        with loop.db.session() as s:
            tor = s.scalars(select(Switch).where(Switch.name == "tor-p1-1")).one()
            track = s.get(ProfileTrack, (tor.id, 3))
            assert track is not None
            probes.append(TrafficTracker.from_state(track.state).probe)
    end = {i: loop.state.fabric.kpis("tor-p1-1", i, 3)["objective"] for i in ports}
    diag = [p for p in probes if p and p.get("diagnostic")]
    assert diag, probes
    assert set(ports) <= set(diag[0]["port_features"])
    judged = [p for p in diag if "ruled_out" in p]
    assert judged and set(ports) <= set(judged[0].get("port_step_features") or
                                        judged[0]["port_features"])
    for i in ports:
        assert end[i] <= 1.05 * start[i], (start, end, probes[-1])


class _FailsOnce:
    """The real optimiser, except that a batch of several requests fails and so does the
    first request asked alone (a switch whose input the optimiser chokes on)."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.singles = inner, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def propose_batch(self, requests: list[Any]) -> list[Any]:
        if len(requests) > 1:
            raise ValueError("a bad request in the batch")
        self.singles += 1
        if self.singles == 1:
            raise ValueError("this switch's input is garbage")
        return list(self.inner.propose_batch(requests))


def test_a_request_the_optimiser_chokes_on_costs_only_its_own_proposal(
        loop_factory: Any) -> None:
    scenario = {"default": {"profile": "idle"}, "schedule": [
        {"at_s": 0, "match": {"role": "tor"}, "profile": "allreduce", "params": {"flows": 8}}]}
    loop = loop_factory(scenario, mode="propose")
    real = models()
    faulty = _FailsOnce(real.optimiser)
    loop.daemon._models = type("Models", (), {"classifier": real.classifier,
                                              "optimiser": faulty, "versions": {}})()
    report = loop.cycle()
    # the batch failed, every switch priority was asked alone, one of them failed
    assert faulty.singles >= 3, faulty.singles
    assert len(report.errors) == 1 and "garbage" in report.errors[0], report.errors
    failed = report.errors[0].split(":")[0]  # "switch/priority"
    with loop.db.session() as s:
        names = dict(s.execute(select(Switch.id, Switch.name)).tuples().all())
        stored = {f"{names[p.switch_id]}/{p.priority}" for p in s.scalars(select(Proposal))}
    assert failed not in stored and len(stored) >= 2, (failed, stored)


def test_a_proposal_covers_the_headroom_of_the_switchs_most_demanding_port() -> None:
    """The optimiser plans for the 100G, 3 m ports that carry the traffic; the switch also
    has an idle 400G uplink on 40 m of cable, and one set applies to every port of the
    priority. The stored proposal's headroom is raised to that port's formula (218,112 B:
    xoff 199,680 + xon 18,432), its ECN thresholds untouched -- before, the change service
    refused it ("below the headroom formula for 400G, 40 m") and the proposal was lost."""
    switch = cast(Any, SimpleNamespace(buffer_bytes=44_040_192))
    job = _Job(switch, 4, cast(Any, None), "allreduce", Waterline(1 << 20, 2 << 20, 0.05), 100,
               3.0, [], cast(Any, None), worst_speed_gbps=400, worst_cable_m=40.0)
    planned = Waterline(400_000, 1_600_000, 0.2, xoff_bytes=153_600, xon_bytes=18_432,
                        headroom_bytes=172_032, alpha=0.125)
    assert check_waterlines(planned, speed_gbps=400, buffer_bytes=44_040_192, cable_m=40.0)
    got = _for_every_port(planned, job)
    assert (got.headroom_bytes, got.xoff_bytes, got.xon_bytes) == (218_112, 199_680, 18_432)
    assert (got.kmin_bytes, got.kmax_bytes, got.pmax, got.alpha) == (400_000, 1_600_000, 0.2,
                                                                     0.125)
    assert not check_waterlines(got, speed_gbps=400, buffer_bytes=44_040_192, cable_m=40.0)
    assert _for_every_port(got, job) is got  # enough already: unchanged
    # more headroom than the formula asks is kept
    deep = replace(got, headroom_bytes=300_000, xoff_bytes=300_000 - 18_432)
    assert _for_every_port(deep, job) is deep
    # a switch whose traffic ports are its most demanding ones: nothing to raise
    same = replace(job, worst_speed_gbps=100, worst_cable_m=3.0)
    assert _for_every_port(planned, same) is planned


def test_no_proposal_for_a_switch_another_change_holds(loop_factory: Any) -> None:
    """While a change holds a switch's lock (an operator's change, or a tuner rollback the
    same cycle started), the daemon proposes nothing for it -- the proposal could not be
    applied until the lock goes ("switch ... is locked by change ..."); once released, it
    does."""
    scenario = allreduce_on_tor1()
    loop = loop_factory(scenario, mode="propose")
    with loop.db.session() as s:
        tor = s.scalars(select(Switch).where(Switch.name == "tor-p1-1")).one()
        change = ChangeSet(created_by="operator", status="applying", targets={}, intent={})
        s.add(change)
        s.flush()
        s.add(SwitchLock(switch_id=tor.id, change_id=change.id))
        s.commit()
        tor_id = tor.id
    for _ in range(2):
        loop.cycle()
    with loop.db.session() as s:
        assert not s.scalars(select(Proposal).where(Proposal.switch_id == tor_id)).all()
        s.execute(delete(SwitchLock))
        s.commit()
    loop.cycle()
    with loop.db.session() as s:
        assert s.scalars(select(Proposal).where(Proposal.switch_id == tor_id)).all()


def test_one_change_per_switch_a_cycle(loop_factory: Any) -> None:
    """Proposals for two priorities of one switch in the same cycle: the first becomes a
    change and a trial, the second stays pending (no apply meets the first's lock, and each
    trial is judged on its own change); another switch's proposal goes ahead."""
    scenario = {"default": {"profile": "idle"}, "schedule": [
        {"at_s": 0, "match": {"switch": "tor-p1-*"}, "profile": "allreduce",
         "params": {"flows": 8}}]}
    loop = loop_factory(scenario, mode="observe")
    loop.cycle()
    with loop.db.session() as s:
        ids = dict(s.execute(select(Switch.name, Switch.id)).tuples().all())
    first = _pending(loop, ids["tor-p1-1"], 3, {"kmin_bytes": 60_000})
    second = _pending(loop, ids["tor-p1-1"], 4, {"kmin_bytes": 70_000})
    other = _pending(loop, ids["tor-p1-2"], 4, {"kmin_bytes": 70_000})
    loop.daemon.set_mode("auto", "test")
    now_ms = int(loop.now * 1000)
    report = CycleReport(mode="auto")
    loop.daemon._classify(now_ms, report, loop.daemon._observed_waterlines())
    loop.daemon._apply([first, second, other], now_ms, report)
    for run in list(loop.changes._runs):
        loop.changes.wait(run, 60)
    assert not report.errors and report.applied == 2, report
    with loop.db.session() as s:
        status = {p.id: p.status for p in s.scalars(select(Proposal))}
        trials = s.scalars(select(TunerTrial)).all()
    assert status == {first: "applied", second: "pending", other: "applied"}
    assert sorted((t.switch_ids[0], t.priority) for t in trials) == sorted(
        [(ids["tor-p1-1"], 3), (ids["tor-p1-2"], 4)])
    assert loop.state.config["tor-p1-1"].waterlines[4].kmin_bytes != 70_000
    assert loop.state.config["tor-p1-2"].waterlines[4].kmin_bytes == 70_000


def test_no_proposal_in_the_cycle_that_rolls_a_switch_back(loop_factory: Any) -> None:
    """The cycle that starts a switch's rollback proposes nothing for that switch, at any
    priority, whether or not the rollback has released its lock by then: the same inputs
    give the same proposals, however fast the switch answers."""
    scenario = allreduce_on_tor1()
    loop = loop_factory(scenario, mode="observe")
    loop.cycle()
    tor_id, trial_id = _force(loop, {"kmin_bytes": 1_000, "kmax_bytes": 2_000, "pmax": 1.0})
    for _ in range(3):
        with loop.db.session() as s:
            before = {p.id for p in s.scalars(select(Proposal))}
        report = loop.cycle()
        if report.rolled_back:
            break
    assert report.rolled_back == 1, report
    assert loop.daemon._rolled_back_now == {tor_id}
    with loop.db.session() as s:
        trial = s.get(TunerTrial, trial_id)
        assert trial is not None and trial.status == "rolled_back"
        made = [(p.switch_id, p.priority) for p in s.scalars(select(Proposal))
                if p.id not in before]
    assert all(sid != tor_id for sid, _prio in made), made
    # the next cycle may tune it again (its other priority; priority 3's allreduce is held off)
    loop.cycle()
    assert loop.daemon._rolled_back_now == set()


def test_a_rollback_holds_off_the_same_traffic_only(loop_factory: Any) -> None:
    """After a rollback, the switch priority's traffic family is held off for ``holdoff_s``;
    another family there (the traffic changed: allreduce turned incast) is not."""
    scenario = allreduce_on_tor1()
    loop = loop_factory(scenario, mode="observe")
    loop.cycle()
    tor_id, trial_id = _force(loop, {"kmin_bytes": 1_000, "kmax_bytes": 2_000, "pmax": 1.0})
    with loop.db.session() as s:
        trial = s.get(TunerTrial, trial_id)
        assert trial is not None
        trial.status = "rolled_back"
        s.commit()
        now_ms = int(loop.now * 1000)
        held = loop.daemon._held_off(s, now_ms)
        assert held == {(tor_id, 3, ("allreduce",))}
        trial.profile = "hadoop"  # a Poisson mix: held for incast and websearch readings too
        s.commit()
        assert loop.daemon._held_off(s, now_ms) == {
            (tor_id, 3, ("incast", "websearch", "hadoop"))}
        later = now_ms + int(loop.daemon.options.holdoff_s * 1000) + 70_000
        assert loop.daemon._held_off(s, later) == set()


def test_a_window_is_read_under_the_waterlines_it_ran_with(loop_factory: Any) -> None:
    """A port's features are computed under the waterlines observed at the cycle's start,
    not under those a rollback started in the same cycle writes meanwhile."""
    scenario = allreduce_on_tor1()
    loop = loop_factory(scenario, mode="observe")
    loop.cycle()
    loop.polls(6)
    now_ms = int(loop.now * 1000)
    in_force = loop.daemon._observed_waterlines()
    first = loop.daemon._classify(now_ms, CycleReport(mode="observe"), in_force)
    with loop.db.session() as s:  # what a rollback does to the observed set
        tor = s.scalars(select(Switch).where(Switch.name == "tor-p1-1")).one()
        qos = dict(tor.observed_qos or {})
        qos["waterlines"] = {p: {**w, "kmin_bytes": 5_000, "kmax_bytes": 9_000}
                             for p, w in qos["waterlines"].items()}
        tor.observed_qos = qos
        s.commit()
    again = loop.daemon._classify(now_ms, CycleReport(mode="observe"), in_force)
    moved = loop.daemon._classify(now_ms, CycleReport(mode="observe"),
                                  loop.daemon._observed_waterlines())
    assert len(first) == len(again) == len(moved) > 0
    for a, b in zip(first, again, strict=True):
        assert np.array_equal(a.features, b.features)
    assert any(not np.array_equal(a.features, c.features)
               for a, c in zip(first, moved, strict=True) if c.switch_id == tor.id)


def test_a_port_that_lost_throughput_rolls_the_change_back(loop_factory: Any) -> None:
    """The verdict also judges each changed port on its own utilisation: a harmless change
    whose record says one port ran at 1.5 x what it runs at now is rolled back, naming the
    port, while the ports' mean alone would keep it."""
    scenario = allreduce_on_tor1()
    loop = loop_factory(scenario, mode="observe")
    loop.cycle()
    current = loop.state.config["tor-p1-1"].waterlines[3]
    _tor_id, trial_id = _force(loop, {"kmin_bytes": current.kmin_bytes + 1_000})
    with loop.db.session() as s:
        trial = s.get(TunerTrial, trial_id)
        assert trial is not None
        ports = dict(trial.kpis_before["ports_utilisation"])
        # the busy ports of the switch priority (the forced proposal names four of them)
        assert {f"tor-p1-1/{i}" for i in TOR_PORTS} <= set(ports)
        ports["tor-p1-1/Ethernet4"] *= 1.5
        trial.kpis_before = {**trial.kpis_before, "ports_utilisation": ports}
        s.commit()
    trial = _rolled_back(loop, trial_id)
    assert trial.reason.startswith("utilisation of tor-p1-1/Ethernet4 fell from"), trial.reason
    after = trial.kpis_after or {}
    assert sorted(after["ports_utilisation"]) == sorted(f"tor-p1-1/{i}" for i in TOR_PORTS)
    assert regression(trial.kpis_before, after, Tolerance()) == ""


def _diagnostic_pending(loop: Loop) -> tuple[int, int]:
    """One cycle in ``propose`` on the mixed-family scenario: a diagnostic's step for
    tor-p1-1 (the first priority's, when both take one), pending (its id), and the
    switch's id."""
    loop.cycle()
    with loop.db.session() as s:
        tor = s.scalars(select(Switch).where(Switch.name == "tor-p1-1")).one()
        rows = s.scalars(select(Proposal).where(Proposal.switch_id == tor.id)).all()
        step = [p for p in rows if p.explanation["method"] == "probe"
                and "diagnostic:" in p.explanation["reason"]]
        step.sort(key=lambda p: p.priority)
        assert step and step[0].status == "pending", [
            (p.priority, p.explanation["reason"]) for p in rows]
        track = s.get(ProfileTrack, (tor.id, step[0].priority))
        assert track is not None
        tracker = TrafficTracker.from_state(track.state)
        assert tracker.pending_proposal == step[0].id
        assert tracker.probe is not None and tracker.probe.get("diagnostic")
        return step[0].id, tor.id


def _step_and_track(loop: Loop, step_id: int, tor_id: int) -> tuple[str, TrafficTracker]:
    """The step proposal's status and its switch priority's tracker as stored."""
    with loop.db.session() as s:
        step = s.get(Proposal, step_id)
        assert step is not None
        track = s.get(ProfileTrack, (tor_id, step.priority))
        assert track is not None
        return step.status, TrafficTracker.from_state(track.state)


def test_a_diagnostic_step_never_applied_is_not_waited_for(loop_factory: Any) -> None:
    """The deep-to-shallow diagnostic proposes its step; nobody applies it (``propose``
    mode, or a second priority's proposal waiting behind the first's change). The next
    cycle supersedes it, and the switch priority's record is what it was before: not a
    step the diagnostic would wait for, for ever, never judging nor running again."""
    loop = loop_factory({"default": {"profile": "idle"}, "schedule": MIXED_FAMILY},
                        mode="propose")
    step_id, tor_id = _diagnostic_pending(loop)
    loop.cycle()
    status, tracker = _step_and_track(loop, step_id, tor_id)
    assert status == "superseded"
    # restored to the record before the step (none), or a fresh record awaiting a fresh
    # proposal -- not the step's record standing as if the step had been taken
    assert tracker.probe is None or tracker.pending_proposal not in (None, step_id), \
        tracker.probe


def test_an_approved_diagnostic_step_is_judged(loop_factory: Any) -> None:
    """The same step approved by an operator before the next cycle: its record stands and
    the next window brings the diagnostic's verdict (the record judged)."""
    loop = loop_factory({"default": {"profile": "idle"}, "schedule": MIXED_FAMILY},
                        mode="propose")
    step_id, tor_id = _diagnostic_pending(loop)
    loop.daemon.apply_proposals([step_id], actor="operator", source="api")
    for run in list(loop.changes._runs):
        loop.changes.wait(run, 60)
    loop.cycle()
    status, tracker = _step_and_track(loop, step_id, tor_id)
    assert status == "applied"
    assert tracker.probe is not None and tracker.probe.get("diagnostic")
    assert tracker.probe.get("verdict") in ("start", "step", "target"), tracker.probe


def test_a_change_is_judged_at_the_speed_of_the_slowest_port_it_sets() -> None:
    """``_slowest_speed``: the slowest of the proposal's own interfaces on its switch; the
    recorded speed when none of them is found there; None when there is neither."""
    switch = Switch(id=7, name="tor", interfaces=[
        Interface(name="Ethernet0", speed_gbps=100), Interface(name="Ethernet32", speed_gbps=400),
        Interface(name="Ethernet36", speed_gbps=25)])  # not among the proposal's ports
    proposal = Proposal(switch_id=7, interfaces=["Ethernet0", "Ethernet32"],
                        explanation={"speed_gbps": 400})
    assert _slowest_speed(proposal, {7: switch}) == 100.0
    assert _slowest_speed(Proposal(switch_id=7, interfaces=["Ethernet99"],
                                   explanation={"speed_gbps": 400}), {7: switch}) == 400.0
    assert _slowest_speed(Proposal(switch_id=8, interfaces=[], explanation={}),
                          {7: switch}) is None


def test_a_change_the_switch_refuses_is_held_off_not_retried(loop_factory: Any) -> None:
    """A switch that rejects the change's lines: the trial fails (counted, reported in the
    cycle's errors), the switch is restored, and its priority is held off like a rollback --
    not a new failing change every cycle (nor a failing canary for healthy switches)."""
    scenario = allreduce_on_tor1()
    loop = loop_factory(scenario, mode="observe")
    loop.cycle()
    before = loop.state.config["tor-p1-1"].waterlines[3]
    loop.state.faults["tor-p1-1"] = "reject"
    with loop.db.session() as s:
        tor_id = s.scalars(select(Switch.id).where(Switch.name == "tor-p1-1")).one()
    proposal_id = _pending(loop, tor_id, 3, {"kmin_bytes": 400_000, "kmax_bytes": 1_600_000,
                                             "pmax": 0.2}, 100)
    loop.daemon.set_mode("auto", "test")
    now_ms = int(loop.now * 1000)
    report = CycleReport(mode="auto")
    loop.daemon._classify(now_ms, report, loop.daemon._observed_waterlines())
    loop.daemon._apply([proposal_id], now_ms, report)
    for run in list(loop.changes._runs):
        loop.changes.wait(run, 60)
    report = loop.cycle()

    def tor_trials() -> list[TunerTrial]:
        with loop.db.session() as s:
            return [t for t in s.scalars(select(TunerTrial).order_by(TunerTrial.id))
                    if tor_id in t.switch_ids and t.priority == 3]

    with loop.db.session() as s:
        [trial] = tor_trials()
        assert trial.status == "failed", (trial.status, trial.reason)
        assert any("failed" in e for e in report.errors), report.errors
        held = loop.daemon._held_off(s, int(loop.now * 1000))
    assert (tor_id, 3, ("allreduce",)) in held
    assert loop.state.config["tor-p1-1"].waterlines[3] == before
    loop.state.faults.pop("tor-p1-1")
    loop.cycle()
    assert len(tor_trials()) == 1  # held off: no new change for it


def test_a_short_verification_window_still_has_telemetry(loop_factory: Any) -> None:
    """``verify_s`` under the settling time: the settling shrinks to half the window, so the
    verdict has telemetry to judge by (it rolled every change back for "no telemetry")."""
    scenario = allreduce_on_tor1()
    loop = loop_factory(scenario, mode="observe")
    loop.daemon.options = replace(loop.daemon.options, verify_s=10.0, settle_s=15.0)
    loop.cycle()
    _tor_id, trial_id = _force(loop, {"kmin_bytes": 400_000, "kmax_bytes": 1_600_000,
                                      "pmax": 0.2})
    loop.cycle(polls=1)  # applied: verification starts
    loop.cycle(polls=1)  # 10 s later: due, judged on the polls after 5 s (not 15 s)
    with loop.db.session() as s:
        trial = s.get(TunerTrial, trial_id)
        assert trial is not None and trial.status in ("kept", "rolled_back"), trial.status
        assert "no telemetry" not in (trial.reason or ""), trial.reason


def test_a_bad_stored_freeze_window_freezes_and_never_kills_the_loop(
        loop_factory: Any) -> None:
    from app.db.models import TunerState

    loop = loop_factory(allreduce_on_tor1(), mode="auto")
    loop.cycle()
    with loop.db.session() as s:
        state = s.get(TunerState, 1)
        assert state is not None
        state.freeze_windows = [{"start": "8:00", "end": "18:00"}]  # as edited by hand
        s.commit()
    report = loop.cycle()
    assert report.frozen and report.proposals == 0
    assert any("freeze_windows[0] invalid" in e for e in report.errors), report.errors
    with loop.db.session() as s:
        state = s.get(TunerState, 1)
        assert state is not None and "freeze_windows[0]" in state.last_error


def test_one_daemon_process_runs_the_cycles(loop_factory: Any) -> None:
    """A second daemon process over the same database stands by while the first holds the
    lease, and takes over once it is released or has run out."""
    loop = loop_factory(allreduce_on_tor1(), mode="observe")
    assert not loop.cycle().errors
    other = TunerDaemon(loop.db.factory, loop.changes, models_loader=models,
                        clock=loop.daemon.clock, options=loop.daemon.options)
    other.owner = "elsewhere:4242"
    report = other.cycle()
    assert report.classified == 0 and report.errors[0].startswith(
        f"standby: the tuner daemon {loop.daemon.owner} runs the cycles"), report.errors
    loop.daemon.release_lease()
    assert other.cycle().classified > 0
    report = loop.cycle()  # now the first one stands by ...
    assert report.errors and report.errors[0].startswith("standby"), report.errors
    loop.polls(int(other.lease_s() / POLL_S) + 1)  # ... until the silent holder's lease ran out
    assert loop.daemon.cycle().classified > 0


def test_a_change_the_switch_lost_is_not_kept(loop_factory: Any) -> None:
    """The switch reloads its old config while the change is under verification (a crash of
    the controller rebuilt the virtual fabric; a real switch rebooted): the QoS refresh reads
    the old waterlines back, and the trial fails instead of being kept on telemetry of a
    config the switch no longer runs."""
    from app.drivers.mock import _push

    loop = loop_factory(allreduce_on_tor1(), mode="observe")
    loop.cycle()
    before = loop.state.config["tor-p1-1"]
    _tor_id, trial_id = _force(loop, {"kmin_bytes": 400_000, "kmax_bytes": 1_600_000,
                                      "pmax": 0.2})
    loop.cycle(polls=1)  # applied: under verification
    with loop.state.lock:  # reverted behind the controller's back
        loop.state.config["tor-p1-1"] = before
        _push(loop.state, "tor-p1-1", before)
    for _ in range(3):
        loop.cycle()
    with loop.db.session() as s:
        trial = s.get(TunerTrial, trial_id)
        assert trial is not None and trial.status == "failed", (trial.status, trial.reason)
        assert "tor-p1-1 no longer carries the change at priority 3" in trial.reason


def test_off_still_judges_a_change_under_verification(loop_factory: Any) -> None:
    loop = loop_factory(allreduce_on_tor1(), mode="observe")
    loop.cycle()
    _tor_id, trial_id = _force(loop, {"kmin_bytes": 1_000, "kmax_bytes": 2_000, "pmax": 1.0})
    loop.daemon.set_mode("off", "test")
    trial = _rolled_back(loop, trial_id)  # the bad change is rolled back all the same
    assert "utilisation fell" in trial.reason
    with loop.db.session() as s:
        assert s.scalar(select(Proposal.id).where(Proposal.status == "pending")) is None


def test_a_switch_that_rounds_still_carries_the_change(sqlite_db: Database) -> None:
    """A Comware switch reports buffer thresholds in whole cells (12,345 B reads back as
    12,288): the change is judged against what it set as the switch shows it (the
    "desired" rows: its expected read-back), not the unrounded request -- else every change
    there would read as gone. A real difference still does."""
    from app.daemon import _change_gone
    from app.db.models import ChangeResult, QosWaterline
    from app.drivers.models import QosConfig, Waterlines

    asked = {"kmin_bytes": 12_345, "kmax_bytes": 456_789, "pmax": 0.2, "xoff_bytes": 150_001,
             "xon_bytes": 18_432, "headroom_bytes": 168_433, "alpha": 0.125}
    rounded = {**asked, "kmin_bytes": 12_288, "kmax_bytes": 456_704, "xoff_bytes": 150_016,
               "headroom_bytes": 168_448}

    def config(w: dict[str, Any]) -> dict[str, Any]:
        return QosConfig(pfc_priorities=(3,), ecn_queues=(3,),
                         waterlines={3: Waterlines(**w)}).model_dump(mode="json")

    with sqlite_db.session() as s:
        sw = Switch(name="hp-1", role="tor", mgmt_host="10.0.0.1", driver="comware",
                    buffer_bytes=32 << 20, observed_qos=config(rounded))
        s.add(sw)
        s.flush()
        change = ChangeSet(created_by="tuner", status="applied", targets={}, intent={})
        s.add(change)
        s.flush()
        s.add(ChangeResult(change_id=change.id, switch_id=sw.id, state="verified",
                           after=config(asked)))
        s.add(QosWaterline(switch_id=sw.id, interface_name="", priority=3, kind="desired",
                           **rounded))
        s.commit()
        assert _change_gone(s, change, 3) == ""
        sw.observed_qos = config({**rounded, "kmin_bytes": 1 << 20, "kmax_bytes": 2 << 20})
        s.commit()
        assert _change_gone(s, change, 3).startswith(
            "hp-1 no longer carries the change at priority 3 (reads back 1048576 / 2097152")


def test_an_approval_that_died_half_way_is_released(loop_factory: Any) -> None:
    """The process stopped between claiming a proposal and starting its change: after
    ``CLAIM_TIMEOUT_S`` the proposal is pending again (not stuck, unapprovable, forever);
    approving proposals that do not all exist is a 404 naming them."""
    from datetime import UTC, datetime, timedelta

    from app.changes.service import ChangeError
    from app.daemon import CLAIM_TIMEOUT_S

    loop = loop_factory(allreduce_on_tor1(), mode="observe")
    with loop.db.session() as s:
        tor_id = s.scalars(select(Switch.id).where(Switch.name == "tor-p1-1")).one()
    stuck = _pending(loop, tor_id, 3, {"kmin_bytes": 400_000})
    fresh = _pending(loop, tor_id, 4, {"kmin_bytes": 400_000})
    now = datetime.now(UTC)
    with loop.db.session() as s:
        for pid, age_s in ((stuck, CLAIM_TIMEOUT_S + 60), (fresh, 5)):
            row = s.get(Proposal, pid)
            assert row is not None
            row.status, row.decided_by = "applying", "ops"
            row.decided_at = now - timedelta(seconds=age_s)
        s.commit()
    # applied, but its change never started; and one whose change ran
    waiting, ran = (_pending(loop, tor_id, 3, {"kmin_bytes": 300_000}) for _ in range(2))
    with loop.db.session() as s:
        for pid, status in ((waiting, "approved"), (ran, "applied")):
            change = ChangeSet(created_by="ops", status=status, targets={}, intent={})
            s.add(change)
            s.flush()
            row = s.get(Proposal, pid)
            assert row is not None
            row.status, row.change_id, row.decided_by = "applied", change.id, "ops"
            row.decided_at = now - timedelta(seconds=CLAIM_TIMEOUT_S + 60)
        s.commit()
    loop.daemon._release_stale_claims(now)
    with loop.db.session() as s:
        assert s.get(Proposal, stuck).status == "pending"  # type: ignore[union-attr]
        assert s.get(Proposal, fresh).status == "applying"  # type: ignore[union-attr]
        released = s.get(Proposal, waiting)
        assert released is not None and (released.status, released.change_id) == (
            "pending", None)
        kept = s.get(Proposal, ran)
        assert kept is not None and kept.status == "applied"
        assert s.get(ChangeSet, kept.change_id).status == "applied"  # type: ignore[union-attr]
        assert sorted(c.status for c in s.scalars(select(ChangeSet))) == ["applied",
                                                                          "rejected"]
    with pytest.raises(ChangeError) as exc:
        loop.daemon.apply_proposals([stuck, 999_999], actor="ops", source="test")
    assert exc.value.status == 404 and "999999" in str(exc.value)
