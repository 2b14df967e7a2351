"""Window features: the vectorised batch equals the per-port function, windows from counter polls
are built like the collectors' (deltas / interval), a stale watermark is not a peak."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tuning.features import (
    FEATURE_NAMES,
    PortWindow,
    features_matrix,
    port_features,
    stack_windows,
    waterline_matrix,
    window_peak,
)
from tuning.guard import Waterline
from tuning.telemetry import window_from_polls

MB32 = 32 * 1024 * 1024
SONIC = Waterline(1 << 20, 2 << 20, 0.05)


def _window(rng: np.random.Generator, polls: int, speed: int = 100) -> PortWindow:
    line = speed * 1e9 / 8
    tx = rng.uniform(0.1, 0.9, polls) * line
    occ = rng.uniform(0, 2e5, polls)
    occ[rng.random(polls) < 0.3] = 0.0
    wm = np.maximum.accumulate(np.maximum(occ, rng.uniform(0, 3e5, polls)))
    w = PortWindow(speed_gbps=speed, buffer_bytes=MB32, tx_bytes_per_s=tx,
                   tx_packets_per_s=tx / 1000, ecn_marked_packets_per_s=tx / 1000 * 0.01,
                   rx_pause_frames_per_s=rng.uniform(0, 5, polls),
                   tx_pause_frames_per_s=rng.uniform(0, 5, polls),
                   drop_packets_per_s=np.zeros(polls), occupancy_bytes=occ,
                   watermark_bytes=wm, cable_m=3.0)
    return w


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), polls=st.integers(1, 14), gaps=st.integers(0, 3))
def test_batch_features_equal_single_port_features(seed: int, polls: int, gaps: int) -> None:
    rng = np.random.default_rng(seed)
    wins = [_window(rng, polls) for _ in range(3)]
    for w in wins:  # missing polls (gaps, resets) are NaN
        for _ in range(gaps):
            i = int(rng.integers(polls))
            w.tx_bytes_per_s[i] = np.nan
            w.occupancy_bytes[i] = np.nan
    wl = [SONIC, Waterline(7000, 500_000, 0.3, headroom_bytes=120_000, alpha=0.25),
          Waterline(50_000, 200_000, 0.05)]
    batch = features_matrix(stack_windows(wins), waterline_matrix(wl))
    assert batch.shape == (3, len(FEATURE_NAMES))
    for i in range(3):
        np.testing.assert_allclose(batch[i], port_features(wins[i], wl[i]), rtol=1e-12)
    assert np.all(np.isfinite(batch))


def test_feature_values_of_a_known_window() -> None:
    w = PortWindow(speed_gbps=100, buffer_bytes=MB32,
                   tx_bytes_per_s=np.array([6.25e9, 6.25e9]),
                   tx_packets_per_s=np.array([6.25e6, 6.25e6]),
                   ecn_marked_packets_per_s=np.array([62_500.0, 62_500.0]),
                   rx_pause_frames_per_s=np.zeros(2), tx_pause_frames_per_s=np.zeros(2),
                   drop_packets_per_s=np.zeros(2), occupancy_bytes=np.array([0.0, 200_000.0]),
                   watermark_bytes=np.array([400_000.0, 400_000.0]))
    f = dict(zip(FEATURE_NAMES, port_features(w, SONIC), strict=True))
    assert f["utilisation_mean"] == pytest.approx(0.5)
    assert f["ecn_mark_ratio"] == pytest.approx(0.01)
    assert f["occupancy_zero_fraction"] == pytest.approx(0.5)
    # the watermark did not move during the window: the peak is the largest occupancy read
    assert f["log_watermark_bdp"] == pytest.approx(np.log2(1 + 200_000 / 100_000))
    assert f["log_kmin_bdp"] == pytest.approx(np.log2((1 << 20) / 100_000))


def test_a_watermark_that_rose_in_the_window_is_the_peak() -> None:
    base = dict(speed_gbps=100, buffer_bytes=MB32, occupancy_bytes=np.array([1e4, 2e4, 3e4]))
    stale = PortWindow(watermark_bytes=np.array([9e5, 9e5, 9e5]), **base)  # type: ignore[arg-type]
    fresh = PortWindow(watermark_bytes=np.array([9e5, 1e6, 1e6]), **base)  # type: ignore[arg-type]
    assert window_peak(stale) == 3e4
    assert window_peak(fresh) == 1e6


def test_window_from_polls_is_deltas_over_intervals() -> None:
    t = np.array([0.0, 10.0, 20.0, 30.0])
    c = np.zeros((4, 6))
    c[:, 0] = [0, 1e9, 3e9, 1e8]  # a reset at the last poll
    c[:, 1] = [0, 1e6, 3e6, 4e6]
    g = np.array([[0, 0], [10, 50], [20, 60], [30, 60]], dtype=float)
    w = window_from_polls(t, c, g, speed_gbps=100, buffer_bytes=MB32, cable_m=3)
    np.testing.assert_allclose(w.tx_bytes_per_s[:2], [1e8, 2e8])
    assert np.isnan(w.tx_bytes_per_s[2])  # a counter that went down has no rate
    np.testing.assert_allclose(w.tx_packets_per_s, [1e5, 2e5, 1e5])
    np.testing.assert_allclose(w.occupancy_bytes, [10, 20, 30])
    assert w.polls == 2
