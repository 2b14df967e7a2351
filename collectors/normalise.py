"""Raw monotonic counters to per-interval deltas and per-second rates.

Rules (an SRE reading a graph must be able to trust every point):
- A counter that went down either wrapped (32- or 64-bit) or was reset (reboot, `clear
  counters`). It wrapped only if the wrapped delta is physically plausible for the interval at
  line rate; otherwise it is a reset and that interval has no rate (None), never a negative or a
  giant value. The next interval counts from the new baseline.
- A delta larger than line rate allows is refused the same way (garbage or a reset that re-grew).
- A missed poll is a gap: when the interval is much longer than expected (or the series is new)
  the rates are None, not zero, and no sample is invented for the missing polls.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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
        if previous < width and current < width:
            wrapped = width - previous + current
            if wrapped <= max_delta:
                return wrapped
    return None  # a reset: the new value is a fresh baseline


@dataclass(slots=True)
class SeriesState:
    ts_ms: int
    counters: tuple[int | None, ...]


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


class Normaliser:
    """Keeps the previous raw counters of every series and turns polls into sample rows."""

    def __init__(self, gap_factor: float = 2.5) -> None:
        self.gap_factor = gap_factor
        self._state: dict[tuple[int, int, int], SeriesState] = {}

    def forget_switch(self, switch_id: int) -> None:
        for key in [k for k in self._state if k[0] == switch_id]:
            del self._state[key]

    def process(
        self,
        switch_id: int,
        ts_ms: int,
        samples: list[QueueSample],
        interfaces: dict[str, InterfaceInfo],
        expected_interval_s: float,
        stats: NormaliseStats | None = None,
    ) -> list[dict[str, Any]]:
        stats = stats if stats is not None else NormaliseStats()
        rows: list[dict[str, Any]] = []
        max_gap_s = expected_interval_s * self.gap_factor
        for sample in samples:
            info = interfaces.get(sample.interface)
            if info is None:
                stats.unknown_interfaces += 1
                continue
            key = (switch_id, info.interface_id, sample.priority)
            current = tuple(getattr(sample, f) for f in RATE_FIELDS)
            previous = self._state.get(key)
            row: dict[str, Any] = {
                "switch_id": switch_id,
                "interface_id": info.interface_id,
                "priority": sample.priority,
                "ts_ms": ts_ms,
                "interval_s": None,
                "occupancy_bytes": sample.occupancy_bytes,
                "watermark_bytes": sample.watermark_bytes,
                "utilisation": None,
            }
            for name, value in zip(RATE_FIELDS, current, strict=True):
                row[name] = value
                row[name + "_per_s"] = None
            if previous is not None and previous.ts_ms >= ts_ms:
                continue  # a duplicate or out-of-order poll: the first one stands
            self._state[key] = SeriesState(ts_ms, current)
            if previous is None:
                stats.gaps += 1
            else:
                interval_s = (ts_ms - previous.ts_ms) / 1000.0
                if interval_s > max_gap_s:
                    stats.gaps += 1
                else:
                    row["interval_s"] = interval_s
                    reset = False
                    for name, before, now in zip(
                        RATE_FIELDS, previous.counters, current, strict=True
                    ):
                        limit = max_plausible_delta(name, info.speed_gbps, interval_s)
                        delta = counter_delta(before, now, limit)
                        if delta is None:
                            reset = reset or (before is not None and now is not None)
                            continue
                        row[name + "_per_s"] = delta / interval_s
                    if reset:
                        stats.resets += 1
                    tx_rate = row["tx_bytes_per_s"]
                    if tx_rate is not None and info.speed_gbps > 0:
                        row["utilisation"] = min(1.0, tx_rate * 8 / (info.speed_gbps * 1e9))
            rows.append(row)
        stats.rows += len(rows)
        return rows
