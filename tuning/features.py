"""Features of one port x priority over a window of normalised telemetry.

The same code turns stored samples (the daemon) and simulated polls (training, evaluation)
into the feature vectors the classifier and the optimiser see, so what they learn offline is
what they meet online. Pure numpy: arrays in, arrays out. ``port_features`` does one port;
``features_matrix`` does a stacked batch (``stack_windows`` / ``WindowBatch``) in one
vectorised pass -- the same numbers, for the daemon's 128,000 windows per cycle.

The watermark: switches keep it until it is cleared, and a change of waterlines does not clear
it, so a watermark that did not move during the window belongs to an earlier period; the
window's peak (``watermark_rel_buffer``, ``log_watermark_bdp``, ``log_peak_over_kmin``) is the
largest occupancy read, or the watermark when it rose within the window (``window_peak``).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any

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


def window_kpis(w: PortWindow) -> dict[str, float]:
    """What telemetry alone says about a port (the daemon's before/after verdict): utilisation,
    ECN-mark ratio, PFC pause frames per second both ways, drops per second, queue depth."""
    return {k: float(v[0]) for k, v in window_kpis_batch(stack_windows([w])).items()}


def window_kpis_batch(batch: WindowBatch) -> dict[str, np.ndarray]:
    """:func:`window_kpis` of every window of a batch (one array per KPI)."""
    f = batch.fields
    tx = _nanmean(f["tx_bytes_per_s"])
    packets = _nanmean(f["tx_packets_per_s"])
    line = batch.speed_gbps * 1e9 / 8
    return {
        "utilisation": np.where(line > 0, np.minimum(1.0, tx / np.where(line > 0, line, 1.0)),
                                0.0),
        "ecn_mark_ratio": np.where(packets > 0, _nanmean(f["ecn_marked_packets_per_s"])
                                   / np.where(packets > 0, packets, 1.0), 0.0),
        "rx_pause_per_s": _nanmean(f["rx_pause_frames_per_s"]),
        "tx_pause_per_s": _nanmean(f["tx_pause_frames_per_s"]),
        "drops_per_s": _nanmean(f["drop_packets_per_s"]),
        "queue_mean_bytes": _nanmean(f["occupancy_bytes"]),
        "queue_p99_bytes": _nanquantile(f["occupancy_bytes"], 0.99),
        "watermark_bytes": _nanmax(f["watermark_bytes"]),
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
    # appended by the tuner: queue relative to the thresholds, burstiness, marking intensity
    "occupancy_zero_fraction",
    "log_occupancy_p90_bdp",
    "log_peak_over_kmin",
    "log_occupancy_mean_over_kmin",
    "occupancy_above_kmin_fraction",
    "log_ecn_marks_per_line_packet",
    "log_pause_per_gbps",
)

BASE_RTT_S = 8e-6  # a Clos RTT of a few hops; scales waterlines to bandwidth-delay products
EMPTY_QUEUE_BYTES = 1500.0  # below one MTU-sized packet a queue counts as empty
LINE_PACKET_BYTES = 1000.0  # payload per packet for the line-rate packet scale
_HEADROOM_SPEEDS = (10, 25, 40, 50, 100, 200, 400)


def bdp_bytes(speed_gbps: float) -> float:
    return speed_gbps * 1e9 / 8 * BASE_RTT_S


def waterline_features(current: WaterlinesLike, speed_gbps: float, cable_m: float
                       ) -> list[float]:
    bdp = bdp_bytes(speed_gbps)
    alpha = current.alpha if current.alpha else 0.125
    need = _headroom_size(speed_gbps, cable_m)
    headroom = current.headroom_bytes
    rel = headroom / need if (headroom and need) else 1.0
    return [
        math.log2(max(1.0, current.kmin_bytes) / bdp),
        math.log2(max(1.0, current.kmax_bytes) / bdp),
        float(current.pmax),
        math.log2(alpha),
        float(rel),
    ]


@functools.lru_cache(maxsize=256)
def _headroom_size(speed_gbps: float, cable_m: float) -> float:
    if speed_gbps not in _HEADROOM_SPEEDS or not 0 <= cable_m <= 10_000:
        return 0.0
    return float(compute_headroom(int(speed_gbps), float(cable_m)).size_bytes)


def window_peak(w: PortWindow) -> float:
    """The window's peak queue: the largest occupancy read, or the watermark when it rose
    during the window. A watermark that did not move is the peak of an earlier period (switches
    keep it until cleared, and a change of waterlines does not clear it), so it is ignored."""
    return float(_peak(np.atleast_2d(w.occupancy_bytes.astype(float)),
                       np.atleast_2d(w.watermark_bytes.astype(float)))[0])


@dataclass(frozen=True)
class WindowBatch:
    """Windows of ``n`` ports stacked: every field (WINDOW_FIELDS) shaped (n, polls), NaN where
    missing, plus per-port speed, buffer and cable. :func:`features_matrix` turns a batch into
    features in one vectorised pass (the daemon's 1,000-switch cycles)."""

    speed_gbps: np.ndarray
    buffer_bytes: np.ndarray
    cable_m: np.ndarray
    fields: dict[str, np.ndarray]

    @property
    def n(self) -> int:
        return len(self.speed_gbps)


def stack_windows(windows: list[PortWindow]) -> WindowBatch:
    """A :class:`WindowBatch` of windows (shorter ones padded with NaN)."""
    polls = max([len(w.tx_bytes_per_s) for w in windows] + [1])
    fields: dict[str, np.ndarray] = {}
    for name in WINDOW_FIELDS:
        arr = np.full((len(windows), polls), np.nan)
        for i, w in enumerate(windows):
            v = np.asarray(getattr(w, name), dtype=float)
            arr[i, :len(v)] = v
        fields[name] = arr
    return WindowBatch(np.array([float(w.speed_gbps) for w in windows]),
                       np.array([float(w.buffer_bytes) for w in windows]),
                       np.array([float(w.cable_m) for w in windows]), fields)


def waterline_matrix(waterlines: list[WaterlinesLike]) -> np.ndarray:
    """(n, 5) kmin, kmax, pmax, alpha, headroom (NaN: not set)."""
    return np.array([[float(w.kmin_bytes), float(w.kmax_bytes), float(w.pmax),
                      float(w.alpha) if w.alpha else np.nan,
                      float(w.headroom_bytes) if w.headroom_bytes else np.nan]
                     for w in waterlines], dtype=float).reshape(len(waterlines), 5)


def _nanmean(a: np.ndarray) -> np.ndarray:
    n = np.sum(np.isfinite(a), axis=1)
    s = np.nansum(a, axis=1)
    out: np.ndarray = np.where(n > 0, s / np.maximum(n, 1), 0.0)
    return out


def _nanmax(a: np.ndarray) -> np.ndarray:
    fin = np.isfinite(a)
    out: np.ndarray = np.where(fin.any(axis=1), np.max(np.where(fin, a, -np.inf), axis=1), 0.0)
    return out


def _nancv(a: np.ndarray) -> np.ndarray:
    fin = np.isfinite(a)
    n = fin.sum(axis=1)
    m = _nanmean(a)
    dev = np.where(fin, a - m[:, None], 0.0)
    sd = np.sqrt(np.sum(dev * dev, axis=1) / np.maximum(n, 1))
    out: np.ndarray = np.where((n >= 2) & (m > 0), sd / np.where(m > 0, m, 1.0), 0.0)
    return out


def _nanquantile(a: np.ndarray, q: float) -> np.ndarray:
    """Row quantiles (linear interpolation, like np.quantile) ignoring NaN; 0 for empty rows."""
    fin = np.isfinite(a)
    n = fin.sum(axis=1)
    srt = np.sort(np.where(fin, a, np.inf), axis=1)
    pos = q * np.maximum(n - 1, 0)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, np.maximum(n - 1, 0))
    frac = pos - lo
    rows = np.arange(len(a))
    if a.shape[1] == 0:
        return np.zeros(len(a))
    vlo = srt[rows, np.minimum(lo, a.shape[1] - 1)]
    vhi = srt[rows, np.minimum(hi, a.shape[1] - 1)]
    with np.errstate(invalid="ignore"):
        out: np.ndarray = np.where(n > 0, vlo + (vhi - vlo) * frac, 0.0)
    return out


def _peak(occ: np.ndarray, wm: np.ndarray) -> np.ndarray:
    peak = _nanmax(occ)
    fin = np.isfinite(wm)
    n = fin.sum(axis=1)
    first = np.where(n > 0, np.take_along_axis(
        np.where(fin, wm, np.nan), np.argmax(fin, axis=1)[:, None], axis=1)[:, 0], np.nan)
    last_idx = wm.shape[1] - 1 - np.argmax(fin[:, ::-1], axis=1)
    last = np.take_along_axis(wm, last_idx[:, None], axis=1)[:, 0]
    rose = (n >= 2) & (last > first)
    out: np.ndarray = np.where(rose, np.maximum(peak, _nanmax(wm)), peak)
    return out


def features_matrix(batch: WindowBatch, waterlines: np.ndarray) -> np.ndarray:
    """Feature rows (FEATURE_NAMES) of a batch of windows under their current waterlines
    (``waterline_matrix``); identical to :func:`port_features` row by row."""
    f = batch.fields
    n = batch.n
    speed = batch.speed_gbps.astype(float)
    rate = speed * 1e9 / 8
    safe_rate = np.where(rate > 0, rate, 1.0)
    tx = f["tx_bytes_per_s"]
    util = np.where(rate[:, None] > 0, tx / safe_rate[:, None], 0.0)
    util = np.where(np.isfinite(tx), util, np.nan)
    tx_mean = _nanmean(tx)
    packets = _nanmean(f["tx_packets_per_s"])
    marks = _nanmean(f["ecn_marked_packets_per_s"])
    rxp = _nanmean(f["rx_pause_frames_per_s"])
    txp = _nanmean(f["tx_pause_frames_per_s"])
    drops = _nanmean(f["drop_packets_per_s"])
    occ = f["occupancy_bytes"]
    q_mean = _nanmean(occ)
    q_p90 = _nanquantile(occ, 0.9)
    peak = _peak(occ, f["watermark_bytes"])
    bdp = speed * 1e9 / 8 * BASE_RTT_S
    bdp = np.where(bdp > 0, bdp, 1.0)
    buffer = np.maximum(1.0, batch.buffer_bytes.astype(float))
    wl = np.asarray(waterlines, dtype=float).reshape(n, 5)
    kmin = np.maximum(1.0, wl[:, 0])
    kmax = np.maximum(1.0, wl[:, 1])
    alpha = np.where(np.isfinite(wl[:, 3]) & (wl[:, 3] > 0), wl[:, 3], 0.125)
    need = np.array([_headroom_size(float(s), float(c))
                     for s, c in zip(speed, batch.cable_m, strict=True)])
    head = wl[:, 4]
    rel = np.where(np.isfinite(head) & (head > 0) & (need > 0), head / np.where(
        need > 0, need, 1.0), 1.0)
    fin_occ = np.isfinite(occ)
    n_occ = fin_occ.sum(axis=1)
    zero_frac = np.where(n_occ > 0, np.sum(fin_occ & (occ < EMPTY_QUEUE_BYTES), axis=1)
                         / np.maximum(n_occ, 1), 1.0)
    above = np.where(n_occ > 0, np.sum(fin_occ & (occ > kmin[:, None]), axis=1)
                     / np.maximum(n_occ, 1), 0.0)
    line_packets = np.where(rate > 0, rate / LINE_PACKET_BYTES, 1.0)
    cols = [
        np.where(speed > 0, np.minimum(1.0, tx_mean / safe_rate), 0.0),
        np.minimum(1.0, _nanmax(util)),
        _nancv(tx),
        np.where(packets > 0, marks / np.where(packets > 0, packets, 1.0), 0.0),
        np.log1p(rxp),
        np.log1p(txp),
        np.log1p(drops),
        q_mean / buffer,
        q_p90 / buffer,
        _nancv(occ),
        peak / buffer,
        np.log2(1.0 + q_mean / bdp),
        np.log2(1.0 + peak / bdp),
        np.where(packets > 0, tx_mean / np.where(packets > 0, packets, 1.0) / 1000.0, 0.0),
        np.log2(np.maximum(1.0, speed)),
        np.log2(kmin / bdp),
        np.log2(kmax / bdp),
        wl[:, 2],
        np.log2(alpha),
        rel,
        zero_frac,
        np.log2(1.0 + q_p90 / bdp),
        np.log2((1.0 + peak) / kmin),
        np.log2((1.0 + q_mean) / kmin),
        above,
        np.log10(1e-7 + marks / line_packets),
        np.log1p((rxp + txp) / np.maximum(1.0, speed)),
    ]
    return np.stack(cols, axis=1)


def port_features(w: PortWindow, current: WaterlinesLike) -> np.ndarray:
    """The feature vector (FEATURE_NAMES) of a port's window under its current waterlines."""
    out: np.ndarray = features_matrix(stack_windows([w]), waterline_matrix([current]))[0]
    return out


def jsonable(v: Any) -> Any:
    """``json.dumps``' fallback for model metadata: arrays and numpy scalars as lists and
    numbers, anything else as its string."""
    return v.tolist() if hasattr(v, "tolist") else str(v)
