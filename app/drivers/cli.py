"""``waterline parse`` and ``waterline headroom``: the parsers and the headroom formula from a
shell. The main CLI mounts :func:`parse` and :func:`headroom` (plain typer commands); ``app``
is a Typer of its own for tests and standalone use.

``parse --nos sonic|comware --command "CMD" [FILE]`` reads the command's output (stdin by
default) and prints JSON: a list of rows for telemetry commands (``interface``, ``priority``
and the counters present) or the parsed structure for configuration commands. The command is
matched as the NOS would: keywords may be abbreviated to a unique prefix, extra whitespace
and interface arguments are accepted. Unknown commands and unparseable output print the
problem on stderr and exit with status 2.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from app.drivers.comware import parsers as cw
from app.drivers.errors import ParseError
from app.drivers.models import QueueSample
from app.drivers.sonic import parsers as sn
from tuning.headroom import PAUSE_QUANTA, HeadroomParams, compute_headroom

NOSES = ("sonic", "comware")


class UnknownCommand(ValueError):
    """The command is not one Waterline has a parser for (or is ambiguous)."""


def _jsonable(result: object) -> Any:
    if isinstance(result, list):
        return [_jsonable(r) for r in result]
    if isinstance(result, QueueSample):
        return result.present()
    if dataclasses.is_dataclass(result) and not isinstance(result, type):
        return dataclasses.asdict(result)
    return result


# --------------------------------------------------------------------------------------------
# Command patterns
# --------------------------------------------------------------------------------------------

IFACE = "<iface>"
ARG = "<arg>"


@dataclass(frozen=True)
class _Pattern:
    words: tuple[str, ...]  # keywords, IFACE, ARG; "[x y]" groups are expanded beforehand
    handler: Callable[[str, str], object]


def _expand(spec: str) -> list[tuple[str, ...]]:
    """"a [b c] d" -> [(a, d), (a, b, c, d)] (one level of optional groups)."""
    variants: list[list[str]] = [[]]
    i = 0
    toks = spec.replace("[", " [ ").replace("]", " ] ").split()
    while i < len(toks):
        if toks[i] == "[":
            j = toks.index("]", i)
            group = toks[i + 1 : j]
            variants = [v for base in variants for v in (base, base + group)]
            i = j + 1
        else:
            for v in variants:
                v.append(toks[i])
            i += 1
    return [tuple(v) for v in variants]


def _iface_tokens(nos: str, toks: Sequence[str], i: int) -> list[int]:
    """How many tokens an interface argument may take at ``toks[i]`` (longest first)."""
    out = []
    if nos == "comware" and i + 1 < len(toks):
        try:
            cw.normalize_interface(toks[i] + toks[i + 1])
            if toks[i].isalpha():
                out.append(2)
        except ValueError:
            pass
    if i < len(toks):
        ok = True
        if nos == "comware":
            try:
                cw.normalize_interface(toks[i])
            except ValueError:
                ok = False
        else:
            ok = toks[i][:1].isalpha() and not toks[i].startswith("-")
        if ok:
            out.append(1)
    return out


def _match(nos: str, words: tuple[str, ...], toks: Sequence[str]) -> int | None:
    """Number of keywords typed in full, or None when ``toks`` do not fit ``words``."""

    def go(wi: int, ti: int) -> int | None:
        if wi == len(words):
            return 0 if ti == len(toks) else None
        w = words[wi]
        if w == IFACE:
            best = None
            for n in _iface_tokens(nos, toks, ti):
                r = go(wi + 1, ti + n)
                if r is not None and (best is None or r > best):
                    best = r
            return best
        if ti >= len(toks):
            return None
        t = toks[ti].lower()
        if w == ARG:
            r = go(wi + 1, ti + 1)
            return r
        if w.startswith("-") or w.startswith("q_") or w.startswith("pg_"):
            ok, exact = t == w.lower(), 1
        else:
            ok, exact = w.lower().startswith(t), int(t == w.lower())
        if not ok:
            return None
        r = go(wi + 1, ti + 1)
        return None if r is None else r + exact

    return go(0, 0)


def _sonic_patterns() -> list[tuple[str, Callable[[str, str], object]]]:
    def watermark(text: str, cmd: str) -> object:
        return sn.parse_queue_watermark(text, command=cmd)

    return [
        ("show pfc counters [<iface>]", lambda t, c: sn.parse_pfc_counters(t, command=c)),
        ("pfcstat", lambda t, c: sn.parse_pfc_counters(t, command=c)),
        ("show queue counters [<iface>]", lambda t, c: sn.parse_queue_counters(t, command=c)),
        ("queuestat", lambda t, c: sn.parse_queue_counters(t, command=c)),
        ("queuestat -p <iface>", lambda t, c: sn.parse_queue_counters(t, command=c)),
        ("show queue wredcounters [<iface>]",
         lambda t, c: sn.parse_queue_wredcounters(t, command=c)),
        ("show queue watermark unicast", watermark),
        ("watermarkstat -t q_shared_uni", watermark),
        ("show queue persistent-watermark unicast", watermark),
        ("watermarkstat -p -t q_shared_uni", watermark),
        ("show priority-group watermark shared",
         lambda t, c: sn.parse_pg_watermark(t, command=c, kind="shared")),
        ("show priority-group watermark headroom",
         lambda t, c: sn.parse_pg_watermark(t, command=c, kind="headroom")),
        ("show priority-group persistent-watermark shared",
         lambda t, c: sn.parse_pg_watermark(t, command=c, kind="shared")),
        ("show priority-group persistent-watermark headroom",
         lambda t, c: sn.parse_pg_watermark(t, command=c, kind="headroom")),
        ("watermarkstat -t pg_shared",
         lambda t, c: sn.parse_pg_watermark(t, command=c, kind="shared")),
        ("watermarkstat -t pg_headroom",
         lambda t, c: sn.parse_pg_watermark(t, command=c, kind="headroom")),
        ("show ecn", lambda t, c: sn.parse_ecn(t, command=c)),
        ("ecnconfig -l", lambda t, c: sn.parse_ecn(t, command=c)),
        ("ecnconfig -q <arg>", lambda t, c: sn.parse_ecn_queue_status(t, command=c)),
        ("show buffer configuration", lambda t, c: sn.parse_buffer_configuration(t, command=c)),
        ("show buffer information", lambda t, c: sn.parse_buffer_configuration(t, command=c)),
        ("show buffer profile", lambda t, c: sn.parse_buffer_configuration(t, command=c)),
        ("show mmu", lambda t, c: sn.parse_buffer_configuration(t, command=c)),
        ("mmuconfig -l", lambda t, c: sn.parse_buffer_configuration(t, command=c)),
        ("buffershow -l", lambda t, c: sn.parse_buffer_configuration(t, command=c)),
        ("show pfc priority [<iface>]", lambda t, c: sn.parse_pfc_priority(t, command=c)),
    ]


def _comware_patterns() -> list[tuple[str, Callable[[str, str], object]]]:
    return [
        ("display priority-flow-control interface [<iface>]",
         lambda t, c: cw.parse_pfc_interface(t, command=c)),
        ("display qos queue-statistics interface [<iface>] outbound",
         lambda t, c: cw.parse_queue_statistics(t, command=c)),
        ("display qos wred table [name <arg>]", lambda t, c: cw.parse_wred_table(t, command=c)),
        ("display buffer usage interface [<iface>] [verbose]",
         lambda t, c: cw.parse_buffer_usage(t, command=c)),
        ("display current-configuration [interface <iface>]",
         lambda t, c: cw.parse_current_configuration(t, command=c)),
    ]


def _patterns(nos: str) -> list[_Pattern]:
    specs = _sonic_patterns() if nos == "sonic" else _comware_patterns()
    return [_Pattern(words, handler) for spec, handler in specs for words in _expand(spec)]


def find_parser(nos: str, command: str) -> Callable[[str, str], object]:
    """The parser for ``command`` on ``nos`` (abbreviations and arguments as the NOS accepts
    them). Raises UnknownCommand."""
    if nos not in NOSES:
        raise UnknownCommand(f"unknown NOS {nos!r}; expected one of {', '.join(NOSES)}")
    toks = command.split()
    if not toks:
        raise UnknownCommand("empty command")
    scored: list[tuple[int, _Pattern]] = []
    for pat in _patterns(nos):
        score = _match(nos, pat.words, toks)
        if score is not None:
            scored.append((score, pat))
    if not scored:
        raise UnknownCommand(f"no {nos} parser for command {command!r}")
    best = max(s for s, _ in scored)
    handlers = {id(p.handler): p for s, p in scored if s == best}
    if len(handlers) > 1:
        choices = sorted({" ".join(p.words) for s, p in scored if s == best})
        raise UnknownCommand(f"ambiguous {nos} command {command!r}: {' | '.join(choices)}")
    return next(iter(handlers.values())).handler


def parse_output(nos: str, command: str, text: str) -> Any:
    """Parse ``text`` as the output of ``command`` on ``nos``; JSON-ready result.
    Raises UnknownCommand or ParseError."""
    handler = find_parser(nos, command)
    return _jsonable(handler(text, " ".join(command.split())))


# --------------------------------------------------------------------------------------------
# Typer commands
# --------------------------------------------------------------------------------------------

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code=2)


@app.command("parse")
def parse(
    nos: Annotated[str, typer.Option("--nos", help="comware or sonic")],
    command: Annotated[str, typer.Option("--command", help="the command that was run")],
    file: Annotated[
        Path | None, typer.Argument(help="file with the output (default: stdin)")
    ] = None,
) -> None:
    """Parse a switch command's output and print it as JSON."""
    try:
        raw = file.read_bytes() if file is not None else sys.stdin.buffer.read()
    except OSError as exc:
        raise _fail(f"cannot read {file}: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _fail(f"{command}: output is not UTF-8 text ({exc.reason} at byte {exc.start})") \
            from None
    try:
        result = parse_output(nos.strip().lower(), command, text)
    except (UnknownCommand, ParseError) as exc:
        raise _fail(str(exc)) from None
    typer.echo(json.dumps(result, indent=2, sort_keys=False))


@app.command("headroom")
def headroom(
    speed_gbps: Annotated[int, typer.Option("--speed-gbps", help="port speed in Gb/s")],
    cable_m: Annotated[float, typer.Option("--cable-m", help="cable length in metres")],
    mtu: Annotated[int, typer.Option("--mtu", help="port MTU in bytes")] = 9100,
    cell_bytes: Annotated[
        int | None, typer.Option("--cell-bytes", help="ASIC buffer cell size (default 144)")
    ] = None,
    lossless_mtu: Annotated[
        int | None, typer.Option("--lossless-mtu", help="MTU of the lossless traffic (1024)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """PFC headroom (xoff, xon, size) from SONiC's formula."""
    try:
        kw: dict[str, Any] = {}
        if cell_bytes is not None:
            kw["cell_bytes"] = cell_bytes
        if lossless_mtu is not None:
            kw["lossless_mtu"] = lossless_mtu
        result = compute_headroom(speed_gbps, cable_m, mtu, HeadroomParams(**kw))
    except ValueError as exc:
        raise _fail(str(exc)) from None
    if as_json:
        typer.echo(json.dumps(result.as_dict()))
        return
    typer.echo(
        f"{speed_gbps}G, {cable_m:g} m, MTU {mtu}: xoff {result.xoff_bytes} B, "
        f"xon {result.xon_bytes} B, size {result.size_bytes} B "
        f"(pause quanta {PAUSE_QUANTA[speed_gbps]}, cell occupancy {result.cell_occupancy:g})"
    )


def main() -> None:  # pragma: no cover - convenience entry point
    app()
