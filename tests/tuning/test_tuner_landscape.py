"""The optimiser's building blocks on synthetic data: traffic descriptors, the landscape
ensemble (it learns a known objective and finds its minimum), the traffic estimator (it
learns a descriptor that the features carry, and reports the spread of one they do not)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tuning import descriptors
from tuning.estimator import TrafficEstimator
from tuning.features import FEATURE_NAMES
from tuning.landscape import OUTPUTS, Landscape, from_target, kpi_targets, kpis_of, to_target
from tuning.optimiser import _sigma_points


def test_descriptors_of_scenarios() -> None:
    d = descriptors.of_scenario("incast", {"incast_degree": 16, "load": 0.4}, 200, 3.0,
                                64 << 20)
    assert descriptors.names("incast") == ("log2_burst_bdp", "load", "log2_speed_100g",
                                           "log2_cable_3m", "log2_buffer_bdp")
    # 16 senders x the AliStorage mean (40.9 KB) over a 200G BDP (200 KB)
    assert d[0] == pytest.approx(math.log2(16 * 40_869.8 / 200_000), abs=1e-3)
    assert d[1] == pytest.approx(0.4)
    assert d[2] == pytest.approx(1.0) and d[3] == pytest.approx(0.0)
    # 64 MB over a 200G BDP of 200 KB: 2^8.39, less the offset of 8
    assert d[4] == pytest.approx(math.log2((64 << 20) / 200_000) - 8)
    # defaults of fabricsim's profiles for what a scenario leaves unset
    assert list(descriptors.traffic_part("allreduce", {}, 100)) == [3.0]
    assert list(descriptors.traffic_part("allreduce", {"flows": 4, "phase_bytes": 10**6},
                                         100)) == [2.0]
    assert list(descriptors.traffic_part("hadoop", {"flows": 8}, 100)) == [0.5, 1.0]
    assert list(descriptors.traffic_part("websearch", {"load": 0.7}, 100)) == [0.7, 0.0]
    inc = descriptors.traffic_part("incast", {"flows": 8, "size_bytes": 100_000}, 100)
    assert list(inc) == [3.0, 0.3]  # 8 x 100 KB = 8 BDP at 100G


def test_targets_round_trip_and_cap() -> None:
    j = np.array([0.0, 0.1, 3.0, 29.0])
    np.testing.assert_allclose(from_target(to_target(j)), j, atol=1e-12)
    assert float(to_target(1e6 + 5)) == float(to_target(30.0))  # infeasible: capped
    rows = kpi_targets([{"mice_fct_slowdown_p99": 4.0, "mice_fct_slowdown_p50": 2.0,
                         "lost_utilisation": 0.1, "pause_time_fraction": 0.2,
                         "queue_p99_bytes": 300_000.0}], bdp=100_000.0)
    assert rows.shape == (1, len(OUTPUTS) - 1)
    back = kpis_of(np.concatenate([[0.0], rows[0]]), 100_000.0)
    assert back["mice_fct_slowdown_p99"] == pytest.approx(4.0)
    assert back["queue_p99_bytes"] == pytest.approx(300_000.0)


def _synthetic(n_scen: int, seed: int) -> tuple[np.ndarray, ...]:
    """log J = (log2 Kmin/BDP - theta0)^2 / 4 + 0.5 (log2 Pmax + 3)^2 / 4 + noise."""
    rng = np.random.default_rng(seed)
    theta, coords, targets, groups = [], [], [], []
    for g in range(n_scen):
        t0 = rng.uniform(-4, 2)
        x = np.column_stack([rng.uniform(-6, 4, 60), rng.uniform(0.5, 6, 60),
                             rng.uniform(-7, 0, 60), np.full(60, -3.0), np.ones(60)])
        y = (x[:, 0] - t0) ** 2 / 4 + 0.5 * (x[:, 2] + 3) ** 2 / 4 + rng.normal(0, 0.05, 60)
        th = np.tile([t0, 0.0, 0.0, 0.0], (60, 1))
        kp = np.zeros((60, len(OUTPUTS) - 1))
        theta.append(th)
        coords.append(x)
        targets.append(np.column_stack([y, kp]))
        groups.append(np.full(60, g))
    return (np.concatenate(theta), np.concatenate(coords), np.concatenate(targets),
            np.concatenate(groups))


def test_landscape_learns_a_known_objective_and_its_minimum() -> None:
    names = descriptors.names("allreduce")
    land = Landscape.fit(names, *_synthetic(40, 1), members=3, seed=2)
    assert land.info["scenarios"] == 40 and len(land.members) == 3
    for t0 in (-3.0, 0.0, 1.5):
        grid = np.array([(a, 2.0, c, -3.0, 1.0) for a in np.linspace(-6, 4, 41)
                         for c in np.linspace(-7, 0, 15)])
        pred = land.predict(np.array([t0, 0, 0, 0]), grid)
        assert pred.shape == (3, len(grid), len(OUTPUTS))
        best = grid[int(np.argmin(pred.mean(axis=0)[:, 0]))]
        assert abs(best[0] - t0) <= 0.75 and abs(best[2] + 3) <= 1.5, (t0, best)
    # rows of theta and coordinates broadcast against each other
    one = land.predict(np.zeros(4), np.zeros((4, 5)))
    assert one.shape[1] == 4


def test_landscape_predicts_many_rows_in_blocks_as_it_does_each_row() -> None:
    """A fleet's candidates go through the networks in blocks of ``PREDICT_BLOCK_ROWS``: the
    rows either side of a block's edge get what they get on their own."""
    from tuning import landscape

    land = Landscape.fit(descriptors.names("allreduce"), *_synthetic(10, 3), members=2, seed=1)
    rng = np.random.default_rng(4)
    n = landscape.PREDICT_BLOCK_ROWS + 37
    theta = rng.normal(size=(n, 4))
    coords = np.column_stack([rng.uniform(-6, 4, n), rng.uniform(0, 3, n),
                              rng.uniform(-7, 0, n), np.full(n, -3.0), np.ones(n)])
    whole = land.predict(theta, coords)
    assert whole.shape == (2, n, len(OUTPUTS))
    for i in (0, landscape.PREDICT_BLOCK_ROWS - 1, landscape.PREDICT_BLOCK_ROWS, n - 1):
        alone = land.predict(theta[i], coords[i:i + 1])
        np.testing.assert_allclose(whole[:, i], alone[:, 0], rtol=1e-5, atol=1e-5)


