"""Renderers: exact CLI diffs, refusals before any text, render -> switch -> parse round trips
and rollback (render the other way) restoring exactly the previous configuration."""

from __future__ import annotations

import pytest

from app.drivers.comware import parsers as CP
from app.drivers.comware import render as CR
from app.drivers.errors import ValidationFailed
from app.drivers.models import QosConfig, Waterlines
from app.drivers.sonic import parsers as SP
from app.drivers.sonic import render as SR
from app.drivers.vendor_common import qos_differences
from tests.drivers.fakes import FakeComware, FakeSonic

SONIC_PORTS = ["Ethernet0", "Ethernet4"]
CW_PORTS = ["HundredGigE1/0/1", "HundredGigE1/0/2"]
PROFILE = "pg_lossless_100000_40m_profile"

W = Waterlines(kmin_bytes=102_400, kmax_bytes=409_600, pmax=0.2, xoff_bytes=184_320,
               xon_bytes=18_432, headroom_bytes=202_752, alpha=0.125)
DESIRED = QosConfig(pfc_priorities=(3,), ecn_queues=(3,), waterlines={3: W})


# ---------------------------------------------------------------------------------------------
# SONiC
# ---------------------------------------------------------------------------------------------


def sonic_render(current: QosConfig | None, desired: QosConfig, **kw: object) -> list[str]:
    kw.setdefault("interfaces", SONIC_PORTS)
    kw.setdefault("buffer_profile", PROFILE)
    return SR.render_qos(current, desired, **kw)  # type: ignore[arg-type]


def sonic_read_back(sw: FakeSonic) -> QosConfig:
    return SP.build_qos_config(
        pfc_priority=SP.parse_pfc_priority(sw.show_pfc_priority()),
        ecn_status=SP.parse_ecn_queue_status(sw.ecnconfig_q()),
        wred_profiles=SP.parse_ecn(sw.show_ecn()),
        buffer=SP.parse_buffer_configuration(sw.show_buffer_configuration(PROFILE)),
        interfaces=SONIC_PORTS,
        wred_profile=SR.WRED_PROFILE,
        buffer_profile=PROFILE,
    )


def test_sonic_full_render() -> None:
    assert sonic_render(None, DESIRED) == [
        "ecnconfig -p AZURE_LOSSLESS -gmin 102400 -gmax 409600 -gdrop 20",
        f"config buffer profile set {PROFILE} --xon 18432 --xoff 184320 --size 202752",
        f"config mmu -p {PROFILE} -a -3",
        "ecnconfig -q 3 on",
        "config interface pfc priority Ethernet0 3 on",
        "config interface pfc priority Ethernet4 3 on",
    ]


def test_sonic_diff_only_and_empty_when_equal() -> None:
    assert sonic_render(DESIRED, DESIRED) == []
    changed = DESIRED.model_copy(
        update={"waterlines": {3: W.model_copy(update={"kmax_bytes": 512_000})}}
    )
    assert sonic_render(DESIRED, changed) == [
        "ecnconfig -p AZURE_LOSSLESS -gmin 102400 -gmax 512000 -gdrop 20",
    ]
    more = DESIRED.model_copy(update={"pfc_priorities": (3, 4)})
    assert sonic_render(DESIRED, more) == [
        "config interface pfc priority Ethernet0 4 on",
        "config interface pfc priority Ethernet4 4 on",
    ]


def test_sonic_round_trip_and_rollback() -> None:
    sw = FakeSonic(ports=SONIC_PORTS)
    before = sonic_read_back(sw)
    sw.apply(sonic_render(before, DESIRED))
    after = sonic_read_back(sw)
    assert qos_differences(SR.quantize(DESIRED), after) == []
    assert sonic_render(after, DESIRED) == []  # idempotent: nothing left to change
    sw.apply(SR.render_rollback(after, before, interfaces=SONIC_PORTS, buffer_profile=PROFILE))
    assert sonic_read_back(sw) == before


def test_sonic_one_profile_for_all_lossless_queues() -> None:
    other = W.model_copy(update={"kmin_bytes": 50_000})
    cfg = QosConfig(pfc_priorities=(3, 4), ecn_queues=(3, 4), waterlines={3: W, 4: other})
    with pytest.raises(ValidationFailed, match="one profile"):
        sonic_render(None, cfg)


# ---------------------------------------------------------------------------------------------
# Comware
# ---------------------------------------------------------------------------------------------


def cw_read_back(sw: FakeComware) -> QosConfig:
    return CP.build_qos_config(CP.parse_current_configuration(sw.current_configuration()),
                               interfaces=CW_PORTS)


