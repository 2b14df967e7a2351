"""Comware parsers against recorded Comware 7 output (exact numbers) and malformed output."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from app.drivers.comware import parsers as P
from app.drivers.errors import ParseError
from app.drivers.models import QosConfig, QueueSample, Waterlines

RECORDED = Path(__file__).parent / "recorded" / "comware"


def rec(name: str) -> str:
    return (RECORDED / name).read_text()


def by_key(rows: list[QueueSample]) -> dict[tuple[str, int], dict[str, object]]:
    return {(r.interface, r.priority): r.present() for r in rows}


def test_interface_names_normalised() -> None:
    assert P.normalize_interface("HGE1/0/1") == "HundredGigE1/0/1"
    assert P.normalize_interface("hundredgige 1/0/1") == "HundredGigE1/0/1"
    assert P.normalize_interface("XGE1/0/2") == "Ten-GigabitEthernet1/0/2"
    assert P.normalize_interface("WGE1/0/3:2") == "TwentyFiveGigE1/0/3:2"
    assert P.normalize_interface("FourHundredGigE1/0/95") == "FourHundredGigE1/0/95"
    with pytest.raises(ValueError):
        P.normalize_interface("1/0/1")


# ---------------------------------------------------------------------------------------------
# display priority-flow-control interface
# ---------------------------------------------------------------------------------------------


def test_pfc_interface_rows_per_priority() -> None:
    rows = by_key(P.parse_pfc_interface(rec("display_pfc_interface.txt")))
    assert len(rows) == 17
    assert rows[("HundredGigE1/0/1", 3)] == {
        "interface": "HundredGigE1/0/1", "priority": 3,
        "rx_pause_frames": 123_456, "tx_pause_frames": 7_890,
    }
    assert rows[("HundredGigE1/0/2", 3)]["rx_pause_frames"] == 246_912
    # Empty Dot1pList column (PFC disabled) is not mistaken for a shifted row.
    assert rows[("TwentyFiveGigE1/0/3", 0)]["tx_pause_frames"] == 0


def test_pfc_interface_wrapped_at_80_columns() -> None:
    rows = by_key(P.parse_pfc_interface(rec("display_pfc_interface_wrapped.txt")))
    assert rows == {
        ("TwentyFiveGigE1/0/1", 0): {"interface": "TwentyFiveGigE1/0/1", "priority": 0,
                                     "rx_pause_frames": 5, "tx_pause_frames": 5},
        # "1,048,576" was split at the screen edge ("1,048,57" / "6").
        ("HundredGigE1/0/49", 3): {"interface": "HundredGigE1/0/49", "priority": 3,
                                   "rx_pause_frames": 1_048_576, "tx_pause_frames": 2_097_152},
        ("HundredGigE1/0/49", 4): {"interface": "HundredGigE1/0/49", "priority": 4},
    }


def test_pfc_interface_legacy_format() -> None:
    rows = by_key(P.parse_pfc_interface(rec("display_pfc_interface_legacy.txt")))
    assert rows[("Ten-GigabitEthernet1/0/1", 3)]["rx_pause_frames"] == 2_178
    assert rows[("Ten-GigabitEthernet1/0/1", 3)]["tx_pause_frames"] == 1_043
    assert rows[("Ten-GigabitEthernet1/0/2", 3)]["rx_pause_frames"] == 0


def test_pfc_interface_continuation_rows_and_pager() -> None:
    text = rec("display_pfc_interface.txt")
    lines = text.splitlines()
    # Later rows of one interface printed without the interface columns.
    lines[4] = " " * 66 + "1     11         12         0          0"
    lines[6] = "  ---- More ----\x1b[16D                \x1b[16D" + lines[6]
    rows = by_key(P.parse_pfc_interface("\n".join(lines)))
    assert rows[("HundredGigE1/0/1", 1)]["rx_pause_frames"] == 11
    assert rows[("HundredGigE1/0/1", 3)]["tx_pause_frames"] == 7_890


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("123456", "12345x", "not a counter"),
        ("Enabled    Enabled   3           3", "Enabled    Maybe     3           3", "mode"),
        ("3           3     123456", "3           9     123456", "not a priority"),
        ("7890       5", "7890       5     9", "cells"),
    ],
)
def test_pfc_interface_garbage_is_loud(old: str, new: str, message: str) -> None:
    text = rec("display_pfc_interface.txt")
    assert old in text
    with pytest.raises(ParseError, match=message) as exc:
        P.parse_pfc_interface(text.replace(old, new, 1))
    assert "display priority-flow-control interface" in str(exc.value)


def test_pfc_interface_no_header_or_rows() -> None:
    text = rec("display_pfc_interface.txt")
    with pytest.raises(ParseError, match="without a header"):
        P.parse_pfc_interface("\n".join(text.splitlines()[3:]))
    with pytest.raises(ParseError, match="no rows"):
        P.parse_pfc_interface("\n".join(text.splitlines()[:3]))
    with pytest.raises(ParseError):
        P.parse_pfc_interface("")


# ---------------------------------------------------------------------------------------------
# display qos queue-statistics interface X outbound
# ---------------------------------------------------------------------------------------------


def test_queue_statistics_one_interface() -> None:
    rows = by_key(P.parse_queue_statistics(rec("display_qos_queue_statistics.txt")))
    assert sorted(rows) == [("HundredGigE1/0/1", q) for q in range(8)]
    assert rows[("HundredGigE1/0/1", 3)] == {
        "interface": "HundredGigE1/0/1", "priority": 3, "tx_packets": 4_000,
        "tx_bytes": 4_096_000, "drop_packets": 3, "drop_bytes": 4_500,
    }


def test_queue_statistics_all_interfaces_with_pager_remnant() -> None:
    rows = by_key(P.parse_queue_statistics(rec("display_qos_queue_statistics_more.txt")))
    assert len(rows) == 16
    assert rows[("HundredGigE1/0/2", 7)]["tx_bytes"] == 24_576_000
    assert rows[("HundredGigE1/0/1", 5)]["drop_packets"] == 10


def test_queue_statistics_optional_lines() -> None:
    text = (
        "Interface: HundredGigE1/0/1\n Direction: outbound\n Queue 3\n"
        "  Forwarded: 10 packets, 10,240 bytes, 0 pps, 0 bps\n"
        "  Dropped: 0 packets, 0 bytes\n"
        "  ECN marked: 7 packets, 7,168 bytes\n"
        "  Current queue length: 3,000 bytes\n"
    )
    (row,) = P.parse_queue_statistics(text)
    assert row.present() == {"interface": "HundredGigE1/0/1", "priority": 3, "tx_packets": 10,
                             "tx_bytes": 10_240, "ecn_marked_packets": 7,
                             "ecn_marked_bytes": 7_168, "drop_packets": 0, "drop_bytes": 0,
                             "occupancy_bytes": 3_000}


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("4000 packets", "40O0 packets", "not a counter"),
        ("4000 packets", "4000 pockets", "cannot read"),
        (" Queue 3", " Queue 2", "listed twice"),
        ("Direction: outbound", "Direction: inbound", "not outbound"),
        ("  Dropped: 3 packets", "  Dropped 3 packets", "unexpected line"),
    ],
)
def test_queue_statistics_garbage_is_loud(old: str, new: str, message: str) -> None:
    text = rec("display_qos_queue_statistics.txt")
    assert old in text
    with pytest.raises(ParseError, match=message):
        P.parse_queue_statistics(text.replace(old, new, 1))


# ---------------------------------------------------------------------------------------------
# display buffer usage / display qos wred table
# ---------------------------------------------------------------------------------------------


def test_buffer_usage_egress_cells_to_bytes() -> None:
    rows = by_key(P.parse_buffer_usage(rec("display_buffer_usage.txt")))
    assert len(rows) == 8
    assert rows[("HundredGigE1/0/1", 3)] == {"interface": "HundredGigE1/0/1", "priority": 3,
                                             "occupancy_bytes": 1_234 * 256,
                                             "watermark_bytes": 5_678 * 256}
    rows = by_key(P.parse_buffer_usage(rec("display_buffer_usage.txt"),
                                       units=P.ComwareUnits(cell_bytes=208)))
    assert rows[("HundredGigE1/0/1", 3)]["occupancy_bytes"] == 1_234 * 208


def test_buffer_usage_garbage() -> None:
    text = rec("display_buffer_usage.txt")
    with pytest.raises(ParseError, match="not a counter"):
        P.parse_buffer_usage(text.replace("5678", "56x8"))
    with pytest.raises(ParseError, match="cells, header"):
        P.parse_buffer_usage(text.replace("5678", "5678  9"))
    # the last digit garbled into "%": a percentage where the header says cells
    with pytest.raises(ParseError, match="percentage in the used column"):
        P.parse_buffer_usage(text.replace("1234 ", "123% "))
    with pytest.raises(ParseError, match="percentage in the total column"):
        P.parse_buffer_usage(text.replace("131072        7 ", "13107%        7 "))
    # a "%" where the column is one of percentages is the unit, not garbage
    rows = by_key(P.parse_buffer_usage(text.replace("  70   ", " 70%   ")))
    assert rows[("HundredGigE1/0/1", 3)]["occupancy_bytes"] == 1_234 * 256


def test_wred_table() -> None:
    tables = {t.name: t for t in P.parse_wred_table(rec("display_qos_wred_table.txt"))}
    q3 = tables["WATERLINE"].queues[3]
    assert (q3.green_low, q3.green_high, q3.green_probability, q3.exponent, q3.ecn) == (
        400, 2000, 5, 0, True)
    assert tables["queue-table1"].queues[3].ecn is False
    assert tables["queue-table1"].queues[0].green_high == 1000
    text = rec("display_qos_wred_table.txt")
    with pytest.raises(ParseError, match="above 100"):
        P.parse_wred_table(text.replace("400   2000  5      ", "400   2000  500    ", 1))
    with pytest.raises(ParseError, match="bad ECN"):
        P.parse_wred_table(text.replace("0         Y", "0         Q", 1))
    with pytest.raises(ParseError, match="without gmax"):
        P.parse_wred_table(text.replace("gmax", "gmux", 1))


# ---------------------------------------------------------------------------------------------
# display current-configuration
# ---------------------------------------------------------------------------------------------


def test_current_configuration_to_qos_config() -> None:
    running = P.parse_current_configuration(rec("display_current_configuration.txt"))
    assert running.wred_tables["WATERLINE"].queues[3].levels[2] == (400, 2000, 5)
    assert running.wred_tables["WATERLINE"].queues[0].levels[1] == (100, 1000, 10)
    hge1 = running.interfaces["HundredGigE1/0/1"]
    assert (hge1.pfc_mode, hge1.no_drop, hge1.headroom, hge1.dynamic, hge1.threshold_offset,
            hge1.wred_table) == ("enable", (3,), {3: 720}, {3: 11}, {3: 72}, "WATERLINE")
    cfg = P.build_qos_config(running, interfaces=["HundredGigE1/0/1", "HundredGigE1/0/2"])
    assert cfg == QosConfig(
        pfc_priorities=(3,),
        ecn_queues=(3,),
        waterlines={3: Waterlines(kmin_bytes=400 * 256, kmax_bytes=2000 * 256, pmax=0.05,
                                  xoff_bytes=720 * 256, xon_bytes=72 * 256,
                                  headroom_bytes=792 * 256, alpha=0.125)},
    )


def test_current_configuration_disagreeing_interfaces() -> None:
    text = rec("display_current_configuration.txt")
    # The second port lost its headroom and PFC: neither is reported switch-wide.
    text = text.replace(
        " priority-flow-control enable\n priority-flow-control no-drop dot1p 3\n"
        " priority-flow-control dot1p 3 headroom 720\n priority-flow-control dot1p 3 "
        "ingress-buffer dynamic 11\n priority-flow-control dot1p 3 ingress-threshold-offset 72\n"
        " qos trust dscp\n qos wred apply WATERLINE\n#\ninterface M-",
        " qos trust dscp\n qos wred apply WATERLINE\n#\ninterface M-",
    )
    running = P.parse_current_configuration(text)
    cfg = P.build_qos_config(running, interfaces=["HundredGigE1/0/1", "HundredGigE1/0/2"])
    assert cfg.pfc_priorities == ()
    assert cfg.waterlines[3].xoff_bytes is None and cfg.waterlines[3].alpha is None
    # A WRED table applied to only one port is not the switch's ECN configuration.
    cfg = P.build_qos_config(running, interfaces=["HundredGigE1/0/1", "M-GigabitEthernet0/0/0"])
    assert cfg.ecn_queues == () and cfg.waterlines == {}


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("dot1p 3 headroom 720", "dot1p 3 headroom 72O", "PFC buffer line"),
        ("ingress-buffer dynamic 11", "ingress-buffer dynamic 111", "above 100"),
        ("queue 3 drop-level 1 low-limit 400", "queue 3 drop-level 1 low-limit 4OO", "WRED"),
        ("no-drop dot1p 3", "no-drop dot1p 9", "priority list"),
    ],
)
def test_current_configuration_garbage(old: str, new: str, message: str) -> None:
    text = rec("display_current_configuration.txt")
    with pytest.raises(ParseError, match=message):
        P.parse_current_configuration(text.replace(old, new, 1))


def test_dot1p_lists_and_alpha_bands() -> None:
    text = ("interface HundredGigE1/0/1\n priority-flow-control enable\n"
            " priority-flow-control no-drop dot1p 3 to 4 6\n"
            " priority-flow-control dot1p 3 4 ingress-buffer dynamic 6\n#\nreturn\n")
    running = P.parse_current_configuration(text)
    assert running.interfaces["HundredGigE1/0/1"].no_drop == (3, 4, 6)
    assert running.interfaces["HundredGigE1/0/1"].dynamic == {3: 6, 4: 6}
    # H3C band table: 6..11 % is alpha 1/8, 81..100 % is alpha 8.
    assert [P.percent_to_alpha_exponent(x) for x in (0, 1, 2, 6, 11, 12, 33, 34, 50, 88, 100)] \
        == [-7, -6, -5, -3, -3, -2, -1, 0, 0, 3, 3]
    assert P.ALPHA_TO_PERCENT == {-7: 0, -6: 1, -5: 3, -4: 5, -3: 11, -2: 20, -1: 33, 0: 50,
                                  1: 66, 2: 80, 3: 88}


def test_mixed_thousands_separators_are_a_corrupted_digit() -> None:
    text = rec("display_qos_queue_statistics.txt")
    # 4096000 with a digit turned into a comma would read as another valid number.
    with pytest.raises(ParseError, match="mixed thousands separators"):
        P.parse_queue_statistics(text.replace("4096000", "40,6000").replace("40,6000", "4,096"))
    with pytest.raises(ParseError, match="mixed thousands separators"):
        P.parse_pfc_interface(rec("display_pfc_interface.txt").replace("123456", "12,456"))


def test_current_configuration_cut_short() -> None:
    text = rec("display_current_configuration.txt")
    with pytest.raises(ParseError, match="return"):
        P.parse_current_configuration(text.split("interface HundredGigE1/0/2")[0])
    with pytest.raises(ParseError, match="after 'return'"):
        P.parse_current_configuration(text + "interface HundredGigE1/0/9\n")


def test_switch_errors_are_reported_as_such() -> None:
    text = ("<leaf1>display priority-flow-control interfaze\n"
            "                                           ^\n"
            " % Unrecognized command found at '^' position.\n")
    with pytest.raises(ParseError, match="reported an error"):
        P.parse_pfc_interface(text)


@pytest.mark.parametrize("first", ["<", "["])
def test_a_garbled_table_rule_does_not_hang_the_parser(first: str) -> None:
    """A table rule whose first dash became "<" or "[" looks like the start of a prompt; the
    prompt pattern once backtracked exponentially on the dashes after it (found by an
    exhaustive single-character corruption of the recorded output). Run in a child process:
    a regular expression stuck in C cannot be interrupted from Python."""
    text = rec("display_pfc_interface.txt")
    rule = next(i for i, line in enumerate(text.splitlines(keepends=True))
                if line.startswith("-----"))
    lines = text.splitlines(keepends=True)
    lines[rule] = first + lines[rule][1:]
    garbled = "".join(lines)
    code = ("import sys\n"
            "from app.drivers.comware import parsers as P\n"
            "from app.drivers.errors import ParseError\n"
            "try:\n"
            "    rows = P.parse_pfc_interface(sys.stdin.read())\n"
            "    print('rows', len(rows))\n"
            "except ParseError as exc:\n"
            "    print('refused', exc)\n")
    done = subprocess.run([sys.executable, "-c", code], input=garbled, capture_output=True,
                          text=True, timeout=60, cwd=Path(__file__).parents[2], check=True)
    # the garbled rule is either skipped like an echoed prompt or refused, never a hang
    expected = f"rows {len(P.parse_pfc_interface(text))}\n"
    assert done.stdout == expected or done.stdout.startswith("refused"), done.stdout + done.stderr
