"""Polls of raw switch counters -> :class:`~tuning.features.PortWindow` (pure).

The daemon builds its windows from stored samples, which the collectors normalised the same
way (``collectors/normalise.py``): rates are counter deltas over the poll interval, gauges
(occupancy, watermark) are taken as read. Training and evaluation poll the virtual fabric and
go through this function, so the models see windows built exactly like the daemon's.
"""

from __future__ import annotations

import numpy as np

from tuning.features import PortWindow

RATE_COUNTERS: tuple[str, ...] = (
    "tx_bytes", "tx_packets", "ecn_marked_packets", "rx_pause_frames", "tx_pause_frames",
    "drop_packets")
GAUGES: tuple[str, ...] = ("occupancy_bytes", "watermark_bytes")


def window_from_polls(
    times_s: np.ndarray,
    counters: np.ndarray,
    gauges: np.ndarray,
    *,
    speed_gbps: float,
    buffer_bytes: int,
    cable_m: float,
) -> PortWindow:
    """One port's window from ``n + 1`` polls: ``times_s`` (n+1,), ``counters`` (n+1, 6) in
    RATE_COUNTERS order, ``gauges`` (n+1, 2) in GAUGES order. The first poll is the baseline:
    the window has ``n`` entries. A counter that went down (a reset) gives NaN there."""
    t = np.asarray(times_s, dtype=float)
    c = np.asarray(counters, dtype=float)
    g = np.asarray(gauges, dtype=float)
    dt = np.diff(t)
    delta = np.diff(c, axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        rates = delta / dt[:, None]
    rates[(delta < 0) | ~(dt[:, None] > 0)] = np.nan
    return PortWindow(
        speed_gbps=float(speed_gbps),
        buffer_bytes=int(buffer_bytes),
        tx_bytes_per_s=rates[:, 0],
        tx_packets_per_s=rates[:, 1],
        ecn_marked_packets_per_s=rates[:, 2],
        rx_pause_frames_per_s=rates[:, 3],
        tx_pause_frames_per_s=rates[:, 4],
        drop_packets_per_s=rates[:, 5],
        occupancy_bytes=g[1:, 0],
        watermark_bytes=g[1:, 1],
        cable_m=float(cable_m),
    )
