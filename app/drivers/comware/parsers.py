"""Parsers of H3C Comware 7 display output, one per command, and the device units.

Formats follow the H3C/HPE Comware 7 command references (S6850/S9850/S9825 data-center
series): Comware prints abbreviated interface names in tables (``HGE1/0/1``) and full names in
configuration (``HundredGigE1/0/1``); parsers return full names (:func:`normalize_interface`)
so rows match the inventory. Echoed prompts (``<sw>``, ``[sw-HundredGigE1/0/1]``), pager
remnants (``---- More ----`` plus its ANSI erase sequences) and lines wrapped at 80 columns
are tolerated; anything that cannot be read exactly raises :class:`ParseError` naming the
command and the line. ``N/A`` is ``None``, never 0.

Device units (:class:`ComwareUnits`): WRED low/high limits, PFC headroom and the PFC
threshold offset are in buffer *cells*; discard probability in whole percent; the
``ingress-buffer dynamic`` threshold is a percentage that selects a dynamic-threshold alpha
(H3C RDMA technical reference table: share = alpha / (1 + alpha)).

Telemetry choices (what the Comware driver should run):
- ``display priority-flow-control interface`` -> rx/tx_pause_frames (Recv/Send columns).
- ``display qos queue-statistics interface X outbound`` -> tx/drop packets and bytes per queue.
- ``display buffer usage interface X verbose`` -> occupancy (Used) and watermark (Peak) per
  egress queue, converted from cells.
- Read-back of the QoS config: ``display current-configuration`` (WRED table + interface PFC
  lines), assembled by :func:`build_qos_config`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from app.drivers.errors import ParseError
from app.drivers.models import QosConfig, QueueSample, Waterlines
from app.drivers.vendor_common import (
    SeparatorStyle,
    check_printable,
    cleaned,
    is_rule,
    looks_like_data,
    parse_count,
    parse_priority_list,
    parse_setting,
)

DISPLAY_PFC = "display priority-flow-control interface"
DISPLAY_QUEUE_STATISTICS = "display qos queue-statistics interface outbound"
DISPLAY_WRED_TABLE = "display qos wred table"
DISPLAY_BUFFER_USAGE = "display buffer usage interface verbose"
DISPLAY_CURRENT_CONFIGURATION = "display current-configuration"

# --------------------------------------------------------------------------------------------
# Units
# --------------------------------------------------------------------------------------------

DEFAULT_CELL_BYTES = 256
"""Buffer cell of the Trident 3 class (H3C S6850/S9850, 32 MB). Tomahawk/Tomahawk 2 use 208
(S9820-64H), Tomahawk 3/4 and Trident 4 254: pass the switch's cell size in ComwareUnits."""

DEFAULT_WRED_LIMITS = (100, 1000, 10)
"""Comware's defaults for a WRED-table queue: low-limit 100, high-limit 1000, 10%."""

# ingress-buffer dynamic <percent> -> alpha = 2**n: the percentage is the shared-buffer share
# alpha/(1+alpha); each alpha covers a band of percentages (H3C RDMA technical reference).
_DYNAMIC_BANDS: tuple[tuple[int, int], ...] = (
    (-7, 0), (-6, 1), (-5, 3), (-4, 5), (-3, 11), (-2, 20), (-1, 33), (0, 50), (1, 66),
    (2, 80), (3, 100),
)
ALPHA_TO_PERCENT: dict[int, int] = {
    n: math.floor(100 * 2.0**n / (1 + 2.0**n)) for n, _ in _DYNAMIC_BANDS
}
"""alpha exponent -> the percentage Waterline renders (the floor of the share: 0,1,3,5,11,20,
33,50,66,80,88)."""


def percent_to_alpha_exponent(percent: int) -> int:
    """``ingress-buffer dynamic`` percentage (0..100) -> alpha exponent n (alpha = 2**n)."""
    if not 0 <= percent <= 100:
        raise ValueError(f"dynamic threshold {percent}% outside 0..100")
    for n, upper in _DYNAMIC_BANDS:
        if percent <= upper:
            return n
    raise AssertionError("unreachable")  # pragma: no cover


