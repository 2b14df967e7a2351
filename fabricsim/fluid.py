"""DCQCN fluid model of Zhu et al., "ECN or Delay: Lessons Learnt from Analysis of DCQCN and
TIMELY" (CoNEXT 2016), used to validate the discrete engine against the paper.

Units follow the paper: rates in 1 KB packets per second, queue and byte counter in 1 KB
packets, times in seconds. A tilde marks a value delayed by the feedback delay tau*:

    p(q)       = 0 (q <= Kmin); Pmax (q - Kmin)/(Kmax - Kmin) (Kmin < q <= Kmax); 1 (q > Kmax)
    dq/dt      = sum_i RC_i - C                                   (q >= 0)
    a          = 1 - (1-p~)^(tau RC~)
    b          = p~ / ((1-p~)^(-B) - 1),        c = b (1-p~)^(F B)
    d          = p~ / ((1-p~)^(-T RC~) - 1),    e = d (1-p~)^(F T RC~)
    dalpha/dt  = (g/tau') (1 - (1-p~)^(tau' RC~) - alpha)
    dRT/dt     = -(RT - RC) a / tau + R_AI RC~ (c + e)
    dRC/dt     = -RC alpha a / (2 tau) + ((RT - RC)/2) RC~ (b + d)      (RC <= C)

Integrated with explicit Euler (dt 1 us by default), a ring buffer for the delayed queue and
rates, powers written as exp(n log1p(-p)) / expm1 for accuracy at tiny p, starting from
RC = RT = C and alpha = 1 (REFERENCE.md, "DCQCN"). Flows that start from the same state stay
identical forever (the ODE is deterministic), so flows are integrated per distinct initial
rate with a multiplicity; the result is exact, and much cheaper than one state per flow.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

PACKET_BYTES = 1000  # the paper's unit packet (1 KB)


def _pkts_per_s(gbps: float) -> float:
    return gbps * 1e9 / (8 * PACKET_BYTES)


def p_star(
    flows: int,
    speed_gbps: float,
    *,
    rai_mbps: float = 40.0,
    tau_prime_us: float = 55.0,
    timer_us: float = 55.0,
    byte_counter_bytes: float = 10e6,
) -> float:
    """Fixed-point marking probability: cbrt(R_AI N^2 / (tau' C^2) (1/B + N/(T C))^2)."""
    c = _pkts_per_s(speed_gbps)
    rai = rai_mbps * 1e6 / (8 * PACKET_BYTES)
    b = byte_counter_bytes / PACKET_BYTES
    t = timer_us * 1e-6
    tp = tau_prime_us * 1e-6
    n = float(flows)
    return float(np.cbrt(rai * n * n / (tp * c * c) * (1.0 / b + n / (t * c)) ** 2))


def q_star_bytes(p: float, kmin_bytes: float, kmax_bytes: float, pmax: float) -> float:
    """Fixed-point queue Kmin + (p*/Pmax)(Kmax - Kmin); pinned at Kmax when p* >= Pmax."""
    if p >= pmax:
        return float(kmax_bytes)
    return float(kmin_bytes + (p / pmax) * (kmax_bytes - kmin_bytes))


def run_fluid(
    flows: int,
    speed_gbps: float = 40.0,
    feedback_delay_us: float = 4.0,
    kmin_bytes: float = 5_000,
    kmax_bytes: float = 200_000,
    pmax: float = 0.01,
    rai_mbps: float = 40.0,
    g: float = 1.0 / 256,
    tau_us: float = 50.0,
    tau_prime_us: float = 55.0,
    timer_us: float = 55.0,
    byte_counter_bytes: float = 10e6,
    f: int = 5,
    duration_ms: float = 100.0,
    dt_us: float = 1.0,
    initial_rate_fractions: Sequence[float] | None = None,
    trace_every_us: float = 0.0,
) -> dict[str, Any]:
    """Integrate the DCQCN fluid model and report the second half of the run.

    ``initial_rate_fractions`` (length ``flows``, default all 1.0 = the paper's RC = RT = C)
    lets a test start flows unequal to check convergence to the fair share.
    Returns ``queue_mean_bytes``, ``queue_std_bytes``, ``utilisation`` (second half),
    ``rates_gbps`` (per-flow mean over the second half), ``jain_fairness``, ``p_star``,
    ``q_star_bytes`` and, when ``trace_every_us`` > 0, ``trace_t_s``/``trace_queue_bytes``.
    """
    if flows < 1:
        raise ValueError("flows must be >= 1")
    if not 0 < pmax <= 1:
        raise ValueError("pmax must be in (0, 1]")
    if kmax_bytes < kmin_bytes:
        raise ValueError("kmax_bytes must be >= kmin_bytes")
    fracs = [1.0] * flows if initial_rate_fractions is None else list(initial_rate_fractions)
    if len(fracs) != flows:
        raise ValueError("initial_rate_fractions must have one value per flow")

    # Group identical flows: (initial fraction -> multiplicity), order-stable.
    groups: dict[float, int] = {}
    for fr in fracs:
        groups[float(fr)] = groups.get(float(fr), 0) + 1
    init = list(groups)
    mult = [groups[fr] for fr in init]
    ng = len(init)

    c = _pkts_per_s(speed_gbps)
    rai = rai_mbps * 1e6 / (8 * PACKET_BYTES)
    bc = byte_counter_bytes / PACKET_BYTES
    tau = tau_us * 1e-6
    taup = tau_prime_us * 1e-6
    tt = timer_us * 1e-6
    dt = dt_us * 1e-6
    kmin = kmin_bytes / PACKET_BYTES
    kmax = kmax_bytes / PACKET_BYTES
    steps = round(duration_ms * 1e-3 / dt)
    delay = max(1, round(feedback_delay_us / dt_us))
    half = steps // 2

    rc = [c * fr for fr in init]
    rt = list(rc)
    alpha = [1.0] * ng
    q = 0.0
    # Ring buffers of the delayed queue and per-group rates (pre-filled with the start state).
    q_ring = [0.0] * delay
    rc_ring = [list(rc) for _ in range(delay)]

    p_lo, p_hi = 1e-15, 1.0 - 1e-12
    span = max(kmax - kmin, 1e-12)
    gain = g / taup
    q_sum = q_sq = served = 0.0
    rate_sum = [0.0] * ng
    trace_every = round(trace_every_us / dt_us) if trace_every_us > 0 else 0
    trace_t: list[float] = []
    trace_q: list[float] = []
    exp = math.exp
    expm1 = math.expm1
    log1p = math.log1p

    for k in range(steps):
        slot = k % delay
        qd = q_ring[slot]  # q(t - tau*)
        rcd_all = rc_ring[slot]
        if qd <= kmin:
            pd = 0.0
        elif qd <= kmax:
            pd = pmax * (qd - kmin) / span
        else:
            pd = 1.0
        pdc = min(max(pd, p_lo), p_hi)
        l1 = log1p(-pdc)  # log(1 - p~) < 0
        # b and c do not depend on the flow
        xb = -bc * l1
        b_ = pdc / expm1(xb) if xb < 700.0 else 0.0
        c_ = b_ * exp(f * bc * l1)
        rc_now = list(rc)
        total = 0.0
        for i in range(ng):
            rcd = rcd_all[i]
            a_ = -expm1(tau * rcd * l1)
            trc = tt * rcd
            xd = -trc * l1
            # d -> 1/(T RC~) as p~ -> 0, and -> 0 when (1-p~)^(-T RC~) overflows
            d_ = pdc / expm1(xd) if 0.0 < xd < 700.0 else (0.0 if xd > 0.0 else
                                                             1.0 / trc if trc > 0 else 0.0)
            e_ = d_ * exp(f * trc * l1)
            ri = rc[i]
            ti = rt[i]
            ai = alpha[i]
            dalpha = gain * (-expm1(taup * rcd * l1) - ai)
            drt = -(ti - ri) * a_ / tau + rai * rcd * (c_ + e_)
            drc = -ri * ai * a_ / (2 * tau) + 0.5 * (ti - ri) * rcd * (b_ + d_)
            alpha[i] = ai + dalpha * dt
            ti = ti + drt * dt
            ri = ri + drc * dt
            ri = min(max(ri, 0.0), c)
            ti = min(max(ti, 0.0), c)
            rc[i] = ri
            rt[i] = ti
            total += mult[i] * ri
        q_ring[slot] = q  # q(t), read back `delay` steps later as q(t - tau*)
        rc_ring[slot] = rc_now
        q = max(0.0, q + (total - c) * dt)
        if k >= half:
            q_sum += q
            q_sq += q * q
            served += c if q > 0 else min(total, c)
            for i in range(ng):
                rate_sum[i] += rc[i]
        if trace_every and k % trace_every == 0:
            trace_t.append(k * dt)
            trace_q.append(q * PACKET_BYTES)

    n_half = max(1, steps - half)
    q_mean = q_sum / n_half
    q_var = max(0.0, q_sq / n_half - q_mean * q_mean)
    per_group_gbps = [rs / n_half * 8 * PACKET_BYTES / 1e9 for rs in rate_sum]
    order_rates = [per_group_gbps[init.index(float(fr))] for fr in fracs]
    arr = np.asarray(order_rates)
    jain = float(arr.sum() ** 2 / (len(arr) * np.sum(arr * arr))) if np.any(arr > 0) else 0.0
    ps = p_star(flows, speed_gbps, rai_mbps=rai_mbps, tau_prime_us=tau_prime_us,
                timer_us=timer_us, byte_counter_bytes=byte_counter_bytes)
    out: dict[str, Any] = {
        "flows": flows,
        "speed_gbps": speed_gbps,
        "feedback_delay_us": feedback_delay_us,
        "queue_mean_bytes": q_mean * PACKET_BYTES,
        "queue_std_bytes": math.sqrt(q_var) * PACKET_BYTES,
        "utilisation": served / n_half / c,
        "rates_gbps": order_rates,
        "jain_fairness": jain,
        "p_star": ps,
        "q_star_bytes": q_star_bytes(ps, kmin_bytes, kmax_bytes, pmax),
    }
    if trace_every:
        out["trace_t_s"] = trace_t
        out["trace_queue_bytes"] = trace_q
    return out
