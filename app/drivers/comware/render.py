"""Render a desired QosConfig into the Comware 7 system-view lines that reach it.

Output shape (only what changes; ``[]`` when nothing does)::

    system-view
    qos wred queue table WATERLINE
    queue 3 drop-level 0 low-limit L high-limit H discard-probability P   (levels 0, 1, 2)
    queue 3 weighting-constant 0
    queue 3 ecn
    quit
    interface HundredGigE1/0/1
    qos wred apply WATERLINE
    priority-flow-control enable
    priority-flow-control no-drop dot1p 3
    priority-flow-control dot1p 3 headroom N
    priority-flow-control dot1p 3 ingress-buffer dynamic A
    priority-flow-control dot1p 3 ingress-threshold-offset X
    quit
    return

Mapping and units (see :class:`~app.drivers.comware.parsers.ComwareUnits`):
- ``kmin_bytes``/``kmax_bytes`` -> WRED ``low-limit``/``high-limit`` in cells (nearest cell),
  the same on drop levels 0-2 (green/yellow/red); ``pmax`` -> ``discard-probability`` in whole
  percent; ``weighting-constant 0`` so marking follows the instantaneous queue (DCQCN).
- ``xoff_bytes`` -> ``headroom`` cells (rounded up): the room for what still arrives after
  PAUSE; ``xon_bytes`` -> ``ingress-threshold-offset`` cells (the resume hysteresis);
  ``headroom_bytes`` is reported back as xoff + xon (Comware has no separate size, so an intent
  whose headroom differs from xoff + xon is refused); ``alpha`` -> ``ingress-buffer dynamic``
  percentage (alpha/(1+alpha), the H3C band table).

One WRED table (default ``WATERLINE``) carries every lossless queue; it is modified in place
(Comware allows changing a table that is applied). Rolling back is rendering the other way.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence

from app.drivers.comware.parsers import (
    ALPHA_TO_PERCENT,
    ComwareUnits,
    percent_to_alpha_exponent,
)
from app.drivers.models import QosConfig, Waterlines
from app.drivers.vendor_common import (
    DEFAULT_MAX_BUFFER_BYTES,
    alpha_exponent,
    check_interfaces,
    check_name,
    check_qos_shape,
    pmax_to_percent,
    refuse,
)

WRED_TABLE = "WATERLINE"
"""Name of the WRED table Waterline owns on every Comware switch."""

INTERFACE_RE = re.compile(
    r"^(?:GigabitEthernet|Ten-GigabitEthernet|TwentyFiveGigE|FortyGigE|FiftyGigE|HundredGigE"
    r"|TwoHundredGigE|FourHundredGigE|EightHundredGigE)\d{1,2}/\d{1,2}/\d{1,3}(?::[1-8])?$"
)
"""Full Comware Ethernet interface names as configuration uses them."""

TABLE_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,30}$")
"""WRED table names: 1-31 characters, no spaces or quoting."""


def _q_alpha(field: str, alpha: float) -> float:
    n = alpha_exponent(field, alpha, lo=-7, hi=3)
    return float(2.0 ** percent_to_alpha_exponent(ALPHA_TO_PERCENT[n]))


def quantize(config: QosConfig, units: ComwareUnits | None = None) -> QosConfig:
    """``config`` as a Comware switch reports it back after rendering: byte values on whole
    cells, pmax in whole percent, headroom_bytes = xoff + xon (xoff derived from headroom when
    only the latter is given)."""
    u = units or ComwareUnits()
    waterlines: dict[int, Waterlines] = {}
    for p, w in config.waterlines.items():
        f = f"waterlines[{p}]"
        xon = u.to_bytes(u.cells_nearest(w.xon_bytes)) if w.xon_bytes is not None else None
        xoff_src = w.xoff_bytes
        if xoff_src is None and w.headroom_bytes is not None:
            xoff_src = w.headroom_bytes - (w.xon_bytes or 0)
            if xoff_src <= 0:
                raise refuse(f"{f}.headroom_bytes", w.headroom_bytes, "not above xon_bytes")
        xoff = u.to_bytes(u.cells_up(xoff_src)) if xoff_src is not None else None
        waterlines[p] = Waterlines(
            kmin_bytes=u.to_bytes(u.cells_nearest(w.kmin_bytes)),
            kmax_bytes=u.to_bytes(u.cells_nearest(w.kmax_bytes)),
            pmax=pmax_to_percent(f"{f}.pmax", w.pmax) / 100,
            xoff_bytes=xoff,
            xon_bytes=xon,
            headroom_bytes=None if xoff is None or xon is None else xoff + xon,
            alpha=None if w.alpha is None else _q_alpha(f"{f}.alpha", w.alpha),
        )
    return QosConfig(
        pfc_priorities=config.pfc_priorities,
        ecn_queues=config.ecn_queues,
        waterlines=waterlines,
    ).normalised()


def _validate(config: QosConfig, *, buffer_bytes: int, strict: bool, what: str,
              units: ComwareUnits) -> None:
    check_qos_shape(config, buffer_bytes=buffer_bytes, strict=strict)
    for p, w in config.waterlines.items():
        f = f"{what}.waterlines[{p}]"
        if strict and units.cells_nearest(w.kmin_bytes) >= units.cells_nearest(w.kmax_bytes):
            raise refuse(f"{f}.kmin_bytes", w.kmin_bytes,
                         f"Kmin and Kmax ({w.kmax_bytes}) fall on the same or inverted "
                         f"{units.cell_bytes}-byte cells")
        if strict and w.headroom_bytes is not None and w.xoff_bytes is not None \
                and w.headroom_bytes != w.xoff_bytes + (w.xon_bytes or 0):
            raise refuse(f"{f}.headroom_bytes", w.headroom_bytes,
                         "Comware reserves headroom = xoff (+ the xon offset); headroom_bytes "
                         "must equal xoff_bytes + xon_bytes")
        if strict and w.xon_bytes is not None and w.xoff_bytes is not None \
                and units.cells_nearest(w.xon_bytes) >= units.cells_up(w.xoff_bytes):
            raise refuse(f"{f}.xon_bytes", w.xon_bytes, "xon reaches xoff once in cells")


def _ecn_line_values(w: Waterlines, units: ComwareUnits) -> tuple[int, int, int]:
    return (units.cells_nearest(w.kmin_bytes), units.cells_nearest(w.kmax_bytes),
            round(w.pmax * 100))


def render_qos(
    current: QosConfig | None,
    desired: QosConfig,
    *,
    interfaces: Sequence[str],
    inventory: Iterable[str] | None = None,
    units: ComwareUnits | None = None,
    table: str = WRED_TABLE,
    buffer_bytes: int = DEFAULT_MAX_BUFFER_BYTES,
    strict: bool = True,
) -> list[str]:
    """The Comware lines that turn ``current`` into ``desired`` (the diff; ``[]`` when nothing
    changes); ``current=None`` renders everything in ``desired``.

    ``interfaces`` (full names, :data:`INTERFACE_RE`, and in ``inventory`` which defaults to
    them) get the interface part. ``strict`` applies the policy checks (positive values,
    Kmin < Kmax also once in cells, xon < xoff, headroom = xoff + xon, ECN queues have
    waterlines); rollback rendering relaxes them, never the text and range checks.
    Raises ValidationFailed before producing any text.
    """
    u = units or ComwareUnits()
    ports = check_interfaces(interfaces, pattern=INTERFACE_RE, inventory=inventory)
    tname = check_name("table", table, pattern=TABLE_RE)
    _validate(desired, buffer_bytes=buffer_bytes, strict=strict, what="desired", units=u)
    if current is not None:
        _validate(current, buffer_bytes=buffer_bytes, strict=False, what="current", units=u)
    des = quantize(desired, u)
    cur = quantize(current, u) if current is not None else QosConfig()

    # WRED table body: removals first, then (re)written queues, then ECN switched on.
    body: list[str] = []
    for q in sorted(set(cur.ecn_queues) - set(des.ecn_queues)):
        body.append(f"undo queue {q} ecn")
    for p in sorted(set(cur.waterlines) - set(des.waterlines)):
        body.append(f"undo queue {p}")
    for p, w in des.waterlines.items():
        old = cur.waterlines.get(p)
        new_vals = _ecn_line_values(w, u)
        if old is None or _ecn_line_values(old, u) != new_vals:
            low, high, pct = new_vals
            for level in (0, 1, 2):
                body.append(
                    f"queue {p} drop-level {level} low-limit {low} high-limit {high} "
                    f"discard-probability {pct}"
                )
            body.append(f"queue {p} weighting-constant 0")
    for q in sorted(set(des.ecn_queues) - set(cur.ecn_queues)):
        body.append(f"queue {q} ecn")

    # Interface body (the same on every managed interface).
    iface: list[str] = []
    uses_table_now = bool(cur.ecn_queues or cur.waterlines)
    uses_table = bool(des.ecn_queues or des.waterlines)
    if uses_table and not uses_table_now:
        iface.append(f"qos wred apply {tname}")
    pfc_now, pfc = set(cur.pfc_priorities), set(des.pfc_priorities)
    if pfc and not pfc_now:
        iface.append("priority-flow-control enable")
    if pfc != pfc_now:
        if pfc:
            iface.append("priority-flow-control no-drop dot1p " + " ".join(map(str, sorted(pfc))))
        else:
            iface.append("undo priority-flow-control no-drop dot1p")
    for p in sorted(set(des.waterlines) | set(cur.waterlines)):
        new = des.waterlines.get(p)
        old = cur.waterlines.get(p)
        iface.extend(_pfc_buffer_lines(p, old, new, u))
    if pfc_now and not pfc:
        iface.append("undo priority-flow-control enable")
    if uses_table_now and not uses_table:
        iface.append("undo qos wred apply")

    if not body and not iface:
        return []
    lines = ["system-view"]
    if body:
        lines += [f"qos wred queue table {tname}", *body, "quit"]
    if iface:
        for port in ports:
            lines += [f"interface {port}", *iface, "quit"]
    lines.append("return")
    return lines


def _pfc_buffer_lines(
    p: int, old: Waterlines | None, new: Waterlines | None, u: ComwareUnits
) -> list[str]:
    def cells(w: Waterlines | None) -> tuple[int | None, int | None, int | None]:
        if w is None:
            return (None, None, None)
        head = None if w.xoff_bytes is None else u.cells_up(w.xoff_bytes)
        off = None if w.xon_bytes is None else u.cells_nearest(w.xon_bytes)
        dyn = None
        if w.alpha is not None:
            dyn = ALPHA_TO_PERCENT[round(math.log2(w.alpha))]
        return head, off, dyn

    (h0, o0, d0), (h1, o1, d1) = cells(old), cells(new)
    out: list[str] = []
    prefix = f"priority-flow-control dot1p {p}"
    if h1 != h0:
        out.append(f"{prefix} headroom {h1}" if h1 is not None else f"undo {prefix} headroom")
    if d1 != d0:
        out.append(
            f"{prefix} ingress-buffer dynamic {d1}" if d1 is not None
            else f"undo {prefix} ingress-buffer dynamic"
        )
    if o1 != o0:
        out.append(
            f"{prefix} ingress-threshold-offset {o1}" if o1 is not None
            else f"undo {prefix} ingress-threshold-offset"
        )
    return out


def render_rollback(current: QosConfig, previous: QosConfig, **kwargs: object) -> list[str]:
    """The lines that restore ``previous`` (read back before the change) from ``current``.
    Same validation as :func:`render_qos` except the policy checks (``strict=False``)."""
    kwargs.setdefault("strict", False)
    return render_qos(current, previous, **kwargs)  # type: ignore[arg-type]
