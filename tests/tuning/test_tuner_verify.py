"""The verification rule the daemon and the closed-loop evaluation share
(``tuning.verify``), and the evaluation's loop rolling back a forced bad proposal."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tuning import evaluate
from tuning.evaluate import (
    HOLDOFF_CYCLES,
    EvalSettings,
    TunedRun,
    closed_loop,
    start_waterlines,
)
from tuning.guard import Waterline
from tuning.models import default_models
from tuning.optimiser import Proposal, WaterlineOptimiser, way_back
from tuning.simulation import Scenario
from tuning.space import (
    clip_coords,
    complete,
    deeper_than_references,
    reference_waterlines,
    same_waterlines,
    to_coords,
)
from tuning.verify import (
    Tolerance,
    paused_link_frames_per_s,
    port_regression,
    regression,
    verdict,
)

BUSY = {"utilisation": 0.90, "rx_pause_per_s": 0.0, "tx_pause_per_s": 0.0, "drops_per_s": 0.0}


@pytest.mark.parametrize("after, why", [
    ({"tx_pause_per_s": 768.6}, "tx_pause_per_s rose from 0.0 to 768.6"),
    ({"rx_pause_per_s": 5.5}, "rx_pause_per_s rose from 0.0 to 5.5"),
    ({"drops_per_s": 0.2}, "drops rose from 0.0/s to 0.2/s"),
    ({"utilisation": 0.80}, "utilisation fell from 0.900 to 0.800"),
    ({"tx_pause_per_s": 4.9}, ""),        # under the 5 frames/s floor
    ({"utilisation": 0.82}, ""),          # within the 10 % tolerance
    ({"utilisation": 0.95}, ""),
])
def test_regression_rule(after: dict[str, float], why: str) -> None:
    assert regression(BUSY, {**BUSY, **after}, Tolerance()) == why


def test_pauses_that_were_there_must_grow_by_a_quarter() -> None:
    before = {**BUSY, "tx_pause_per_s": 100.0}
    assert regression(before, {**before, "tx_pause_per_s": 124.0}, Tolerance()) == ""
    assert regression(before, {**before, "tx_pause_per_s": 126.0}, Tolerance()) != ""
    # an idle port's utilisation falling is no regression
    idle = {**BUSY, "utilisation": 0.04}
    assert regression(idle, {**idle, "utilisation": 0.0}, Tolerance()) == ""


# allreduce, 43 elephants at 200G, SONiC default (the closed loop's window, measured)
ELEPHANTS = {**BUSY, "utilisation": 0.807, "speed_gbps": 200.0}


@pytest.mark.parametrize("after, why", [
    # 3.2 MB / 8.4 MB: the pauses buy 20 % more throughput (objective 3.12 -> 1.16)
    ({"utilisation": 0.968, "tx_pause_per_s": 3894.1}, ""),
    ({"utilisation": 0.888, "tx_pause_per_s": 3894.1}, ""),  # just over +10 %
    ({"utilisation": 0.887, "tx_pause_per_s": 3894.1}, "tx_pause_per_s rose from 0.0 to 3894.1"),
    # up to one paused 200G link's worth of pause frames (11,921/s), not more
    ({"utilisation": 0.968, "tx_pause_per_s": 11_900.0}, ""),
    ({"utilisation": 0.968, "tx_pause_per_s": 11_950.0},
     "tx_pause_per_s rose from 0.0 to 11950.0"),
    # a dynamic threshold of 1/64 under 4 MB / 8 MB: as much throughput, a storm of pauses
    ({"utilisation": 0.974, "tx_pause_per_s": 65188.8},
     "tx_pause_per_s rose from 0.0 to 65188.8"),
    ({"utilisation": 0.807, "rx_pause_per_s": 40.0}, "rx_pause_per_s rose from 0.0 to 40.0"),
    # bought pauses never excuse drops
    ({"utilisation": 0.968, "tx_pause_per_s": 3894.1, "drops_per_s": 0.5},
     "drops rose from 0.0/s to 0.5/s"),
    # no line rate in the window: no pause is excused
    ({"utilisation": 0.968, "tx_pause_per_s": 3894.1, "speed_gbps": 0.0},
     "tx_pause_per_s rose from 0.0 to 3894.1"),
])
def test_pauses_are_a_regression_unless_they_buy_throughput(after: dict[str, float],
                                                            why: str) -> None:
    assert regression(ELEPHANTS, {**ELEPHANTS, **after}, Tolerance()) == why


def test_a_paused_link_gets_a_refresh_every_half_of_the_longest_pause() -> None:
    # 65,535 quanta of 512 bit times at 100G: 335.5 us; a refresh every 167.8 us
    assert paused_link_frames_per_s(100) == pytest.approx(1 / 167.77e-6, rel=1e-4)
    assert paused_link_frames_per_s(400) == pytest.approx(4 * paused_link_frames_per_s(100))


def test_bought_pauses_do_not_excuse_a_port_that_lost() -> None:
    """The mean gains more than 10 % with the pauses, one port of the switch priority loses
    20 %: the per-port rule still names it."""
    before = {"sw/Ethernet0": 0.75, "sw/Ethernet4": 0.75, "sw/Ethernet8": 0.75}
    after = {"sw/Ethernet0": 0.60, "sw/Ethernet4": 0.99, "sw/Ethernet8": 0.99}
    mean_before = {**BUSY, "utilisation": 0.75, "ports_utilisation": before}
    mean_after = {**BUSY, "utilisation": float(np.mean(list(after.values()))),
                  "tx_pause_per_s": 900.0, "speed_gbps": 100.0, "ports_utilisation": after}
    assert verdict(mean_before, mean_after, Tolerance()) == (
        "utilisation of sw/Ethernet0 fell from 0.750 to 0.600")


@settings(max_examples=300, deadline=None)
@given(st.floats(0.06, 0.95), st.floats(-0.5, 0.5), st.floats(0.0, 1e5), st.floats(0.0, 1e5),
       st.sampled_from([25.0, 100.0, 200.0, 400.0]))
def test_a_pause_rise_is_excused_exactly_when_it_bought_throughput_under_the_bound(
        ub: float, change: float, pause_before: float, pause_after: float,
        speed_gbps: float) -> None:
    tol = Tolerance()
    before = {**BUSY, "utilisation": ub, "tx_pause_per_s": pause_before}
    ua = ub * (1 + change)
    why = regression(before, {**before, "utilisation": ua, "tx_pause_per_s": pause_after,
                              "speed_gbps": speed_gbps}, tol)
    rose = pause_after > pause_before * (1 + tol.pause_increase) and \
        pause_after - pause_before > tol.pause_floor_per_s
    bought = ua >= ub * (1 + tol.pause_utilisation_gain) and \
        pause_after <= tol.bought_pause_links * paused_link_frames_per_s(speed_gbps)
    if rose and not bought:
        assert why.startswith("tx_pause_per_s rose")
    elif ua < ub * (1 - tol.utilisation_drop):
        assert why.startswith("utilisation fell")
    else:
        assert why == ""


def test_one_port_that_lost_throughput_is_a_regression_the_mean_hides() -> None:
    """Three ports gain, one loses 20 %: the mean rises, the per-port rule names the port."""
    before = {"tor-1/Ethernet0": 0.60, "tor-1/Ethernet4": 0.30, "tor-1/Ethernet8": 0.30,
              "tor-1/Ethernet12": 0.30}
    after = {"tor-1/Ethernet0": 0.48, "tor-1/Ethernet4": 0.36, "tor-1/Ethernet8": 0.36,
             "tor-1/Ethernet12": 0.36}
    assert np.mean(list(after.values())) > np.mean(list(before.values()))
    assert regression({**BUSY, "utilisation": 0.375}, {**BUSY, "utilisation": 0.39},
                      Tolerance()) == ""
    assert port_regression(before, after, Tolerance()) == (
        "utilisation of tor-1/Ethernet0 fell from 0.600 to 0.480")
    # ``verdict``: the mean rules first, then each port
    mean_before = {**BUSY, "utilisation": 0.375, "ports_utilisation": before}
    mean_after = {**BUSY, "utilisation": 0.39, "ports_utilisation": after}
    assert verdict(mean_before, mean_after, Tolerance()) == (
        "utilisation of tor-1/Ethernet0 fell from 0.600 to 0.480")
    assert verdict(mean_before, {**mean_after, "tx_pause_per_s": 40.0}, Tolerance()) == (
        "tx_pause_per_s rose from 0.0 to 40.0")
    assert verdict(BUSY, {**BUSY, "utilisation": 0.85}, Tolerance()) == ""  # no port readings


@pytest.mark.parametrize("ub, ua, why", [
    (0.60, 0.53, "utilisation of sw/Ethernet0 fell from 0.600 to 0.530"),  # -11.7 %
    (0.60, 0.55, ""),                  # within 10 %
    (0.15, 0.131, ""),                 # -12.7 %, but 1.9 % of line rate: noise
    (0.15, 0.12, "utilisation of sw/Ethernet0 fell from 0.150 to 0.120"),
    (0.04, 0.0, ""),                   # an idle port
    (0.60, float("nan"), ""),          # no reading after: not judged
])
def test_port_regression_rule(ub: float, ua: float, why: str) -> None:
    assert port_regression({"sw/Ethernet0": ub}, {"sw/Ethernet0": ua}, Tolerance()) == why
    # a port missing from either window is not judged
    assert port_regression({"sw/Ethernet0": ub}, {}, Tolerance()) == ""
    assert port_regression({}, {"sw/Ethernet0": ua}, Tolerance()) == ""


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(min_size=1, max_size=12),
                       st.floats(0.0, 1.0), max_size=16),
       st.floats(0.0, 0.0999))
def test_a_port_within_the_tolerance_is_never_a_regression(
        before: dict[str, float], loss: float) -> None:
    """No port losing less than 10 % of its utilisation (or gaining) is ever named; the port
    named, when one is, lost more than 10 % and more than the floor."""
    tol = Tolerance()
    assert port_regression(before, {k: v * (1 - loss) for k, v in before.items()}, tol) == ""
    assert port_regression(before, {k: v * 1.5 for k, v in before.items()}, tol) == ""
    why = port_regression(before, {k: v * 0.5 for k, v in before.items()}, tol)
    busy = [k for k, v in before.items() if v > 0.05 and 0.5 * v > tol.port_utilisation_floor]
    assert (why != "") == bool(busy)
    if why:
        assert why.startswith(f"utilisation of {sorted(busy)[0]} fell")


DEEP_BEFORE = {**BUSY, "utilisation": 0.863, "queue_mean_bytes": 389_000.0}


@pytest.mark.parametrize("after, deeper, why", [
    # the websearch 400G mix at load 0.9 taken deep (measured): 11 x the queue, no throughput
    ({"queue_mean_bytes": 4_322_000.0}, True,
     "thresholds deeper than every static reference: the mean queue rose from 389 KB to "
     "4322 KB with utilisation 0.863 -> 0.863 (needs +2 %)"),
    ({"queue_mean_bytes": 4_322_000.0}, False, ""),  # back to a reference: not this rule
    # allreduce taken deep (measured): the queue buys throughput
    ({"queue_mean_bytes": 4_322_000.0, "utilisation": 0.93}, True, ""),
    ({"queue_mean_bytes": 4_322_000.0, "utilisation": 0.881}, True, ""),  # just over +2 %
    ({"queue_mean_bytes": 4_322_000.0, "utilisation": 0.87}, True, "thresholds deeper than "
     "every static reference: the mean queue rose from 389 KB to 4322 KB with utilisation "
     "0.863 -> 0.870 (needs +2 %)"),
    ({"queue_mean_bytes": 770_000.0}, True, ""),     # under twice the queue
    ({"queue_mean_bytes": 790_000.0}, True, "thresholds deeper than every static reference: "
     "the mean queue rose from 389 KB to 790 KB with utilisation 0.863 -> 0.863 (needs +2 %)"),
])
def test_a_deeper_ramp_must_buy_its_queue_in_throughput(after: dict[str, float], deeper: bool,
                                                        why: str) -> None:
    assert regression(DEEP_BEFORE, {**DEEP_BEFORE, **after}, Tolerance(),
                      deeper=deeper) == why


def test_a_small_queue_doubling_is_not_a_regression() -> None:
    """A queue of a few KB doubling is noise, not latency: the 64 KiB floor."""
    before = {**DEEP_BEFORE, "queue_mean_bytes": 10_000.0}
    assert regression(before, {**before, "queue_mean_bytes": 60_000.0}, Tolerance(),
                      deeper=True) == ""
    assert regression(before, {**before, "queue_mean_bytes": 80_000.0}, Tolerance(),
                      deeper=True) != ""


@pytest.mark.parametrize("speed_gbps", [100, 200, 400])
def test_deeper_than_references(speed_gbps: int) -> None:
    refs = reference_waterlines(speed_gbps)
    sonic, vendor = refs["sonic_default"], refs["vendor"]
    deep = Waterline(kmin_bytes=4 << 20, kmax_bytes=16 << 20, pmax=0.05)
    assert deeper_than_references(sonic, deep, speed_gbps)
    assert deeper_than_references(vendor, deep, speed_gbps)
    assert not deeper_than_references(deep, sonic, speed_gbps)      # shallower
    assert not deeper_than_references(deep, replace(deep, pmax=0.01), speed_gbps)  # not deeper
    for ref in refs.values():  # no reference is beyond the references
        assert not deeper_than_references(vendor, ref, speed_gbps)
    # within device rounding of the deepest reference is not beyond it
    deepest = max(refs.values(), key=lambda w: w.kmin_bytes * w.kmax_bytes)
    assert not deeper_than_references(vendor, replace(
        deepest, kmin_bytes=int(deepest.kmin_bytes * 1.01)), speed_gbps)
    assert deeper_than_references(vendor, replace(
        deepest, kmin_bytes=int(deepest.kmin_bytes * 1.1)), speed_gbps)


class _Scripted:
    """The real optimiser, each proposal replaced by ``script[call]`` (made from the real
    one) where the script has one; otherwise the real proposal, or a hold (``hold_rest``)."""

    def __init__(self, inner: WaterlineOptimiser,
                 script: dict[int, Callable[[Proposal], Proposal]], *,
                 hold_rest: bool = False) -> None:
        self.inner, self.script, self.hold_rest, self.calls = inner, script, hold_rest, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def propose(self, *args: Any, **kwargs: Any) -> Proposal:
        self.calls += 1
        p = self.inner.propose(*args, **kwargs)
        make = self.script.get(self.calls)
        if make is not None:
            return make(p)
        if self.hold_rest:
            return replace(p, waterlines=args[2], method="hold", probe=None, way_back=False)
        return p


def _forced_run(cycles: int, sc: Scenario | None = None, bad: Waterline | None = None
                ) -> tuple[Scenario, Waterline, TunedRun]:
    """A scenario (allreduce 100G) under the closed loop whose first proposal is forced to a
    bad set (ECN deep and lax, a dynamic threshold of 1/64: the queue runs into PFC)."""
    models = default_models()
    sc = sc or Scenario.make("allreduce", 100, {"flows": 8}, seed=3)
    bad = complete(bad or Waterline(kmin_bytes=4_000_000, kmax_bytes=8_000_000, pmax=0.01,
                                    alpha=1 / 64), sc.ctx)
    forced = bad
    opt = _Scripted(WaterlineOptimiser.from_bytes(models.optimiser.to_bytes()),
                    {1: lambda p: replace(p, waterlines=forced, method="model", reason="forced")})
    run = closed_loop(sc, models.classifier, opt,  # type: ignore[arg-type]
                      settings=EvalSettings(), cycles=cycles)
    return sc, bad, run


def test_the_evaluation_loop_rolls_a_bad_change_back() -> None:
    """A forced bad set (ECN deep and lax, a dynamic threshold of 1/64: the queue runs into
    PFC) makes the switch send pause frames where there were none; the window after it rolls
    it back to the start, the switch is held, and the set is not proposed again."""
    sc, bad, run = _forced_run(HOLDOFF_CYCLES + 3)
    first, second = run.records[0], run.records[1]
    assert first.applied and same_waterlines(first.waterlines, bad)
    assert second.method == "rollback" and second.applied
    assert "tx_pause_per_s rose from 0.0" in second.reason
    assert same_waterlines(second.waterlines, start_waterlines(sc))
    held = run.records[2:2 + HOLDOFF_CYCLES]
    assert [r.method for r in held] == ["hold"] * HOLDOFF_CYCLES
    assert all(same_waterlines(r.waterlines, start_waterlines(sc)) for r in held)
    assert not any(same_waterlines(w, bad) for w in run.applied[2:])


def test_a_change_in_the_last_cycle_is_verified_on_one_more_window() -> None:
    sc, _bad, run = _forced_run(1)
    assert [(r.cycle, r.method) for r in run.records] == [(1, "model"), (2, "rollback")]
    assert same_waterlines(run.final, start_waterlines(sc)) and run.cycles == 2


def test_a_deep_change_that_buys_no_throughput_is_rolled_back() -> None:
    """The websearch mix at load 0.9 on 400G, taken to the deep thresholds the allreduce
    landscape once picked for it (the telemetry read it as allreduce): no drops, no pause
    frames, no utilisation lost -- but a queue ten times as long that buys nothing, which
    its mice pay for (1.13 x the start's objective, measured). Rolled back."""
    sc = Scenario.make("websearch", 400, {"load": 0.9}, seed=55)
    deep = Waterline(kmin_bytes=2_100_000, kmax_bytes=16_800_000, pmax=0.025)
    _sc, _bad, run = _forced_run(1, sc, deep)
    assert [(r.cycle, r.method) for r in run.records] == [(1, "model"), (2, "rollback")]
    assert "deeper than every static reference" in run.records[1].reason
    assert "tx_pause" not in run.records[1].reason
    assert same_waterlines(run.final, start_waterlines(sc))


def _coords(w: Waterline, sc: Scenario) -> list[float]:
    return [float(v) for v in clip_coords(to_coords(complete(w, sc.ctx), sc.ctx), sc.ctx)]


def test_way_back_is_a_return_to_where_the_experiment_left_from() -> None:
    sc = Scenario.make("incast", 200, {"incast_degree": 86, "load": 0.7}, seed=1)
    deep = complete(Waterline(3_200_000, 8_388_608, 0.05), sc.ctx)
    probed = complete(Waterline(200_000, 1_000_000, 0.2), sc.ctx)
    x_deep, x_probed = np.array(_coords(deep, sc)), np.array(_coords(probed, sc))
    rec = {"from": list(x_deep), "to": list(x_probed), "for": ["hadoop"], "against": ["incast"]}
    back = Proposal(deep, "model", 1.0, 0.0, 0.0, {}, {}, "back", {**rec, "ruled_out": ["hadoop"]})
    assert way_back(back, x_probed, sc.ctx)
    # the probe itself, a hold, a move elsewhere, no record: not a way back
    assert not way_back(replace(back, waterlines=probed, method="probe", probe=rec), x_deep,
                        sc.ctx)
    assert not way_back(replace(back, method="hold"), x_probed, sc.ctx)
    elsewhere = complete(Waterline(1 << 20, 2 << 20, 0.05), sc.ctx)
    assert not way_back(replace(back, waterlines=elsewhere), x_probed, sc.ctx)
    assert not way_back(replace(back, probe=None), x_probed, sc.ctx)
    # the diagnostic's record: its "home" wins over its "from"
    home = {**rec, "home": list(x_probed), "returning": True}
    assert way_back(replace(back, waterlines=probed, probe=home), x_deep, sc.ctx)
    assert not way_back(replace(back, probe=home), x_probed, sc.ctx)


@pytest.mark.parametrize("marked", [True, False])
def test_the_evaluation_loop_does_not_verify_a_way_back(monkeypatch: pytest.MonkeyPatch,
                                                        marked: bool) -> None:
    """A probe to a shallow set, then the way back to the start: the loop verifies the probe
    against the start's window, but not the way back against the probe's (here every
    verification but the probe's reports a regression). Unmarked, the same return is rolled
    back onto the probe -- what left an incast at 200G 1.46 x worse than its start."""
    sc = Scenario.make("allreduce", 100, {"flows": 8}, seed=3)
    start = complete(start_waterlines(sc), sc.ctx)
    shallow = complete(Waterline(7_000, 500_000, 0.3), sc.ctx)
    rec = {"from": _coords(start, sc), "to": _coords(shallow, sc), "for": ["websearch"],
           "against": ["allreduce"]}
    verified: list[Waterline] = []

    def regressed(_verify: Any, _wins: Any, current: Waterline, _sc: Scenario) -> str:
        verified.append(current)
        return "" if same_waterlines(current, shallow) else "forced regression"

    monkeypatch.setattr(evaluate, "_regressed", regressed)
    script: dict[int, Callable[[Proposal], Proposal]] = {
        1: lambda p: replace(p, waterlines=shallow, method="probe", probe=rec),
        2: lambda p: replace(p, waterlines=start, method="model", way_back=marked,
                             probe={**rec, "ruled_out": ["websearch"]})}
    models = default_models()
    opt = _Scripted(WaterlineOptimiser.from_bytes(models.optimiser.to_bytes()), script,
                    hold_rest=True)
    run = closed_loop(sc, models.classifier, opt,  # type: ignore[arg-type]
                      settings=EvalSettings(), cycles=4)
    methods = [r.method for r in run.records]
    if marked:
        assert methods == ["probe", "model", "hold", "hold"]
        assert len(verified) == 1 and same_waterlines(run.final, start)
    else:
        assert methods[:3] == ["probe", "model", "rollback"]
        assert "forced regression" in run.records[2].reason
        assert same_waterlines(run.final, shallow)