@dataclass(frozen=True)
class ComwareUnits:
    """Conversion between bytes and Comware's buffer cells, explicit and documented.

    WRED limits and the threshold offset round to the nearest cell (at least one); headroom
    rounds up so a switch never gets less headroom than asked. ``bytes -> cells -> bytes`` is
    stable: quantised values convert back to themselves.
    """

    cell_bytes: int = DEFAULT_CELL_BYTES

    def __post_init__(self) -> None:
        if isinstance(self.cell_bytes, bool) or not isinstance(self.cell_bytes, int) \
                or not 64 <= self.cell_bytes <= 4096:
            raise ValueError(f"cell_bytes {self.cell_bytes!r} outside 64..4096")

    def cells_nearest(self, nbytes: int) -> int:
        """Nearest whole cell (halves round up); a positive byte count is at least one cell."""
        if nbytes <= 0:
            return 0
        return max(1, (2 * nbytes + self.cell_bytes) // (2 * self.cell_bytes))

    def cells_up(self, nbytes: int) -> int:
        """Cells needed to hold ``nbytes`` (rounded up)."""
        return max(0, -(-nbytes // self.cell_bytes))

    def to_bytes(self, cells: int) -> int:
        return cells * self.cell_bytes


# --------------------------------------------------------------------------------------------
# Interface names and noise
# --------------------------------------------------------------------------------------------

ABBREVIATIONS: dict[str, str] = {
    "GE": "GigabitEthernet",
    "XGE": "Ten-GigabitEthernet",
    "WGE": "TwentyFiveGigE",
    "FGE": "FortyGigE",
    "HGE": "HundredGigE",
}
"""Comware's abbreviations in display tables -> the names used in configuration."""

_CANONICAL = {
    name.lower(): name
    for name in (
        "GigabitEthernet", "Ten-GigabitEthernet", "TwentyFiveGigE", "FortyGigE", "FiftyGigE",
        "HundredGigE", "TwoHundredGigE", "FourHundredGigE", "EightHundredGigE",
    )
}
_IFACE = re.compile(r"^(?P<type>[A-Za-z][A-Za-z-]*?)\s*(?P<num>\d+(?:/\d+)+(?::\d+)?)$")


def normalize_interface(name: str) -> str:
    """``HGE1/0/1`` / ``hundredgige 1/0/1`` -> ``HundredGigE1/0/1``; unknown types unchanged
    (without inner spaces). Raises ValueError for something that is not an interface name."""
    m = _IFACE.match(name.strip())
    if not m:
        raise ValueError(f"not an interface name: {name!r}")
    kind, num = m.group("type"), m.group("num")
    full = ABBREVIATIONS.get(kind.upper()) or _CANONICAL.get(kind.lower()) or kind
    return f"{full}{num}"


def _iface(command: str, token: str, line: str) -> str:
    try:
        return normalize_interface(token)
    except ValueError:
        raise ParseError(command, f"not an interface name: {token!r}", line=line) from None


# One character class, no nested repetition: "<" or "[" before a long run of dashes (a table
# rule with its first character garbled) made a nested form of this pattern backtrack
# exponentially -- the parser never returned.
_PROMPT = re.compile(r"^[<\[][A-Za-z0-9_.:/-]+[>\]]")


def _lines(command: str, text: str) -> list[tuple[str, str]]:
    """(raw line, stripped line) pairs without blank lines and echoed prompts."""
    out = []
    for line in cleaned(command, text):
        check_printable(command, line)
        s = line.strip()
        if not s or _PROMPT.match(s):
            continue
        if s.startswith("% ") or s == "^":
            # "% Unrecognized command found at '^' position." and friends.
            raise ParseError(command, "the switch reported an error instead of output", line=line)
        out.append((line, s))
    return out


# --------------------------------------------------------------------------------------------
# display priority-flow-control interface
# --------------------------------------------------------------------------------------------

SCREEN_WIDTH = 80
"""Comware's default screen width; longer table rows wrap there."""

_MODES = frozenset({"enabled", "disabled", "auto", "on", "off"})
_DOT1P = re.compile(r"^[0-7](?:-[0-7])?(?:,[0-7](?:-[0-7])?)*$")
_HEADER_WORDS = frozenset(
    {"Interface", "AdminMode", "OperMode", "Conf", "Ne", "Dot1pList", "Prio", "P", "Recv",
     "Send", "Sent", "Inpps", "Outpps"}
)


def parse_pfc_interface(text: str, *, command: str = DISPLAY_PFC) -> list[QueueSample]:
    """``display priority-flow-control interface``: one row per interface x priority with
    Interface, AdminMode, OperMode, Dot1pList (may be empty), Prio, Recv, Send, Inpps, Outpps
    (older releases: Conf, Ne, Dot1pList, P, Recv, Sent, ...). Recv -> ``rx_pause_frames``,
    Send -> ``tx_pause_frames``. Rows wrapped at 80 columns are joined."""
    samples: dict[tuple[str, int], QueueSample] = {}
    style = SeparatorStyle(command)
    header_seen = False
    dot_span: tuple[int, int] | None = None  # Dot1pList column in the first header line
    pending: tuple[str, list[str], bool | None] | None = None
    last_iface: str | None = None

    def emit(line: str, iface: str, nums: list[str]) -> None:
        prio_tok = nums[0]
        if not re.fullmatch(r"[0-7]", prio_tok):
            raise ParseError(command, f"not a priority: {prio_tok!r}", line=line)
        prio = int(prio_tok)
        for tok in nums[1:]:
            style.see(tok, line)
        recv = parse_count(command, nums[1], line=line)
        send = parse_count(command, nums[2], line=line)
        parse_count(command, nums[3], line=line)  # Inpps/Outpps: validated, not stored
        parse_count(command, nums[4], line=line)
        if (iface, prio) in samples:
            raise ParseError(command, f"{iface} priority {prio} listed twice", line=line)
        samples[(iface, prio)] = QueueSample(
            interface=iface, priority=prio, rx_pause_frames=recv, tx_pause_frames=send
        )

    def interpret(line: str, toks: list[str], has_dot: bool | None) -> bool:
        """Emit the row and return True, or return False when it is incomplete (wrapped)."""
        nonlocal last_iface
        if _IFACE.match(toks[0]) and not re.fullmatch(r"\d+", toks[0]):
            if len(toks) < 3:
                return False
            if toks[1].lower() not in _MODES or toks[2].lower() not in _MODES:
                raise ParseError(command, "unexpected PFC mode columns", line=line)
            iface = _iface(command, toks[0], line)
            rest = toks[3:]
            if has_dot is None:
                has_dot = len(rest) == 6
            need = 6 if has_dot else 5
            if len(rest) < need:
                return False
            if len(rest) > need:
                raise ParseError(command, f"row has {len(rest) + 3} cells", line=line)
            if has_dot:
                if not _DOT1P.match(rest[0]):
                    raise ParseError(command, f"bad Dot1pList {rest[0]!r}", line=line)
                rest = rest[1:]
            last_iface = iface
            emit(line, iface, rest)
            return True
        # A row continuing the previous interface with another priority.
        if last_iface is None or not re.fullmatch(r"[0-7]", toks[0]):
            raise ParseError(command, "unexpected line in PFC table", line=line)
        if len(toks) < 5:
            return False
        if len(toks) > 5:
            raise ParseError(command, "unexpected line in PFC table", line=line)
        emit(line, last_iface, toks)
        return True

    for line, s in _lines(command, text):
        toks = s.split()
        if toks[0] == "Interface" and "Recv" in toks:
            if pending is not None:
                raise ParseError(command, "incomplete row", line=pending[0])
            header_seen = True
            start = line.find("Dot1pList")
            nxt = re.search(r"\b(Prio|P)\b", line[start:]) if start >= 0 else None
            dot_span = (start, start + nxt.start()) if start >= 0 and nxt else None
            continue
        if set(toks) <= _HEADER_WORDS or is_rule(s) or s.startswith("Conf --"):
            continue
        if not header_seen:
            if looks_like_data(s) or (_IFACE.match(toks[0]) and len(toks) > 3):
                raise ParseError(command, "PFC rows without a header", line=line)
            continue  # banner text before the table
        if pending is not None:
            pline, _ptoks, pdot = pending
            if _IFACE.match(toks[0]) and not re.fullmatch(r"\d+", toks[0]):
                raise ParseError(command, "incomplete row", line=pline)
            pending = None
            # Comware wraps long rows at the 80-column screen edge, possibly inside a number:
            # the exact original is the first part padded to 80 columns plus the rest.
            joins = [pline + " " + line.strip()]
            if len(pline) <= SCREEN_WIDTH:
                joins.insert(0, pline.ljust(SCREEN_WIDTH) + line)
            for i, joined in enumerate(joins):
                try:
                    if not interpret(joined, joined.split(), pdot):
                        pending = (joined, joined.split(), pdot)
                    break
                except ParseError:
                    if i == len(joins) - 1:
                        raise
            continue
        has_dot: bool | None = None
        if dot_span is not None and not line[:1].isspace() and len(line) > dot_span[0]:
            has_dot = bool(line[dot_span[0] : dot_span[1]].strip())
        if not interpret(line, toks, has_dot):
            pending = (line, toks, has_dot)
    if pending is not None:
        raise ParseError(command, "incomplete row at the end of the output", line=pending[0])
    if not header_seen:
        raise ParseError(command, "no PFC table header (Interface ... Recv ...)")
    if not samples:
        raise ParseError(command, "PFC table has no rows")
    return list(samples.values())


# --------------------------------------------------------------------------------------------
# display qos queue-statistics interface X outbound
# --------------------------------------------------------------------------------------------

_QUEUE_HEAD = re.compile(r"^Queue(?:\s+ID)?\s*:?\s*(\d+)(?:\s*\([^)]*\))?\s*:?$", re.IGNORECASE)
_LABEL = re.compile(r"^([A-Za-z][A-Za-z0-9 ./-]*?)\s*:\s*(.*)$")
_QUANTITY = re.compile(r"^(\S+)\s+(packets|bytes|pps|bps|cells)$")


def _quantities(
    command: str, value: str, line: str, style: SeparatorStyle | None = None
) -> dict[str, int | None]:
    """``1,234 packets, 5,678 bytes, 0 pps, 0 bps`` -> {"packets": 1234, "bytes": 5678, ...}.
    List commas are followed by a space; thousands separators are not."""
    out: dict[str, int | None] = {}
    for part in re.split(r",\s+", value.strip()):
        m = _QUANTITY.match(part.strip())
        if not m:
            raise ParseError(command, f"cannot read {part!r}", line=line)
        if style is not None:
            style.see(m.group(1), line)
        if m.group(2) in out:
            raise ParseError(command, f"{m.group(2)} given twice", line=line)
        out[m.group(2)] = parse_count(command, m.group(1), line=line)
    return out


def parse_queue_statistics(
    text: str, *, command: str = DISPLAY_QUEUE_STATISTICS, units: ComwareUnits | None = None
) -> list[QueueSample]:
    """``display qos queue-statistics interface X outbound``: per interface, totals then
    ``Queue N`` blocks with ``Forwarded: P packets, B bytes, R pps, R bps`` and ``Dropped: P
    packets, B bytes``. ECN/WRED lines (``ECN marked``/``WRED dropped``) fill the matching
    fields when a release prints them; ``Current queue length`` fills ``occupancy_bytes`` when
    given in bytes or cells (packets are not convertible and are ignored)."""
    u = units or ComwareUnits()
    iface: str | None = None
    sample: QueueSample | None = None
    labels: set[str] = set()
    out: list[QueueSample] = []
    seen: set[tuple[str, int]] = set()
    style = SeparatorStyle(command)

    def finish(line: str | None) -> None:
        # Every queue block carries Forwarded and Dropped: a block without them is damaged.
        if sample is not None and not {"forwarded", "dropped"} <= labels:
            missing = " and ".join(sorted({"forwarded", "dropped"} - labels))
            raise ParseError(
                command, f"{sample.interface} queue {sample.priority} has no {missing} line",
                line=line,
            )

    for line, s in _lines(command, text):
        m = re.match(r"^Interface\s*:\s*(.+)$", s)
        if m:
            finish(line)
            iface = _iface(command, m.group(1).strip(), line)
            sample = None
            labels = set()
            continue
        m = _QUEUE_HEAD.match(s)
        if m:
            finish(line)
            labels = set()
            if iface is None:
                raise ParseError(command, "queue statistics before any 'Interface:' line", line=line)
            q = int(m.group(1))
            if (iface, q) in seen:
                raise ParseError(command, f"{iface} queue {q} listed twice", line=line)
            seen.add((iface, q))
            sample = QueueSample(interface=iface, priority=q)
            if q <= 7:
                out.append(sample)
            continue
        m = _LABEL.match(s)
        if not m:
            raise ParseError(command, "unexpected line", line=line)
        label = " ".join(m.group(1).lower().replace("-", " ").split())
        value = m.group(2)
        if label == "direction":
            if value.strip().lower() != "outbound":
                raise ParseError(command, "not outbound statistics", line=line)
            continue
        if iface is None:
            raise ParseError(command, "statistics before any 'Interface:' line", line=line)
        fields: tuple[str, str] | None = {
            "forwarded": ("tx_packets", "tx_bytes"),
            "dropped": ("drop_packets", "drop_bytes"),
            "ecn marked": ("ecn_marked_packets", "ecn_marked_bytes"),
            "wred dropped": ("wred_drop_packets", "wred_drop_bytes"),
        }.get(label)
        if fields is not None:
            qty = _quantities(command, value, line, style)
            if "packets" not in qty:
                raise ParseError(command, f"{label}: no packet count", line=line)
            if label in labels:
                raise ParseError(command, f"{label} given twice", line=line)
            labels.add(label)
            if sample is not None:  # interface totals (before any queue) are only validated
                setattr(sample, fields[0], qty["packets"])
                if "bytes" in qty:
                    setattr(sample, fields[1], qty["bytes"])
            continue
        if label == "current queue length":
            qty = _quantities(command, value, line, style)
            if sample is not None:
                if "bytes" in qty:
                    sample.occupancy_bytes = qty["bytes"]
                elif "cells" in qty:
                    cells = qty["cells"]
                    sample.occupancy_bytes = None if cells is None else u.to_bytes(cells)
            continue
        # Other labelled lines (rates, release-specific fields) carry nothing Waterline maps.
    finish(None)
    if not out:
        raise ParseError(command, "no 'Queue N' blocks in the output")
    return out


# --------------------------------------------------------------------------------------------
# display buffer usage interface [X] verbose
# --------------------------------------------------------------------------------------------

_BUFFER_COLUMNS = frozenset(
    {"queueid", "queue", "qid", "interface", "port", "total", "used", "peak", "usage",
     "threshold", "violations"}
)
_UNIT_HINT = re.compile(r"\((cells?|bytes|kb|%)\)$", re.IGNORECASE)


_PERCENT_COLUMNS = frozenset({"usage", "threshold"})


def _percent_cell(command: str, name: str, tok: str, scale: dict[str, int], line: str) -> str:
    """``tok`` without a trailing "%", which only a percentage column may carry (a "(%)"
    header hint, or Usage / Threshold): "123%" in a cells column is a garbled "1234"."""
    if not tok.endswith("%"):
        return tok
    if scale.get(name) != 0 and name not in _PERCENT_COLUMNS:
        raise ParseError(command, f"a percentage in the {name} column: {tok!r}", line=line)
    return tok[:-1]


def parse_buffer_usage(
    text: str, *, command: str = DISPLAY_BUFFER_USAGE, units: ComwareUnits | None = None
) -> list[QueueSample]:
    """Per-queue buffer usage: a table with a queue column (``QueueID``/``Queue``) and
    ``Used``/``Peak`` columns, under ``Interface: X`` (or with an Interface column), in
    ``Egress``/``Ingress`` sections. Egress rows give ``occupancy_bytes`` (Used) and
    ``watermark_bytes`` (Peak); units from the header hint (``(cells)``, ``(bytes)``,
    ``(KB)``), cells by default; percentage columns are ignored. Ingress rows are priority
    groups and are validated but not returned."""
    u = units or ComwareUnits()
    iface: str | None = None
    egress = True
    cols: list[str] | None = None
    scale: dict[str, int] = {}
    out: list[QueueSample] = []
    seen: set[tuple[str, int]] = set()
    style = SeparatorStyle(command)

    def header(toks: list[str], line: str) -> list[str] | None:
        names = [_UNIT_HINT.sub("", t).lower() for t in toks]
        if not any(n in ("queueid", "queue", "qid") for n in names):
            return None
        if not any(n in ("used", "peak") for n in names):
            raise ParseError(command, "buffer table without Used/Peak columns", line=line)
        for n in names:
            if n not in _BUFFER_COLUMNS:
                raise ParseError(command, f"unknown buffer usage column {n!r}", line=line)
        if len(set(names)) != len(names):
            raise ParseError(command, "duplicate buffer usage column", line=line)
        scale.clear()
        for tok, name in zip(toks, names, strict=True):
            hint = _UNIT_HINT.search(tok)
            unit = hint.group(1).lower() if hint else "cells"
            scale[name] = {"bytes": 1, "kb": 1024, "%": 0}.get(unit, u.cell_bytes)
        return names

    for line, s in _lines(command, text):
        toks = s.split()
        low = s.lower().rstrip(":")
        if low in ("egress", "ingress") or low.startswith(("egress ", "ingress ")):
            egress = low.startswith("egress")
            cols = None
            continue
        m = re.match(r"^Interface\s*:\s*(.+)$", s) or re.match(r"^.*\bon\s+(\S+?):?$", s)
        if m and (s.startswith("Interface") or _IFACE.match(m.group(1))) \
                and not (cols and len(toks) == len(cols)):
            iface = _iface(command, m.group(1), line)
            cols = None
            continue
        h = header(toks, line)
        if h is not None:
            cols = h
            continue
        if is_rule(s):
            continue
        if cols is None:
            if looks_like_data(s):
                raise ParseError(command, "buffer usage rows without a header", line=line)
            continue
        if len(toks) != len(cols):
            raise ParseError(command, f"row has {len(toks)} cells, header {len(cols)}", line=line)
        row = dict(zip(cols, toks, strict=True))
        for name, tok in row.items():
            if name not in ("interface", "port"):
                style.see(tok, line)
        row_iface = iface
        for key in ("interface", "port"):
            if key in row:
                row_iface = _iface(command, row[key], line)
        if row_iface is None:
            raise ParseError(command, "buffer usage row without an interface", line=line)
        qkey = next(k for k in ("queueid", "queue", "qid") if k in row)
        if not re.fullmatch(r"\d+", row[qkey]):
            raise ParseError(command, f"not a queue number: {row[qkey]!r}", line=line)
        q = int(row[qkey])
        values: dict[str, int | None] = {}
        for name in ("used", "peak"):
            if name in row:
                v = parse_count(command, _percent_cell(command, name, row[name], scale, line),
                                line=line)
                values[name] = None if v is None or scale[name] == 0 else v * scale[name]
        for name, tok in row.items():
            if name not in (qkey, "interface", "port", "used", "peak"):  # validated only
                parse_count(command, _percent_cell(command, name, tok, scale, line), line=line)
        if not egress:
            continue
        if (row_iface, q) in seen:
            raise ParseError(command, f"{row_iface} queue {q} listed twice", line=line)
        seen.add((row_iface, q))
        if q <= 7:
            out.append(
                QueueSample(
                    interface=row_iface,
                    priority=q,
                    occupancy_bytes=values.get("used"),
                    watermark_bytes=values.get("peak"),
                )
            )
    if not out:
        raise ParseError(command, "no egress queue rows in the buffer usage output")
    return out


# --------------------------------------------------------------------------------------------
# display qos wred table
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WredTableQueue:
    """One queue of a WRED table in device units (cells, percent)."""

    queue: int
    green_low: int
    green_high: int
    green_probability: int
    yellow_low: int | None = None
    yellow_high: int | None = None
    yellow_probability: int | None = None
    red_low: int | None = None
    red_high: int | None = None
    red_probability: int | None = None
    exponent: int | None = None
    ecn: bool = False


@dataclass(frozen=True)
class WredTable:
    name: str
    type: str | None
    queues: tuple[WredTableQueue, ...]


_WRED_COLUMNS = {
    "gmin": "green_low", "gmax": "green_high", "gprob": "green_probability",
    "ymin": "yellow_low", "ymax": "yellow_high", "yprob": "yellow_probability",
    "rmin": "red_low", "rmax": "red_high", "rprob": "red_probability",
    "exponent": "exponent",
}
_YES = {"y": True, "yes": True, "enabled": True, "enable": True, "n": False, "no": False,
        "disabled": False, "disable": False, "-": False}


def parse_wred_table(text: str, *, command: str = DISPLAY_WRED_TABLE) -> list[WredTable]:
    """``display qos wred table [name T]``: "Table name: T", "Table type: Queue based WRED",
    then QID gmin gmax gprob ymin ymax yprob rmin rmax rprob exponent ECN (cells, percent)."""
    tables: list[WredTable] = []
    name: str | None = None
    ttype: str | None = None
    cols: list[str] | None = None
    queues: list[WredTableQueue] = []

    def flush() -> None:
        nonlocal queues, cols
        if name is not None:
            if not queues:
                raise ParseError(command, f"WRED table {name} has no queue rows")
            tables.append(WredTable(name, ttype, tuple(queues)))
        queues = []
        cols = None

    for line, s in _lines(command, text):
        m = re.match(r"^Table name\s*:\s*(\S+)$", s)
        if m:
            flush()
            name, ttype = m.group(1), None
            continue
        m = re.match(r"^Table type\s*:\s*(.+)$", s)
        if m:
            ttype = m.group(1).strip()
            continue
        toks = s.split()
        if toks[0].upper() == "QID":
            if name is None:
                raise ParseError(command, "WRED header before 'Table name:'", line=line)
            names = [t.lower() for t in toks]
            for required in ("gmin", "gmax", "gprob"):
                if required not in names:
                    raise ParseError(command, f"WRED header without {required}", line=line)
            for n in names[1:]:
                if n not in _WRED_COLUMNS and n != "ecn":
                    raise ParseError(command, f"unknown WRED column {n!r}", line=line)
            if len(set(names)) != len(names):
                raise ParseError(command, "duplicate WRED column", line=line)
            cols = names
            continue
        if is_rule(s):
            continue
        if cols is None:
            raise ParseError(command, "unexpected line outside a WRED table", line=line)
        if len(toks) != len(cols):
            raise ParseError(command, f"row has {len(toks)} cells, header {len(cols)}", line=line)
        row = dict(zip(cols, toks, strict=True))
        if not re.fullmatch(r"[0-7]", row["qid"]):
            raise ParseError(command, f"not a queue id: {row['qid']!r}", line=line)
        kwargs: dict[str, int | None] = {}
        for col, attr in _WRED_COLUMNS.items():
            if col in row:
                kwargs[attr] = parse_setting(command, row[col], line=line)
        for col in ("gprob", "yprob", "rprob"):
            v = kwargs.get(_WRED_COLUMNS[col])
            if v is not None and v > 100:
                raise ParseError(command, f"{col} {v} above 100%", line=line)
        ecn = False
        if "ecn" in row:
            if row["ecn"].lower() not in _YES:
                raise ParseError(command, f"bad ECN cell {row['ecn']!r}", line=line)
            ecn = _YES[row["ecn"].lower()]
        q = int(row["qid"])
        if any(x.queue == q for x in queues):
            raise ParseError(command, f"queue {q} listed twice", line=line)
        queues.append(WredTableQueue(queue=q, ecn=ecn, **kwargs))  # type: ignore[arg-type]
    flush()
    if not tables:
        raise ParseError(command, "no 'Table name:' in the output")
    return tables


# --------------------------------------------------------------------------------------------
# display current-configuration
# --------------------------------------------------------------------------------------------


@dataclass
class WredQueueConfig:
    queue: int
    levels: dict[int, tuple[int, int, int]] = field(default_factory=dict)
    """drop level -> (low-limit, high-limit, discard-probability) in cells / percent."""
    weighting_constant: int | None = None
    ecn: bool = False


@dataclass
class WredTableConfig:
    name: str
    queues: dict[int, WredQueueConfig] = field(default_factory=dict)


@dataclass
class InterfacePfcConfig:
    """The RoCE-relevant lines of one interface's configuration (cells / percent)."""

    name: str
    pfc_mode: str | None = None  # "enable" | "auto" | None
    no_drop: tuple[int, ...] = ()
    headroom: dict[int, int] = field(default_factory=dict)
    dynamic: dict[int, int] = field(default_factory=dict)
    static: dict[int, int] = field(default_factory=dict)
    threshold_offset: dict[int, int] = field(default_factory=dict)
    reserved: dict[int, int] = field(default_factory=dict)
    wred_table: str | None = None


@dataclass
class RunningConfig:
    wred_tables: dict[str, WredTableConfig] = field(default_factory=dict)
    interfaces: dict[str, InterfacePfcConfig] = field(default_factory=dict)


_PFC_DOT1P = re.compile(
    r"^priority-flow-control dot1p (?P<list>[0-7](?:(?: to |-|,| )[0-7])*) "
    r"(?P<what>headroom|ingress-buffer dynamic|ingress-buffer static|ingress-threshold-offset"
    r"|reserved-buffer) (?P<n>\d+)$"
)
_WRED_QUEUE = re.compile(
    r"^queue (?P<q>[0-7])(?: drop-level (?P<level>[0-2]))? low-limit (?P<low>\d+) "
    r"high-limit (?P<high>\d+)(?: discard-probability (?P<prob>\d+))?$"
)


def parse_current_configuration(
    text: str, *, command: str = DISPLAY_CURRENT_CONFIGURATION
) -> RunningConfig:
    """``display current-configuration`` (or ``... interface X``): the ``qos wred queue table``
    blocks and, per interface, the PFC/WRED lines. Unrelated lines are skipped; a PFC or WRED
    line Waterline relies on that cannot be read raises ParseError."""
    cfg = RunningConfig()
    section: InterfacePfcConfig | WredTableConfig | None = None
    saw_return = False
    for line, s in _lines(command, text):
        if saw_return:
            raise ParseError(command, "output after 'return'", line=line)
        if s == "#" or s == "return":
            section = None
            saw_return = s == "return"
            continue
        if not line[:1].isspace():
            section = None
            m = re.match(r"^interface (\S+(?: \d+(?:/\d+)+(?::\d+)?)?)$", s)
            if m:
                name = _iface(command, m.group(1), line)
                section = cfg.interfaces.setdefault(name, InterfacePfcConfig(name))
                continue
            m = re.match(r"^qos wred queue table (\S+)$", s)
            if m:
                section = cfg.wred_tables.setdefault(m.group(1), WredTableConfig(m.group(1)))
                continue
            continue
        if isinstance(section, InterfacePfcConfig):
            _interface_line(command, section, s, line)
        elif isinstance(section, WredTableConfig):
            _wred_line(command, section, s, line)
    if not saw_return:
        # Comware ends every configuration display with "return"; without it the output was
        # cut short (pager, timeout) or is not a configuration at all.
        raise ParseError(command, "no 'return' line: configuration incomplete")
    return cfg


def _interface_line(command: str, sec: InterfacePfcConfig, s: str, line: str) -> None:
    if s in ("priority-flow-control enable", "priority-flow-control auto"):
        sec.pfc_mode = s.split()[1]
        return
    if s.startswith("priority-flow-control no-drop dot1p"):
        rest = s[len("priority-flow-control no-drop dot1p") :]
        sec.no_drop = parse_priority_list(command, rest, line=line)
        if not sec.no_drop:
            raise ParseError(command, "empty no-drop list", line=line)
        return
    if s.startswith("priority-flow-control dot1p"):
        m = _PFC_DOT1P.match(s)
        if not m:
            # The per-priority buffer commands are a closed set (headroom, ingress-buffer,
            # ingress-threshold-offset, reserved-buffer): anything else is garbage.
            raise ParseError(command, "cannot read PFC buffer line", line=line)
        n = int(m.group("n"))
        target = {
            "headroom": sec.headroom,
            "ingress-buffer dynamic": sec.dynamic,
            "ingress-buffer static": sec.static,
            "ingress-threshold-offset": sec.threshold_offset,
            "reserved-buffer": sec.reserved,
        }[m.group("what")]
        if m.group("what") == "ingress-buffer dynamic" and n > 100:
            raise ParseError(command, f"dynamic threshold {n}% above 100", line=line)
        for p in parse_priority_list(command, m.group("list"), line=line):
            target[p] = n
        return
    m = re.match(r"^qos wred apply(?: (\S+))?$", s)
    if m:
        sec.wred_table = m.group(1) or ""
        return
    if s.startswith("qos wred apply"):
        raise ParseError(command, "cannot read 'qos wred apply'", line=line)


def _wred_line(command: str, sec: WredTableConfig, s: str, line: str) -> None:
    if not s.startswith("queue "):
        return
    m = _WRED_QUEUE.match(s)
    if m:
        q = sec.queues.setdefault(int(m.group("q")), WredQueueConfig(int(m.group("q"))))
        low, high = int(m.group("low")), int(m.group("high"))
        prob = int(m.group("prob")) if m.group("prob") is not None else DEFAULT_WRED_LIMITS[2]
        if prob > 100:
            raise ParseError(command, f"discard-probability {prob} above 100", line=line)
        levels = [int(m.group("level"))] if m.group("level") is not None else [0, 1, 2]
        for level in levels:
            q.levels[level] = (low, high, prob)
        return
    m = re.match(r"^queue ([0-7]) weighting-constant (\d+)$", s)
    if m:
        sec.queues.setdefault(int(m.group(1)), WredQueueConfig(int(m.group(1)))) \
            .weighting_constant = int(m.group(2))
        return
    m = re.match(r"^queue ([0-7]) ecn$", s)
    if m:
        sec.queues.setdefault(int(m.group(1)), WredQueueConfig(int(m.group(1)))).ecn = True
        return
    raise ParseError(command, "cannot read WRED table line", line=line)


def build_qos_config(
    running: RunningConfig, *, interfaces: Iterable[str], units: ComwareUnits | None = None
) -> QosConfig:
    """The switch-wide QosConfig from the running configuration.

    The WRED table counts only when the same table is applied to every managed interface;
    ECN queues are its queues with ``ecn``; waterlines exist for ECN queues with explicit
    limits (drop level 0). PFC priorities are the no-drop priorities common to every managed
    interface with ``priority-flow-control enable``. PFC waterline fields (headroom -> xoff,
    ingress-threshold-offset -> xon, dynamic % -> alpha) are reported when every managed
    interface agrees; headroom_bytes = xoff + xon when both are known.
    """
    u = units or ComwareUnits()
    names = [normalize_interface(i) for i in interfaces] or list(running.interfaces)
    ifs = [running.interfaces.get(n, InterfacePfcConfig(n)) for n in names]
    applied = {i.wred_table for i in ifs}
    table: WredTableConfig | None = None
    if len(applied) == 1:
        tname = applied.pop()
        if tname:
            table = running.wred_tables.get(tname)
    pfc: set[int] | None = None
    for i in ifs:
        prios = set(i.no_drop) if i.pfc_mode == "enable" else set()
        pfc = prios if pfc is None else pfc & prios
    ecn_queues = sorted(q for q, c in table.queues.items() if c.ecn) if table else []

    def common(values: list[int | None]) -> int | None:
        return values[0] if values and len(set(values)) == 1 else None

    waterlines: dict[int, Waterlines] = {}
    for q in ecn_queues:
        assert table is not None
        level = table.queues[q].levels.get(0)
        if level is None:
            continue
        low, high, prob = level
        head = common([i.headroom.get(q) for i in ifs])
        off = common([i.threshold_offset.get(q) for i in ifs])
        dyn = common([i.dynamic.get(q) for i in ifs])
        xoff = u.to_bytes(head) if head is not None else None
        xon = u.to_bytes(off) if off is not None else None
        waterlines[q] = Waterlines(
            kmin_bytes=u.to_bytes(low),
            kmax_bytes=u.to_bytes(high),
            pmax=prob / 100,
            xoff_bytes=xoff,
            xon_bytes=xon,
            headroom_bytes=None if xoff is None or xon is None else xoff + xon,
            alpha=None if dyn is None else float(2.0 ** percent_to_alpha_exponent(dyn)),
        )
    return QosConfig(
        pfc_priorities=tuple(sorted(pfc or ())),
        ecn_queues=tuple(ecn_queues),
        waterlines=waterlines,
    )


def port_disagreements(running: RunningConfig, *, interfaces: Iterable[str]) -> list[str]:
    """Where the managed interfaces' RoCE lines differ (WRED table, PFC mode and no-drop
    priorities, headroom, ingress threshold offset, dynamic threshold). Waterline manages one
    switch-wide config; differences would be summed up lossily, so changes are refused."""
    names = [normalize_interface(i) for i in interfaces] or list(running.interfaces)
    ifs = [running.interfaces.get(n, InterfacePfcConfig(n)) for n in names]
    out: list[str] = []
    checks: dict[str, Callable[[InterfacePfcConfig], object]] = {
        "WRED table": lambda i: i.wred_table,
        "PFC mode and no-drop priorities": lambda i: (i.pfc_mode, tuple(sorted(i.no_drop))),
        "headroom": lambda i: tuple(sorted(i.headroom.items())),
        "ingress-threshold-offset": lambda i: tuple(sorted(i.threshold_offset.items())),
        "ingress-buffer dynamic": lambda i: tuple(sorted(i.dynamic.items())),
    }
    for what, key in checks.items():
        values: dict[object, list[str]] = {}
        for i in ifs:
            values.setdefault(key(i), []).append(i.name)
        if len(values) > 1:
            sample = "; ".join(f"{ports[0]}: {value}" for value, ports in
                               list(values.items())[:3])
            out.append(f"{what} differs between interfaces ({sample})")
    return out
