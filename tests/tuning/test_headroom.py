"""The SONiC headroom formula (tuning.headroom) against its sources."""

from __future__ import annotations

import math

import pytest

from tuning.headroom import PAUSE_QUANTA, HeadroomParams, cell_occupancy, compute_headroom


def lua_reference(speed_mbps: int, cable_m: float, port_mtu: int) -> tuple[int, int, int]:
    """buffer_headroom_mellanox.lua step by step, with the plugin's defaults: ASIC table of
    Spectrum-2/3 (cell_size 144, pipeline_latency 18, mac_phy_delay 0.8, both in KiB) and
    LOSSLESS_TRAFFIC_PATTERN (mtu 1024, small_packet_percentage 100), no gearbox, no shared
    headroom pool."""
    quanta = {10000: 67, 25000: 80, 40000: 118, 50000: 147, 100000: 394, 200000: 453,
              400000: 905}[speed_mbps]
    cell_size, pipeline_latency, mac_phy_delay = 144, 18 * 1024, 0.8 * 1024
    lossless_mtu, small = 1024, 100
    worst = cell_size / 64 if cell_size > 128 else 2 * cell_size / (1 + cell_size)
    occupancy = (100 - small + small * worst) / 100
    peer_response = quanta * 512 / 8
    bytes_on_cable = 2 * cable_m * speed_mbps * 1_000_000_000 / 198_000_000 / (8 * 1024)
    propagation = port_mtu + bytes_on_cable + 0 + mac_phy_delay + peer_response
    xoff = math.ceil((lossless_mtu + propagation * occupancy) / 1024) * 1024
    xon = math.ceil(pipeline_latency / 1024) * 1024
    return xoff, xon, xoff + xon


@pytest.mark.parametrize("speed", [10, 25, 40, 50, 100, 200, 400])
@pytest.mark.parametrize("cable", [1, 5, 40, 300, 1000])
def test_reproduces_the_mellanox_plugin(speed: int, cable: int) -> None:
    """With ``sonic_lua_units`` the calculator is the Lua plugin, bit for bit, for every
    speed of its quanta table; e.g. 100G/40m/MTU 9100 -> xoff 92160, xon 18432, size 110592."""
    h = compute_headroom(speed, cable, 9100, HeadroomParams(sonic_lua_units=True))
    assert (h.xoff_bytes, h.xon_bytes, h.size_bytes) == lua_reference(speed * 1000, cable, 9100)


def test_mellanox_defaults_worked_example() -> None:
    """100G, 40 m, MTU 9100 on Spectrum-2 defaults, by hand: peer response 394 x 64 = 25216 B;
    cable 2 x 40 x 1e11 / 1.98e8 / 8 = 5050.5 B; propagation 9100 + 5050.5 + 819.2 + 25216 =
    40185.7 B; cell occupancy 144/64 = 2.25; xoff = ceil_KiB(1024 + 2.25 x 40185.7 = 91442)
    = 92160 (90 KiB); xon = 18 KiB. The Lua's 1000/1024 cable factor lands in the same KiB."""
    h = compute_headroom(100, 40, 9100)
    assert h.peer_response_bytes == 25216
    assert h.cable_bytes == pytest.approx(5050.505, abs=0.01)
    assert h.propagation_bytes == pytest.approx(40185.7, abs=0.1)
    assert h.cell_occupancy == 2.25
    assert (h.xoff_bytes, h.xon_bytes, h.size_bytes) == (92_160, 18_432, 110_592)


def test_close_to_the_published_broadcom_profile() -> None:
    """The Broadcom-style pg_lossless_100000_40m profile publishes xoff 177,632 B and xon
    2,288 B. The closest this formula gets: a Trident 3 class cell (256 B -> worst-case factor
    256/64 = 4, every packet small), lossless MTU = port MTU = 9216: xoff = 1 KiB-ceil(9216 +
    4 x (9216 + 5050.5 + 819.2 + 25216)) = 171,008 B, 3.7 % below. 177,632 is not a multiple
    of 1 KiB, so the Broadcom number was not produced by this rounding; reaching it exactly
    needs ~1.8 KB more in-flight data (e.g. ~72 ns of gearbox delay).

    xon cannot match: Broadcom's 2,288 B is a resume offset (11 cells of 208 B), while the
    Mellanox plugin's xon is the ASIC pipeline latency (18 KiB)."""
    h = compute_headroom(100, 40, 9216, HeadroomParams(cell_bytes=256, lossless_mtu=9216))
    assert h.xoff_bytes == 171_008
    assert abs(h.xoff_bytes - 177_632) / 177_632 < 0.04
    gearbox = compute_headroom(100, 40, 9216, HeadroomParams(cell_bytes=256, lossless_mtu=9216,
                                                             gearbox_delay_ns=72))
    assert gearbox.xoff_bytes == 178_176  # within one KiB of the published value
    assert h.xon_bytes != 2_288


def test_properties_of_the_formula() -> None:
    last = 0
    for cable in (0, 1, 10, 100, 1000):
        h = compute_headroom(100, cable)
        assert h.xoff_bytes % 1024 == 0 and h.size_bytes == h.xoff_bytes + h.xon_bytes
        assert h.xoff_bytes >= last
        last = h.xoff_bytes
    speeds = [compute_headroom(s, 40).xoff_bytes for s in sorted(PAUSE_QUANTA)]
    assert speeds == sorted(speeds)
    # Smaller cells waste less: a 96 B cell (Spectrum-1) occupies less than a 144 B one.
    assert cell_occupancy(96, 100) == pytest.approx(2 * 96 / 97)
    assert cell_occupancy(144, 100) == 2.25
    assert cell_occupancy(144, 0) == 1.0
    assert compute_headroom(100, 40, params=HeadroomParams(cell_bytes=96)).xoff_bytes < 92_160


@pytest.mark.parametrize(
    ("speed", "cable", "mtu"),
    [(33, 5, 9100), (0, 5, 9100), (100, -1, 9100), (100, float("nan"), 9100),
     (100, 20_000, 9100), (100, 5, 0), (100, 5, 100_000), (True, 5, 9100)],
)
def test_bad_input(speed: int, cable: float, mtu: int) -> None:
    with pytest.raises(ValueError):
        compute_headroom(speed, cable, mtu)


def test_bad_params() -> None:
    for kw in ({"cell_bytes": 0}, {"small_packet_percent": 120}, {"lossless_mtu": 0},
               {"gearbox_delay_ns": -1}, {"pipeline_latency_bytes": -1}):
        with pytest.raises(ValueError):
            HeadroomParams(**kw)  # type: ignore[arg-type]
