"""Parsers of community SONiC show output (sonic-utilities), one per command.

Formats follow sonic-utilities' own scripts and their unit-test vectors (pfcstat, queuestat,
watermarkstat, ecnconfig, mmuconfig/buffershow, pfc): ``tabulate`` "simple" tables (header row,
dashed rule, right-aligned cells that may carry thousands separators or ``N/A``, rows indented
in multi-ASIC output), "For namespace ..:" / "Last cached time was ..." lines, and key/value
blocks ("Profile: NAME" followed by a two-column table) for configuration.

Every parser is a pure function ``text -> typed rows``. Tolerated: separators, ``N/A`` (->
``None``, never 0), column order, indentation, blank lines, echoed prompts, pager remnants,
rows wrapped onto a continuation line. Refused with :class:`ParseError` naming the command and
the line: unknown cells where numbers belong, rows with the wrong number of cells, counters
outside any recognised table, duplicate rows, and output without any table where one is
required.

Telemetry choices (what the SONiC driver should run):
- ``show pfc counters`` -> rx/tx_pause_frames; ``show queue counters`` -> tx/drop packets and
  bytes (+ ECN marks where the platform adds the columns); ``show queue wredcounters`` -> WRED
  drops and ECN marks.
- Occupancy: community SONiC has no CLI for the instantaneous queue depth. Waterline uses the
  *user* watermark as a per-poll occupancy gauge: ``show queue watermark unicast`` parsed with
  ``field="occupancy_bytes"`` and followed by ``sonic-clear queue watermark unicast``, so each
  poll reports the peak occupancy since the previous poll. ``show queue persistent-watermark
  unicast`` (never cleared by Waterline) gives ``watermark_bytes``.
- Read-back of the QoS config: ``show pfc priority`` (lossless priorities per port),
  ``ecnconfig -q 0,1,2,3,4,5,6,7`` (ECN on/off per queue), ``show ecn`` (WRED profiles) and
  ``show buffer configuration`` (buffer profiles), assembled by :func:`build_qos_config`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
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

SHOW_PFC_COUNTERS = "show pfc counters"
SHOW_QUEUE_COUNTERS = "show queue counters"
SHOW_QUEUE_WREDCOUNTERS = "show queue wredcounters"
SHOW_QUEUE_WATERMARK = "show queue watermark unicast"
SHOW_QUEUE_PERSISTENT_WATERMARK = "show queue persistent-watermark unicast"
SHOW_PG_WATERMARK_SHARED = "show priority-group watermark shared"
SHOW_PG_WATERMARK_HEADROOM = "show priority-group watermark headroom"
SHOW_ECN = "show ecn"
SHOW_BUFFER_CONFIGURATION = "show buffer configuration"
SHOW_PFC_PRIORITY = "show pfc priority"
ECNCONFIG_QUEUE_STATUS = "ecnconfig -q 0,1,2,3,4,5,6,7"

# Port names as SONiC prints them: Ethernet0, Ethernet-BP256, Ethernet1/1 (some HWSKUs).
_PORT = re.compile(r"^[A-Za-z][A-Za-z0-9_.:/-]*$")

_NOISE = [
    re.compile(r"^\S+@[\w.-]+:\S*\s*[$#](\s.*)?$"),  # echoed prompt (+ command)
    re.compile(r"^For namespace\b.*:$"),
    re.compile(r"\bLast cached time\b.*\bwas\b"),
    re.compile(r"^Namespace\s+\S*$"),
    re.compile(r"^Total (pools|profiles): \d+$"),
    re.compile(r"^No buffer (pool|profile) information available"),
]


def _is_noise(s: str) -> bool:
    return any(p.search(s) for p in _NOISE)


# What sonic-utilities prints instead of a table when a command fails.
_ERROR = re.compile(r"^(?:Error:|Usage:|Traceback \(most recent call last\)|Exception caught|"
                    r"\S+: command not found|sudo: )")


def _check_error(command: str, s: str, line: str) -> None:
    if _ERROR.match(s):
        raise ParseError(command, "the switch reported an error instead of output", line=line)


def _check_port(command: str, name: str, line: str) -> str:
    if not _PORT.match(name):
        raise ParseError(command, f"not a port name: {name!r}", line=line)
    return name


# --------------------------------------------------------------------------------------------
# Generic tabulate-table scanner
# --------------------------------------------------------------------------------------------

Anchor = Callable[[str, list[str], str], "list[str] | None"]


@dataclass
class _Table:
    columns: list[str]
    title: str | None
    rows: list[tuple[str, list[str]]] = field(default_factory=list)


_NUMERIC_TOKEN = re.compile(r"^(?:[\d,]+|N/A)$")


def _scan_tables(command: str, text: str, anchor: Anchor, *, short_rows: bool = False) -> list[_Table]:
    """Find the tables whose header ``anchor`` recognises and split their rows into cells.

    ``anchor(command, tokens, line)`` returns the column names for a header line, ``None`` for
    any other line, and raises for a header-like line it cannot accept. A row shorter than its
    header is joined with the following line when that line continues it (numbers only).
    """
    tables: list[_Table] = []
    cur: _Table | None = None
    pending: tuple[str, list[str]] | None = None
    title: str | None = None

    def close() -> None:
        nonlocal cur, pending
        if pending is not None:
            raise ParseError(command, "row has fewer cells than its header", line=pending[0])
        cur = None

    for line in cleaned(command, text):
        check_printable(command, line)
        s = line.strip()
        _check_error(command, s, line)
        if not s or _is_noise(s):
            close()
            continue
        toks = s.split()
        cols = anchor(command, toks, line)
        if cols is not None:
            close()
            cur = _Table(columns=cols, title=title)
            tables.append(cur)
            title = None
            continue
        if is_rule(s):
            if pending is not None:
                close()
            continue
        if cur is not None:
            n = len(cur.columns)
            if pending is not None:
                if not _NUMERIC_TOKEN.match(toks[0]):
                    close()
                combined = pending[1] + toks
                joined = pending[0].rstrip() + " " + s
                if len(combined) > n:
                    raise ParseError(command, "wrapped row does not fit its header", line=joined)
                pending = None if len(combined) == n else (joined, combined)
                if pending is None:
                    cur.rows.append((joined, combined))
                continue
            if len(toks) == n or (short_rows and len(toks) < n):
                cur.rows.append((line, toks))
            elif len(toks) < n:
                pending = (line, toks)
            else:
                raise ParseError(
                    command, f"row has {len(toks)} cells, its header {n}", line=line
                )
            continue
        if looks_like_data(s):
            raise ParseError(
                command, "counters outside any table (header missing or damaged)", line=line
            )
        title = s
    close()
    style = SeparatorStyle(command)
    for table in tables:
        for row_line, cells in table.rows:
            for cell in cells[1:]:
                style.see(cell, row_line)
    return tables


def _no_table(command: str, what: str) -> ParseError:
    return ParseError(command, f"no {what} table in the output")


# --------------------------------------------------------------------------------------------
# show pfc counters
# --------------------------------------------------------------------------------------------

_PFC_COLUMNS = [f"PFC{i}" for i in range(8)]


def _pfc_anchor(command: str, toks: list[str], line: str) -> list[str] | None:
    if not toks or toks[0] != "Port":
        return None
    if len(toks) < 2 or toks[1] not in ("Rx", "Tx"):
        if any(t.startswith("PFC") for t in toks):
            raise ParseError(command, "PFC header without 'Port Rx'/'Port Tx'", line=line)
        return None
    cols = toks[2:]
    if sorted(cols) != _PFC_COLUMNS:
        raise ParseError(command, "PFC header must list PFC0..PFC7 once each", line=line)
    return [f"Port {toks[1]}", *cols]


def parse_pfc_counters(text: str, *, command: str = SHOW_PFC_COUNTERS) -> list[QueueSample]:
    """``show pfc counters``: a ``Port Rx`` block then a ``Port Tx`` block, PFC0..PFC7 each.

    Rx counts PFC frames received (-> ``rx_pause_frames``), Tx frames sent
    (-> ``tx_pause_frames``); one sample per port x priority.
    """
    tables = _scan_tables(command, text, _pfc_anchor)
    if not tables:
        raise _no_table(command, "'Port Rx'/'Port Tx'")
    samples: dict[tuple[str, int], QueueSample] = {}
    seen_dirs: set[str] = set()
    for table in tables:
        direction = table.columns[0].split()[1]
        attr = "rx_pause_frames" if direction == "Rx" else "tx_pause_frames"
        seen_dirs.add(direction)
        seen_ports: set[str] = set()
        for line, cells in table.rows:
            port = _check_port(command, cells[0], line)
            if port in seen_ports:
                raise ParseError(command, f"port {port} listed twice in the {direction} block", line=line)
            seen_ports.add(port)
            for col, cell in zip(table.columns[1:], cells[1:], strict=True):
                prio = int(col[3:])
                value = parse_count(command, cell, line=line)
                sample = samples.setdefault((port, prio), QueueSample(interface=port, priority=prio))
                if getattr(sample, attr) is not None:
                    raise ParseError(command, f"{port} {col} {direction} reported twice", line=line)
                setattr(sample, attr, value)
    if not samples:
        raise ParseError(command, "PFC tables have no rows")
    if seen_dirs != {"Rx", "Tx"}:
        missing = ({"Rx", "Tx"} - seen_dirs).pop()
        raise ParseError(command, f"no 'Port {missing}' block (truncated output?)")
    return list(samples.values())


# --------------------------------------------------------------------------------------------
# show queue counters / show queue wredcounters
# --------------------------------------------------------------------------------------------

QUEUE_COLUMNS: dict[str, str] = {
    "Counter/pkts": "tx_packets",
    "Counter/bytes": "tx_bytes",
    "Drop/pkts": "drop_packets",
    "Drop/bytes": "drop_bytes",
    "EcnMarked/pkts": "ecn_marked_packets",
    "EcnMarked/bytes": "ecn_marked_bytes",
    "WredDrp/pkts": "wred_drop_packets",
    "WredDrp/bytes": "wred_drop_bytes",
}
"""sonic-utilities column -> QueueSample field."""

# Other counters some releases add (Trim/pkts, TrimSent/pkts, Credit-WD-Del/pkts): accepted and
# ignored, as long as they look like counter columns.
_OTHER_QUEUE_COLUMN = re.compile(r"^[A-Za-z][A-Za-z-]*/(pkts|bytes)$")
_TXQ = re.compile(r"^(UC|MC|ALL)(\d+)$")


def _queue_anchor(command: str, toks: list[str], line: str) -> list[str] | None:
    if len(toks) < 2 or toks[0] != "Port" or toks[1] != "TxQ":
        return None
    cols = toks[2:]
    if len(set(cols)) != len(cols):
        raise ParseError(command, "duplicate column in queue header", line=line)
    for col in cols:
        if col not in QUEUE_COLUMNS and not _OTHER_QUEUE_COLUMN.match(col):
            raise ParseError(command, f"unknown queue counter column {col!r}", line=line)
    if not any(c in QUEUE_COLUMNS for c in cols):
        raise ParseError(command, "queue header without known counter columns", line=line)
    # Known counters come in pkts/bytes pairs: half a pair means a damaged header.
    for family in {c.split("/")[0] for c in QUEUE_COLUMNS}:
        have = [f"{family}/{unit}" in cols for unit in ("pkts", "bytes")]
        if any(have) and not all(have):
            raise ParseError(command, f"queue header has half of the {family} columns", line=line)
    return toks


def _parse_queue_table(
    command: str, text: str, required: tuple[str, ...], *, any_of: bool = False
) -> list[QueueSample]:
    tables = _scan_tables(command, text, _queue_anchor)
    if not tables:
        raise _no_table(command, "'Port TxQ'")
    for table in tables:
        present = [c in table.columns for c in required]
        if not (any(present) if any_of else all(present)):
            raise ParseError(command, f"queue table without {' / '.join(required)} columns",
                             line="  ".join(table.columns))
    out: list[QueueSample] = []
    seen: set[tuple[str, str]] = set()
    rows = 0
    for table in tables:
        for line, cells in table.rows:
            rows += 1
            port = _check_port(command, cells[0], line)
            m = _TXQ.match(cells[1])
            if not m:
                raise ParseError(command, f"not a queue name: {cells[1]!r}", line=line)
            if (port, cells[1]) in seen:
                raise ParseError(command, f"{port} {cells[1]} listed twice", line=line)
            seen.add((port, cells[1]))
            values = {
                col: parse_count(command, cell, line=line)
                for col, cell in zip(table.columns[2:], cells[2:], strict=True)
            }
            # Only unicast queues carry a priority (UC3 <-> traffic class 3); MC/ALL queues and
            # UC8+ (extra platform queues) are validated and skipped.
            if m.group(1) != "UC" or int(m.group(2)) > 7:
                continue
            sample = QueueSample(interface=port, priority=int(m.group(2)))
            for col, value in values.items():
                if col in QUEUE_COLUMNS:
                    setattr(sample, QUEUE_COLUMNS[col], value)
            out.append(sample)
    if rows == 0:
        raise ParseError(command, "queue tables have no rows")
    return out


def parse_queue_counters(text: str, *, command: str = SHOW_QUEUE_COUNTERS) -> list[QueueSample]:
    """``show queue counters``: Port, TxQ, Counter/pkts, Counter/bytes, Drop/pkts, Drop/bytes
    (+ EcnMarked/WredDrp columns on some platforms) -> one sample per port x UC0..UC7."""
    return _parse_queue_table(
        command, text, ("Counter/pkts", "Counter/bytes", "Drop/pkts", "Drop/bytes")
    )


def parse_queue_wredcounters(
    text: str, *, command: str = SHOW_QUEUE_WREDCOUNTERS
) -> list[QueueSample]:
    """``show queue wredcounters``: Port, TxQ, WredDrp/pkts, WredDrp/bytes, EcnMarked/pkts,
    EcnMarked/bytes (``N/A`` where the platform lacks the counter)."""
    return _parse_queue_table(command, text, ("WredDrp/pkts", "EcnMarked/pkts"), any_of=True)


# --------------------------------------------------------------------------------------------
# Watermarks
# --------------------------------------------------------------------------------------------

_WM_COLUMN = re.compile(r"^(UC|MC|ALL|PG)(\d+)$")


def _watermark_anchor(prefixes: tuple[str, ...]) -> Anchor:
    def anchor(command: str, toks: list[str], line: str) -> list[str] | None:
        if len(toks) < 2 or toks[0] != "Port":
            return None
        kinds = [_WM_COLUMN.match(t) for t in toks[1:]]
        if not any(kinds):
            return None
        if not all(kinds) or len(set(toks[1:])) != len(toks) - 1:
            raise ParseError(command, "damaged watermark header", line=line)
        if not any(m is not None and m.group(1) in prefixes for m in kinds):
            raise ParseError(command, f"watermark header without {'/'.join(prefixes)} columns", line=line)
        if not all(m is not None and m.group(1) in prefixes for m in kinds):
            # one command prints one kind of column (UC... or PG...): a stray MC3 among UC
            # columns is a damaged UC3, and its queue would silently go missing
            raise ParseError(command, f"damaged watermark header (columns other than "
                             f"{'/'.join(prefixes)})", line=line)
        return toks

    return anchor


def parse_queue_watermark(
    text: str, *, command: str = SHOW_QUEUE_WATERMARK, field: str = "watermark_bytes"
) -> list[QueueSample]:
    """``show queue watermark unicast`` / ``show queue persistent-watermark unicast``: a title
    ("Egress shared pool occupancy per unicast queue:"), then Port and UC0..UCn in bytes.

    ``field`` names the QueueSample field to fill: ``watermark_bytes`` by default, or
    ``occupancy_bytes`` when the driver clears the user watermark after every poll (see the
    module docstring).
    """
    if field not in ("watermark_bytes", "occupancy_bytes"):
        raise ValueError(f"field must be watermark_bytes or occupancy_bytes, not {field!r}")
    tables = _scan_tables(command, text, _watermark_anchor(("UC",)))
    if not tables:
        raise _no_table(command, "unicast queue watermark")
    out: list[QueueSample] = []
    seen: set[str] = set()
    for table in tables:
        for line, cells in table.rows:
            port = _check_port(command, cells[0], line)
            if port in seen:
                raise ParseError(command, f"port {port} listed twice", line=line)
            seen.add(port)
            for col, cell in zip(table.columns[1:], cells[1:], strict=True):
                value = parse_count(command, cell, line=line)
                m = _WM_COLUMN.match(col)
                assert m is not None
                if m.group(1) == "UC" and int(m.group(2)) <= 7:
                    sample = QueueSample(interface=port, priority=int(m.group(2)))
                    setattr(sample, field, value)
                    out.append(sample)
    if not out:
        raise ParseError(command, "watermark table has no rows")
    return out


@dataclass(frozen=True, slots=True)
class PgWatermark:
    """Ingress priority-group watermark (bytes) of one port x PG; ``kind`` shared|headroom."""

    interface: str
    priority_group: int
    kind: str
    watermark_bytes: int | None


def parse_pg_watermark(
    text: str, *, command: str = SHOW_PG_WATERMARK_SHARED, kind: str | None = None
) -> list[PgWatermark]:
    """``show priority-group [persistent-]watermark shared|headroom``: title ("Ingress shared
    pool occupancy per PG:" / "Ingress headroom per PG:"), then Port and PG0..PG7 in bytes."""
    tables = _scan_tables(command, text, _watermark_anchor(("PG",)))
    if not tables:
        raise _no_table(command, "priority-group watermark")
    out: list[PgWatermark] = []
    for table in tables:
        k = kind
        if k is None:
            t = (table.title or "") + " " + command
            k = "headroom" if "headroom" in t.lower() else "shared"
        for line, cells in table.rows:
            port = _check_port(command, cells[0], line)
            for col, cell in zip(table.columns[1:], cells[1:], strict=True):
                value = parse_count(command, cell, line=line)
                m = _WM_COLUMN.match(col)
                assert m is not None
                if m.group(1) == "PG":
                    out.append(PgWatermark(port, int(m.group(2)), k, value))
    if not out:
        raise ParseError(command, "priority-group watermark table has no rows")
    return out


# --------------------------------------------------------------------------------------------
# show pfc priority / ecnconfig -q
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PfcPriorityRow:
    interface: str
    priorities: tuple[int, ...]


def _pfc_prio_anchor(command: str, toks: list[str], line: str) -> list[str] | None:
    if toks[:3] == ["Interface", "Lossless", "priorities"]:
        if len(toks) != 3:
            raise ParseError(command, "unexpected 'show pfc priority' header", line=line)
        return ["Interface", "Lossless priorities"]
    return None


def parse_pfc_priority(text: str, *, command: str = SHOW_PFC_PRIORITY) -> list[PfcPriorityRow]:
    """``show pfc priority``: Interface and its lossless (PFC-enabled) priorities, ``3,4``."""
    tables = _scan_tables(command, text, _pfc_prio_anchor, short_rows=True)
    if not tables:
        raise _no_table(command, "'Interface  Lossless priorities'")
    out: list[PfcPriorityRow] = []
    seen: set[str] = set()
    for table in tables:
        for line, cells in table.rows:
            port = _check_port(command, cells[0], line)
            if port in seen:
                raise ParseError(command, f"port {port} listed twice", line=line)
            seen.add(port)
            prios = parse_priority_list(command, cells[1], line=line) if len(cells) > 1 else ()
            out.append(PfcPriorityRow(port, prios))
    if not out:
        raise ParseError(command, "no interfaces listed")
    return out


@dataclass(frozen=True, slots=True)
class EcnQueueStatus:
    queue: int
    enabled: bool


_ECN_STATUS_HEAD = re.compile(r"^ECN status(?: for namespace \S+)?:$")
_ECN_STATUS_ROW = re.compile(r"^(?:\S+\s+)?queue\s+(\d+):\s*(on|off)$")


def parse_ecn_queue_status(
    text: str, *, command: str = ECNCONFIG_QUEUE_STATUS
) -> list[EcnQueueStatus]:
    """``ecnconfig -q 3`` (or ``-q 0,1,...,7``): "ECN status:" then ``queue 3: on|off`` lines
    (with ``-vv`` the port list precedes ``queue``)."""
    out: dict[int, EcnQueueStatus] = {}
    started = False
    for line in cleaned(command, text):
        check_printable(command, line)
        s = line.strip()
        _check_error(command, s, line)
        if not s or _is_noise(s):
            continue
        if _ECN_STATUS_HEAD.match(s):
            started = True
            continue
        m = _ECN_STATUS_ROW.match(s)
        if m and started:
            q = int(m.group(1))
            if q > 7:
                raise ParseError(command, f"queue {q} out of range", line=line)
            status = EcnQueueStatus(q, m.group(2) == "on")
            if q in out and out[q] != status:
                raise ParseError(command, f"queue {q} reported both on and off", line=line)
            out[q] = status
            continue
        raise ParseError(command, "unexpected line in ECN status", line=line)
    if not out:
        raise ParseError(command, "no 'queue N: on|off' lines")
    return [out[q] for q in sorted(out)]


# --------------------------------------------------------------------------------------------
# Key/value blocks: show ecn, show buffer configuration
# --------------------------------------------------------------------------------------------

_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


def _kv_blocks(
    command: str, text: str, heading: re.Pattern[str]
) -> list[tuple[str, str, dict[str, str], str]]:
    """Blocks of ``heading`` followed by a two-column tabulate table (rule, rows, rule).

    Returns (kind, name, fields, heading line). Lines outside blocks must be blank or noise.
    """
    blocks: list[tuple[str, str, dict[str, str], str]] = []
    cur: dict[str, str] | None = None
    for line in cleaned(command, text):
        check_printable(command, line)
        s = line.strip()
        _check_error(command, s, line)
        if not s:
            cur = None
            continue
        m = heading.match(s)
        if m:
            cur = {}
            blocks.append((m.group("kind"), m.group("name") or "", cur, line))
            continue
        if is_rule(s):
            continue
        if _is_noise(s):
            cur = None
            continue
        if cur is None:
            raise ParseError(command, "line outside any block", line=line)
        parts = s.split(None, 1)
        if len(parts) != 2 or not _KEY.match(parts[0]):
            raise ParseError(command, "expected 'field  value'", line=line)
        key, value = parts[0], parts[1].strip()
        if key in cur:
            raise ParseError(command, f"field {key} repeated", line=line)
        cur[key] = value
    return blocks


_WRED_INT_FIELDS = (
    "green_min_threshold",
    "green_max_threshold",
    "green_drop_probability",
    "yellow_min_threshold",
    "yellow_max_threshold",
    "yellow_drop_probability",
    "red_min_threshold",
    "red_max_threshold",
    "red_drop_probability",
)


@dataclass(frozen=True)
class WredProfile:
    """A WRED_PROFILE entry as ``show ecn`` prints it. Thresholds in bytes, probabilities in
    percent; ``None`` when the profile does not set the field."""

    name: str
    green_min_threshold: int | None = None
    green_max_threshold: int | None = None
    green_drop_probability: int | None = None
    yellow_min_threshold: int | None = None
    yellow_max_threshold: int | None = None
    yellow_drop_probability: int | None = None
    red_min_threshold: int | None = None
    red_max_threshold: int | None = None
    red_drop_probability: int | None = None
    ecn: str | None = None
    fields: dict[str, str] = field(default_factory=dict)


_ECN_HEADING = re.compile(r"^(?P<kind>Profile)(?: for namespace \S+)?: (?P<name>\S+)$")


def parse_ecn(text: str, *, command: str = SHOW_ECN) -> list[WredProfile]:
    """``show ecn`` (``ecnconfig -l``): "Profile: NAME" blocks of key/value lines in any order
    (green_min_threshold, green_max_threshold, green_drop_probability, ecn, ...)."""
    out: list[WredProfile] = []
    for _kind, name, fields, head in _kv_blocks(command, text, _ECN_HEADING):
        if not fields:
            raise ParseError(command, f"profile {name} has no fields", line=head)
        values: dict[str, int | None] = {}
        for key in _WRED_INT_FIELDS:
            if key in fields:
                values[key] = parse_setting(command, fields[key], line=f"{key}  {fields[key]}")
        for color in ("green", "yellow", "red"):
            prob = values.get(f"{color}_drop_probability")
            if prob is not None and prob > 100:
                raise ParseError(command, f"{color}_drop_probability {prob} above 100%", line=head)
        out.append(
            WredProfile(
                name=name,
                ecn=fields.get("ecn"),
                fields=dict(fields),
                **values,
            )
        )
    if not out:
        raise ParseError(command, "no 'Profile:' blocks in the output")
    return out


@dataclass(frozen=True)
class BufferPool:
    name: str
    type: str | None = None
    mode: str | None = None
    size: int | None = None
    xoff: int | None = None
    fields: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class BufferProfile:
    """A BUFFER_PROFILE entry. Bytes; ``dynamic_th`` n means alpha = 2**n."""

    name: str
    pool: str | None = None
    xon: int | None = None
    xoff: int | None = None
    size: int | None = None
    dynamic_th: int | None = None
    static_th: int | None = None
    headroom_type: str | None = None
    fields: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class BufferConfiguration:
    pools: tuple[BufferPool, ...]
    profiles: tuple[BufferProfile, ...]
    lossless_traffic_pattern: dict[str, str] | None = None

    def profile(self, name: str) -> BufferProfile | None:
        return next((p for p in self.profiles if p.name == name), None)


_BUFFER_HEADING = re.compile(
    r"^(?P<kind>Lossless traffic pattern|Pool|Profile)(?: for namespace \S+)?:(?: (?P<name>\S+))?$"
)
_POOL_REF = re.compile(r"^\[(?:BUFFER_POOL(?:_TABLE)?)[|:](?P<name>[^\]]+)\]$")


def parse_buffer_configuration(
    text: str, *, command: str = SHOW_BUFFER_CONFIGURATION
) -> BufferConfiguration:
    """``show buffer configuration`` / ``show buffer information`` (``mmuconfig -l`` /
    ``buffershow -l``): "Pool: NAME" and "Profile: NAME" blocks with xon/xoff/size/dynamic_th/
    pool fields (pool possibly as ``[BUFFER_POOL|name]``)."""

    def num(fields: dict[str, str], key: str, *, signed: bool = False) -> int | None:
        if key not in fields:
            return None
        return parse_setting(command, fields[key], line=f"{key}  {fields[key]}", signed=signed)

    pools: list[BufferPool] = []
    profiles: list[BufferProfile] = []
    pattern: dict[str, str] | None = None
    for kind, name, fields, head in _kv_blocks(command, text, _BUFFER_HEADING):
        if kind == "Lossless traffic pattern":
            pattern = dict(fields)
            continue
        if not name:
            raise ParseError(command, f"{kind} block without a name", line=head)
        if kind == "Pool":
            pools.append(
                BufferPool(
                    name=name,
                    type=fields.get("type"),
                    mode=fields.get("mode"),
                    size=num(fields, "size"),
                    xoff=num(fields, "xoff"),
                    fields=dict(fields),
                )
            )
            continue
        pool = fields.get("pool")
        if pool is not None:
            m = _POOL_REF.match(pool)
            pool = m.group("name") if m else pool
        profiles.append(
            BufferProfile(
                name=name,
                pool=pool,
                xon=num(fields, "xon"),
                xoff=num(fields, "xoff"),
                size=num(fields, "size"),
                dynamic_th=num(fields, "dynamic_th", signed=True),
                static_th=num(fields, "static_th"),
                headroom_type=fields.get("headroom_type"),
                fields=dict(fields),
            )
        )
    if not pools and not profiles:
        raise ParseError(command, "no 'Pool:'/'Profile:' blocks in the output")
    return BufferConfiguration(tuple(pools), tuple(profiles), pattern)


# --------------------------------------------------------------------------------------------
# Read-back assembly
# --------------------------------------------------------------------------------------------


def build_qos_config(
    *,
    pfc_priority: Sequence[PfcPriorityRow],
    ecn_status: Sequence[EcnQueueStatus],
    wred_profiles: Sequence[WredProfile],
    buffer: BufferConfiguration | None,
    interfaces: Iterable[str],
    wred_profile: str,
    buffer_profile: str | None,
) -> QosConfig:
    """The switch-wide QosConfig from the read-back commands (see the module docstring).

    PFC priorities: those lossless on *every* managed interface. Waterlines: one per ECN queue,
    from the WRED profile (green thresholds, probability/100) plus, when the buffer profile
    exists, its xoff/xon/size and alpha = 2**dynamic_th.
    """
    rows = {r.interface: set(r.priorities) for r in pfc_priority}
    wanted = list(interfaces) or list(rows)
    pfc: set[int] | None = None
    for name in wanted:
        prios = rows.get(name, set())
        pfc = set(prios) if pfc is None else pfc & prios
    ecn_queues = sorted(s.queue for s in ecn_status if s.enabled)
    waterlines: dict[int, Waterlines] = {}
    if ecn_queues:
        wp = next((p for p in wred_profiles if p.name == wred_profile), None)
        if wp is None:
            raise ParseError(SHOW_ECN, f"WRED profile {wred_profile} not found")
        if None in (wp.green_min_threshold, wp.green_max_threshold, wp.green_drop_probability):
            raise ParseError(SHOW_ECN, f"WRED profile {wred_profile} lacks green thresholds")
        bp = buffer.profile(buffer_profile) if buffer is not None and buffer_profile else None
        xoff = bp.xoff if bp is not None else None
        xon = bp.xon if bp is not None else None
        size = bp.size if bp is not None else None
        alpha = float(2.0 ** bp.dynamic_th) if bp is not None and bp.dynamic_th is not None else None
        for q in ecn_queues:
            waterlines[q] = Waterlines(
                kmin_bytes=wp.green_min_threshold or 0,
                kmax_bytes=wp.green_max_threshold or 0,
                pmax=(wp.green_drop_probability or 0) / 100,
                xoff_bytes=xoff,
                xon_bytes=xon,
                headroom_bytes=size,
                alpha=alpha,
            )
    return QosConfig(
        pfc_priorities=tuple(sorted(pfc or ())),
        ecn_queues=tuple(ecn_queues),
        waterlines=waterlines,
    )


def port_disagreements(
    pfc_priority: Sequence[PfcPriorityRow],
    buffer: BufferConfiguration | None,
    interfaces: Iterable[str],
    lossless_profile: re.Pattern[str],
) -> list[str]:
    """Where the managed ports (or the lossless buffer profiles) differ from each other.

    Waterline manages one switch-wide RoCE config; a switch whose ports differ would be summed
    up lossily (and a rollback could not restore the differences), so changes are refused.
    """
    out: list[str] = []
    rows = {r.interface: tuple(sorted(r.priorities)) for r in pfc_priority}
    wanted = list(interfaces) or list(rows)
    seen: dict[tuple[int, ...], list[str]] = {}
    for name in wanted:
        seen.setdefault(rows.get(name, ()), []).append(name)
    if len(seen) > 1:
        parts = [f"{ports[0]}{' +' + str(len(ports) - 1) if len(ports) > 1 else ''}: "
                 f"{list(prios) or 'none'}" for prios, ports in seen.items()]
        out.append("PFC priorities differ between ports (" + "; ".join(parts) + ")")
    if buffer is not None:
        lossless = [p for p in buffer.profiles if lossless_profile.match(p.name)]
        values = {(p.xon, p.xoff, p.size, p.dynamic_th) for p in lossless}
        if len(values) > 1:
            out.append("lossless buffer profiles differ (" +
                       ", ".join(p.name for p in lossless) + ")")
    return out
