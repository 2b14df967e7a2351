"""PFC headroom of a lossless priority group: SONiC's public formula (pure).

The formula is the one of sonic-swss ``cfgmgr/buffer_headroom_mellanox.lua`` (dynamic buffer
calculation), written from REFERENCE.md ("Headroom"):

- peer response = pause quanta(speed) x 512 bit / 8 (IEEE 802.3 31B.3.7 quanta per speed);
- bytes on cable = 2 x L x speed / 1.98e8 m/s / 8 (a round trip at 2/3 c);
- propagation = port MTU + bytes on cable + 2 x gearbox delay bytes + MAC/PHY delay
  + peer response;
- worst-case cell factor = cell/64 if cell > 128 B else 2 cell / (1 + cell); cell occupancy =
  (100 - small% + small% x factor) / 100;
- xoff = ceil_1KiB(lossless MTU + propagation x cell occupancy); xon = ceil_1KiB(pipeline
  latency); size = xoff + xon (no shared headroom pool).

By default the cable and gearbox terms are physical (speed in bit/s, bytes); the Lua multiplies
the speed in Mb/s by 1e9 and divides by 8 x 1024, i.e. 1000/1024 of the physical cable bytes,
and computes gearbox bytes as Mb/s x ns / 8192. ``HeadroomParams(sonic_lua_units=True)``
reproduces the Lua arithmetic exactly. The 8-lane (800G) pipeline doubling and the shared
headroom pool are out of scope.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

PAUSE_QUANTA: dict[int, int] = {10: 67, 25: 80, 40: 118, 50: 147, 100: 394, 200: 453, 400: 905}
"""Pause quanta the peer may still send after PAUSE, by port speed in Gb/s (IEEE 802.3)."""

SPEED_OF_LIGHT_IN_CABLE_M_S = 1.98e8
KIB = 1024


@dataclass(frozen=True)
class HeadroomParams:
    """ASIC and traffic parameters of the calculation.

    Defaults are the sonic-swss Mellanox plugin's: Spectrum-2/3 ASIC table (cell 144 B,
    pipeline latency 18 KiB, MAC/PHY delay 0.8 KiB) and the default lossless traffic pattern
    (lossless MTU 1024 B, 100 % small packets, i.e. the worst case).
    """

    cell_bytes: int = 144
    pipeline_latency_bytes: int = 18 * KIB
    mac_phy_delay_bytes: float = 0.8 * KIB
    lossless_mtu: int = 1024
    small_packet_percent: float = 100.0
    gearbox_delay_ns: float = 0.0
    sonic_lua_units: bool = False

    def __post_init__(self) -> None:
        if self.cell_bytes <= 0:
            raise ValueError(f"cell size must be positive, not {self.cell_bytes}")
        if self.pipeline_latency_bytes < 0 or self.mac_phy_delay_bytes < 0:
            raise ValueError("latencies must not be negative")
        if self.lossless_mtu <= 0:
            raise ValueError(f"lossless MTU must be positive, not {self.lossless_mtu}")
        if not 0 <= self.small_packet_percent <= 100:
            raise ValueError(f"small packet share {self.small_packet_percent}% outside 0..100")
        if self.gearbox_delay_ns < 0:
            raise ValueError("gearbox delay must not be negative")


@dataclass(frozen=True)
class Headroom:
    """Result in bytes (xoff and xon rounded up to whole KiB), with the intermediate terms."""

    xoff_bytes: int
    xon_bytes: int
    size_bytes: int
    peer_response_bytes: float
    cable_bytes: float
    propagation_bytes: float
    cell_occupancy: float

    def as_dict(self) -> dict[str, int]:
        return {
            "xoff_bytes": self.xoff_bytes,
            "xon_bytes": self.xon_bytes,
            "size_bytes": self.size_bytes,
        }


def _ceil_kib(value: float) -> int:
    return math.ceil(value / KIB - 1e-9) * KIB


def cell_occupancy(cell_bytes: int, small_packet_percent: float) -> float:
    """How many bytes of buffer a byte of worst-case (64 B) traffic occupies."""
    # Cells larger than two minimal packets waste cell/64 per 64 B packet; smaller cells
    # waste at most one partly filled cell per packet.
    factor = cell_bytes / 64 if cell_bytes > 2 * 64 else 2 * cell_bytes / (1 + cell_bytes)
    return (100 - small_packet_percent + small_packet_percent * factor) / 100


def compute_headroom(
    speed_gbps: int,
    cable_m: float,
    mtu: int = 9100,
    params: HeadroomParams | None = None,
) -> Headroom:
    """xoff/xon/size for a port of ``speed_gbps`` with a ``cable_m`` cable and port ``mtu``.

    Raises ValueError for an unsupported speed, a negative or absurd (> 10 km) cable length
    or a non-positive MTU.
    """
    p = params or HeadroomParams()
    if isinstance(speed_gbps, bool) or speed_gbps not in PAUSE_QUANTA:
        supported = ", ".join(f"{s}G" for s in PAUSE_QUANTA)
        raise ValueError(f"unsupported port speed {speed_gbps!r} Gb/s (supported: {supported})")
    if not isinstance(cable_m, int | float) or isinstance(cable_m, bool) \
            or not math.isfinite(cable_m) or cable_m < 0 or cable_m > 10_000:
        raise ValueError(f"cable length {cable_m!r} m must be within 0..10000")
    if isinstance(mtu, bool) or not isinstance(mtu, int) or not 64 <= mtu <= 16384:
        raise ValueError(f"MTU {mtu!r} must be an integer within 64..16384")
    speed_bps = speed_gbps * 1e9
    peer_response = PAUSE_QUANTA[speed_gbps] * 512 / 8
    if p.sonic_lua_units:
        speed_mbps = speed_gbps * 1000
        cable = 2 * cable_m * speed_mbps * 1e9 / SPEED_OF_LIGHT_IN_CABLE_M_S / (8 * KIB)
        gearbox = speed_mbps * p.gearbox_delay_ns / (8 * KIB)
    else:
        cable = 2 * cable_m * speed_bps / SPEED_OF_LIGHT_IN_CABLE_M_S / 8
        gearbox = speed_bps * p.gearbox_delay_ns * 1e-9 / 8
    propagation = mtu + cable + 2 * gearbox + p.mac_phy_delay_bytes + peer_response
    occupancy = cell_occupancy(p.cell_bytes, p.small_packet_percent)
    xoff = _ceil_kib(p.lossless_mtu + propagation * occupancy)
    xon = _ceil_kib(p.pipeline_latency_bytes)
    return Headroom(
        xoff_bytes=xoff,
        xon_bytes=xon,
        size_bytes=xoff + xon,
        peer_response_bytes=peer_response,
        cable_bytes=cable,
        propagation_bytes=propagation,
        cell_occupancy=occupancy,
    )
