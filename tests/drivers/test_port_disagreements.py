"""Switches whose ports differ are refused for changes (a switch-wide summary would lose the
per-port values, and a rollback could not restore them)."""

from __future__ import annotations

import re
from pathlib import Path

from app.drivers.comware import parsers as C
from app.drivers.sonic import parsers as S

RECORDED = Path(__file__).parent / "recorded"
LOSSLESS = re.compile(r"^pg_lossless_\d+_\d+m_profile$")


def test_sonic_uniform_ports_agree() -> None:
    rows = S.parse_pfc_priority((RECORDED / "sonic" / "show_pfc_priority.txt").read_text())
    assert S.port_disagreements(rows, None, ["Ethernet0", "Ethernet4"], LOSSLESS) == []


def test_sonic_pfc_differing_between_ports() -> None:
    rows = S.parse_pfc_priority((RECORDED / "sonic" / "show_pfc_priority.txt").read_text())
    problems = S.port_disagreements(rows, None, ["Ethernet0", "Ethernet4", "Ethernet8"],
                                    LOSSLESS)
    assert len(problems) == 1
    assert "PFC priorities differ between ports" in problems[0]
    assert "Ethernet0 +1: [3, 4]" in problems[0] and "Ethernet8: [3]" in problems[0]


def test_comware_uniform_interfaces_agree() -> None:
    running = C.parse_current_configuration(
        (RECORDED / "comware" / "display_current_configuration.txt").read_text())
    assert C.port_disagreements(running, interfaces=["HundredGigE1/0/1",
                                                     "HundredGigE1/0/2"]) == []


def test_comware_headroom_differing_between_interfaces() -> None:
    text = (RECORDED / "comware" / "display_current_configuration.txt").read_text()
    lines = text.splitlines()
    # the second interface gets another headroom
    second = next(i for i, line in enumerate(lines) if line == "interface HundredGigE1/0/2")
    for i in range(second, len(lines)):
        if "dot1p 3 headroom" in lines[i]:
            lines[i] = " priority-flow-control dot1p 3 headroom 900"
            break
    running = C.parse_current_configuration("\n".join(lines) + "\n")
    problems = C.port_disagreements(running, interfaces=["HundredGigE1/0/1",
                                                         "HundredGigE1/0/2"])
    assert problems == ["headroom differs between interfaces (HundredGigE1/0/1: ((3, 720),); "
                        "HundredGigE1/0/2: ((3, 900),))"]
