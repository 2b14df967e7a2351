"""Property tests of the parsers and renderers (hypothesis).

- Garbage in -> ParseError out, and never any other exception.
- A corrupted character in real output -> ParseError, or exactly the original numbers (a
  changed interface name or banner is not a wrong number; a changed number is never accepted).
- Numbers rendered into a realistic table parse back exactly (separators, N/A).
- render -> switch -> read back gives the quantised intent, for any valid intent, and the
  rollback rendering restores the previous configuration exactly.
"""

from __future__ import annotations

import string
from collections.abc import Callable
from pathlib import Path

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from app.drivers.comware import parsers as CP
from app.drivers.comware import render as CR
from app.drivers.errors import ParseError
from app.drivers.models import QosConfig, QueueSample, Waterlines
from app.drivers.sonic import parsers as SP
from app.drivers.sonic import render as SR
from tests.drivers.fakes import FakeComware, FakeSonic, sonic_table

RECORDED = Path(__file__).parent / "recorded"
FAST = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])

Parser = Callable[[str], object]

PARSERS: dict[str, Parser] = {
    "sonic/show_pfc_counters.txt": SP.parse_pfc_counters,
    "sonic/show_pfc_counters_multiasic.txt": SP.parse_pfc_counters,
    "sonic/show_queue_counters_cached.txt": SP.parse_queue_counters,
    "sonic/show_queue_counters_ecn_columns.txt": SP.parse_queue_counters,
    "sonic/show_queue_wredcounters.txt": SP.parse_queue_wredcounters,
    "sonic/show_queue_watermark_unicast.txt": SP.parse_queue_watermark,
    "sonic/show_pg_watermark_shared.txt": SP.parse_pg_watermark,
    "sonic/show_ecn.txt": SP.parse_ecn,
    "sonic/show_buffer_configuration.txt": SP.parse_buffer_configuration,
    "sonic/show_pfc_priority.txt": SP.parse_pfc_priority,
    "sonic/ecnconfig_q.txt": SP.parse_ecn_queue_status,
    "comware/display_pfc_interface.txt": CP.parse_pfc_interface,
    "comware/display_pfc_interface_wrapped.txt": CP.parse_pfc_interface,
    "comware/display_pfc_interface_legacy.txt": CP.parse_pfc_interface,
    "comware/display_qos_queue_statistics.txt": CP.parse_queue_statistics,
    "comware/display_buffer_usage.txt": CP.parse_buffer_usage,
    "comware/display_qos_wred_table.txt": CP.parse_wred_table,
    "comware/display_current_configuration.txt": CP.parse_current_configuration,
}
TEXTS = {name: (RECORDED / name).read_text() for name in PARSERS}
TELEMETRY = [n for n, p in PARSERS.items() if p in (
    SP.parse_pfc_counters, SP.parse_queue_counters, SP.parse_queue_wredcounters,
    SP.parse_queue_watermark, CP.parse_pfc_interface, CP.parse_queue_statistics,
    CP.parse_buffer_usage)]

garbage_lines = st.lists(
    st.one_of(
        st.text(max_size=80),
        st.lists(st.sampled_from(["Port", "Rx", "Tx", "PFC3", "TxQ", "UC3", "Ethernet0", "N/A",
                                  "1,200", "12", "-----", "Interface", "Queue", "3", ":",
                                  "Forwarded:", "packets,", "bytes", "Recv", "HGE1/0/1",
                                  "Enabled", "Profile:", "xoff"]), max_size=10).map(" ".join),
    ),
    max_size=12,
).map("\n".join)


@FAST
@given(name=st.sampled_from(sorted(PARSERS)), text=garbage_lines)
def test_garbage_raises_parse_error_only(name: str, text: str) -> None:
    parse = PARSERS[name]
    try:
        result = parse(text)
    except ParseError:
        return
    # Something parsed: it must at least have come from a recognisable table.
    assert result, f"{name}: empty result without ParseError"
    assert text.strip()


