"""Shared primitives of the vendor parsers and renderers (Comware, SONiC).

Parsing side: cleaning what netmiko hands back (ANSI escapes, pager remnants, echoed prompts),
strict number parsing (thousands separators, ``N/A`` -> ``None``, anything else -> ParseError).
Rendering side: validation of every value before it becomes CLI text (the defence in depth the
driver contract asks for), device-unit quantisation of probabilities and alphas, and the
comparison of an intent with what a switch reports back.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence

from app.drivers.errors import ParseError, ValidationFailed
from app.drivers.models import QosConfig, Waterlines

# --------------------------------------------------------------------------------------------
# Text cleaning
# --------------------------------------------------------------------------------------------

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-Z\\-_]")
# Comware's pager prints "  ---- More ----" and erases it with backspaces/ANSI moves; SONiC's
# `less` prints "--More--" / "(END)". Whatever remains after ANSI stripping is removed here.
_MORE = re.compile(r"-{2,}\s*more\s*-{2,}|\(END\)", re.IGNORECASE)


def clean_lines(text: str) -> list[str]:
    """Split device output into lines with ANSI escapes, pager remnants, backspaces and
    trailing whitespace removed. Tabs become spaces (column layouts are space based)."""
    if "\x00" in text:
        # NUL never appears in CLI output; treat it as garbage rather than silently dropping.
        raise ValueError("NUL byte in output")
    text = _ANSI.sub("", text)
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\t", "    ")
    lines = []
    for raw in text.split("\n"):
        line = raw
        while "\x08" in line:  # a backspace erases the character before it
            i = line.index("\x08")
            line = line[: max(0, i - 1)] + line[i + 1 :]
        line = _MORE.sub("", line)
        lines.append(line.rstrip())
    return lines


def cleaned(command: str, text: str) -> list[str]:
    """:func:`clean_lines`, raising ParseError (naming the command) on binary garbage."""
    if not isinstance(text, str):
        raise ParseError(command, f"expected text, got {type(text).__name__}")
    try:
        return clean_lines(text)
    except ValueError as exc:
        raise ParseError(command, str(exc)) from None


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def check_printable(command: str, line: str) -> None:
    """Control characters inside a line mean a corrupted stream, not a format variant."""
    if _CONTROL.search(line):
        raise ParseError(command, "control character in output", line=line)


# --------------------------------------------------------------------------------------------
# Numbers
# --------------------------------------------------------------------------------------------

NA_TOKENS = frozenset({"N/A"})
"""How SONiC and Comware print a counter the platform does not provide."""
_INT = re.compile(r"^[+-]?(?:\d{1,3}(?:,\d{3})+|\d+)$")


def parse_count(command: str, token: str, *, line: str, allow_na: bool = True) -> int | None:
    """A counter cell: ``1482117``, ``1,482,117`` or ``N/A`` (-> ``None``, never 0).

    Negative values, misplaced separators (``12,00``), decimals and words raise ParseError.
    """
    tok = token.strip()
    if allow_na and tok in NA_TOKENS:
        return None
    if not _INT.match(tok) or tok.startswith(("+", "-")):
        raise ParseError(command, f"not a counter value: {tok!r}", line=line)
    return int(tok.replace(",", ""))


class SeparatorStyle:
    """One output uses thousands separators for every number >= 1000 or for none (pfcstat and
    queuestat always do, watermarkstat and Comware never do). A mix means a corrupted digit
    (``1056768`` -> ``105,768``), so it is refused rather than read as another number."""

    def __init__(self, command: str) -> None:
        self.command = command
        self.grouped: str | None = None
        self.plain: str | None = None

    def see(self, token: str, line: str) -> None:
        tok = token.strip()
        if "," in tok:
            self.grouped = self.grouped or line
            if self.plain is not None:
                raise ParseError(self.command, "mixed thousands separators", line=line)
        elif tok.isdigit() and len(tok) > 3:
            self.plain = self.plain or line
            if self.grouped is not None:
                raise ParseError(self.command, "mixed thousands separators", line=line)


def parse_setting(command: str, token: str, *, line: str, signed: bool = False) -> int:
    """A configured integer (thresholds, sizes, ``dynamic_th`` -2): plain digits only, as
    configuration stores them; separators here would mean corruption."""
    tok = token.strip()
    if not re.fullmatch(r"-?\d+" if signed else r"\d+", tok):
        raise ParseError(command, f"not an integer setting: {tok!r}", line=line)
    return int(tok)


def split_columns(line: str) -> list[str]:
    """Header cells of a tabulate/Comware table: separated by two or more spaces."""
    return [c for c in re.split(r"\s{2,}", line.strip()) if c]


def is_rule(line: str) -> bool:
    """A table rule: only dashes (and the spaces between column rules)."""
    s = line.strip()
    return bool(s) and set(s) <= {"-", " ", "+", "="} and s.count("-") + s.count("=") >= 3


_NUMERICISH = re.compile(r"^(?:[+-]?[\d,]+(?:\.\d+)?|N/A)$")


def looks_like_data(line: str) -> bool:
    """True for a line shaped like a table row: a name followed only by numbers/N/A.

    Used to refuse counters that sit outside any recognised table (a damaged or missing
    header): silently skipping them would hide data.
    """
    toks = line.split()
    return len(toks) >= 2 and all(_NUMERICISH.match(t) for t in toks[1:])


def parse_priority_list(command: str, text: str, *, line: str) -> tuple[int, ...]:
    """``3``, ``3,4``, ``0,2-3,5-6`` or Comware's ``3 4`` / ``3 to 5`` -> sorted priorities."""
    s = text.strip()
    if not s or s in NA_TOKENS:
        return ()
    s = re.sub(r"\s+to\s+", "-", s)
    out: set[int] = set()
    for part in re.split(r"[,\s]+", s):
        m = re.fullmatch(r"([0-7])(?:-([0-7]))?", part)
        if not m:
            raise ParseError(command, f"bad priority list {text!r}", line=line)
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) else lo
        if hi < lo:
            raise ParseError(command, f"bad priority range {part!r}", line=line)
        out.update(range(lo, hi + 1))
    return tuple(sorted(out))


