"""The waterline search space, in coordinates the models can share across link speeds.

A waterline set is five numbers for the tuner: Kmin, Kmax, Pmax (ECN/WRED on the egress
queue), alpha (the dynamic threshold of the ingress PG) and the PG headroom. Its coordinates
``x`` (``COORD_NAMES``):

- ``log2_kmin_bdp``: log2(Kmin / BDP), BDP = line rate x 8 us (``features.bdp_bytes``), so
  that the same coordinate means the same queueing delay at 100, 200 and 400G (the DCQCN,
  HPCC and vendor references all scale their thresholds with bandwidth);
- ``log2_kmax_over_kmin``: log2(Kmax / Kmin), the width of the marking ramp;
- ``log2_pmax``: log2(Pmax);
- ``log2_alpha``: log2(alpha), an integer within -7..3 (1/128..8, what the NOSes accept);
- ``headroom_rel``: headroom / the SONiC formula's size (>= 1: never below the formula).

xoff/xon follow from the headroom: xon = the formula's xon, xoff = headroom - xon (>= the
formula's xoff because headroom >= the formula's size), so every point maps to a guard-clean
:class:`~tuning.guard.Waterline`.

Bounded step (one change, :func:`step_bounded`): Kmin and Kmax move by at most a factor of 16
(4 octaves) each, Pmax by at most a factor of 4, alpha by at most two powers of two, headroom
by at most half the formula's size. From the SONiC default (1 MiB / 2 MiB) the delay-sized
thresholds of a 100G port (a few to tens of KB) are two changes away, and back.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, replace

import numpy as np

from tuning.features import bdp_bytes
from tuning.guard import ALPHA_MAX, ALPHA_MIN, DEFAULT_KMAX_SHARE, Waterline, WaterlinesLike
from tuning.headroom import PAUSE_QUANTA, Headroom, compute_headroom

COORD_NAMES: tuple[str, ...] = (
    "log2_kmin_bdp", "log2_kmax_over_kmin", "log2_pmax", "log2_alpha", "headroom_rel")

# Search bounds of the coordinates (besides the guard's own limits).
KMIN_BDP_LOG2 = (-6.0, 4.0)      # 1.6 KB .. 1.6 MB at 100G
SPAN_LOG2 = (0.5, 8.0)           # Kmax / Kmin in 1.4 .. 256
PMAX_LOG2 = (-7.0, 0.0)          # 0.8 % .. 100 %
ALPHA_LOG2 = (math.log2(ALPHA_MIN), math.log2(ALPHA_MAX))
# the search box's lower corner (the headroom coordinate: at least the formula's size)
_box_low = np.array([KMIN_BDP_LOG2[0], SPAN_LOG2[0], PMAX_LOG2[0], ALPHA_LOG2[0], 1.0])
HEADROOM_REL_MAX = 2.0
HEADROOM_PGS = 256               # headroom never takes more than 1/256 of the buffer per PG

# Step bounds of one change (module docstring).
MAX_K_FACTOR = 16.0
MAX_PMAX_FACTOR = 4.0
MAX_ALPHA_STEPS = 2
MAX_HEADROOM_STEP_REL = 0.5

SAME_DEPTH = 1.02  # ramp depths within 2 % are the same (the devices round thresholds)
DEFAULT_ALPHA = 0.125  # the dynamic threshold of a NIC-speed port (HPCC ns-3, SONiC 1/8)


@dataclass(frozen=True)
class PortContext:
    """What bounds a switch's waterlines: its fastest port, buffer, longest cable and MTU."""

    speed_gbps: int
    buffer_bytes: int
    cable_m: float
    mtu: int = 9100

    @property
    def bdp(self) -> float:
        return bdp_bytes(self.speed_gbps)

    @property
    def kmax_cap(self) -> int:
        return int(self.buffer_bytes * DEFAULT_KMAX_SHARE)

    def headroom(self) -> Headroom:
        return _headroom(self.speed_gbps, self.cable_m, self.mtu)

    @property
    def headroom_cap(self) -> int:
        need = self.headroom().size_bytes
        return max(need, min(int(need * HEADROOM_REL_MAX), self.buffer_bytes // HEADROOM_PGS))

    def supported(self) -> bool:
        return self.speed_gbps in PAUSE_QUANTA


@functools.lru_cache(maxsize=1024)
def _headroom(speed_gbps: int, cable_m: float, mtu: int) -> Headroom:
    return compute_headroom(speed_gbps, cable_m, mtu)


def reference_waterlines(speed_gbps: float) -> dict[str, Waterline]:
    """The static references of REFERENCE.md at a port speed (ECN only): the SONiC default
    lossless profile 1 MiB / 2 MiB / 5 %; the DCQCN paper's 5 KB / 200 KB / 1 % at 40G, HPCC's
    production 100 KB / 400 KB / 20 % at 25G and the vendor guide's delay-sensitive 7 KB /
    500 KB / 30 % at 100G, each scaled with bandwidth."""
    s40, s25, s100 = speed_gbps / 40, speed_gbps / 25, speed_gbps / 100
    return {
        "sonic_default": Waterline(1 << 20, 2 << 20, 0.05),
        "dcqcn_paper": Waterline(int(5_000 * s40), int(200_000 * s40), 0.01),
        "hpcc": Waterline(int(100_000 * s25), int(400_000 * s25), 0.2),
        "vendor": Waterline(int(7_000 * s100), int(500_000 * s100), 0.3),
    }


def ramp_depth_bytes(w: WaterlinesLike) -> float:
    """Where a set's ECN ramp sits: the geometric mean of Kmin and Kmax (bytes)."""
    kmin = max(1.0, float(w.kmin_bytes))
    return math.sqrt(kmin * max(kmin, float(w.kmax_bytes)))


def ramp_depth(x: np.ndarray) -> np.ndarray:
    """``ramp_depth_bytes`` of coordinate rows, in octaves of the BDP: the mean of
    log2 Kmin / BDP and log2 Kmax / BDP."""
    out: np.ndarray = x[:, 0] + 0.5 * x[:, 1]
    return out


def deeper_than_references(before: WaterlinesLike, after: WaterlinesLike,
                           speed_gbps: float) -> bool:
    """Whether a change from ``before`` to ``after`` takes the ECN ramp deeper than it was and
    than every static reference at this speed (``ramp_depth_bytes``, beyond device rounding):
    past the operators' known operating points, towards longer standing queues."""
    depth = ramp_depth_bytes(after)
    deepest = max(ramp_depth_bytes(r) for r in reference_waterlines(speed_gbps).values())
    return depth > SAME_DEPTH * deepest and depth > SAME_DEPTH * ramp_depth_bytes(before)


def alpha_of(w: WaterlinesLike) -> float:
    return float(w.alpha) if w.alpha else DEFAULT_ALPHA


def headroom_of(w: WaterlinesLike, ctx: PortContext) -> int:
    """The PG headroom a waterline set asks for (xoff + xon when only those are given)."""
    if w.headroom_bytes:
        return int(w.headroom_bytes)
    if w.xoff_bytes and w.xon_bytes:
        return int(w.xoff_bytes + w.xon_bytes)
    return ctx.headroom().size_bytes


def to_coords(w: WaterlinesLike, ctx: PortContext) -> np.ndarray:
    """``x`` (COORD_NAMES) of a waterline set."""
    kmin = max(1.0, float(w.kmin_bytes))
    kmax = max(kmin * 1.01, float(w.kmax_bytes))
    need = ctx.headroom().size_bytes
    return np.array([
        math.log2(kmin / ctx.bdp),
        math.log2(kmax / kmin),
        math.log2(min(1.0, max(1e-4, float(w.pmax)))),
        math.log2(alpha_of(w)),
        headroom_of(w, ctx) / need,
    ])


def clip_coords(x: np.ndarray, ctx: PortContext) -> np.ndarray:
    """Clip coordinates (rows of ``x``) into the search box and the guard's limits."""
    x = np.array(x, dtype=float, copy=True)
    single = x.ndim == 1
    x2 = np.atleast_2d(x)
    high, cap = _box_high(ctx)
    # per column (low, high); np.minimum / np.maximum directly: np.clip's dispatch costs
    # several times the work on a proposal cycle's thousands of small calls
    x2[:, 3] = np.round(x2[:, 3])
    np.maximum(x2, _box_low, out=x2)
    np.minimum(x2, high, out=x2)
    # Kmax within the queue's buffer share, Kmin below it
    x2[:, 0] = np.minimum(x2[:, 0], cap - SPAN_LOG2[0])
    x2[:, 1] = np.minimum(x2[:, 1], cap - x2[:, 0])
    return x2[0] if single else x2


@functools.lru_cache(maxsize=1024)
def _box_high(ctx: PortContext) -> tuple[np.ndarray, float]:
    """The search box's upper corner at ``ctx`` (never written to) and log2 of its Kmax cap
    in BDPs: worked out once per context, not on each of a cycle's 20,000 clips."""
    high = np.array([KMIN_BDP_LOG2[1], SPAN_LOG2[1], PMAX_LOG2[1], ALPHA_LOG2[1],
                     ctx.headroom_cap / ctx.headroom().size_bytes])
    high.flags.writeable = False
    return high, math.log2(ctx.kmax_cap / ctx.bdp)


def from_coords(x: np.ndarray, ctx: PortContext) -> Waterline:
    """The guard-clean waterline set at coordinates ``x`` (clipped first)."""
    c = clip_coords(np.asarray(x, dtype=float), ctx)
    kmin = max(1, int(np.rint(2.0 ** c[0] * ctx.bdp)))
    kmax = min(ctx.kmax_cap, max(kmin + 1, int(np.rint(kmin * 2.0 ** c[1]))))
    kmin = min(kmin, kmax - 1)
    pmax = float(min(1.0, max(1e-4, round(2.0 ** c[2], 4))))
    alpha = float(2.0 ** int(np.rint(c[3])))
    return complete(Waterline(kmin_bytes=kmin, kmax_bytes=kmax, pmax=pmax, alpha=alpha),
                    ctx, headroom_bytes=int(np.rint(c[4] * ctx.headroom().size_bytes)))


def complete(w: WaterlinesLike, ctx: PortContext, *, headroom_bytes: int | None = None
             ) -> Waterline:
    """The full set (kmin, kmax, pmax, xoff, xon, headroom, alpha) with the PFC fields filled
    from the formula: headroom >= its size, xon = its xon, xoff = headroom - xon."""
    need = ctx.headroom()
    head = headroom_bytes if headroom_bytes is not None else headroom_of(w, ctx)
    head = int(min(max(head, need.size_bytes), max(need.size_bytes, ctx.headroom_cap)))
    return Waterline(kmin_bytes=int(w.kmin_bytes), kmax_bytes=int(w.kmax_bytes),
                     pmax=float(w.pmax), xoff_bytes=head - need.xon_bytes,
                     xon_bytes=need.xon_bytes, headroom_bytes=head, alpha=alpha_of(w))


def step_bounds(current: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-coordinate (low, high) limits of one change from ``current`` (bounded step). The
    Kmax bound is on log2(Kmax) = x0 + x1 and is enforced by :func:`within_step`."""
    lo = current - np.array([math.log2(MAX_K_FACTOR), 99.0, math.log2(MAX_PMAX_FACTOR),
                             MAX_ALPHA_STEPS, MAX_HEADROOM_STEP_REL])
    hi = current + np.array([math.log2(MAX_K_FACTOR), 99.0, math.log2(MAX_PMAX_FACTOR),
                             MAX_ALPHA_STEPS, MAX_HEADROOM_STEP_REL])
    return lo, hi


def within_step(cands: np.ndarray, current: np.ndarray, tol: float = 1e-6) -> np.ndarray:
    """Mask of the candidate rows one bounded change away from ``current``."""
    lo, hi = step_bounds(current)
    ok = np.all((cands >= lo - tol) & (cands <= hi + tol), axis=1)
    kmax_now = current[0] + current[1]
    kmax_c = cands[:, 0] + cands[:, 1]
    ok &= np.abs(kmax_c - kmax_now) <= math.log2(MAX_K_FACTOR) + tol
    out: np.ndarray = ok
    return out


def step_bounded(target: np.ndarray, current: np.ndarray, ctx: PortContext) -> np.ndarray:
    """The point on the way from ``current`` (inside the box) to ``target`` that respects the
    step bound and the search box."""
    out: np.ndarray = step_bounded_rows(np.atleast_2d(target), current, ctx)[0]
    return out


def step_bounded_rows(targets: np.ndarray, current: np.ndarray, ctx: PortContext
                      ) -> np.ndarray:
    """:func:`step_bounded` of every row of ``targets`` (one vectorised pass)."""
    cur = clip_coords(np.asarray(current, dtype=float), ctx)
    lo, hi = step_bounds(cur)
    tgt = clip_coords(np.atleast_2d(np.asarray(targets, dtype=float)), ctx)
    x = np.clip(tgt, lo, hi)
    lim = math.log2(MAX_K_FACTOR)
    cap = math.log2(ctx.kmax_cap / ctx.bdp)
    kmax_now = cur[0] + cur[1]
    # Kmax moves towards the target's own Kmax (not Kmin's bounded move plus the target's
    # ramp width, which can take Kmax away from its target: SONiC's 2 MiB towards the vendor
    # guide's 1 MB would go to 4.7 MB)
    kmax_t = np.minimum(np.clip(tgt[:, 0] + tgt[:, 1], kmax_now - lim, kmax_now + lim), cap)
    # the ramp would close: lower Kmin instead
    x[:, 0] = np.where(kmax_t - x[:, 0] < SPAN_LOG2[0], kmax_t - SPAN_LOG2[0], x[:, 0])
    low = x[:, 0] < KMIN_BDP_LOG2[0]
    x[:, 0] = np.where(low, KMIN_BDP_LOG2[0], x[:, 0])
    kmax_t = np.where(low, np.maximum(kmax_t, x[:, 0] + SPAN_LOG2[0]), kmax_t)
    x[:, 1] = np.minimum(kmax_t - x[:, 0], SPAN_LOG2[1])
    x[:, 3] = np.round(x[:, 3])
    out: np.ndarray = clip_coords(x, ctx)
    return out


def same_waterlines(a: WaterlinesLike, b: WaterlinesLike) -> bool:
    return (int(a.kmin_bytes) == int(b.kmin_bytes) and int(a.kmax_bytes) == int(b.kmax_bytes)
            and abs(float(a.pmax) - float(b.pmax)) < 1e-9
            and (a.alpha or DEFAULT_ALPHA) == (b.alpha or DEFAULT_ALPHA)
            and a.headroom_bytes == b.headroom_bytes and a.xoff_bytes == b.xoff_bytes
            and a.xon_bytes == b.xon_bytes)


def with_alpha(w: Waterline, alpha: float) -> Waterline:
    return replace(w, alpha=alpha)