def numbers(result: object) -> list[tuple[object, ...]]:
    """The numbers of a parse result without the names: sorted (priority, field, value)."""
    out: list[tuple[object, ...]] = []
    for r in result if isinstance(result, list) else [result]:
        if isinstance(r, QueueSample):
            out += [(r.priority, k, v) for k, v in r.present().items()
                    if k not in ("interface", "priority")]
        elif isinstance(r, SP.PgWatermark):
            out.append((r.priority_group, r.kind, r.watermark_bytes))
        else:
            out.append((repr(r),))
    return sorted(out, key=repr)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), name=st.sampled_from(TELEMETRY))
def test_corrupted_character_never_yields_wrong_numbers(data: st.DataObject, name: str) -> None:
    text = TEXTS[name]
    parse = PARSERS[name]
    original = numbers(parse(text))
    pos = data.draw(st.integers(0, len(text) - 1))
    assume(text[pos] != "\n")
    char = data.draw(st.sampled_from(string.ascii_letters + string.punctuation + " \t\x07"))
    insert = data.draw(st.booleans())
    # Two corruptions leave well-formed output that no parser can tell from the real thing
    # (found by this test; checked exhaustively -- every position, character, insert or
    # replace -- on every telemetry fixture, SONiC and Comware): a digit blanked at either
    # end of a number is a shorter number ("5120" -> "512 "), and "UC0" -> "MC0" is another
    # queue. Every other single-character corruption must be refused or change nothing (the
    # exhaustive run also found a Comware prompt pattern that never returned and a "%"
    # accepted in a cells column; both fixed).
    assume(insert or not (text[pos].isdigit() and char in " \t"))
    assume(insert or not (text[pos:pos + 2] == "UC" and char == "M"))
    mutated = text[:pos] + char + text[pos + (0 if insert else 1) :]
    try:
        got = numbers(parse(mutated))
    except ParseError:
        return
    assert got == original, f"{name}: {text[max(0, pos - 20):pos + 20]!r} -> {char!r}"


@FAST
@given(data=st.data())
def test_corrupted_configuration_never_yields_wrong_numbers(data: st.DataObject) -> None:
    text = TEXTS["comware/display_current_configuration.txt"]
    ports = ["HundredGigE1/0/1", "HundredGigE1/0/2"]
    original = CP.build_qos_config(CP.parse_current_configuration(text), interfaces=ports)
    pos = data.draw(st.integers(0, len(text) - 1))
    char = data.draw(st.sampled_from(string.ascii_letters + "-;|$ "))
    mutated = text[:pos] + char + text[pos + 1 :]
    try:
        got = CP.build_qos_config(CP.parse_current_configuration(mutated), interfaces=ports)
    except ParseError:
        return
    for p, w in got.waterlines.items():
        for field, value in w.model_dump().items():
            if value is not None:
                assert value == getattr(original.waterlines[p], field), (field, mutated[pos - 30:pos + 30])
    assert set(got.pfc_priorities) <= set(original.pfc_priorities)


counter = st.one_of(st.integers(0, 2**64 - 1), st.just(None))


def cell(v: int | None, commas: bool) -> str:
    if v is None:
        return "N/A"
    return f"{v:,}" if commas else str(v)


@FAST
@given(
    values=st.lists(st.lists(counter, min_size=16, max_size=16), min_size=1, max_size=5),
    commas=st.booleans(),
    indent=st.booleans(),
)
def test_sonic_pfc_table_round_trip(values: list[list[int | None]], commas: bool,
                                    indent: bool) -> None:
    ports = [f"Ethernet{4 * i}" for i in range(len(values))]
    heads = [f"PFC{i}" for i in range(8)]
    rx = sonic_table(["Port Rx", *heads], [[p] + [cell(v, commas) for v in row[:8]]
                                           for p, row in zip(ports, values, strict=True)])
    tx = sonic_table(["Port Tx", *heads], [[p] + [cell(v, commas) for v in row[8:]]
                                           for p, row in zip(ports, values, strict=True)])
    pad = "   " if indent else ""
    text = "\n".join([pad + x for x in rx] + [""] + [pad + x for x in tx]) + "\n"
    got = {(s.interface, s.priority): (s.rx_pause_frames, s.tx_pause_frames)
           for s in SP.parse_pfc_counters(text)}
    assert got == {(p, i): (row[i], row[8 + i])
                   for p, row in zip(ports, values, strict=True) for i in range(8)}


