"""Training is reproducible: the same seed gives the same models (a miniature run, twice); the
held-out telemetry uses parameter values absent from training."""

from __future__ import annotations

import numpy as np

from tuning.training import HELDOUT_VALUES, TRAIN_VALUES, TrainConfig, sample_scenario, train


def _tiny(seed: int) -> TrainConfig:
    return TrainConfig(seed=seed, duration_ms=4.0, warmup_ms=1.0,
                       scenarios={"allreduce": 3, "incast": 3, "websearch": 2, "hadoop": 2},
                       telemetry_only=1, heldout=1, candidates=6, currents=2, ports=2,
                       members=2, workers=1)


def test_same_seed_same_models() -> None:
    a = train(_tiny(7))
    b = train(_tiny(7))
    assert a.classifier.metadata["heldout_accuracy"] == b.classifier.metadata["heldout_accuracy"]
    rows = np.concatenate([sd.median_features for sds in a.data.values() for sd in sds])
    np.testing.assert_array_equal(a.classifier.predict_proba(rows),
                                  b.classifier.predict_proba(rows))
    for profile, sds in a.data.items():
        f = sds[0].median_features[0]
        cur = sds[0].currents[1]
        ctx = sds[0].scenario.ctx
        pa = a.optimiser.propose(profile, f, cur, speed_gbps=ctx.speed_gbps,
                                 buffer_bytes=ctx.buffer_bytes, cable_m=ctx.cable_m)
        pb = b.optimiser.propose(profile, f, cur, speed_gbps=ctx.speed_gbps,
                                 buffer_bytes=ctx.buffer_bytes, cable_m=ctx.cable_m)
        assert pa == pb
        np.testing.assert_array_equal(sds[0].objectives, b.data[profile][0].objectives)


def test_heldout_scenarios_use_unseen_values() -> None:
    rng = np.random.default_rng(3)
    for profile, values in HELDOUT_VALUES.items():
        for _ in range(20):
            sc = sample_scenario(rng, profile, heldout=True)
            for key, v in sc.params:
                if key in values:
                    assert v in values[key] and v not in TRAIN_VALUES[profile][key]
