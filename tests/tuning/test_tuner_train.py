"""Training is reproducible: the same seed gives the same models and sweeps (a miniature run,
twice); the held-out telemetry uses parameter values absent from training."""

from __future__ import annotations

import numpy as np

from tuning import diagnostic
from tuning.features import FEATURE_NAMES
from tuning.simulation import Scenario
from tuning.space import clip_coords, from_coords, to_coords
from tuning.training import (
    HELDOUT_VALUES,
    TRAIN_VALUES,
    TrainConfig,
    cdf_twin,
    observe,
    observe_path,
    sample_scenario,
    statics_for,
    train,
)


def _tiny(seed: int) -> TrainConfig:
    return TrainConfig(seed=seed, duration_ms=3.0, warmup_ms=1.0,
                       sweeps={"allreduce": 3, "incast": 3, "websearch": 2, "hadoop": 2},
                       design={"allreduce": 8, "incast": 8, "websearch": 6, "hadoop": 6},
                       adaptive={"allreduce": 2}, telemetry_only=1, heldout=1, currents=2,
                       ports=2, members=2, workers=1,
                       diagnostic={"incast": 3, "websearch": 3, "hadoop": 3},
                       diagnostic_small_incasts=2, diagnostic_heldout=1)


def test_same_seed_same_models() -> None:
    a = train(_tiny(7))
    b = train(_tiny(7))
    assert a.classifier.metadata["heldout_accuracy"] == b.classifier.metadata["heldout_accuracy"]
    rng = np.random.default_rng(0)
    rows = rng.normal(0, 1, (20, len(FEATURE_NAMES)))
    np.testing.assert_array_equal(a.classifier.predict_proba(rows),
                                  b.classifier.predict_proba(rows))
    assert set(a.sweeps) == {"allreduce", "incast", "websearch", "hadoop"}
    # the diagnostic's models too: same verdict inputs, same predictions
    assert a.optimiser.diagnostic is not None and b.optimiser.diagnostic is not None
    wins = [rng.normal(0, 1, (5, len(FEATURE_NAMES))) for _ in range(3)]
    assert a.optimiser.diagnostic.checks(*wins) == b.optimiser.diagnostic.checks(*wins)
    assert a.optimiser.diagnostic.verdicts(*wins[:2]) == b.optimiser.diagnostic.verdicts(
        *wins[:2])
    # every fixed-size incast sweep has its CDF twin, on the same waterline sets
    swept = a.data.sweeps
    assert set(a.data.twins) == {i for i, sw in enumerate(swept) if cdf_twin(sw.scenario)}
    for i, tw in a.data.twins.items():
        assert tw.scenario == cdf_twin(swept[i].scenario)
        np.testing.assert_array_equal(tw.coords, swept[i].coords[:len(tw.coords)])
    for profile, sws in a.sweeps.items():
        np.testing.assert_array_equal(sws[0].objective, b.sweeps[profile][0].objective)
        ctx = sws[0].scenario.ctx
        cur = from_coords(sws[0].coords[0], ctx)
        f = np.zeros(len(FEATURE_NAMES))
        f[FEATURE_NAMES.index("log_speed_gbps")] = np.log2(ctx.speed_gbps)
        pa = a.optimiser.propose(profile, f, cur, speed_gbps=ctx.speed_gbps,
                                 buffer_bytes=ctx.buffer_bytes, cable_m=ctx.cable_m)
        pb = b.optimiser.propose(profile, f, cur, speed_gbps=ctx.speed_gbps,
                                 buffer_bytes=ctx.buffer_bytes, cable_m=ctx.cable_m)
        assert pa == pb


def test_heldout_scenarios_use_unseen_values() -> None:
    rng = np.random.default_rng(3)
    for profile, values in HELDOUT_VALUES.items():
        for _ in range(20):
            sc = sample_scenario(rng, profile, heldout=True)
            for key, v in sc.params:
                if key in values:
                    assert v in values[key] and v not in TRAIN_VALUES[profile][key]


def test_fixed_size_incast_has_a_cdf_twin() -> None:
    """The landscape learns a fixed-size incast from its twin with the workload CDF's sizes:
    the same scenario otherwise; other scenarios have none."""
    rng = np.random.default_rng(7)
    seen = 0
    for _ in range(40):
        sc = sample_scenario(rng, "incast", seed=5)
        twin = cdf_twin(sc)
        if "size_bytes" not in sc.param_dict:
            assert twin is None
            continue
        seen += 1
        assert twin is not None and "size_bytes" not in twin.param_dict
        assert {k: v for k, v in sc.params if k != "size_bytes"} == twin.param_dict
        assert (twin.speed_gbps, twin.seed, twin.cable_m, twin.buffer) == (
            sc.speed_gbps, sc.seed, sc.cable_m, sc.buffer)
    assert seen > 0
    assert cdf_twin(sample_scenario(rng, "allreduce")) is None


def test_the_diagnostic_path_is_observed_on_one_switch() -> None:
    """The diagnostic's training windows are read as the daemon reads them: the sets of the
    path applied one after another to one switch, whose watermark carries over. After the
    deep SONiC default, an incast's window at the shallow step cannot show a rising
    watermark, so its peak comes from the occupancy samples -- far below the peak a switch
    that started at the step shows."""
    sc = Scenario.make("incast", 100, {"incast_degree": 32, "load": 0.3}, seed=3)
    ctx = sc.ctx
    sets = [from_coords(x, ctx) for x in diagnostic.path(
        clip_coords(to_coords(statics_for(sc)["sonic_default"], ctx), ctx), ctx)]
    rows, objs = observe_path([(sc, sets), (sc, sets)], seed=5, ports=4, workers=1)
    fresh, fresh_objs = observe([(sc, sets)], seed=5, ports=4, workers=1)
    peak = FEATURE_NAMES.index("log_watermark_bdp")
    for r, o in zip(rows, objs, strict=True):  # one switch warmed a poll, one a window
        assert len(r) == 3 and all(m.shape == (4, len(FEATURE_NAMES)) for m in r)
        assert o[2] > o[0]  # the simulator's objective of each set: the guide hurts it
        # never above the step's own peak (the class maximum a fresh switch shows) ...
        assert r[1][:, peak].max() <= fresh[0][1][:, peak].max() + 1e-6
    # ... and mostly well below it
    seq_step = np.concatenate([r[1][:, peak] for r in rows])
    assert np.median(seq_step) < np.median(fresh[0][1][:, peak]) - 0.5
    # the switch warmed one poll starts as a fresh one does
    assert np.allclose(rows[0][0][:, peak], fresh[0][0][:, peak])
    assert fresh_objs[0][2] > fresh_objs[0][0]
