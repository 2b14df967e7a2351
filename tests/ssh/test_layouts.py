"""The emulators' table layouts reproduce the recorded real-device outputs byte for byte when
given the same cells (tests/drivers/recorded)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fabricsim.ssh.comware import short_name
from fabricsim.ssh.text import columns, key_value_block, tabulate_simple

RECORDED = Path(__file__).parent.parent / "drivers" / "recorded"


def _tables(text: str) -> list[tuple[list[str], list[list[str]]]]:
    """(header cells, rows) of each tabulate table; header cells may contain one space."""
    lines = text.splitlines()
    out = []
    for i, line in enumerate(lines):
        if i + 1 < len(lines) and lines[i + 1].startswith("---") and line.strip():
            widths = [len(seg) for seg in lines[i + 1].split("  ")]
            header, pos = [], 0
            for w in widths:
                header.append(line[pos:pos + w].strip())
                pos += w + 2
            rows = []
            for row in lines[i + 2:]:
                if not row.strip() or row.startswith("---"):
                    break
                rows.append(row.split())
            out.append((header, rows))
    return out


@pytest.mark.parametrize("name", [
    "show_pfc_counters.txt", "show_queue_wredcounters.txt", "show_queue_watermark_unicast.txt",
    "show_pg_watermark_shared.txt", "show_pg_watermark_headroom.txt",
])
def test_sonic_tables(name: str) -> None:
    text = (RECORDED / "sonic" / name).read_text()
    rendered = []
    for header, rows in _tables(text):
        rendered.append("\n".join(tabulate_simple(header, rows)))
    body = [line for line in text.splitlines() if not line.endswith(":")]
    assert "\n\n".join(rendered) == "\n".join(body).strip("\n")


def test_sonic_queue_counters_block() -> None:
    text = (RECORDED / "sonic" / "show_queue_counters.txt").read_text()
    block = text.split("\n\n")[0].splitlines()[1:]  # without "For namespace :"
    header, rows = _tables("\n".join(block))[0]
    assert tabulate_simple(header, rows) == block


def test_sonic_key_value_blocks() -> None:
    text = (RECORDED / "sonic" / "show_ecn.txt").read_text()
    rendered: list[str] = []
    for chunk in text.strip("\n").split("\n\n"):
        lines = chunk.splitlines()
        pairs = [(ln.split(None, 1)[0], ln.split(None, 1)[1].strip()) for ln in lines[2:-1]]
        rendered += key_value_block(lines[0], pairs)
    assert "\n".join(rendered).strip("\n") == text.strip("\n")


def test_sonic_pfc_priority_left_aligned() -> None:
    text = (RECORDED / "sonic" / "show_pfc_priority.txt").read_text()
    rows = [ln.split() for ln in text.splitlines()[3:] if ln.strip()]
    rows = [r if len(r) == 2 else [r[0], ""] for r in rows]
    lines = tabulate_simple(["Interface", "Lossless priorities"], rows, align="left")
    assert lines == [ln.rstrip() for ln in text.splitlines()[1:] if ln.strip()]


def test_comware_pfc_table() -> None:
    text = (RECORDED / "comware" / "display_pfc_interface.txt").read_text().splitlines()
    widths = [33, 11, 10, 12, 6, 11, 11, 11]
    assert columns(["Interface", "AdminMode", "OperMode", "Dot1pList", "Prio", "Recv", "Send",
                    "Inpps", "Outpps"], widths) == text[1]
    for line in text[3:-1]:
        cells = [line[0:33].strip(), line[33:44].strip(), line[44:54].strip(),
                 line[54:66].strip(), *line[66:].split()]
        assert columns(cells, widths) == line
    assert short_name("HundredGigE1/0/1") == "HGE1/0/1"
    assert short_name("TwentyFiveGigE1/0/3") == "WGE1/0/3"


def test_comware_buffer_usage_rows() -> None:
    text = (RECORDED / "comware" / "display_buffer_usage.txt").read_text().splitlines()
    assert text[3] == "  QueueID  Total(cells)  Used(cells)  Peak(cells)  Threshold(%)  Violations"
    assert text[4] == "  " + "-" * 69
    for line in text[5:13]:
        assert "  " + columns(line.split(), [9, 14, 13, 13, 14]) == line