def test_comware_full_render() -> None:
    assert CR.render_qos(None, DESIRED, interfaces=CW_PORTS) == [
        "system-view",
        "qos wred queue table WATERLINE",
        "queue 3 drop-level 0 low-limit 400 high-limit 1600 discard-probability 20",
        "queue 3 drop-level 1 low-limit 400 high-limit 1600 discard-probability 20",
        "queue 3 drop-level 2 low-limit 400 high-limit 1600 discard-probability 20",
        "queue 3 weighting-constant 0",
        "queue 3 ecn",
        "quit",
        "interface HundredGigE1/0/1",
        "qos wred apply WATERLINE",
        "priority-flow-control enable",
        "priority-flow-control no-drop dot1p 3",
        "priority-flow-control dot1p 3 headroom 720",
        "priority-flow-control dot1p 3 ingress-buffer dynamic 11",
        "priority-flow-control dot1p 3 ingress-threshold-offset 72",
        "quit",
        "interface HundredGigE1/0/2",
        "qos wred apply WATERLINE",
        "priority-flow-control enable",
        "priority-flow-control no-drop dot1p 3",
        "priority-flow-control dot1p 3 headroom 720",
        "priority-flow-control dot1p 3 ingress-buffer dynamic 11",
        "priority-flow-control dot1p 3 ingress-threshold-offset 72",
        "quit",
        "return",
    ]


def test_comware_diff_only() -> None:
    assert CR.render_qos(DESIRED, DESIRED, interfaces=CW_PORTS) == []
    alpha = DESIRED.model_copy(update={"waterlines": {3: W.model_copy(update={"alpha": 1.0})}})
    assert CR.render_qos(DESIRED, alpha, interfaces=CW_PORTS[:1]) == [
        "system-view",
        "interface HundredGigE1/0/1",
        "priority-flow-control dot1p 3 ingress-buffer dynamic 50",
        "quit",
        "return",
    ]


def test_comware_round_trip_rollback_and_units() -> None:
    sw = FakeComware(interfaces=CW_PORTS)
    before = cw_read_back(sw)
    assert before == QosConfig()
    sw.apply(CR.render_qos(before, DESIRED, interfaces=CW_PORTS))
    after = cw_read_back(sw)
    assert after == CR.quantize(DESIRED)
    assert qos_differences(CR.quantize(DESIRED), after) == []
    assert CR.render_qos(after, DESIRED, interfaces=CW_PORTS) == []
    sw.apply(CR.render_rollback(after, before, interfaces=CW_PORTS))
    assert cw_read_back(sw) == before
    # Non-cell-aligned bytes: quantised to cells; bytes -> cells -> bytes is then stable.
    odd = QosConfig(ecn_queues=(3,), waterlines={3: Waterlines(
        kmin_bytes=100_000, kmax_bytes=400_001, pmax=0.015, xoff_bytes=100_001,
        xon_bytes=10_000)})
    q = CR.quantize(odd)
    assert q.waterlines[3] == Waterlines(kmin_bytes=391 * 256, kmax_bytes=1563 * 256, pmax=0.02,
                                         xoff_bytes=391 * 256, xon_bytes=39 * 256,
                                         headroom_bytes=430 * 256)
    assert CR.quantize(q) == q
    sw.apply(CR.render_qos(cw_read_back(sw), odd, interfaces=CW_PORTS))
    assert cw_read_back(sw) == q


def test_comware_other_cell_size() -> None:
    units = CP.ComwareUnits(cell_bytes=208)
    lines = CR.render_qos(None, DESIRED, interfaces=CW_PORTS[:1], units=units)
    assert "queue 3 drop-level 0 low-limit 492 high-limit 1969 discard-probability 20" in lines
    assert "priority-flow-control dot1p 3 headroom 887" in lines  # ceil(184320 / 208)


def test_comware_headroom_must_be_xoff_plus_xon() -> None:
    bad = DESIRED.model_copy(update={"waterlines": {3: W.model_copy(
        update={"headroom_bytes": 300_000})}})
    with pytest.raises(ValidationFailed, match="xoff_bytes \\+ xon_bytes"):
        CR.render_qos(None, bad, interfaces=CW_PORTS)


# ---------------------------------------------------------------------------------------------
# Refusals: nothing is rendered
# ---------------------------------------------------------------------------------------------

INJECTIONS = [
    "Ethernet0\nconfig reload -y",
    "Ethernet0; rm -rf /",
    "Ethernet0 | tee x",
    "Ethernet0 && reboot",
    "Ethernet0$(reboot)",
    "Ethernet0`id`",
    "Ethernet0\r",
    "Ethernet0\x00",
    "Ethernet0\x1b[2J",
    "Ethernet０",  # fullwidth digit
    "Éthernet0",
    "Ethernet0 ",
    "'Ethernet0'",
    "",
]


@pytest.mark.parametrize("name", INJECTIONS)
def test_sonic_refuses_injected_interface(name: str) -> None:
    with pytest.raises(ValidationFailed, match="interface"):
        SR.render_qos(None, DESIRED, interfaces=[name], buffer_profile=PROFILE,
                      inventory=[name])


