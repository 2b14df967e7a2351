"""The waterline guard (pure): what may be pushed to a switch, with a reason for every refusal.

Shared by the change workflow (a refusal is a 422) and the tuner (a refused proposal is never
made). It works on plain numbers: anything with the Waterlines field names can be passed
(``app.drivers.models.Waterlines``, :class:`Waterline` below, a simple namespace); nothing is
imported from ``app``.

Rules:
- ECN: 0 < Kmin < Kmax <= the queue's buffer share; 0 < Pmax <= 1.
- Buffer share: ``kmax_share`` (default 1/8) of the switch buffer. A single egress queue may
  not be asked to hold more than that before marking every packet; with a 32 MB buffer that
  is 4 MB, above the SONiC default lossless Kmax (2 MiB) and HPCC's 100G setting (1.6 MB).
- PFC: xon < xoff; headroom >= the SONiC formula's size (xoff + xon) for the port's speed,
  cable and MTU (``tuning.headroom``) and >= the set's own xoff + xon; xoff >= the formula's
  xoff.
- alpha: a power of two within 1/128..8 (2**-7..2**3, what both NOSes can express).
- ASIC limits: byte values are positive integers no larger than the switch buffer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

from tuning.headroom import HeadroomParams, compute_headroom

DEFAULT_KMAX_SHARE = 1 / 8
ALPHA_MIN = 2.0**-7
ALPHA_MAX = 2.0**3


class WaterlinesLike(Protocol):
    """The fields the guard reads (those of app.drivers.models.Waterlines)."""

    @property
    def kmin_bytes(self) -> int: ...

    @property
    def kmax_bytes(self) -> int: ...

    @property
    def pmax(self) -> float: ...

    @property
    def xoff_bytes(self) -> int | None: ...

    @property
    def xon_bytes(self) -> int | None: ...

    @property
    def headroom_bytes(self) -> int | None: ...

    @property
    def alpha(self) -> float | None: ...


@dataclass(frozen=True)
class Waterline:
    """A plain waterline set for callers outside ``app`` (the tuner)."""

    kmin_bytes: int
    kmax_bytes: int
    pmax: float
    xoff_bytes: int | None = None
    xon_bytes: int | None = None
    headroom_bytes: int | None = None
    alpha: float | None = None


@dataclass(frozen=True)
class Refusal:
    field: str
    value: object
    reason: str

    def __str__(self) -> str:
        return f"{self.field}={self.value!r}: {self.reason}"


class GuardError(ValueError):
    """Raised by :func:`validate_or_raise`; carries every refusal."""

    def __init__(self, refusals: list[Refusal]) -> None:
        super().__init__("; ".join(str(r) for r in refusals))
        self.refusals = refusals


def _integral_bytes(
    out: list[Refusal], name: str, value: object, *, buffer_bytes: int, required: bool
) -> int | None:
    if value is None:
        if required:
            out.append(Refusal(name, value, "required"))
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        out.append(Refusal(name, value, "not a number"))
        return None
    if isinstance(value, float) and (not math.isfinite(value) or value != int(value)):
        out.append(Refusal(name, value, "bytes must be a whole number"))
        return None
    v = int(value)
    if v <= 0:
        out.append(Refusal(name, value, "must be positive"))
        return None
    if v > buffer_bytes:
        out.append(Refusal(name, value, f"larger than the switch buffer ({buffer_bytes} B)"))
        return None
    return v


def check_waterlines(
    w: WaterlinesLike,
    *,
    speed_gbps: int,
    buffer_bytes: int,
    cable_m: float,
    mtu: int = 9100,
    kmax_share: float = DEFAULT_KMAX_SHARE,
    headroom_params: HeadroomParams | None = None,
) -> list[Refusal]:
    """Every rule ``w`` breaks, as refusals (empty: acceptable). PFC rules apply to the PFC
    fields that are set; when any of xoff/xon/headroom is set, headroom must be given too
    (directly, or as xoff + xon)."""
    out: list[Refusal] = []
    if isinstance(buffer_bytes, bool) or not isinstance(buffer_bytes, int) or buffer_bytes <= 0:
        return [Refusal("buffer_bytes", buffer_bytes, "must be a positive integer")]
    if not 0 < kmax_share <= 1:
        return [Refusal("kmax_share", kmax_share, "must be within (0, 1]")]

    kmin = _integral_bytes(out, "kmin_bytes", w.kmin_bytes, buffer_bytes=buffer_bytes,
                           required=True)
    kmax = _integral_bytes(out, "kmax_bytes", w.kmax_bytes, buffer_bytes=buffer_bytes,
                           required=True)
    if kmin is not None and kmax is not None and kmin >= kmax:
        out.append(Refusal("kmin_bytes", kmin, f"Kmin must be below Kmax ({kmax})"))
    share = int(buffer_bytes * kmax_share)
    if kmax is not None and kmax > share:
        out.append(Refusal("kmax_bytes", kmax,
                           f"above the queue's buffer share ({kmax_share:g} x {buffer_bytes} B "
                           f"= {share} B)"))
    pmax = w.pmax
    if isinstance(pmax, bool) or not isinstance(pmax, int | float) or not math.isfinite(pmax) \
            or not 0 < pmax <= 1:
        out.append(Refusal("pmax", pmax, "must be within (0, 1]"))

    xoff = _integral_bytes(out, "xoff_bytes", w.xoff_bytes, buffer_bytes=buffer_bytes,
                           required=False)
    xon = _integral_bytes(out, "xon_bytes", w.xon_bytes, buffer_bytes=buffer_bytes,
                          required=False)
    headroom = _integral_bytes(out, "headroom_bytes", w.headroom_bytes,
                               buffer_bytes=buffer_bytes, required=False)
    if xoff is not None and xon is not None and xon >= xoff:
        out.append(Refusal("xon_bytes", xon, f"xon must be below xoff ({xoff})"))
    held = (xoff or 0) + (xon or 0)
    if headroom is not None and xoff is not None and held > headroom:
        out.append(Refusal("headroom_bytes", headroom,
                           f"below xoff{' + xon' if xon is not None else ''} ({held} B): the "
                           "PG's headroom must hold what arrives after XOFF"))
    pfc_set = any(v is not None for v in (w.xoff_bytes, w.xon_bytes, w.headroom_bytes))
    if pfc_set:
        try:
            need = compute_headroom(speed_gbps, cable_m, mtu, headroom_params)
        except ValueError as exc:
            out.append(Refusal("speed_gbps/cable_m/mtu", (speed_gbps, cable_m, mtu), str(exc)))
        else:
            total = headroom
            if total is None and xoff is not None and xon is not None:
                total = xoff + xon
            if total is None:
                if w.headroom_bytes is None:
                    out.append(Refusal("headroom_bytes", None,
                                       "required with xoff/xon (or give both xoff and xon)"))
            elif total < need.size_bytes:
                out.append(Refusal("headroom_bytes", total,
                                   f"below the headroom formula for {speed_gbps}G, {cable_m:g} m, "
                                   f"MTU {mtu}: {need.size_bytes} B "
                                   f"(xoff {need.xoff_bytes} + xon {need.xon_bytes})"))
            if xoff is not None and xoff < need.xoff_bytes:
                out.append(Refusal("xoff_bytes", xoff,
                                   f"below the formula's xoff {need.xoff_bytes} B: in-flight "
                                   "data after PAUSE would overflow"))

    alpha = w.alpha
    if alpha is not None:
        if isinstance(alpha, bool) or not isinstance(alpha, int | float) \
                or not math.isfinite(alpha) or alpha <= 0:
            out.append(Refusal("alpha", alpha, "must be a positive number"))
        else:
            n = math.log2(alpha)
            if abs(n - round(n)) > 1e-9:
                out.append(Refusal("alpha", alpha, "must be a power of two"))
            elif not ALPHA_MIN <= alpha <= ALPHA_MAX:
                out.append(Refusal("alpha", alpha, "must be within 1/128..8"))
    return out


def validate_or_raise(
    w: WaterlinesLike,
    *,
    speed_gbps: int,
    buffer_bytes: int,
    cable_m: float,
    mtu: int = 9100,
    kmax_share: float = DEFAULT_KMAX_SHARE,
    headroom_params: HeadroomParams | None = None,
) -> None:
    """:func:`check_waterlines`, raising :class:`GuardError` when anything is refused."""
    refusals = check_waterlines(
        w,
        speed_gbps=speed_gbps,
        buffer_bytes=buffer_bytes,
        cable_m=cable_m,
        mtu=mtu,
        kmax_share=kmax_share,
        headroom_params=headroom_params,
    )
    if refusals:
        raise GuardError(refusals)