@FAST
@given(
    rows=st.lists(st.tuples(st.integers(0, 9), st.lists(counter, min_size=4, max_size=4)),
                  min_size=1, max_size=10, unique_by=lambda r: r[0]),
    commas=st.booleans(),
)
def test_sonic_queue_table_round_trip(rows: list[tuple[int, list[int | None]]],
                                      commas: bool) -> None:
    table = sonic_table(
        ["Port", "TxQ", "Counter/pkts", "Counter/bytes", "Drop/pkts", "Drop/bytes"],
        [["Ethernet0", f"UC{q}", *[cell(v, commas) for v in vals]] for q, vals in rows],
    )
    got = {s.priority: (s.tx_packets, s.tx_bytes, s.drop_packets, s.drop_bytes)
           for s in SP.parse_queue_counters("For namespace :\n" + "\n".join(table))}
    assert got == {q: tuple(vals) for q, vals in rows if q <= 7}


@FAST
@given(
    rows=st.lists(st.tuples(st.integers(0, 7), counter, counter), min_size=1, max_size=8,
                  unique_by=lambda r: r[0]),
    commas=st.booleans(),
    dot1p=st.sampled_from(["", "3", "3,4", "0,2-3,5-6"]),
)
def test_comware_pfc_table_round_trip(rows: list[tuple[int, int | None, int | None]],
                                      commas: bool, dot1p: str) -> None:
    widths = [33, 11, 10, 12, 6, 11, 11, 11]
    header = "".join(h.ljust(w) for h, w in zip(
        ["Interface", "AdminMode", "OperMode", "Dot1pList", "Prio", "Recv", "Send", "Inpps"],
        widths, strict=True)) + "Outpps"
    lines = [header, "-" * len(header)]
    for prio, recv, send in rows:
        cells = ["HGE1/0/1", "Enabled", "Enabled", dot1p, str(prio), cell(recv, commas),
                 cell(send, commas), "0"]
        lines.append("".join((c + " ").ljust(w) if c else " " * w
                             for c, w in zip(cells, widths, strict=True)) + "0")
    got = {s.priority: (s.rx_pause_frames, s.tx_pause_frames)
           for s in CP.parse_pfc_interface("\n".join(lines))}
    assert got == {p: (r, s) for p, r, s in rows}


@FAST
@given(values=st.lists(st.tuples(counter, counter, counter, counter), min_size=8, max_size=8))
def test_comware_queue_statistics_round_trip(
    values: list[tuple[int | None, int | None, int | None, int | None]]
) -> None:
    lines = ["Interface: HundredGigE1/0/1", " Direction: outbound"]
    for q, (fp, fb, dp, db) in enumerate(values):
        lines += [f" Queue {q}",
                  f"  Forwarded: {cell(fp, True)} packets, {cell(fb, True)} bytes, 0 pps, 0 bps",
                  f"  Dropped: {cell(dp, True)} packets, {cell(db, True)} bytes"]
    got = [(s.tx_packets, s.tx_bytes, s.drop_packets, s.drop_bytes)
           for s in CP.parse_queue_statistics("\n".join(lines))]
    assert got == values


# ---------------------------------------------------------------------------------------------
# Render -> switch -> parse
# ---------------------------------------------------------------------------------------------