# --------------------------------------------------------------------------------------------
# Validation before rendering
# --------------------------------------------------------------------------------------------

# Characters that could end, chain or substitute a shell/CLI command, and quotes.
_FORBIDDEN = frozenset("\n\r;|&$`'\"\\<>(){}*?!#~")

DEFAULT_MAX_BUFFER_BYTES = 132 * 1024 * 1024
"""Largest switch buffer of the ASIC classes Waterline targets (Trident 4: up to 132 MB, see
REFERENCE.md). A value above the caller's buffer (or this ceiling) is absurd and refused."""

NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,62}$")
"""Profile/table names: a letter, then letters, digits, ``_ . -`` (no spaces, no quoting)."""


def refuse(field: str, value: object, reason: str) -> ValidationFailed:
    return ValidationFailed(f"{field}={value!r} refused: {reason}")


def check_text(field: str, value: object) -> str:
    """Refuse anything that is not plain printable ASCII without shell/CLI metacharacters."""
    if not isinstance(value, str):
        raise refuse(field, value, "not a string")
    if not value:
        raise refuse(field, value, "empty")
    if any(ord(c) > 126 for c in value):
        raise refuse(field, value, "non-ASCII character")
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise refuse(field, value, "control character (newline, CR, tab, ...)")
    bad = sorted(set(value) & _FORBIDDEN)
    if bad:
        raise refuse(field, value, f"forbidden character(s) {''.join(bad)!r}")
    return value


def check_name(field: str, value: object, *, pattern: re.Pattern[str] = NAME_RE) -> str:
    text = check_text(field, value)
    if not pattern.fullmatch(text):
        raise refuse(field, value, f"does not match {pattern.pattern}")
    return text


def check_interfaces(
    interfaces: Sequence[str], *, pattern: re.Pattern[str], inventory: Iterable[str] | None = None
) -> list[str]:
    """Interface names: plain text, the NOS's strict pattern, and (when given) the inventory."""
    if isinstance(interfaces, str):
        raise refuse("interfaces", interfaces, "expected a list of interface names")
    known = set(inventory) if inventory is not None else None
    out: list[str] = []
    for name in interfaces:
        check_name("interface", name, pattern=pattern)
        if known is not None and name not in known:
            raise refuse("interface", name, "not an interface of this switch's inventory")
        if name in out:
            raise refuse("interface", name, "listed twice")
        out.append(name)
    return out


