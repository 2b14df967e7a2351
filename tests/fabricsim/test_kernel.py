"""The compiled step loop (fabricsim/kernel.py) against the numpy engine it replaced.

The values below were recorded from the numpy-array engine of commit 2d20b1f (the last before
the loop was compiled) on the same inputs. The kernel reproduces them bit for bit -- numpy's
pairwise summation included -- so the shipped tuner models, trained on the numpy engine's
sweeps, describe the same simulator. Every branch of the physics is exercised: a saturating
allreduce, phased collectives with barriers, incast, Poisson mixes, PFC pauses, headroom
overflow with drops, a lossy class, ECN off.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from fabricsim.kernel import pairwise_sum
from fabricsim.physics import Thresholds, simulate_batch

RECORDED: list[tuple[str, int, dict[str, Any], dict[str, Any], Thresholds, dict[str, float]]] = [
    ("allreduce", 100, {}, {}, Thresholds(100_000, 400_000, 0.2),
     {"objective": 1.697021154805399, "queue_p99_bytes": 171504.99999999988,
      "pause_frames": 0.0, "drops": 0.0, "ecn_mark_fraction": 0.006344696969696872,
      "mice_fct_slowdown_p99": 1.0, "utilisation": 0.92488}),
    ("allreduce", 200, {"flows": 4, "phase_bytes": 1_000_000, "gap_us": 10}, {},
     Thresholds(50_000, 800_000, 0.1),
     {"objective": 0.43346645711256393, "queue_p99_bytes": 146009.99999999977,
      "pause_frames": 0.0, "drops": 0.0, "ecn_mark_fraction": 0.0009182993758778307,
      "mice_fct_slowdown_p99": 1.0, "utilisation": 0.92076}),
    ("incast", 100, {"incast_degree": 16, "load": 0.5}, {}, Thresholds(7_000, 500_000, 0.3),
     {"objective": 8.904956130536585, "queue_p99_bytes": 493461.99999999953,
      "pause_frames": 0.0, "drops": 0.0, "ecn_mark_fraction": 0.06418487492914872,
      "mice_fct_slowdown_p99": 256.06656667717243, "utilisation": 0.54963598}),
    ("incast", 100, {}, {}, Thresholds(2_000_000, 8_000_000, 0.01, headroom_bytes=2000),
     {"objective": 3.975799104141626, "queue_p99_bytes": 2541761.939999999,
      "pause_frames": 0.0, "drops": 0.0, "ecn_mark_fraction": 7.845576141291919e-05,
      "mice_fct_slowdown_p99": 5.665611051439006, "utilisation": 0.24722188}),
    ("websearch", 200, {"load": 0.7}, {}, Thresholds(1_048_576, 2_097_152, 0.05),
     {"objective": 6.43901962653433, "queue_p99_bytes": 2076174.1249999984,
      "pause_frames": 0.0, "drops": 0.0, "ecn_mark_fraction": 0.019349030764598013,
      "mice_fct_slowdown_p99": 12.849617167877081, "utilisation": 0.5835450376592628}),
    ("hadoop", 400, {"load": 0.9}, {"pfc": False}, Thresholds(9_000_000, 12_000_000, 0.01),
     {"objective": 7.375673767642812, "queue_p99_bytes": 11188799.81, "pause_frames": 0.0,
      "drops": 0.0, "ecn_mark_fraction": 0.0033488932016941934,
      "mice_fct_slowdown_p99": 47.09027297808806, "utilisation": 0.79657298375}),
    ("websearch", 100, {"load": 0.9}, {},
     Thresholds(2_000_000, 8_000_000, 0.01, headroom_bytes=1000, alpha=8.0),
     {"objective": 1002878.0, "queue_p99_bytes": 7706912.28, "pause_frames": 1160.0,
      "drops": 2878.0, "ecn_mark_fraction": 0.006916617105029275,
      "mice_fct_slowdown_p99": 96.14540922194536, "utilisation": 0.6734973485814798}),
    ("hadoop", 100, {"load": 0.95}, {"ecn": False}, Thresholds(1_000_000, 2_000_000, 0.05),
     {"objective": 10.937658251485407, "queue_p99_bytes": 5344959.920000002,
      "pause_frames": 2474.0, "drops": 0.0, "ecn_mark_fraction": 0.0,
      "mice_fct_slowdown_p99": 86.05923360841466, "utilisation": 0.8486692212465018}),
]


@pytest.mark.parametrize(("profile", "speed_gbps", "params", "kwargs", "th", "expected"),
                         RECORDED, ids=[f"{r[0]}-{r[1]}G-{i}" for i, r in enumerate(RECORDED)])
def test_the_compiled_loop_reproduces_the_numpy_engine_bit_for_bit(
        profile: str, speed_gbps: int, params: dict[str, Any], kwargs: dict[str, Any],
        th: Thresholds, expected: dict[str, float]) -> None:
    res = simulate_batch(profile, speed_gbps, [th], seed=11, duration_ms=4, warmup_ms=1,
                         params=params, **kwargs)[0]
    assert {k: res.kpis[k] for k in expected} == expected


@pytest.mark.parametrize("n", [0, 1, 7, 8, 9, 15, 16, 17, 64, 127, 128, 129, 200, 257, 1000,
                               4099])
def test_pairwise_sum_is_numpys_sum(n: int) -> None:
    rng = np.random.default_rng(n)
    x = rng.random(n + 6) * 10.0 ** rng.uniform(-3, 6, n + 6)
    assert pairwise_sum(x, 3, 3 + n) == x[3:3 + n].sum()
    assert pairwise_sum(x, 0, n) == x[:n].sum()


def test_a_long_run_spans_many_blocks_of_draws() -> None:
    """50 ms = 98 kernel calls of 512 steps: the state carries over between calls (a batch
    member still equals its own run, flows complete across block edges)."""
    ths = [Thresholds(50_000, 400_000, 0.2), Thresholds(1 << 20, 2 << 20, 0.05)]
    both = simulate_batch("websearch", 100, ths, seed=2, duration_ms=48, warmup_ms=2)
    alone = simulate_batch("websearch", 100, ths[1:], seed=2, duration_ms=48, warmup_ms=2)
    assert both[1].kpis == alone[0].kpis
    assert both[0].kpis["flows_completed"] > 0.9 * both[0].kpis["flows_total"] > 100
    assert both[0].kpis["mice_fct_slowdown_p99"] != both[1].kpis["mice_fct_slowdown_p99"]
