"""Switch-buffer constants and formulas: buffer size, PFC headroom, dynamic-threshold alpha.

All values come from REFERENCE.md ("Switch MMU and PFC", "Headroom").
"""

from __future__ import annotations

import math

MIB = 1024 * 1024
KB = 1000

# HPCC ns-3 switch model: reserve per port x priority group, resume offset (REFERENCE.md).
PG_RESERVE_BYTES = 4 * 1024
RESUME_OFFSET_BYTES = 3 * 1024

# IEEE 802.3 pause quanta a peer may take to react, per port speed (REFERENCE.md, SONiC
# Mellanox headroom plugin). One quantum is 512 bit times.
PAUSE_QUANTA = {10: 67, 25: 80, 40: 118, 50: 147, 100: 394, 200: 453, 400: 905}
# The largest pause time a frame can request (quanta field is 16 bits).
MAX_PAUSE_QUANTA = 0xFFFF
SIGNAL_SPEED_M_PER_S = 1.98e8  # SONiC's figure for light in cable
MAC_PHY_DELAY_BYTES = 800  # SONiC Mellanox plugin, ~0.8 KB
PIPELINE_LATENCY_BYTES = 18 * 1024  # SONiC xon = pipeline latency (~18 KB)
PORT_MTU_BYTES = 9100  # SONiC default port MTU
CELL_BYTES = 144  # Spectrum cell size used by the SONiC plugin


def pause_quanta(speed_gbps: float) -> int:
    """Pause quanta for the nearest listed speed at or above ``speed_gbps``."""
    for s in sorted(PAUSE_QUANTA):
        if speed_gbps <= s:
            return PAUSE_QUANTA[s]
    return PAUSE_QUANTA[max(PAUSE_QUANTA)]


def peer_response_bytes(speed_gbps: float) -> float:
    return pause_quanta(speed_gbps) * 512 / 8


def peer_response_s(speed_gbps: float) -> float:
    return pause_quanta(speed_gbps) * 512 / (speed_gbps * 1e9)


def cable_bytes(speed_gbps: float, cable_m: float) -> float:
    """Bytes on a cable, both directions: 2 x L x speed / 1.98e8 / 8."""
    return 2 * cable_m * speed_gbps * 1e9 / SIGNAL_SPEED_M_PER_S / 8


def sonic_headroom(
    speed_gbps: float,
    cable_m: float,
    *,
    port_mtu_bytes: int = PORT_MTU_BYTES,
    lossless_mtu_bytes: int = PORT_MTU_BYTES,
    cell_bytes: int = CELL_BYTES,
    small_packet_percent: float = 100.0,
    gearbox_delay_bytes: float = 0.0,
) -> dict[str, int]:
    """SONiC dynamic-buffer headroom (Mellanox plugin formula, REFERENCE.md "Headroom").

    Returns ``xoff_bytes`` (headroom that absorbs what still arrives after pause),
    ``xon_bytes`` (pipeline latency) and ``size_bytes`` = xoff + xon. For reference, the
    Broadcom-style published profile pg_lossless_100000_40m carries xoff 177,632 B.
    """
    propagation = (
        port_mtu_bytes
        + cable_bytes(speed_gbps, cable_m)
        + 2 * gearbox_delay_bytes
        + MAC_PHY_DELAY_BYTES
        + peer_response_bytes(speed_gbps)
    )
    factor = cell_bytes / 64 if cell_bytes > 128 else 2 * cell_bytes / (1 + cell_bytes)
    occupancy = (100 - small_packet_percent + small_packet_percent * factor) / 100
    xoff = math.ceil((lossless_mtu_bytes + propagation * occupancy) / 1024) * 1024
    xon = PIPELINE_LATENCY_BYTES
    return {"xoff_bytes": int(xoff), "xon_bytes": int(xon), "size_bytes": int(xoff + xon)}


def default_buffer_bytes(speed_gbps: float) -> int:
    """HPCC ns-3's buffer scaling: 16 MB x bw / 50G (32 MB at 100G)."""
    return int(16 * MIB * speed_gbps / 50)


def default_alpha(speed_gbps: float, nic_speed_gbps: float | None = None) -> float:
    """Dynamic-threshold alpha: 1/8 at NIC speed, doubling per doubling of port speed
    (HPCC ns-3 ``pfc_a_shift``), clamped to the power-of-two range 1/128..8."""
    nic = speed_gbps if nic_speed_gbps is None else nic_speed_gbps
    shift = round(math.log2(max(speed_gbps, 1e-9) / max(nic, 1e-9)))
    return float(min(8.0, max(1 / 128, 2.0 ** (shift - 3))))


def pfc_reaction_s(speed_gbps: float, cable_m: float, mtu_bytes: int = 1000) -> float:
    """Time from the switch's pause decision until the last byte sent before the peer
    stopped has arrived: one MTU on the wire, pause frame on the cable, the peer's response
    time (pause quanta), and the bytes still on the cable on the way back."""
    prop_s = cable_m / SIGNAL_SPEED_M_PER_S
    return mtu_bytes * 8 / (speed_gbps * 1e9) + 2 * prop_s + peer_response_s(speed_gbps)


def default_headroom_bytes(speed_gbps: float, cable_m: float) -> int:
    """HPCC-style headroom: 3 x rate x one-way delay of the PFC loop, where the one-way delay
    is cable propagation plus the peer's pause response time (REFERENCE.md)."""
    one_way_s = cable_m / SIGNAL_SPEED_M_PER_S + peer_response_s(speed_gbps)
    return math.ceil(3 * speed_gbps * 1e9 / 8 * one_way_s)


def is_power_of_two_alpha(alpha: float) -> bool:
    if not 1 / 128 <= alpha <= 8:
        return False
    exp = math.log2(alpha)
    return abs(exp - round(exp)) < 1e-9