def test_out_of_bag_errors_tell_level_from_shape() -> None:
    """Out of bag: each row judged by the members that never saw its scenario. A per-scenario
    offset the descriptors do not carry shows in the level's error, not in that of changes."""
    names = descriptors.names("allreduce")
    theta, coords, targets, groups = _synthetic(40, 4)
    offset = np.random.default_rng(9).normal(0.0, 0.5, 40)  # unseen per-scenario level
    targets = targets.copy()
    targets[:, 0] += offset[groups]
    land = Landscape.fit(names, theta, coords, targets, groups, members=4, seed=5)
    info = land.info
    assert 0 < info["oob_rows"] < len(targets)
    assert info["oob_rmse_log_objective"] > 0.3  # the offsets (std 0.5) cannot be learned
    assert info["oob_shape_rmse_log_objective"] < 0.5 * info["oob_rmse_log_objective"]
    assert info["train_rmse_log_objective"] < info["oob_rmse_log_objective"]


def test_shape_rmse_removes_each_scenarios_mean() -> None:
    from tuning.landscape import _shape_rmse

    resid = np.array([1.0, 1.0, 3.0, -2.0, -2.0, -2.0])
    groups = np.array([0, 0, 0, 1, 1, 1])
    # group 0: mean 5/3 -> residuals -2/3, -2/3, 4/3; group 1: all zero
    expect = math.sqrt((2 * (2 / 3) ** 2 + (4 / 3) ** 2) / 6)
    assert _shape_rmse(resid, groups) == pytest.approx(expect, abs=1e-4)


def _feature_rows(values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    f = rng.normal(0, 1, (len(values), len(FEATURE_NAMES)))
    f[:, FEATURE_NAMES.index("utilisation_mean")] = values
    return f


def test_estimator_learns_what_the_features_carry() -> None:
    rng = np.random.default_rng(3)
    groups = np.repeat(np.arange(40), 8)
    load = np.repeat(rng.uniform(0.1, 0.9, 40), 8)
    hidden = np.repeat(rng.uniform(1, 3, 40), 8)  # nothing in the features tells it
    feats = _feature_rows(load, rng)
    est = TrafficEstimator.fit(("load", "log2_senders"), feats,
                               np.column_stack([load, hidden]), groups, feats, 2 * load,
                               seed=0)
    assert est.residual_std[0] < 0.06  # load: learned
    assert est.residual_std[1] > 0.4  # the hidden one: about its own spread (0.58)
    fresh = _feature_rows(np.array([0.25, 0.75]), rng)
    np.testing.assert_allclose(est.estimate(fresh)[:, 0], [0.25, 0.75], atol=0.08)
    np.testing.assert_allclose(est.measured(fresh), [0.5, 1.5], atol=0.15)


def test_sigma_points() -> None:
    pts, w = _sigma_points(np.array([[3.0, 0.5, 0.0], [1.0, 0.1, 0.5]]), np.array([1.0, 0.2]),
                           [0.0, 0.0, -1.0], [5.0, 0.6, 1.0])
    assert pts.shape == (2, 5, 3) and w.sum() == pytest.approx(1.0)
    assert pts[0, :, 1].max() == pytest.approx(0.6)  # clipped into the training range
    assert np.all(pts[0, :, 2] == 0.0) and np.all(pts[1, :, 2] == 0.5)  # context untouched
    assert pts[0, 1, 0] == pytest.approx(3.0 - math.sqrt(3.0))
    assert pts[1, 1, 0] == 0.0 and pts[1, 2, 0] == pytest.approx(1.0 + math.sqrt(3.0))
    assert pts[1, 3, 1] == 0.0 and pts[1, 4, 1] == pytest.approx(0.1 + 0.2 * math.sqrt(3.0))
    # a descriptor without residual (well estimated) gets no sigma points
    pts, w = _sigma_points(np.array([[3.0, 0.5]]), np.array([1.0, 0.0]), None, None)
    pts = pts[0]
    assert pts.shape == (3, 2) and np.all(pts[:, 1] == 0.5) and w.sum() == pytest.approx(1.0)
