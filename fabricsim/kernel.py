"""The engine's step loop, compiled (numba): the physics of :mod:`fabricsim.physics`, per step.

``physics._Engine`` prepares the traffic plan, the per-configuration constants and the state
arrays, and calls :func:`run_steps` once per block of steps whose random numbers it drew (the
blocks keep the draws' memory bounded on long runs). The configurations of a batch never
interact (each has its own switch; they share only the traffic plan and the random draws), so
the loop runs one configuration over the block's steps, then the next: a batch member is
bit-for-bit the individual run of that configuration.

Why compiled: the loop is a few dozen scalar updates per QP and step, and a run is 10^4 to
10^5 steps; as numpy array operations each step paid ~50 us of call overhead however small the
batch (the diagnostic's three settings of one scenario: 0.4-0.9 s per 14 ms run).

Array shapes (B configurations, Qn egress queues, Pt = Qn x P ingress PGs, S = Pt x K QPs;
QP ``s`` belongs to PG ``s // K`` and queue ``s // (P K)``): ``(B, S)``, ``(B, Pt)``,
``(B, Qn)``, ``(B,)``. Scalars come in three small arrays whose layout the ``I_*`` / ``F_*`` /
``T_*`` indices below name.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

# ---- integer parameters (``ints``)
I_WARM = 0  # first step of the measurement window (the counters are snapshotted there)
I_QN = 1
I_PT = 2
I_K = 3
I_PFC_DELAY = 4  # steps from the switch's pause decision to the NIC holding
I_CNP_DELAY = 5  # steps from a mark to the CNP at the QP
I_REFRESH = 6  # steps between pause-frame refreshes
I_DEC = 7  # DCQCN decrease interval, steps
I_TIMER = 8  # DCQCN rate timer, steps
I_BC_CHECK = 9  # byte counters are checked every this many steps
I_F = 10  # DCQCN fast-recovery stages
I_GAP = 11  # phased collectives: steps between a barrier and the next phase
I_PFC = 12  # flags (0/1)
I_ECN = 13
I_RESET_ON_START = 14
I_HAS_FLOWS = 15
I_PHASED = 16
I_HAS_BC = 17
N_INTS = 18
# ---- float parameters (``floats``)
F_LINE = 0  # bytes per step at line rate
F_PORT_LINE = 1
F_G_KEEP = 2
F_G_ADD = 3
F_RAI = 4  # bytes per step
F_RHAI = 5
F_MIN_RATE = 6
F_BC_BYTES = 7
F_RESERVE = 8  # per-PG reserve, bytes
F_RESUME_OFF = 9
F_MF_PORTS = 10  # mean-field busy ports
F_MF_KEEP = 11
F_PHASE_BYTES = 12
F_PACKET = 13  # bytes per packet
F_DT = 14  # seconds per step
F_P_CLIP = 15
F_TINY = 16
N_FLOATS = 17
# ---- per-configuration thresholds (``th``, shape (N_TH, B))
T_KMIN = 0
T_KMAX = 1
T_PMAX = 2
T_INV_SPAN = 3
T_HDRM_CAP = 4
T_ALPHA = 5
T_XOFF = 6  # inf when not set
T_XON = 7  # inf when not set
T_FREE_POOL = 8
N_TH = 9

BIG_STEP = np.iinfo(np.int64).max // 4
# A flow whose last byte left the queue in an earlier step (an empty queue, a flow ending on a
# step's edge) completes at the first step of its chunk of CHUNK steps whose departures passed
# it, as the numpy engine's chunked resolution found it; chunks never span two calls.
CHUNK = 256


@njit(cache=True, nogil=True)
def pairwise_sum(a: np.ndarray, lo: int, hi: int) -> float:
    """``a[lo:hi].sum()`` exactly as numpy sums a contiguous run of float64, so that the
    compiled loop reproduces numpy's sums bit for bit: runs of up to 128 with eight
    accumulators (``_block_sum``), longer ones split in two halves (a multiple of 8 first),
    recursively -- here with an explicit stack (the recursive version segfaulted when loaded
    from numba's cache)."""
    if hi - lo <= 128:
        return _block_sum(a, lo, hi)
    los = np.empty(64, np.int64)
    his = np.empty(64, np.int64)
    phase = np.zeros(64, np.int64)
    left = np.empty(64)
    sp = 0
    los[0] = lo
    his[0] = hi
    ret = 0.0
    while sp >= 0:
        n = his[sp] - los[sp]
        half = n // 2
        half -= half % 8
        if n <= 128:
            ret = _block_sum(a, los[sp], his[sp])
            sp -= 1
        elif phase[sp] == 0:  # the first half
            phase[sp] = 1
            los[sp + 1] = los[sp]
            his[sp + 1] = los[sp] + half
            phase[sp + 1] = 0
            sp += 1
        elif phase[sp] == 1:  # the second half
            left[sp] = ret
            phase[sp] = 2
            los[sp + 1] = los[sp] + half
            his[sp + 1] = his[sp]
            phase[sp + 1] = 0
            sp += 1
        else:
            ret = left[sp] + ret
            sp -= 1
    return ret


@njit(cache=True, nogil=True, inline="always")
def _block_sum(a: np.ndarray, lo: int, hi: int) -> float:
    n = hi - lo
    if n < 8:
        res = 0.0
        for i in range(lo, hi):
            res += a[i]
        return res
    r0 = a[lo]
    r1 = a[lo + 1]
    r2 = a[lo + 2]
    r3 = a[lo + 3]
    r4 = a[lo + 4]
    r5 = a[lo + 5]
    r6 = a[lo + 6]
    r7 = a[lo + 7]
    i = lo + 8
    end = hi - n % 8
    while i < end:
        r0 += a[i]
        r1 += a[i + 1]
        r2 += a[i + 2]
        r3 += a[i + 3]
        r4 += a[i + 4]
        r5 += a[i + 5]
        r6 += a[i + 6]
        r7 += a[i + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < hi:
        res += a[i]
        i += 1
    return float(res)


@njit(cache=True, nogil=True)
def segment_sums(a: np.ndarray, seg: int, out: np.ndarray) -> None:
    """``out[j] = a[j seg:(j + 1) seg].sum()`` (numpy's sum) for every ``j < len(out)``. One
    call per reduction of the step, not per segment: a call that passes arrays costs atomic
    reference counting, which per segment took a third of the loop's time."""
    for j in range(out.shape[0]):
        lo = j * seg
        out[j] = _block_sum(a, lo, lo + seg) if seg <= 128 else pairwise_sum(a, lo, lo + seg)


@njit(cache=True, nogil=True, inline="always")
def _raised_target(rt: float, stage: int, f: int, rai: float, rhai: float, line: float) -> float:
    """DCQCN's target rate after a rate-timer tick or a byte-counter expiry: unchanged in fast
    recovery (stage < F), + R_AI at stage F (additive), + R_HAI beyond (hyper), at most the line
    rate. (Then RC moves halfway to it.)"""
    if stage == f:
        rt += rai
    elif stage > f:
        rt += rhai
    return min(line, rt)


@njit(cache=True, nogil=True)
def run_steps(k0: int, k1: int, ints: np.ndarray, floats: np.ndarray, th: np.ndarray,
        ev_steps: np.ndarray, ev_ptr: np.ndarray, ev_slot: np.ndarray, ev_bytes: np.ndarray,
        ev_i: np.ndarray, slot_flows: np.ndarray, slot_cum_end: np.ndarray, log_u: np.ndarray,
        u_pkt: np.ndarray, offered: np.ndarray, sent_cum: np.ndarray, rc: np.ndarray,
        rt: np.ndarray, alpha: np.ndarray, started: np.ndarray, dec_flag: np.ndarray,
        stage_t: np.ndarray, stage_b: np.ndarray, next_timer: np.ndarray, bc_base: np.ndarray,
        qf: np.ndarray, ptr: np.ndarray, target: np.ndarray, ing: np.ndarray, hdrm: np.ndarray,
        paused: np.ndarray, pause_age: np.ndarray, pause_frames: np.ndarray,
        paused_steps: np.ndarray, pause_ring: np.ndarray, Q: np.ndarray, A_cum: np.ndarray,
        D_cum: np.ndarray, marks_pk: np.ndarray, marks_by: np.ndarray, drop_by: np.ndarray,
        q_hist: np.ndarray, shared_total: np.ndarray, mf_ewma: np.ndarray, next_phase: np.ndarray,
        phase_open: np.ndarray, phases_done: np.ndarray, phase_start_step: np.ndarray,
        phase_time_sum: np.ndarray, cnp_ring: np.ndarray, pend_q: np.ndarray, pend_a: np.ndarray,
        pend_f: np.ndarray, pend_n: np.ndarray, done_f: np.ndarray, done_t: np.ndarray,
        done_n: np.ndarray, snap_D: np.ndarray, snap_marks_pk: np.ndarray,
        snap_marks_by: np.ndarray, snap_drop_by: np.ndarray, snap_pause_frames: np.ndarray,
        snap_paused: np.ndarray, snap_sent: np.ndarray, snap_phases: np.ndarray,
        snap_phase_time: np.ndarray) -> None:
    """Advance every configuration from step ``k0`` (a multiple of ``CHUNK``) to ``k1``
    (exclusive, at most ``k0 + 2 CHUNK``); ``log_u`` and ``u_pkt`` hold the random draws of
    steps ``k0`` ... (row ``k - k0``). Updates the state arrays in place; completed flows go to
    ``done_f`` / ``done_t`` (time in seconds)."""
    B = offered.shape[0]
    S = offered.shape[1]
    Qn = ints[I_QN]
    Pt = ints[I_PT]
    K = ints[I_K]
    PK = S // Qn
    warm = ints[I_WARM]
    pfc_delay = ints[I_PFC_DELAY]
    cnp_delay = ints[I_CNP_DELAY]
    refresh_steps = ints[I_REFRESH]
    dec_steps = ints[I_DEC]
    timer_steps = ints[I_TIMER]
    bc_check = ints[I_BC_CHECK]
    F = ints[I_F]
    gap_steps = ints[I_GAP]
    pfc = ints[I_PFC] != 0
    ecn = ints[I_ECN] != 0
    reset_on_start = ints[I_RESET_ON_START] != 0
    has_flows = ints[I_HAS_FLOWS] != 0
    phased = ints[I_PHASED] != 0
    has_bc = ints[I_HAS_BC] != 0
    line = floats[F_LINE]
    port_line = floats[F_PORT_LINE]
    g_keep = floats[F_G_KEEP]
    g_add = floats[F_G_ADD]
    rai = floats[F_RAI]
    rhai = floats[F_RHAI]
    min_rate = floats[F_MIN_RATE]
    bc_bytes = floats[F_BC_BYTES]
    reserve = floats[F_RESERVE]
    resume_off = floats[F_RESUME_OFF]
    mf_ports = floats[F_MF_PORTS]
    mf_keep = floats[F_MF_KEEP]
    phase_bytes = floats[F_PHASE_BYTES]
    packet = floats[F_PACKET]
    dt = floats[F_DT]
    p_clip = floats[F_P_CLIP]
    tiny = floats[F_TINY]
    inv_packet = 1.0 / packet
    Dp = pause_ring.shape[0]
    Dc = cnp_ring.shape[0]
    n_ev = ev_steps.shape[0]
    over_cap_line = port_line * (1 + 1e-12)

    send = np.empty(S)
    dep = np.empty(S)
    arr_pg = np.empty(Pt)
    dep_pg = np.empty(Pt)
    shared_pg = np.empty(Pt)
    arr_q = np.empty(Qn)
    deq = np.empty(Qn)
    d_prev = np.empty(Qn)
    lp = np.empty(Qn)
    drop_s = np.zeros(S)
    backlog_s = np.empty(S)
    drop_q = np.empty(Qn)
    q_row = np.empty(Qn)
    one = np.empty(1)
    d_hist = np.empty((CHUNK, Qn))  # departures D_cum of the steps of this chunk so far
    d_before = np.empty(Qn)  # D_cum before the chunk
    chunk0 = k0

    for b in range(B):
        kmin = th[T_KMIN, b]
        kmax = th[T_KMAX, b]
        pmax = th[T_PMAX, b]
        inv_span = th[T_INV_SPAN, b]
        hdrm_cap = th[T_HDRM_CAP, b]
        alpha_dt = th[T_ALPHA, b]
        xoff = th[T_XOFF, b]
        xon = th[T_XON, b]
        free_pool = th[T_FREE_POOL, b]
        for k in range(k0, k1):
            r = k - k0
            if k % CHUNK == 0:
                chunk0 = k
                for q in range(Qn):
                    d_before[q] = D_cum[b, q]
            if k == warm:
                for q in range(Qn):
                    snap_D[b, q] = D_cum[b, q]
                    snap_marks_pk[b, q] = marks_pk[b, q]
                    snap_marks_by[b, q] = marks_by[b, q]
                    snap_drop_by[b, q] = drop_by[b, q]
                for g in range(Pt):
                    snap_pause_frames[b, g] = pause_frames[b, g]
                    snap_paused[b, g] = paused_steps[b, g]
                for s in range(S):
                    snap_sent[b, s] = sent_cum[b, s]
                snap_phases[b] = phases_done[b]
                snap_phase_time[b] = phase_time_sum[b]
            # ---------------- arrivals of new flows ----------------
            e = ev_i[b]
            if e < n_ev and ev_steps[e] == k:
                for j in range(ev_ptr[e], ev_ptr[e + 1]):
                    s = ev_slot[j]
                    if reset_on_start and offered[b, s] - sent_cum[b, s] <= 0.5:
                        # a new QP starts at line rate with a fresh reaction point
                        rc[b, s] = line
                        rt[b, s] = line
                        alpha[b, s] = 1.0
                        started[b, s] = False
                        dec_flag[b, s] = False
                        stage_t[b, s] = 0
                        stage_b[b, s] = 0
                        bc_base[b, s] = np.inf
                        next_timer[b, s] = BIG_STEP
                    offered[b, s] += ev_bytes[j]
                ev_i[b] = e + 1
            if phased and next_phase[b] == k:
                for s in range(S):
                    offered[b, s] += phase_bytes
                phase_open[b] = True
                phase_start_step[b] = k
                next_phase[b] = BIG_STEP

            # ---------------- NIC send ----------------
            for s in range(S):
                x = np.floor(rc[b, s] * inv_packet + u_pkt[r, s]) * packet
                backlog = offered[b, s] - sent_cum[b, s]
                send[s] = x if x < backlog else backlog
            if K == 1:  # a QP per port: the port's bytes are the QP's (no sum, no cap)
                for g in range(Pt):
                    arr_pg[g] = send[g]
            else:
                segment_sums(send, K, arr_pg)
                for g in range(Pt):
                    tot = arr_pg[g]
                    if tot > over_cap_line:
                        scale = port_line / max(tot, tiny)
                        for s in range(g * K, (g + 1) * K):
                            send[s] *= scale
                        arr_pg[g] = tot * scale
            kp = k - pfc_delay
            if pfc and kp >= 0:
                row = kp % Dp
                for g in range(Pt):
                    if pause_ring[row, b, g]:
                        paused_steps[b, g] += 1.0
                        for s in range(g * K, (g + 1) * K):
                            send[s] = 0.0
                        arr_pg[g] = 0.0
            for s in range(S):
                sent_cum[b, s] += send[s]

            # ---------------- MMU admission ----------------
            thr = alpha_dt * max(free_pool - shared_total[b], 0.0)
            lim = min(thr, xoff)
            dropped = False
            for g in range(Pt):
                to_h = arr_pg[g] - max((reserve + lim) - ing[b, g], 0.0)
                if to_h > 0.0:
                    hdrm[b, g] += to_h
                    ing[b, g] += arr_pg[g] - to_h
                    ovf = hdrm[b, g] - hdrm_cap
                    if ovf > 0.0:
                        hdrm[b, g] -= ovf
                        dfrac = ovf / max(arr_pg[g], tiny)
                        for s in range(g * K, (g + 1) * K):
                            x = send[s] * dfrac
                            drop_s[s] = x
                            send[s] -= x
                            sent_cum[b, s] -= x  # go-back-N: the sender sends these again
                        dropped = True
                else:
                    ing[b, g] += arr_pg[g]
            if dropped:
                segment_sums(drop_s, PK, drop_q)
                for q in range(Qn):
                    drop_by[b, q] += drop_q[q]
                drop_s[:] = 0.0
            segment_sums(send, PK, arr_q)
            for q in range(Qn):
                tot = arr_q[q]
                for s in range(q * PK, (q + 1) * PK):
                    qf[b, s] += send[s]
                A_cum[b, q] += tot
                Q[b, q] += tot

            # ---------------- sender-side completions ----------------
            if has_flows:
                for s in range(S):
                    while sent_cum[b, s] >= target[b, s] - 1e-6:
                        fl = slot_flows[s, ptr[b, s]]
                        q = s // PK
                        over = sent_cum[b, s] - target[b, s]
                        phi = min(max(1.0 - over / max(send[s], tiny), 0.0), 1.0)
                        a = A_cum[b, q] - arr_q[q] * (1.0 - phi)
                        if k > chunk0 and d_hist[k - 1 - chunk0, q] >= a - 1e-6:
                            # its last byte already left in an earlier step of this chunk
                            # (an empty queue, a flow that ended on a step's edge): the first
                            # such step, as the chunked resolution finds it
                            j = chunk0
                            while d_hist[j - chunk0, q] < a - 1e-6:
                                j += 1
                            d0 = d_hist[j - 1 - chunk0, q] if j > chunk0 else d_before[q]
                            d1 = d_hist[j - chunk0, q]
                            frac = min(max((a - d0) / max(d1 - d0, tiny), 0.0), 1.0)
                            m = done_n[b]
                            done_f[b, m] = fl
                            done_t[b, m] = (j + frac) * dt
                            done_n[b] = m + 1
                        else:
                            n = pend_n[b]
                            pend_q[b, n] = q
                            pend_a[b, n] = a
                            pend_f[b, n] = fl
                            pend_n[b] = n + 1
                        ptr[b, s] += 1
                        target[b, s] = slot_cum_end[s, ptr[b, s]]

            # ---------------- egress dequeue ----------------
            for q in range(Qn):
                d_prev[q] = D_cum[b, q]
                qq = Q[b, q]
                dq = qq if qq < line else line
                deq[q] = dq
                frac_q = dq / max(qq, tiny)
                for s in range(q * PK, (q + 1) * PK):
                    x = qf[b, s] * frac_q
                    dep[s] = x
                    qf[b, s] -= x
                qq -= dq
                Q[b, q] = qq if qq > 0.0 else 0.0
                D_cum[b, q] += dq
                d_hist[k - chunk0, q] = D_cum[b, q]
                q_hist[k, b, q] = Q[b, q]
            if K == 1:
                for g in range(Pt):
                    dep_pg[g] = dep[g]
            else:
                segment_sums(dep, K, dep_pg)
            for g in range(Pt):
                tot = dep_pg[g]
                h = hdrm[b, g]
                if h > 0.0:
                    from_h = min(h, tot)
                    hdrm[b, g] = h - from_h
                    ing[b, g] -= tot - from_h
                else:
                    ing[b, g] -= tot
                sp = ing[b, g] - reserve
                shared_pg[g] = sp if sp > 0.0 else 0.0
            segment_sums(shared_pg, Pt, one)
            own = one[0]
            if mf_ports != 0.0:
                mf_ewma[b] = mf_ewma[b] * mf_keep + (1.0 - mf_keep) * own * (1.0 / Qn)
                shared_total[b] = own + mf_ports * mf_ewma[b]
            else:
                shared_total[b] = own

            # ---------------- flow completions (FIFO: departures pass the last byte) -----
            n = pend_n[b]
            i = 0
            while i < n:
                q = pend_q[b, i]
                a = pend_a[b, i]
                if D_cum[b, q] >= a - 1e-6:
                    span = max(D_cum[b, q] - d_prev[q], tiny)
                    frac = min(max((a - d_prev[q]) / span, 0.0), 1.0)
                    m = done_n[b]
                    done_f[b, m] = pend_f[b, i]
                    done_t[b, m] = (k + frac) * dt
                    done_n[b] = m + 1
                    n -= 1  # swap the last pending entry in
                    pend_q[b, i] = pend_q[b, n]
                    pend_a[b, i] = pend_a[b, n]
                    pend_f[b, i] = pend_f[b, n]
                else:
                    i += 1
            pend_n[b] = n

            # ---------------- PFC ----------------
            if pfc:
                thr = alpha_dt * max(free_pool - shared_total[b], 0.0)
                lim = min(thr, xoff)
                lim_on = min(thr, xon + resume_off)
                row = k % Dp
                for g in range(Pt):
                    sp = shared_pg[g]
                    h = hdrm[b, g]
                    if paused[b, g]:
                        now = not (h <= 0.0 and (sp <= 0.0 or sp + resume_off <= lim_on))
                    else:
                        now = sp >= lim or h > 0.0
                    if now:
                        pause_age[b, g] += 1
                        if not paused[b, g] or pause_age[b, g] % refresh_steps == 0:
                            pause_frames[b, g] += 1.0
                    else:
                        if paused[b, g]:
                            pause_frames[b, g] += 1.0
                        pause_age[b, g] = 0
                    paused[b, g] = now
                    pause_ring[row, b, g] = now

            # ---------------- ECN marking at dequeue ----------------
            if ecn:
                row = k % Dc
                for q in range(Qn):
                    qq = Q[b, q]
                    if kmin < qq:
                        p = min(max((qq - kmin) * inv_span, 0.0), 1.0) * pmax
                        if kmax < qq:
                            p = 1.0
                        marks_pk[b, q] += p * (deq[q] / packet)
                        marks_by[b, q] += p * deq[q]
                        lp[q] = math.log1p(-min(p, p_clip)) * inv_packet
                    else:
                        lp[q] = 0.0
                for q in range(Qn):
                    for s in range(q * PK, (q + 1) * PK):
                        cnp_ring[row, b, s] = dep[s] * lp[q] < log_u[r, s]

            # ---------------- DCQCN reaction point ----------------
            kc = k - cnp_delay
            cnp_row = kc % Dc
            got = ecn and kc >= 0
            decrease = k % dec_steps == 0
            bc_now = has_bc and k % bc_check == 0
            for s in range(S):
                a_s = alpha[b, s] * g_keep
                if got and cnp_ring[cnp_row, b, s]:
                    a_s += g_add
                    if not started[b, s]:
                        started[b, s] = True
                        rt[b, s] = rc[b, s]
                        a_s = 1.0
                    dec_flag[b, s] = True
                alpha[b, s] = a_s
                if decrease and dec_flag[b, s]:
                    if stage_t[b, s] > 0 or stage_b[b, s] > 0:
                        rt[b, s] = rc[b, s]
                    rc[b, s] = max(min_rate, rc[b, s] * (1.0 - 0.5 * a_s))
                    stage_t[b, s] = 0
                    stage_b[b, s] = 0
                    next_timer[b, s] = k + timer_steps
                    if has_bc:
                        bc_base[b, s] = sent_cum[b, s]
                    dec_flag[b, s] = False
                if next_timer[b, s] <= k:
                    next_timer[b, s] += timer_steps
                    rt[b, s] = _raised_target(rt[b, s], max(stage_t[b, s], stage_b[b, s]), F,
                                              rai, rhai, line)
                    rc[b, s] = 0.5 * (rc[b, s] + rt[b, s])
                    stage_t[b, s] += 1
                if bc_now and sent_cum[b, s] - bc_base[b, s] >= bc_bytes:
                    bc_base[b, s] += bc_bytes
                    rt[b, s] = _raised_target(rt[b, s], max(stage_t[b, s], stage_b[b, s]), F,
                                              rai, rhai, line)
                    rc[b, s] = 0.5 * (rc[b, s] + rt[b, s])
                    stage_b[b, s] += 1

            # ---------------- phased collectives: barrier ----------------
            if phased and phase_open[b]:
                for s in range(S):
                    backlog_s[s] = offered[b, s] - sent_cum[b, s]
                for q in range(Qn):
                    q_row[q] = Q[b, q]
                segment_sums(backlog_s, S, one)
                outstanding = one[0]
                segment_sums(q_row, Qn, one)
                outstanding += one[0]
                if outstanding <= 0.5:
                    phase_open[b] = False
                    phases_done[b] += 1.0
                    phase_time_sum[b] += k + 1 - phase_start_step[b]
                    next_phase[b] = k + 1 + gap_steps
