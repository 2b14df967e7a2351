"""Discrete engine: the issue's validation table plus determinism and batching contracts."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fabricsim import buffers
from fabricsim.physics import (
    INFEASIBLE_PENALTY,
    STATIC_BASELINES,
    SimResult,
    Thresholds,
    hpcc_production,
    simulate,
    simulate_batch,
    sonic_default,
)

# SONiC's published 100G / 40 m lossless profile (REFERENCE.md): xoff 177,632 B.
SONIC_HEADROOM_100G_40M = 177_632
# HPCC-style waterlines at 100G: 100 KB x 4 / 400 KB x 4 / 20 %
HPCC_100G = Thresholds(400_000, 1_600_000, 0.2, headroom_bytes=SONIC_HEADROOM_100G_40M)
SONIC = Thresholds(1 << 20, 2 << 20, 0.05, headroom_bytes=SONIC_HEADROOM_100G_40M)
# 32 storage servers in other racks -> one receiver: 500 KB each (HPCC's incast size),
# arriving at the receiver's TOR through its 4 uplinks, the switch otherwise busy.
INCAST_32 = {"incast_degree": 32, "load": 0.8, "duration_ms": 8.0, "cable_m": 40.0,
             "params": {"size_bytes": 500_000, "ingress_ports": 4}}


@pytest.fixture(scope="module")
def incast_runs() -> list[SimResult]:
    undersized = Thresholds(1 << 20, 2 << 20, 0.05, headroom_bytes=2_000, alpha=1 / 32)
    tight = Thresholds(1 << 20, 2 << 20, 0.05, headroom_bytes=SONIC_HEADROOM_100G_40M,
                       alpha=1 / 32)
    return simulate_batch("incast", 100, [SONIC, HPCC_100G, undersized, tight], seed=0,
                          **INCAST_32)


def test_incast_pauses_more_and_queues_higher_with_sonic_default(
        incast_runs: list[SimResult]) -> None:
    sonic, hpcc = incast_runs[0].kpis, incast_runs[1].kpis
    assert sonic["pause_time_fraction"] > 0.05
    assert sonic["pause_frames"] > 0
    assert hpcc["pause_time_fraction"] < 0.8 * sonic["pause_time_fraction"]
    assert hpcc["pause_frames"] < sonic["pause_frames"]
    assert sonic["queue_p99_bytes"] > hpcc["queue_p99_bytes"] * 1.1
    # the switch sends the pause frames; the senders' NICs receive them
    assert incast_runs[0].counters()["tx_pause_frames"] == sonic["pause_frames"]
    assert incast_runs[0].sender_rx_pause_frames == sonic["pause_frames"]


def test_formula_headroom_never_drops(incast_runs: list[SimResult]) -> None:
    for res in (incast_runs[0], incast_runs[1], incast_runs[3]):
        assert res.kpis["drops"] == 0
        assert res.feasible and res.kpis["objective"] < INFEASIBLE_PENALTY
    assert incast_runs[3].kpis["pause_time_fraction"] > 0.2  # it did have to pause


def test_undersized_headroom_drops_and_is_infeasible(incast_runs: list[SimResult]) -> None:
    res = incast_runs[2]
    assert res.kpis["drops"] > 0
    assert not res.feasible and res.kpis["feasible"] == 0.0
    assert res.kpis["objective"] == INFEASIBLE_PENALTY + res.kpis["drops"]
    assert res.counters()["drop_packets"] == res.kpis["drops"]


def test_tiny_thresholds_lose_utilisation_with_few_elephants() -> None:
    tiny, moderate = simulate_batch(
        "allreduce", 100, [Thresholds(1_000, 1_000, 1.0), Thresholds(50_000, 200_000, 0.05)],
        flows=4, duration_ms=8, seed=3)
    assert moderate.kpis["utilisation"] > 0.98
    assert tiny.kpis["utilisation"] < moderate.kpis["utilisation"] - 0.01
    assert tiny.kpis["ecn_mark_fraction"] > moderate.kpis["ecn_mark_fraction"]


def test_same_seed_same_kpis_bit_for_bit() -> None:
    a = simulate("hadoop", 100, hpcc_production(100), duration_ms=2, warmup_ms=1, seed=11)
    b = simulate("hadoop", 100, hpcc_production(100), duration_ms=2, warmup_ms=1, seed=11)
    c = simulate("hadoop", 100, hpcc_production(100), duration_ms=2, warmup_ms=1, seed=12)
    assert a.kpis == b.kpis
    assert np.array_equal(a.occupancy_bytes, b.occupancy_bytes)
    assert a.kpis != c.kpis


@pytest.mark.parametrize(("profile", "kwargs"), [
    ("websearch", {}),
    ("hadoop", {}),
    ("incast", {"params": {"size_bytes": 500_000, "ingress_ports": 4}, "load": 0.8}),
    ("allreduce", {"params": {"phase_bytes": 1_000_000}}),
])
def test_batch_equals_individual_runs(profile: str, kwargs: dict) -> None:
    ths = [sonic_default(), hpcc_production(100), Thresholds(1_000, 1_000, 1.0),
           Thresholds(50_000, 500_000, 0.2, headroom_bytes=2_000, alpha=1 / 32)]
    batch = simulate_batch(profile, 100, ths, duration_ms=2, warmup_ms=1, seed=5, **kwargs)
    for th, res in zip(ths, batch, strict=True):
        single = simulate(profile, 100, th, duration_ms=2, warmup_ms=1, seed=5, **kwargs)
        assert res.kpis == single.kpis
        assert np.array_equal(res.occupancy_bytes, single.occupancy_bytes)
        assert res.counters() == single.counters()


def test_kpis_and_counters_are_complete() -> None:
    res = simulate("websearch", 100, sonic_default(), duration_ms=2, warmup_ms=1, seed=1)
    for key in ("mice_fct_slowdown_p50", "mice_fct_slowdown_p99", "utilisation",
                "pause_time_fraction", "queue_p99_bytes", "drops", "objective",
                "elephant_goodput_gbps", "ecn_mark_fraction", "queue_mean_bytes",
                "flows_completed", "feasible", "lost_utilisation"):
        assert key in res.kpis and math.isfinite(res.kpis[key])
    assert res.kpis["mice_fct_slowdown_p50"] >= 1.0
    assert res.kpis["mice_fct_slowdown_p99"] >= res.kpis["mice_fct_slowdown_p50"]
    counters = res.counters()
    for key in ("duration_s", "tx_bytes", "tx_packets", "ecn_marked_packets",
                "ecn_marked_bytes", "rx_pause_frames", "tx_pause_frames", "drop_packets",
                "drop_bytes", "occupancy_max_bytes"):
        assert key in counters
    assert counters["duration_s"] == pytest.approx(0.002)
    assert counters["tx_bytes"] / (counters["duration_s"] * 12.5e9 * len(res.egress)) == \
        pytest.approx(res.kpis["utilisation"])
    assert res.occupancy_max_bytes >= res.kpis["queue_p99_bytes"]
    assert len(res.occupancy_bytes) == 200  # 2 ms sampled every 10 us
    assert res.to_dict()["kpis"]["objective"] == res.objective


def test_idle_is_quiet_and_optimal() -> None:
    res = simulate("idle", 100, sonic_default(), duration_ms=1, seed=0)
    assert res.kpis["utilisation"] == 0 and res.kpis["objective"] == 0
    assert res.counters()["tx_bytes"] == 0


def test_ecn_and_pfc_switches() -> None:
    on, = simulate_batch("allreduce", 100, [Thresholds(20_000, 200_000, 0.1)], flows=8,
                         duration_ms=2, warmup_ms=1, seed=0)
    off = simulate("allreduce", 100, Thresholds(20_000, 200_000, 0.1), flows=8,
                   duration_ms=2, warmup_ms=1, seed=0, ecn=False)
    assert on.kpis["ecn_mark_fraction"] > 0 and off.kpis["ecn_mark_fraction"] == 0
    assert off.kpis["queue_p99_bytes"] > on.kpis["queue_p99_bytes"]
    lossy = simulate("incast", 100, sonic_default(), duration_ms=4, seed=0, pfc=False,
                     load=0.8, params={"size_bytes": 500_000, "ingress_ports": 4},
                     ecn=False)
    assert lossy.kpis["pause_frames"] == 0 and lossy.kpis["drops"] > 0


def test_threshold_validation() -> None:
    for bad in (Thresholds(10, 5, 0.1), Thresholds(1, 2, 0.0), Thresholds(1, 2, 1.5),
                Thresholds(1, 2, 0.1, alpha=3.0), Thresholds(1, 2, 0.1, xoff_bytes=0),
                Thresholds(1, 2, 0.1, xoff_bytes=10, xon_bytes=20)):
        with pytest.raises(ValueError):
            bad.validate()
        with pytest.raises(ValueError):
            simulate("allreduce", 100, bad, duration_ms=0.1)
    with pytest.raises(ValueError):
        simulate("nope", 100, sonic_default(), duration_ms=0.1)
    with pytest.raises(ValueError):
        simulate("allreduce", 100, sonic_default(), duration_ms=0.1,
                 params={"size_bytes": 1})


def test_buffer_formulas() -> None:
    assert buffers.default_buffer_bytes(100) == 32 * buffers.MIB
    assert buffers.default_alpha(100) == 1 / 8
    assert buffers.default_alpha(400, 100) == 1 / 2
    hr = buffers.sonic_headroom(100, 40)
    assert 80_000 < hr["xoff_bytes"] < 200_000 and hr["size_bytes"] > hr["xoff_bytes"]
    assert buffers.sonic_headroom(400, 100)["xoff_bytes"] > hr["xoff_bytes"]
    # headroom must cover what arrives during the PFC reaction at line rate
    assert buffers.default_headroom_bytes(100, 40) > (
        buffers.pfc_reaction_s(100, 40) * 100e9 / 8)


@pytest.mark.slow
def test_statics_are_not_equally_optimal_and_profiles_differ() -> None:
    grid = [Thresholds(int(k), int(k * f), p) for k in (5e3, 20e3, 100e3, 400e3, 1e6, 2e6)
            for f in (2, 4, 10) for p in (0.01, 0.05, 0.2, 1.0)]
    statics = [make(100) for make in STATIC_BASELINES.values()]
    best: dict[str, Thresholds] = {}
    for profile in ("allreduce", "incast", "websearch", "hadoop"):
        res = simulate_batch(profile, 100, grid + statics, duration_ms=6, seed=1)
        objs = [r.objective for r in res]
        best[profile] = res[int(np.argmin(objs[:len(grid)]))].thresholds
        static_objs = objs[len(grid):]
        assert max(static_objs) - min(static_objs) > 0.3  # the statics differ
        assert min(objs[:len(grid)]) <= min(static_objs) + 1e-9
    assert len({(t.kmin_bytes, t.kmax_bytes, t.pmax) for t in best.values()}) >= 3


def test_common_parameters_inside_params_are_honoured() -> None:
    """flows/load/incast_degree given inside ``params`` (how the virtual fabric passes a
    scenario's parameters) count like the keywords; a keyword given wins."""
    th = [Thresholds(10_000, 100_000, 0.1)]
    inside = simulate_batch("incast", 100, th, params={"incast_degree": 4, "load": 0.2},
                            duration_ms=0.05, warmup_ms=0.0)[0]
    assert inside.params["incast_degree"] == 4 and inside.params["load"] == 0.2
    both = simulate_batch("incast", 100, th, params={"incast_degree": 4}, incast_degree=16,
                          duration_ms=0.05, warmup_ms=0.0)[0]
    assert both.params["incast_degree"] == 16
    default = simulate_batch("incast", 100, th, duration_ms=0.05, warmup_ms=0.0)[0]
    assert default.params["incast_degree"] == 32
