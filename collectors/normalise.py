"""Raw monotonic counters to per-interval deltas and per-second rates.

Rules (an SRE reading a graph must be able to trust every point):
- A counter that went down either wrapped (32- or 64-bit) or was reset (reboot, `clear
  counters`). It wrapped only if the wrapped delta is physically plausible for the interval at
  line rate; otherwise it is a reset and that interval has no rate (None), never a negative or a
  giant value. The next interval counts from the new baseline. A 32-bit wrap is only believed
  when the counter could not have gone round more than once in the interval (line rate x
  interval < 2**32); otherwise a 32-bit counter is unreadable at that poll rate anyway, and the
  far likelier reset of a 64-bit counter must not become a phantom burst.
- A delta larger than line rate allows is refused the same way (garbage or a reset that re-grew).
- A missed poll is a gap: when the interval is much longer than expected (or the series is new)
  the rates are None, not zero, and no sample is invented for the missing polls.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from app.drivers.models import QueueSample

WRAP_32 = 1 << 32
WRAP_64 = 1 << 64
MIN_FRAME_BYTES = 64
# Headroom over line rate for counter timing jitter (the switch samples its counters at a
# slightly different instant than our timestamp).
RATE_SLACK = 1.25

RATE_FIELDS: tuple[str, ...] = (
    "tx_bytes",
    "tx_packets",
    "ecn_marked_packets",
    "rx_pause_frames",
    "tx_pause_frames",
    "drop_packets",
)
GAUGE_FIELDS: tuple[str, ...] = ("occupancy_bytes", "watermark_bytes")


def max_plausible_delta(field: str, speed_gbps: float, interval_s: float) -> int:
    """The largest increase a counter can show in ``interval_s`` at line rate."""
    max_bytes = speed_gbps * 1e9 / 8 * interval_s * RATE_SLACK + 10_000
    if field == "tx_bytes":
        return int(max_bytes)
    return int(max_bytes / MIN_FRAME_BYTES) + 10


def counter_delta(previous: int | None, current: int | None, max_delta: int) -> int | None:
    """Increase of a monotonic counter, resolving 32/64-bit wraps; None if unknowable."""
    if previous is None or current is None or current < 0 or previous < 0:
        return None
    if current >= previous:
        delta = current - previous
        return delta if delta <= max_delta else None
    for width in (WRAP_32, WRAP_64):
        if width == WRAP_32 and max_delta >= WRAP_32:
            continue  # ambiguous at this rate: see the module docstring
        if previous < width and current < width:
            wrapped = width - previous + current
            if wrapped <= max_delta:
                return wrapped
    return None  # a reset: the new value is a fresh baseline


@dataclass(frozen=True, slots=True)
class InterfaceInfo:
    interface_id: int
    speed_gbps: int


@dataclass(slots=True)
class NormaliseStats:
    rows: int = 0
    unknown_interfaces: int = 0
    resets: int = 0
    gaps: int = 0


SAMPLE_COLUMNS: tuple[str, ...] = (
    "switch_id", "interface_id", "priority", "ts_ms", "interval_s",
    *RATE_FIELDS, *GAUGE_FIELDS,
    *(f + "_per_s" for f in RATE_FIELDS), "utilisation",
)
"""The columns of a stored telemetry sample (telemetry_samples), in insert order."""


@dataclass
class SampleBatch:
    """Normalised samples in columns (lists of Python values, None for NULL): cheap to build
    with numpy and to hand to executemany/COPY as tuples."""

    columns: dict[str, list[Any]]

    def __len__(self) -> int:
        return len(self.columns["ts_ms"]) if self.columns else 0

    @classmethod
    def empty(cls) -> SampleBatch:
        return cls({c: [] for c in SAMPLE_COLUMNS})

    @classmethod
    def from_rows(cls, rows: list[dict[str, Any]]) -> SampleBatch:
        return cls({c: [r.get(c) for r in rows] for c in SAMPLE_COLUMNS})

    def rows(self) -> list[dict[str, Any]]:
        names = list(self.columns)
        return [dict(zip(names, values, strict=True))
                for values in zip(*self.columns.values(), strict=True)]

    def tuples(self, columns: tuple[str, ...] = SAMPLE_COLUMNS) -> list[tuple[Any, ...]]:
        return list(zip(*(self.columns[c] for c in columns), strict=True))

    def extend(self, other: SampleBatch) -> None:
        for name, values in other.columns.items():
            self.columns[name].extend(values)

    def split(self, size: int) -> tuple[SampleBatch, SampleBatch]:
        head = SampleBatch({k: v[:size] for k, v in self.columns.items()})
        tail = SampleBatch({k: v[size:] for k, v in self.columns.items()})
        return head, tail


_U64_MAX = (1 << 64) - 1
_I64_MAX = (1 << 63) - 1


def _counter_matrix(samples: list[QueueSample]) -> tuple[np.ndarray, np.ndarray, list[list[Any]]]:
    """Raw counters as uint64 (n, 6) with a validity mask, and the raw Python values."""
    raw = [[getattr(s, f) for f in RATE_FIELDS] for s in samples]
    ok = np.array([[isinstance(v, int) and 0 <= v <= _U64_MAX for v in r] for r in raw],
                  dtype=bool).reshape(len(samples), len(RATE_FIELDS))
    values = np.array([[v if isinstance(v, int) and 0 <= v <= _U64_MAX else 0 for v in r]
                       for r in raw], dtype=np.uint64).reshape(len(samples), len(RATE_FIELDS))
    return values, ok, raw


def vector_delta(previous: np.ndarray, current: np.ndarray, max_delta: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised :func:`counter_delta` over uint64 arrays: (delta as float, valid mask)."""
    with np.errstate(over="ignore"):
        plain = current - previous  # exact when current >= previous, wraps mod 2**64 otherwise
        wrap32 = (current + np.uint64(WRAP_32)) - previous
    up = current >= previous
    small = ((previous < np.uint64(WRAP_32)) & (current < np.uint64(WRAP_32))
             & (max_delta < WRAP_32))
    d_plain = plain.astype(np.float64)
    d_32 = wrap32.astype(np.float64)
    use_32 = ~up & small & (d_32 <= max_delta)
    delta = np.where(use_32, d_32, d_plain)
    valid = np.where(up, d_plain <= max_delta, use_32 | (d_plain <= max_delta))
    return delta, valid


