"""The search space: every point maps to a guard-clean waterline set with headroom >= the formula,
coordinates round-trip, a bounded step is bounded."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tuning.guard import Waterline, check_waterlines
from tuning.space import (
    MAX_K_FACTOR,
    MAX_PMAX_FACTOR,
    PortContext,
    clip_coords,
    complete,
    from_coords,
    reference_waterlines,
    step_bounded,
    to_coords,
    within_step,
)

CTXS = st.builds(PortContext,
                 speed_gbps=st.sampled_from([25, 40, 100, 200, 400]),
                 buffer_bytes=st.sampled_from([16, 32, 42, 64, 82, 132]).map(lambda m: m << 20),
                 cable_m=st.sampled_from([1.0, 3.0, 40.0, 100.0, 300.0]))
COORDS = st.lists(st.floats(-20, 20, allow_nan=False), min_size=5, max_size=5)


@settings(max_examples=300, deadline=None)
@given(ctx=CTXS, x=COORDS)
def test_every_point_is_guard_clean(ctx: PortContext, x: list[float]) -> None:
    w = from_coords(np.array(x), ctx)
    assert check_waterlines(w, speed_gbps=ctx.speed_gbps, buffer_bytes=ctx.buffer_bytes,
                            cable_m=ctx.cable_m) == []
    need = ctx.headroom()
    assert w.headroom_bytes is not None and w.headroom_bytes >= need.size_bytes
    assert w.xoff_bytes is not None and w.xoff_bytes >= need.xoff_bytes
    assert w.xon_bytes == need.xon_bytes


@settings(max_examples=200, deadline=None)
@given(ctx=CTXS, x=COORDS)
def test_coordinates_round_trip(ctx: PortContext, x: list[float]) -> None:
    c = clip_coords(np.array(x), ctx)
    back = to_coords(from_coords(c, ctx), ctx)
    assert abs(back[0] - c[0]) < 1e-3 + 1 / max(1.0, 2 ** c[0] * ctx.bdp)
    assert abs(back[3] - round(c[3])) < 1e-9
    assert back[4] >= 1.0


@settings(max_examples=200, deadline=None)
@given(ctx=CTXS, a=COORDS, b=COORDS)
def test_a_bounded_step_is_bounded(ctx: PortContext, a: list[float], b: list[float]) -> None:
    cur = clip_coords(np.array(a), ctx)
    nxt = step_bounded(np.array(b), cur, ctx)
    assert within_step(nxt[None, :], cur)[0]
    wc, wn = from_coords(cur, ctx), from_coords(nxt, ctx)
    slack = 1.0 + 1e-3
    assert wn.kmin_bytes <= wc.kmin_bytes * MAX_K_FACTOR * slack + 2
    assert wn.kmin_bytes >= wc.kmin_bytes / MAX_K_FACTOR / slack - 2
    assert wn.kmax_bytes <= wc.kmax_bytes * MAX_K_FACTOR * slack + 2
    assert wn.kmax_bytes >= wc.kmax_bytes / MAX_K_FACTOR / slack - 2
    # Pmax is rounded to 4 decimals on both sides: +-5e-5 each, x4 across the step
    assert wn.pmax <= wc.pmax * MAX_PMAX_FACTOR * slack + 3e-4
    assert wn.pmax >= wc.pmax / MAX_PMAX_FACTOR / slack - 3e-4
    assert abs(math.log2(wn.alpha or 0.125) - math.log2(wc.alpha or 0.125)) <= 2


@settings(max_examples=200, deadline=None)
@given(ctx=CTXS, a=COORDS, b=COORDS)
def test_a_bounded_step_heads_for_its_target(ctx: PortContext, a: list[float],
                                             b: list[float]) -> None:
    """Kmin and Kmax each move towards the target's own value, never away from it (beyond
    the ramp's minimum width, which can push Kmax up when Kmin comes close)."""
    cur = clip_coords(np.array(a), ctx)
    tgt = clip_coords(np.array(b), ctx)
    nxt = step_bounded(tgt, cur, ctx)
    for k in (lambda x: x[0], lambda x: x[0] + x[1]):
        assert abs(k(nxt) - k(tgt)) <= abs(k(cur) - k(tgt)) + 0.5 + 1e-6


def test_a_step_from_the_sonic_default_towards_the_vendor_guide() -> None:
    ctx = PortContext(200, 42 << 20, 3.0)
    refs = reference_waterlines(200)
    x0 = clip_coords(to_coords(refs["sonic_default"], ctx), ctx)
    w = from_coords(step_bounded(to_coords(refs["vendor"], ctx), x0, ctx), ctx)
    assert (w.kmin_bytes, w.kmax_bytes, w.pmax) == (65536, 1_000_000, 0.2)


def test_references_and_completion() -> None:
    ctx = PortContext(100, 32 << 20, 3.0)
    refs = reference_waterlines(100)
    assert refs["vendor"] == Waterline(7000, 500_000, 0.3)
    assert refs["hpcc"].kmin_bytes == 400_000 and refs["hpcc"].kmax_bytes == 1_600_000
    full = complete(refs["sonic_default"], ctx)
    assert full.headroom_bytes == ctx.headroom().size_bytes and full.alpha == 0.125
    assert check_waterlines(full, speed_gbps=100, buffer_bytes=32 << 20, cable_m=3) == []