def check_int(field: str, value: object, *, lo: int, hi: int) -> int:
    """An integral number (bool refused; 1.0 accepted as 1) within [lo, hi]."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise refuse(field, value, "not a number")
    if isinstance(value, float):
        if not math.isfinite(value) or value != int(value):
            raise refuse(field, value, "not an integral number")
        value = int(value)
    if value < lo or value > hi:
        raise refuse(field, value, f"outside [{lo}, {hi}]")
    return value


def check_float(
    field: str, value: object, *, lo: float, hi: float, lo_open: bool = False
) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise refuse(field, value, "not a number")
    v = float(value)
    if not math.isfinite(v):
        raise refuse(field, value, "not finite")
    if (v <= lo if lo_open else v < lo) or v > hi:
        raise refuse(field, value, f"outside {'(' if lo_open else '['}{lo}, {hi}]")
    return v


def check_priority(field: str, value: object) -> int:
    return check_int(field, value, lo=0, hi=7)


def pmax_to_percent(field: str, pmax: object) -> int:
    """Pmax (0, 1] -> whole percent 1..100, the unit of both NOSes (SONiC ``-gdrop``,
    Comware ``discard-probability``). Rounded to nearest; never 0 for a positive Pmax."""
    v = check_float(field, pmax, lo=0.0, hi=1.0, lo_open=True)
    return max(1, min(100, round(v * 100)))


def alpha_exponent(field: str, alpha: object, *, lo: int = -7, hi: int = 3) -> int:
    """Dynamic-threshold alpha -> n with alpha = 2**n (SONiC ``dynamic_th``). Alphas that are
    not a power of two, or outside 2**lo..2**hi (default 1/128..8), are refused."""
    v = check_float(field, alpha, lo=0.0, hi=float(2**hi), lo_open=True)
    n = math.log2(v)
    if abs(n - round(n)) > 1e-9:
        raise refuse(field, alpha, "alpha must be a power of two")
    n_int = round(n)
    if not lo <= n_int <= hi:
        raise refuse(field, alpha, f"alpha outside 2**{lo}..2**{hi}")
    return n_int


def check_waterline_basics(
    prio: int, w: Waterlines, *, buffer_bytes: int, strict: bool = True
) -> tuple[int, int, int]:
    """The checks common to both renderers; returns (kmin, kmax, pmax percent).

    Always: integral byte values within [0, buffer], 0 < pmax <= 1, a power-of-two alpha.
    ``strict`` (new intents) adds the policy: positive values, Kmin < Kmax, xon < xoff.
    Rollback rendering passes ``strict=False`` so a switch's own odd defaults can be restored.
    """
    f = f"waterlines[{prio}]"
    lo = 1 if strict else 0

    def size(name: str, value: object) -> int:
        v = check_int(f"{f}.{name}", value, lo=lo, hi=1 << 62)
        if v > buffer_bytes:
            raise refuse(f"{f}.{name}", value, f"larger than the switch buffer ({buffer_bytes} B)")
        return v

    kmin = size("kmin_bytes", w.kmin_bytes)
    kmax = size("kmax_bytes", w.kmax_bytes)
    if strict and kmin >= kmax:
        raise refuse(f"{f}.kmin_bytes", kmin, f"Kmin must be below Kmax ({kmax})")
    if kmin > kmax:
        raise refuse(f"{f}.kmin_bytes", kmin, f"Kmin above Kmax ({kmax})")
    percent = pmax_to_percent(f"{f}.pmax", w.pmax)
    for name in ("xoff_bytes", "xon_bytes", "headroom_bytes"):
        value = getattr(w, name)
        if value is not None:
            size(name, value)
    if (
        strict
        and w.xoff_bytes is not None
        and w.xon_bytes is not None
        and w.xon_bytes >= w.xoff_bytes
    ):
        raise refuse(f"{f}.xon_bytes", w.xon_bytes, f"xon must be below xoff ({w.xoff_bytes})")
    if w.alpha is not None:
        alpha_exponent(f"{f}.alpha", w.alpha, lo=-7 if strict else -8, hi=3 if strict else 8)
    return kmin, kmax, percent


def check_qos_shape(config: QosConfig, *, buffer_bytes: int, strict: bool = True) -> None:
    """Structure checks shared by the renderers (before any text is produced).

    Waterlines are the ECN thresholds of a queue, so their priorities must have ECN enabled;
    ``strict`` also requires every ECN queue to have waterlines (what the switch reports back).
    """
    if not isinstance(config, QosConfig):
        raise refuse("config", type(config).__name__, "not a QosConfig")
    check_int("buffer_bytes", buffer_bytes, lo=1, hi=1 << 40)
    for p in config.pfc_priorities:
        check_priority("pfc_priorities", p)
    for q in config.ecn_queues:
        check_priority("ecn_queues", q)
    for p, w in config.waterlines.items():
        check_priority("waterlines", p)
        if not isinstance(w, Waterlines):
            raise refuse(f"waterlines[{p}]", type(w).__name__, "not a Waterlines")
        if p not in config.ecn_queues:
            raise refuse(
                "waterlines", p, "waterlines are the ECN thresholds of a queue; enable ECN on it"
            )
        check_waterline_basics(p, w, buffer_bytes=buffer_bytes, strict=strict)
    if strict:
        for q in config.ecn_queues:
            if q not in config.waterlines:
                raise refuse("ecn_queues", q, "an ECN queue needs its waterlines (Kmin/Kmax/Pmax)")


def qos_differences(intent: QosConfig, observed: QosConfig) -> list[str]:
    """What of ``intent`` the switch does not show. Waterline fields left ``None`` in the
    intent are not compared (the switch may report values the intent did not set). Compare a
    *quantised* intent (the renderer module's ``quantize``) with the read-back config."""
    out: list[str] = []
    a, b = intent.normalised(), observed.normalised()
    if a.pfc_priorities != b.pfc_priorities:
        out.append(f"pfc_priorities: intent {a.pfc_priorities}, switch {b.pfc_priorities}")
    if a.ecn_queues != b.ecn_queues:
        out.append(f"ecn_queues: intent {a.ecn_queues}, switch {b.ecn_queues}")
    for p, w in a.waterlines.items():
        got = b.waterlines.get(p)
        if got is None:
            out.append(f"waterlines[{p}]: missing on the switch")
            continue
        for name, want in w.model_dump().items():
            have = getattr(got, name)
            if want is None:
                continue
            same = math.isclose(want, have, rel_tol=1e-9) if isinstance(want, float) and \
                isinstance(have, int | float) else want == have
            if not same:
                out.append(f"waterlines[{p}].{name}: intent {want!r}, switch {have!r}")
    for p in b.waterlines:
        if p not in a.waterlines:
            out.append(f"waterlines[{p}]: on the switch but not in the intent")
    return out