@dataclass
class _SwitchSeries:
    index: dict[tuple[int, int], int]
    ts_ms: np.ndarray  # (m,) int64
    counters: np.ndarray  # (m, 6) uint64
    ok: np.ndarray  # (m, 6) bool


class Normaliser:
    """Keeps the previous raw counters of every series and turns polls into sample batches.

    Vectorised per switch with numpy (a poll of 1,000 switches x 128 series is 128,000 rows);
    :func:`counter_delta` is the scalar reference the vector code is tested against.
    """

    def __init__(self, gap_factor: float = 2.5) -> None:
        self.gap_factor = gap_factor
        self._switches: dict[int, _SwitchSeries] = {}

    def forget_switch(self, switch_id: int) -> None:
        self._switches.pop(switch_id, None)

    def process(
        self,
        switch_id: int,
        ts_ms: int,
        samples: list[QueueSample],
        interfaces: dict[str, InterfaceInfo],
        expected_interval_s: float,
        stats: NormaliseStats | None = None,
    ) -> SampleBatch:
        stats = stats if stats is not None else NormaliseStats()
        known = [(s, interfaces[s.interface]) for s in samples if s.interface in interfaces]
        stats.unknown_interfaces += len(samples) - len(known)
        state = self._switches.get(switch_id)
        if state is None:
            state = _SwitchSeries({}, np.zeros(0, dtype=np.int64),
                                  np.zeros((0, len(RATE_FIELDS)), dtype=np.uint64),
                                  np.zeros((0, len(RATE_FIELDS)), dtype=bool))
            self._switches[switch_id] = state
        keys = [(info.interface_id, s.priority) for s, info in known]
        slots = np.array([state.index.get(k, -1) for k in keys], dtype=np.int64)
        seen = slots >= 0
        prev_ts = np.where(seen, state.ts_ms[np.maximum(slots, 0)] if len(state.ts_ms) else 0, 0)
        # A duplicate or out-of-order poll: the first one stands.
        fresh = ~seen | (prev_ts < ts_ms)
        if not fresh.all():
            keep = np.flatnonzero(fresh)
            known = [known[i] for i in keep]
            keys = [keys[i] for i in keep]
            slots, seen, prev_ts = slots[keep], seen[keep], prev_ts[keep]
        n = len(known)
        if n == 0:
            return SampleBatch.empty()
        current, current_ok, raw = _counter_matrix([s for s, _ in known])
        speeds = np.array([info.speed_gbps for _, info in known], dtype=np.float64)
        interval = (ts_ms - prev_ts) / 1000.0
        in_time = seen & (interval > 0) & (interval <= expected_interval_s * self.gap_factor)
        stats.gaps += int(n - in_time.sum())
        rates = np.full((n, len(RATE_FIELDS)), np.nan)
        if in_time.any():
            rows = np.flatnonzero(in_time)
            prev = state.counters[slots[rows]]
            prev_ok = state.ok[slots[rows]]
            dt = interval[rows][:, None]
            max_bytes = speeds[rows][:, None] * 1e9 / 8 * dt * RATE_SLACK + 10_000
            max_delta = np.concatenate(
                [max_bytes, np.repeat(max_bytes / MIN_FRAME_BYTES + 10, len(RATE_FIELDS) - 1,
                                      axis=1)], axis=1)
            delta, valid = vector_delta(prev, current[rows], max_delta)
            both = prev_ok & current_ok[rows]
            valid &= both
            stats.resets += int(np.any(both & ~valid, axis=1).sum())
            rates[rows] = np.where(valid, delta / dt, np.nan)
        # Remember this poll as the baseline of the next.
        new_keys = [k for k, s in zip(keys, seen, strict=True) if not s]
        if new_keys:
            base = len(state.ts_ms)
            for offset, key in enumerate(new_keys):
                state.index[key] = base + offset
            state.ts_ms = np.concatenate([state.ts_ms, np.zeros(len(new_keys), dtype=np.int64)])
            state.counters = np.concatenate(
                [state.counters, np.zeros((len(new_keys), len(RATE_FIELDS)), dtype=np.uint64)])
            state.ok = np.concatenate(
                [state.ok, np.zeros((len(new_keys), len(RATE_FIELDS)), dtype=bool)])
            slots = np.array([state.index[k] for k in keys], dtype=np.int64)
        state.ts_ms[slots] = ts_ms
        state.counters[slots] = current
        state.ok[slots] = current_ok

        tx_rate = rates[:, 0]
        utilisation = np.where(speeds > 0, np.minimum(1.0, tx_rate * 8 / (speeds * 1e9)), np.nan)
        columns: dict[str, list[Any]] = {
            "switch_id": [switch_id] * n,
            "interface_id": [k[0] for k in keys],
            "priority": [k[1] for k in keys],
            "ts_ms": [ts_ms] * n,
            "interval_s": _nullable(np.where(in_time, interval, np.nan)),
        }
        for j, name in enumerate(RATE_FIELDS):
            # The raw value is stored only if a signed 64-bit column can hold it.
            columns[name] = [r[j] if isinstance(r[j], int) and 0 <= r[j] <= _I64_MAX else None
                             for r in raw]
        columns["occupancy_bytes"] = [s.occupancy_bytes for s, _ in known]
        columns["watermark_bytes"] = [s.watermark_bytes for s, _ in known]
        for j, name in enumerate(RATE_FIELDS):
            columns[name + "_per_s"] = _nullable(rates[:, j])
        columns["utilisation"] = _nullable(utilisation)
        stats.rows += n
        return SampleBatch(columns)


def _nullable(values: np.ndarray) -> list[Any]:
    """Floats with NaN as None (SQL NULL)."""
    out = values.astype(object)
    out[~np.isfinite(values)] = None
    result: list[Any] = out.tolist()
    return result
