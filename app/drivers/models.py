"""Typed models of the driver contract: what every driver returns and accepts.

Waterline semantics of the PFC/buffer waterlines (the SONiC buffer-profile meaning, which the
headroom calculator also follows):
- ``alpha``: shared-buffer dynamic threshold of the lossless ingress priority group; PFC pause is
  sent when the PG's shared usage reaches ``alpha x free shared buffer``. A power of two.
- ``xoff_bytes``: headroom that absorbs what is still in flight after pause (SONiC ``xoff``).
- ``xon_bytes``: resume hysteresis (SONiC ``xon``); pause ends once the PG drains this far.
- ``headroom_bytes``: the PG's whole reserved headroom (SONiC profile ``size``, xoff + xon).
ECN/WRED on the egress queue of the same priority: ``kmin_bytes``, ``kmax_bytes``, ``pmax``
(0..1; marking probability rises linearly from 0 at Kmin to Pmax at Kmax, 1 above Kmax).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

COUNTER_FIELDS: tuple[str, ...] = (
    "tx_packets",
    "tx_bytes",
    "ecn_marked_packets",
    "ecn_marked_bytes",
    "rx_pause_frames",
    "tx_pause_frames",
    "drop_packets",
    "drop_bytes",
    "wred_drop_packets",
    "wred_drop_bytes",
)
"""Monotonic counters, as the switch reports them."""

GAUGE_FIELDS: tuple[str, ...] = ("occupancy_bytes", "watermark_bytes")
"""Instantaneous values: current queue occupancy and the watermark since last clear."""

SAMPLE_FIELDS: tuple[str, ...] = COUNTER_FIELDS + GAUGE_FIELDS


@dataclass(slots=True)
class QueueSample:
    """Raw telemetry of one interface x priority. ``None`` means the command did not report it.

    A plain slotted dataclass (not pydantic) because a poll cycle builds hundreds of thousands.
    """

    interface: str
    priority: int
    tx_packets: int | None = None
    tx_bytes: int | None = None
    ecn_marked_packets: int | None = None
    ecn_marked_bytes: int | None = None
    rx_pause_frames: int | None = None
    tx_pause_frames: int | None = None
    drop_packets: int | None = None
    drop_bytes: int | None = None
    wred_drop_packets: int | None = None
    wred_drop_bytes: int | None = None
    occupancy_bytes: int | None = None
    watermark_bytes: int | None = None

    def present(self) -> dict[str, Any]:
        """The fields that were reported, for JSON output."""
        return {k: v for k, v in asdict(self).items() if v is not None}


def merge_samples(*groups: list[QueueSample]) -> list[QueueSample]:
    """Merge rows of several commands into one row per (interface, priority).

    Later groups fill fields the earlier ones did not report; a field reported twice keeps the
    first value (commands are passed most-authoritative first).
    """
    merged: dict[tuple[str, int], QueueSample] = {}
    for group in groups:
        for row in group:
            key = (row.interface, row.priority)
            current = merged.get(key)
            if current is None:
                merged[key] = QueueSample(**asdict(row))
                continue
            for name in SAMPLE_FIELDS:
                if getattr(current, name) is None and getattr(row, name) is not None:
                    setattr(current, name, getattr(row, name))
    return sorted(merged.values(), key=lambda s: (s.interface, s.priority))


class Facts(BaseModel):
    model_config = ConfigDict(frozen=True)

    hostname: str
    vendor: str
    model: str
    os_version: str
    serial_number: str = ""
    uptime_s: int | None = None
    interfaces: list[str] = Field(default_factory=list)


class Waterlines(BaseModel):
    """ECN and PFC/buffer waterlines of one lossless priority (see module docstring)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kmin_bytes: int
    kmax_bytes: int
    pmax: float
    xoff_bytes: int | None = None
    xon_bytes: int | None = None
    headroom_bytes: int | None = None
    alpha: float | None = None


class QosConfig(BaseModel):
    """A switch's RoCE QoS state: which priorities are lossless, which queues mark ECN, and the
    waterlines per priority (switch-wide; both NOSes apply one profile to all lossless ports)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    pfc_priorities: tuple[int, ...] = ()
    ecn_queues: tuple[int, ...] = ()
    waterlines: dict[int, Waterlines] = Field(default_factory=dict)

    def normalised(self) -> QosConfig:
        return QosConfig(
            pfc_priorities=tuple(sorted(set(self.pfc_priorities))),
            ecn_queues=tuple(sorted(set(self.ecn_queues))),
            waterlines=dict(sorted(self.waterlines.items())),
        )