@pytest.mark.parametrize("name", [n.replace("Ethernet0", "HundredGigE1/0/1") for n in INJECTIONS])
def test_comware_refuses_injected_interface(name: str) -> None:
    with pytest.raises(ValidationFailed, match="interface"):
        CR.render_qos(None, DESIRED, interfaces=[name], inventory=[name])


def test_interfaces_must_be_in_inventory_and_match_the_nos() -> None:
    with pytest.raises(ValidationFailed, match="inventory"):
        SR.render_qos(None, DESIRED, interfaces=["Ethernet8"], buffer_profile=PROFILE,
                      inventory=SONIC_PORTS)
    with pytest.raises(ValidationFailed, match="does not match"):
        SR.render_qos(None, DESIRED, interfaces=["HundredGigE1/0/1"], buffer_profile=PROFILE)
    with pytest.raises(ValidationFailed, match="does not match"):
        CR.render_qos(None, DESIRED, interfaces=["HGE1/0/1"])
    with pytest.raises(ValidationFailed, match="listed twice"):
        CR.render_qos(None, DESIRED, interfaces=CW_PORTS + CW_PORTS[:1])


@pytest.mark.parametrize("name", ["AZURE;LOSSLESS", "x y", "a|b", "prof\n", "ünï", "1abc", "a" * 64])
def test_profile_and_table_names_whitelisted(name: str) -> None:
    with pytest.raises(ValidationFailed):
        SR.render_qos(None, DESIRED, interfaces=SONIC_PORTS, buffer_profile=name)
    with pytest.raises(ValidationFailed):
        SR.render_qos(None, DESIRED, interfaces=SONIC_PORTS, buffer_profile=PROFILE,
                      wred_profile=name)
    with pytest.raises(ValidationFailed):
        CR.render_qos(None, DESIRED, interfaces=CW_PORTS, table=name)


NONSENSE: list[tuple[dict[str, object], str]] = [
    ({"kmin_bytes": -1}, "kmin_bytes"),
    ({"kmin_bytes": 0}, "kmin_bytes"),
    ({"kmin_bytes": 409_600}, "below Kmax"),
    ({"kmin_bytes": 500_000}, "below Kmax"),
    ({"kmax_bytes": 10**12}, "kmax_bytes"),
    ({"kmin_bytes": 1.5}, "integral"),
    ({"pmax": 0.0}, "pmax"),
    ({"pmax": -0.1}, "pmax"),
    ({"pmax": 1.5}, "pmax"),
    ({"pmax": float("nan")}, "pmax"),
    ({"xon_bytes": 184_320}, "xon"),
    ({"xoff_bytes": -5}, "xoff"),
    ({"alpha": 0.3}, "power of two"),
    ({"alpha": 16.0}, "alpha"),
    ({"alpha": 0.0}, "alpha"),
]


@pytest.mark.parametrize(("update", "field"), NONSENSE)
def test_nonsense_numbers_refused(update: dict[str, object], field: str) -> None:
    bad = QosConfig.model_construct(pfc_priorities=(3,), ecn_queues=(3,),
                                    waterlines={3: W.model_construct(**{**W.model_dump(),
                                                                         **update})})
    with pytest.raises(ValidationFailed, match=field):
        sonic_render(None, bad)
    with pytest.raises(ValidationFailed, match=field):
        CR.render_qos(None, bad, interfaces=CW_PORTS)


def test_structural_refusals() -> None:
    with pytest.raises(ValidationFailed, match="enable ECN"):
        sonic_render(None, QosConfig(waterlines={3: W}))
    with pytest.raises(ValidationFailed, match="needs its waterlines"):
        sonic_render(None, QosConfig(ecn_queues=(3,)))
    with pytest.raises(ValidationFailed, match="pfc_priorities"):
        CR.render_qos(None, QosConfig.model_construct(pfc_priorities=(9,), ecn_queues=(),
                                                      waterlines={}), interfaces=CW_PORTS)
    with pytest.raises(ValidationFailed, match="buffer"):
        sonic_render(None, DESIRED, buffer_bytes=300_000)
    with pytest.raises(ValidationFailed, match="Kmin and Kmax"):
        CR.render_qos(None, DESIRED.model_copy(update={"waterlines": {3: W.model_copy(
            update={"kmin_bytes": 300, "kmax_bytes": 380})}}), interfaces=CW_PORTS)


def test_rollback_relaxes_policy_not_safety() -> None:
    odd = QosConfig(ecn_queues=(3,), waterlines={3: Waterlines(
        kmin_bytes=400_000, kmax_bytes=400_000, pmax=0.05)})
    with pytest.raises(ValidationFailed):
        sonic_render(DESIRED, odd)
    assert SR.render_rollback(DESIRED, odd, interfaces=SONIC_PORTS, buffer_profile=PROFILE)[0] \
        == "ecnconfig -p AZURE_LOSSLESS -gmin 400000 -gmax 400000 -gdrop 5"
    with pytest.raises(ValidationFailed):
        SR.render_rollback(DESIRED, odd, interfaces=["Ethernet0;reboot"], buffer_profile=PROFILE)
