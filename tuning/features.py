"""Features of one port x priority over a window of normalised telemetry.

The same code turns stored samples (the daemon) and simulated polls (training, evaluation)
into the feature vectors the classifier and the optimiser see, so what they learn offline is
what they meet online. Pure numpy: arrays in, arrays out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from tuning.guard import WaterlinesLike
from tuning.headroom import compute_headroom

PROFILES: tuple[str, ...] = ("allreduce", "incast", "websearch", "hadoop", "idle")

WINDOW_FIELDS: tuple[str, ...] = (
    "tx_bytes_per_s",
    "tx_packets_per_s",
    "ecn_marked_packets_per_s",
    "rx_pause_frames_per_s",
    "tx_pause_frames_per_s",
    "drop_packets_per_s",
    "occupancy_bytes",
    "watermark_bytes",
)


def _empty() -> np.ndarray:
    return np.zeros(0)


@dataclass(frozen=True)
class PortWindow:
    """Normalised telemetry of one port x priority: one entry per poll, NaN where missing
    (a gap, a reset, a counter the NOS does not report)."""

    speed_gbps: float
    buffer_bytes: int
    tx_bytes_per_s: np.ndarray = field(default_factory=_empty)
    tx_packets_per_s: np.ndarray = field(default_factory=_empty)
    ecn_marked_packets_per_s: np.ndarray = field(default_factory=_empty)
    rx_pause_frames_per_s: np.ndarray = field(default_factory=_empty)
    tx_pause_frames_per_s: np.ndarray = field(default_factory=_empty)
    drop_packets_per_s: np.ndarray = field(default_factory=_empty)
    occupancy_bytes: np.ndarray = field(default_factory=_empty)
    watermark_bytes: np.ndarray = field(default_factory=_empty)
    cable_m: float = 5.0

    @property
    def polls(self) -> int:
        return int(np.sum(np.isfinite(self.tx_bytes_per_s)))

    @property
    def line_rate_bytes_per_s(self) -> float:
        return self.speed_gbps * 1e9 / 8


def _mean(a: np.ndarray) -> float:
    a = a[np.isfinite(a)]
    return float(a.mean()) if a.size else 0.0


def _max(a: np.ndarray) -> float:
    a = a[np.isfinite(a)]
    return float(a.max()) if a.size else 0.0


def _cv(a: np.ndarray) -> float:
    a = a[np.isfinite(a)]
    if a.size < 2:
        return 0.0
    m = float(a.mean())
    return float(a.std() / m) if m > 0 else 0.0


def _quantile(a: np.ndarray, q: float) -> float:
    a = a[np.isfinite(a)]
    return float(np.quantile(a, q)) if a.size else 0.0


def window_kpis(w: PortWindow) -> dict[str, float]:
    """What telemetry alone says about a port (the daemon's before/after verdict): utilisation,
    ECN-mark ratio, PFC pause frames per second both ways, drops per second, queue depth."""
    tx = _mean(w.tx_bytes_per_s)
    packets = _mean(w.tx_packets_per_s)
    return {
        "utilisation": min(1.0, tx / w.line_rate_bytes_per_s) if w.speed_gbps else 0.0,
        "ecn_mark_ratio": _mean(w.ecn_marked_packets_per_s) / packets if packets > 0 else 0.0,
        "rx_pause_per_s": _mean(w.rx_pause_frames_per_s),
        "tx_pause_per_s": _mean(w.tx_pause_frames_per_s),
        "drops_per_s": _mean(w.drop_packets_per_s),
        "queue_mean_bytes": _mean(w.occupancy_bytes),
        "queue_p99_bytes": _quantile(w.occupancy_bytes, 0.99),
        "watermark_bytes": _max(w.watermark_bytes),
    }


FEATURE_NAMES: tuple[str, ...] = (
    "utilisation_mean",
    "utilisation_max",
    "utilisation_cv",
    "ecn_mark_ratio",
    "log_rx_pause_per_s",
    "log_tx_pause_per_s",
    "log_drops_per_s",
    "occupancy_mean_rel_buffer",
    "occupancy_p90_rel_buffer",
    "occupancy_cv",
    "watermark_rel_buffer",
    "log_occupancy_mean_bdp",
    "log_watermark_bdp",
    "mean_packet_bytes_kb",
    "log_speed_gbps",
    "log_kmin_bdp",
    "log_kmax_bdp",
    "pmax",
    "log2_alpha",
    "headroom_rel_formula",
)

BASE_RTT_S = 8e-6  # a Clos RTT of a few hops; scales waterlines to bandwidth-delay products


def bdp_bytes(speed_gbps: float) -> float:
    return speed_gbps * 1e9 / 8 * BASE_RTT_S


def waterline_features(current: WaterlinesLike, speed_gbps: float, cable_m: float
                       ) -> list[float]:
    bdp = bdp_bytes(speed_gbps)
    alpha = current.alpha if current.alpha else 0.125
    need = compute_headroom(int(speed_gbps), cable_m) if speed_gbps in (
        10, 25, 40, 50, 100, 200, 400) else None
    headroom = current.headroom_bytes
    rel = headroom / need.size_bytes if (headroom and need) else 1.0
    return [
        math.log2(max(1.0, current.kmin_bytes) / bdp),
        math.log2(max(1.0, current.kmax_bytes) / bdp),
        float(current.pmax),
        math.log2(alpha),
        float(rel),
    ]


def port_features(w: PortWindow, current: WaterlinesLike) -> np.ndarray:
    """The feature vector (FEATURE_NAMES) of a port's window under its current waterlines."""
    rate = w.line_rate_bytes_per_s
    util = w.tx_bytes_per_s / rate if rate else np.zeros_like(w.tx_bytes_per_s)
    kpis = window_kpis(w)
    bdp = bdp_bytes(w.speed_gbps)
    packets = _mean(w.tx_packets_per_s)
    buffer = float(max(1, w.buffer_bytes))
    values = [
        kpis["utilisation"],
        min(1.0, _max(util)),
        _cv(w.tx_bytes_per_s),
        kpis["ecn_mark_ratio"],
        math.log1p(kpis["rx_pause_per_s"]),
        math.log1p(kpis["tx_pause_per_s"]),
        math.log1p(kpis["drops_per_s"]),
        kpis["queue_mean_bytes"] / buffer,
        _quantile(w.occupancy_bytes, 0.9) / buffer,
        _cv(w.occupancy_bytes),
        kpis["watermark_bytes"] / buffer,
        math.log2(1.0 + kpis["queue_mean_bytes"] / bdp),
        math.log2(1.0 + kpis["watermark_bytes"] / bdp),
        (_mean(w.tx_bytes_per_s) / packets / 1000.0) if packets > 0 else 0.0,
        math.log2(max(1.0, w.speed_gbps)),
        *waterline_features(current, w.speed_gbps, w.cable_m),
    ]
    return np.asarray(values, dtype=float)
