"""Render a desired QosConfig into the community SONiC commands that reach it.

The lines are the diff between ``current`` and ``desired`` (empty when they are equal), in the
sonic-utilities syntax:

- ECN/WRED thresholds: ``ecnconfig -p AZURE_LOSSLESS -gmin B -gmax B -gdrop PCT`` (bytes, whole
  percent). ``ecnconfig -q N on`` attaches the hard-coded ``AZURE_LOSSLESS`` profile to queue N,
  which is why the profile name defaults to it and why every ECN queue shares one profile.
- Lossless buffer profile: ``config buffer profile set NAME --xon B --xoff B --size B`` (dynamic
  buffer model; the profile must exist) and ``config mmu -p NAME -a N`` (alpha = 2**N).
- Queues and priorities: ``ecnconfig -q N on|off`` and ``config interface pfc priority IFACE N
  on|off``.

The lines need root: the driver runs them in its ``sudo -s`` shell (and takes the ``config
checkpoint`` before them). Rolling back is rendering the other way: ``render_qos(new, old)``.
sonic-utilities cannot unset profile fields, so fields absent from ``desired`` (thresholds,
xon/xoff/size, alpha) are left as they are; switching ECN/PFC off is rendered.

Every value is validated before it becomes text (see ``vendor_common``). ``quantize`` returns
the config as the switch will report it back (pmax in whole percent, size = xoff + xon when
not given); compare read-back against ``quantize(intent)``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

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

WRED_PROFILE = "AZURE_LOSSLESS"
"""The WRED profile ``ecnconfig -q N on`` attaches to a queue (hard-coded in ecnconfig)."""

INTERFACE_RE = re.compile(r"^Ethernet\d{1,4}$")
"""Front-panel ports as SONiC names them (Ethernet0, Ethernet4, ...)."""

PROFILE_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,62}$")

NEEDS_ROOT = True
"""Rendered lines modify CONFIG_DB: run them as root (the driver's ``sudo -s`` shell)."""


def default_buffer_profile(speed_gbps: int, cable_m: int) -> str:
    """SONiC's name for the lossless PG profile of a speed and cable length, e.g.
    ``pg_lossless_100000_40m_profile`` (speed in Mb/s)."""
    return f"pg_lossless_{int(speed_gbps) * 1000}_{int(cable_m)}m_profile"


def quantize(config: QosConfig) -> QosConfig:
    """``config`` as a SONiC switch reports it back after rendering: pmax to whole percent,
    alpha to its power of two, headroom (profile size) = xoff + xon when not given."""
    waterlines: dict[int, Waterlines] = {}
    for p, w in config.waterlines.items():
        pct = pmax_to_percent(f"waterlines[{p}].pmax", w.pmax)
        headroom = w.headroom_bytes
        if headroom is None and w.xoff_bytes is not None and w.xon_bytes is not None:
            headroom = w.xoff_bytes + w.xon_bytes
        alpha = None
        if w.alpha is not None:
            alpha = float(2.0 ** alpha_exponent(f"waterlines[{p}].alpha", w.alpha, lo=-8, hi=8))
        waterlines[p] = Waterlines(
            kmin_bytes=w.kmin_bytes,
            kmax_bytes=w.kmax_bytes,
            pmax=pct / 100,
            xoff_bytes=w.xoff_bytes,
            xon_bytes=w.xon_bytes,
            headroom_bytes=headroom,
            alpha=alpha,
        )
    return QosConfig(
        pfc_priorities=config.pfc_priorities,
        ecn_queues=config.ecn_queues,
        waterlines=waterlines,
    ).normalised()


def _uniform(field: str, values: Sequence[tuple[object, ...]]) -> tuple[object, ...] | None:
    distinct = sorted(set(values), key=repr)
    if len(distinct) > 1:
        raise refuse(
            field, distinct, "SONiC applies one profile to every lossless queue; values must match"
        )
    return distinct[0] if distinct else None


def _validate(config: QosConfig, *, buffer_bytes: int, strict: bool, what: str) -> None:
    check_qos_shape(config, buffer_bytes=buffer_bytes, strict=strict)
    for p, w in config.waterlines.items():
        if (
            strict
            and w.headroom_bytes is not None
            and w.xoff_bytes is not None
            and w.headroom_bytes < w.xoff_bytes
        ):
            raise refuse(
                f"{what}.waterlines[{p}].headroom_bytes",
                w.headroom_bytes,
                f"profile size below xoff ({w.xoff_bytes})",
            )


def _ecn_values(cfg: QosConfig) -> tuple[object, ...] | None:
    return _uniform(
        "waterlines (ECN)",
        [(w.kmin_bytes, w.kmax_bytes, round(w.pmax * 100)) for w in cfg.waterlines.values()],
    )


def _buffer_values(cfg: QosConfig) -> tuple[object, ...] | None:
    vals = [
        (w.xon_bytes, w.xoff_bytes, w.headroom_bytes, w.alpha)
        for w in cfg.waterlines.values()
        if (w.xon_bytes, w.xoff_bytes, w.headroom_bytes, w.alpha) != (None, None, None, None)
    ]
    return _uniform("waterlines (buffer profile)", vals)


def render_qos(
    current: QosConfig | None,
    desired: QosConfig,
    *,
    interfaces: Sequence[str],
    buffer_profile: str,
    inventory: Iterable[str] | None = None,
    wred_profile: str = WRED_PROFILE,
    buffer_bytes: int = DEFAULT_MAX_BUFFER_BYTES,
    strict: bool = True,
) -> list[str]:
    """The SONiC command lines that turn ``current`` into ``desired`` (the diff; ``[]`` when
    nothing changes). ``current=None`` renders everything in ``desired``.

    ``interfaces`` are the ports to configure (PFC per port); they must match
    :data:`INTERFACE_RE` and be in ``inventory`` (defaults to ``interfaces``). ``strict``
    applies the policy checks (Kmin < Kmax, xon < xoff, positive values, ECN queues have
    waterlines); rollback rendering relaxes them, never the text and range checks.
    Raises ValidationFailed before producing any text.
    """
    ports = check_interfaces(interfaces, pattern=INTERFACE_RE, inventory=inventory)
    wred = check_name("wred_profile", wred_profile, pattern=PROFILE_RE)
    bprof = check_name("buffer_profile", buffer_profile, pattern=PROFILE_RE)
    _validate(desired, buffer_bytes=buffer_bytes, strict=strict, what="desired")
    if current is not None:
        _validate(current, buffer_bytes=buffer_bytes, strict=False, what="current")
    des = quantize(desired)
    cur = quantize(current) if current is not None else QosConfig()

    lines: list[str] = []
    want_ecn = _ecn_values(des)
    have_ecn = _ecn_values(cur) if current is not None else None
    if want_ecn is not None and want_ecn != have_ecn:
        kmin, kmax, pct = want_ecn
        lines.append(f"ecnconfig -p {wred} -gmin {kmin} -gmax {kmax} -gdrop {pct}")

    want_buf = _buffer_values(des)
    have_buf = _buffer_values(cur) if current is not None else None
    if want_buf is not None:
        xon, xoff, size, alpha = want_buf
        old = have_buf or (None, None, None, None)
        opts = []
        for flag, new, was in (("--xon", xon, old[0]), ("--xoff", xoff, old[1]),
                               ("--size", size, old[2])):
            if new is not None and new != was:
                opts.append(f"{flag} {new}")
        if opts:
            lines.append(f"config buffer profile set {bprof} {' '.join(opts)}")
        if alpha is not None and alpha != old[3]:
            n = alpha_exponent("alpha", alpha, lo=-8, hi=8)
            lines.append(f"config mmu -p {bprof} -a {n}")

    for q in sorted(set(des.ecn_queues) - set(cur.ecn_queues)):
        lines.append(f"ecnconfig -q {q} on")
    for q in sorted(set(cur.ecn_queues) - set(des.ecn_queues)):
        lines.append(f"ecnconfig -q {q} off")

    added = sorted(set(des.pfc_priorities) - set(cur.pfc_priorities))
    removed = sorted(set(cur.pfc_priorities) - set(des.pfc_priorities))
    for port in ports:
        for p in added:
            lines.append(f"config interface pfc priority {port} {p} on")
        for p in removed:
            lines.append(f"config interface pfc priority {port} {p} off")
    return lines


def render_rollback(current: QosConfig, previous: QosConfig, **kwargs: object) -> list[str]:
    """The lines that restore ``previous`` (read back before the change) from ``current``.
    Same validation as :func:`render_qos` except the policy checks (``strict=False``)."""
    kwargs.setdefault("strict", False)
    return render_qos(current, previous, **kwargs)  # type: ignore[arg-type]