@st.composite
def intents(draw: st.DrawFn) -> QosConfig:
    prios = draw(st.sets(st.integers(0, 7), min_size=1, max_size=2))
    kmin = draw(st.integers(1_000, 4_000_000))
    kmax = draw(st.integers(kmin + 2_000, 8_000_000))
    pmax = draw(st.sampled_from([0.01, 0.05, 0.1, 0.2, 0.3, 1.0, 0.015]))
    pfc_fields = draw(st.booleans())
    xon = draw(st.integers(2_048, 40_000))
    xoff = draw(st.integers(xon + 4_096, 1_000_000))
    alpha = draw(st.sampled_from([2.0**n for n in range(-7, 4)]))
    w = Waterlines(kmin_bytes=kmin, kmax_bytes=kmax, pmax=pmax,
                   xoff_bytes=xoff if pfc_fields else None, xon_bytes=xon if pfc_fields else None,
                   alpha=alpha if pfc_fields else None)
    pfc = draw(st.sets(st.integers(0, 7), max_size=3))
    return QosConfig(pfc_priorities=tuple(sorted(pfc)), ecn_queues=tuple(sorted(prios)),
                     waterlines={p: w for p in prios})


def sonic_read_back(sw: FakeSonic, ports: list[str]) -> QosConfig:
    return SP.build_qos_config(
        pfc_priority=SP.parse_pfc_priority(sw.show_pfc_priority()),
        ecn_status=SP.parse_ecn_queue_status(sw.ecnconfig_q()),
        wred_profiles=SP.parse_ecn(sw.show_ecn()),
        buffer=SP.parse_buffer_configuration(sw.show_buffer_configuration("P")),
        interfaces=ports, wred_profile="AZURE_LOSSLESS", buffer_profile="P",
    )


@FAST
@given(first=intents(), second=intents())
def test_sonic_render_round_trip_and_rollback(first: QosConfig, second: QosConfig) -> None:
    ports = ["Ethernet0", "Ethernet8"]
    sw = FakeSonic(ports=ports)
    kw: dict[str, object] = {"interfaces": ports, "buffer_profile": "P"}
    for intent in (first, second):
        before = sonic_read_back(sw, ports)
        sw.apply(SR.render_qos(before, intent, **kw))  # type: ignore[arg-type]
        after = sonic_read_back(sw, ports)
        want = SR.quantize(intent)
        assert after.pfc_priorities == want.pfc_priorities
        assert after.ecn_queues == want.ecn_queues
        for p, w in want.waterlines.items():
            for field, value in w.model_dump().items():
                if value is not None:
                    assert getattr(after.waterlines[p], field) == value, field
        assert SR.render_qos(after, intent, **kw) == []  # type: ignore[arg-type]
        sw.apply(SR.render_rollback(after, before, **kw))
        assert sonic_read_back(sw, ports) == before
        sw.apply(SR.render_qos(before, intent, **kw))  # type: ignore[arg-type]


@FAST
@given(first=intents(), second=intents(), cell_bytes=st.sampled_from([208, 254, 256]))
def test_comware_render_round_trip_and_rollback(first: QosConfig, second: QosConfig,
                                                cell_bytes: int) -> None:
    ports = ["HundredGigE1/0/1", "FourHundredGigE1/0/95"]
    units = CP.ComwareUnits(cell_bytes=cell_bytes)
    sw = FakeComware(interfaces=ports)

    def read_back() -> QosConfig:
        return CP.build_qos_config(CP.parse_current_configuration(sw.current_configuration()),
                                   interfaces=ports, units=units)

    for intent in (first, second):
        before = read_back()
        sw.apply(CR.render_qos(before, intent, interfaces=ports, units=units))
        after = read_back()
        assert after == CR.quantize(intent, units)
        assert CR.quantize(after, units) == after  # bytes -> cells -> bytes is stable
        assert CR.render_qos(after, intent, interfaces=ports, units=units) == []
        sw.apply(CR.render_rollback(after, before, interfaces=ports, units=units))
        assert read_back() == before
        sw.apply(CR.render_qos(before, intent, interfaces=ports, units=units))
