"""Discrete-time RoCE physics: DCQCN reaction points, ECN marking, a shared-buffer MMU with PFC.

Topology of the engine
----------------------
One switch. ``queues`` bottleneck egress queues (one per receiver port, at ``speed_gbps``),
each fed by ``ports`` sender NIC ports (also at ``speed_gbps``); a NIC port runs ``slots``
queue pairs (QPs) that share its line rate. See :mod:`fabricsim.traffic` for the profiles.
Time advances in steps of ``dt_us`` (1 us by default: 12.5 KB at 100G). Everything is a numpy
array shaped ``(B, slots)``, ``(B, ports)`` or ``(B, queues)`` where ``B`` is the number of
configurations simulated together (:func:`simulate_batch`); the traffic plan and every random
draw are shared by the batch (common random numbers), so a batch member is bit-for-bit the
individual run of that configuration.

Per step:
1. NIC: every QP sends ``min(RC x dt, backlog)`` in whole packets (stochastic rounding of
   RC x dt / MTU, so uncorrelated senders give the queue its packet-level jitter), QPs of a
   port share its line rate, a port
   whose priority is paused (as seen by the NIC, i.e. ``pfc_delay`` steps after the switch
   decided) sends nothing.
2. MMU admission (HPCC ns-3 switch model, REFERENCE.md): each ingress priority group (PG, one
   per sender port) owns a 4 KB reserve; beyond it, bytes go to the shared buffer while the
   PG's shared use stays below ``threshold = alpha x (buffer - reserved headroom - reserves -
   shared used)`` (and below a static ``xoff_bytes`` if given), else into the PG's headroom;
   what overflows the headroom is dropped (and retransmitted by the sender, go-back-N style).
   Headroom is reserved for every PG of the switch (``switch_ports`` x ``lossless_pgs``), as
   SONiC does without a shared headroom pool, so big headroom shrinks the shared pool. The
   rest of the switch is a mean field: ``busy_ports`` other ports congested like this one,
   each using as much shared buffer as this bottleneck queue did on average over the last
   200 us. Their standing queues (which the same waterlines set, since an ECN profile applies
   switch-wide) shrink everybody's dynamic threshold: the DCQCN paper's B/(8n) argument for
   why Kmax must stay below the PFC threshold of a busy switch.
3. Egress: the queue sends ``min(Q, C x dt)``; departures are taken from the flows in
   proportion to their bytes in the queue (a fluid FIFO); flow completion times are exact
   FIFO times (a flow completes when the cumulative departures pass the position of its last
   byte in the cumulative arrivals).
4. PFC: a PG pauses its sender when its headroom is in use or its shared bytes reach the
   threshold (or ``xoff_bytes``); it resumes when the headroom is empty and shared + 3 KB <=
   threshold (or shared <= ``xon_bytes``). Pause frames: one XOFF, a refresh every half of the
   maximum pause time while paused, one XON. The sender stops ``pfc_delay`` after the decision
   (MTU on the wire + cable both ways + the peer's pause-quanta response time).
5. ECN at dequeue from the instantaneous egress queue bytes: p = 0 below Kmin, rising
   linearly to Pmax at Kmax, 1 above Kmax. Each marked packet makes the receiver answer a CNP
   that reaches the QP one base RTT later.
6. DCQCN reaction point, HPCC ns-3 Mellanox variant (REFERENCE.md): first CNP sets alpha = 1,
   RT = RC; every alpha interval (1 us) alpha <- (1-g) alpha (+ g if a CNP arrived); every
   decrease interval (4 us) with a CNP: RT <- RC (only if an increase happened since the last
   decrease, ns-3 ``ClampTargetRate=false``), RC <- max(min_rate, RC (1 - alpha/2)), stages
   reset, rate timer restarted. Every rate-timer tick (300 us) and every byte-counter expiry
   (10 MB): stage < F fast recovery RC = (RC+RT)/2, stage == F additive RT += R_AI, stage > F
   hyper RT += R_HAI, then average. F = 1, R_AI = 5 Mbps x bw/25G, R_HAI = 50 Mbps x bw/25G,
   min rate 1 Gbps, g = 1/256. A new flow on an idle QP starts at line rate.

KPIs and the objective
----------------------
``mice_fct_slowdown_p50/p99`` over flows < 100 KB (slowdown = max(1, FCT / (base RTT +
size / line rate)); flows unfinished at the end count with their elapsed time when that is
already a slowdown > 1; 1.0 when a profile has no mice), ``utilisation`` (egress bytes / line
rate / duration), ``lost_utilisation`` = max(0, 1 - delivered / ideal) where ideal is what a
work-conserving egress at line rate would have delivered from the same arrivals,
``pause_time_fraction`` (mean over sender ports of the time their NIC was held by PFC),
``queue_p99_bytes`` / ``queue_mean_bytes`` / ``queue_max_bytes`` of the egress queues,
``drops`` (packets), ``ecn_mark_fraction``, ``elephant_goodput_gbps``.

``objective`` (lower is better), one scalar for every profile::

    J = log2(mice_p99) + 0.5 log2(mice_p50)                       # mice latency
      + 20 x lost_utilisation                                     # throughput lost
      + 10 x pause_time_fraction                                  # PFC (HOL, victim flows)
      + 0.1 x log2(1 + queue_p99_bytes / BDP)                     # standing queue
    BDP = line rate x base RTT (~60 KB at 100G)

Terms of absent traffic are zero (no mice: the mice terms vanish). One unit is worth a
doubled mice p99, 5 % of the throughput, 10 % of the time paused, or a queue p99 of ~1,000
BDP; so latency-bound mixes (websearch, hadoop) favour low waterlines until elephants lose
throughput, saturating ones (allreduce) favour waterlines just high enough to keep the link
full, and any standing queue that eats the shared buffer of a busy switch shows up as pause
time. A drop in the lossless class makes the configuration infeasible: ``feasible = False``
and ``J = 1e6 + drops`` (finite, so optimisers can still rank).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from . import buffers
from .traffic import CONTINUOUS_BYTES, MICE_BYTES, TrafficPlan, build_plan, resolve_params

PACKET_BYTES = 1000  # HPCC ns-3 packet payload; ECN and counters count these packets
INFEASIBLE_PENALTY = 1e6
MEAN_FIELD_US = 200.0  # averaging time of the busy ports' shared-buffer use
# Objective weights (module docstring): one unit ~ a doubled mice p99 ~ 5 % of the throughput
# lost ~ 10 % of the time paused ~ a queue p99 of 1,000 BDP.
W_LOST_UTILISATION = 20.0
W_PAUSE = 10.0
W_QUEUE = 0.1
DEFAULT_CABLE_M = 40.0  # the SONiC published 100G profile (pg_lossless_100000_40m) length


@dataclass(frozen=True)
class Thresholds:
    """One lossless priority's waterlines.

    ECN/WRED on the egress queue: ``kmin_bytes``, ``kmax_bytes``, ``pmax`` in (0, 1].
    PFC on the ingress PG: ``xoff_bytes`` is a static pause threshold on the PG's shared-buffer
    bytes (None = the dynamic threshold alone), ``xon_bytes`` the static resume level (None =
    dynamic threshold minus the 3 KB resume offset); ``headroom_bytes`` the PG headroom (None =
    3 x rate x one-way PFC delay); ``alpha`` the dynamic-threshold factor, a power of two in
    1/128..8 (None = 1/8 at NIC speed, doubling per doubling of port speed).
    """

    kmin_bytes: int
    kmax_bytes: int
    pmax: float
    xoff_bytes: int | None = None
    xon_bytes: int | None = None
    headroom_bytes: int | None = None
    alpha: float | None = None

    def validate(self) -> None:
        if self.kmin_bytes < 0 or self.kmax_bytes < self.kmin_bytes:
            raise ValueError("need 0 <= kmin_bytes <= kmax_bytes")
        if not 0 < self.pmax <= 1:
            raise ValueError("pmax must be in (0, 1]")
        if self.xoff_bytes is not None and self.xoff_bytes <= 0:
            raise ValueError("xoff_bytes must be > 0")
        if self.xon_bytes is not None and self.xon_bytes < 0:
            raise ValueError("xon_bytes must be >= 0")
        if (self.xon_bytes is not None and self.xoff_bytes is not None
                and self.xon_bytes > self.xoff_bytes):
            raise ValueError("xon_bytes must be <= xoff_bytes")
        if self.headroom_bytes is not None and self.headroom_bytes < 0:
            raise ValueError("headroom_bytes must be >= 0")
        if self.alpha is not None and not buffers.is_power_of_two_alpha(self.alpha):
            raise ValueError("alpha must be a power of two between 1/128 and 8")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def sonic_default() -> Thresholds:
    """SONiC default lossless profile: 1 MiB / 2 MiB / 5%."""
    return Thresholds(kmin_bytes=1 * buffers.MIB, kmax_bytes=2 * buffers.MIB, pmax=0.05)


def dcqcn_paper(speed_gbps: float) -> Thresholds:
    """DCQCN paper (40G) 5 KB / 200 KB / 1%, scaled by bw/40G."""
    s = speed_gbps / 40
    return Thresholds(kmin_bytes=int(5_000 * s), kmax_bytes=int(200_000 * s), pmax=0.01)


def hpcc_production(speed_gbps: float) -> Thresholds:
    """HPCC / Alibaba production: 100 KB x bw/25G, 400 KB x bw/25G, 20%."""
    s = speed_gbps / 25
    return Thresholds(kmin_bytes=int(100_000 * s), kmax_bytes=int(400_000 * s), pmax=0.2)


def vendor_static(speed_gbps: float) -> Thresholds:
    """Vendor static guide at 100G (delay-sensitive): 7 KB / 500 KB / 30%, scaled by bw/100G."""
    s = speed_gbps / 100
    return Thresholds(kmin_bytes=int(7_000 * s), kmax_bytes=int(500_000 * s), pmax=0.3)


STATIC_BASELINES = {
    "sonic_default": lambda speed: sonic_default(),
    "dcqcn_paper": dcqcn_paper,
    "hpcc": hpcc_production,
    "vendor": vendor_static,
}


@dataclass
class PortStats:
    """Switch-like counters of one port (one priority) over a run."""

    port: str
    tx_bytes: float = 0.0
    tx_packets: float = 0.0
    ecn_marked_packets: float = 0.0
    ecn_marked_bytes: float = 0.0
    rx_pause_frames: float = 0.0
    tx_pause_frames: float = 0.0
    drop_packets: float = 0.0
    drop_bytes: float = 0.0
    paused_time_s: float = 0.0
    occupancy_max_bytes: float = 0.0


COUNTER_FIELDS = ("tx_bytes", "tx_packets", "ecn_marked_packets", "ecn_marked_bytes",
                  "rx_pause_frames", "tx_pause_frames", "drop_packets", "drop_bytes")


@dataclass(eq=False)
class SimResult:
    """KPIs and switch-like counters of one configuration.

    ``egress``: the bottleneck egress ports (tx, ECN marks, drops, max occupancy).
    ``ingress``: the switch ports facing the senders; ``tx_pause_frames`` is what the switch
    sent there, which the sender NIC counts as ``rx_pause_frames`` (``sender_rx_pause_frames``).
    ``occupancy_bytes``: egress queue 0 sampled every ``occupancy_sample_s``.
    """

    profile: str
    speed_gbps: float
    thresholds: Thresholds
    kpis: dict[str, float]
    feasible: bool
    duration_s: float
    egress: list[PortStats]
    ingress: list[PortStats]
    occupancy_bytes: np.ndarray
    occupancy_sample_s: float
    occupancy_max_bytes: float
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def objective(self) -> float:
        return self.kpis["objective"]

    @property
    def sender_rx_pause_frames(self) -> float:
        return sum(p.tx_pause_frames for p in self.ingress)

    def counters(self) -> dict[str, float]:
        """Totals over the run: egress counters summed, pause frames from the ingress side."""
        out = {name: float(sum(getattr(p, name) for p in self.egress)) for name in COUNTER_FIELDS}
        out["tx_pause_frames"] = float(sum(p.tx_pause_frames for p in self.ingress))
        out["rx_pause_frames"] = 0.0  # receivers never pause the switch in this model
        out["sender_rx_pause_frames"] = out["tx_pause_frames"]
        out["duration_s"] = self.duration_s
        out["occupancy_max_bytes"] = self.occupancy_max_bytes
        return out

    def to_dict(self, *, series: bool = False) -> dict[str, Any]:
        d: dict[str, Any] = {
            "profile": self.profile,
            "speed_gbps": self.speed_gbps,
            "thresholds": self.thresholds.to_dict(),
            "params": {k: v for k, v in self.params.items() if v is not None},
            "feasible": self.feasible,
            "duration_s": self.duration_s,
            "kpis": dict(self.kpis),
            "counters": self.counters(),
        }
        if series:
            d["occupancy_sample_s"] = self.occupancy_sample_s
            d["occupancy_bytes"] = [float(x) for x in self.occupancy_bytes]
            d["egress"] = [asdict(p) for p in self.egress]
            d["ingress"] = [asdict(p) for p in self.ingress]
        return d


@dataclass(frozen=True)
class Dcqcn:
    """Reaction-point parameters (HPCC ns-3 "dcqcn" Mellanox settings, REFERENCE.md)."""

    alpha_interval_us: float = 1.0
    decrease_interval_us: float = 4.0
    rate_timer_us: float = 300.0
    byte_counter_bytes: float | None = 10e6
    f: int = 1
    g: float = 1.0 / 256
    rai_mbps_per_25g: float = 5.0
    rhai_mbps_per_25g: float = 50.0
    min_rate_gbps: float = 1.0


def objective_from(kpis: dict[str, float], *, bdp_bytes: float, has_mice: bool) -> float:
    """The documented scalar (module docstring); infeasible when anything was dropped."""
    if kpis["drops"] > 0:
        return INFEASIBLE_PENALTY + kpis["drops"]
    j = 0.0
    if has_mice:
        j += math.log2(max(1.0, kpis["mice_fct_slowdown_p99"]))
        j += 0.5 * math.log2(max(1.0, kpis["mice_fct_slowdown_p50"]))
    j += W_LOST_UTILISATION * kpis["lost_utilisation"]
    j += W_PAUSE * kpis["pause_time_fraction"]
    j += W_QUEUE * math.log2(1.0 + kpis["queue_p99_bytes"] / bdp_bytes)
    return j


def base_rtt_us(cable_m: float) -> float:
    """Sender -> switch -> receiver and back: ~4 us of NIC/switch latency plus propagation."""
    return 4.0 + 4 * cable_m / buffers.SIGNAL_SPEED_M_PER_S * 1e6


def simulate(
    profile: str,
    speed_gbps: float,
    thresholds: Thresholds,
    *,
    flows: int | None = None,
    load: float | None = None,
    incast_degree: int | None = None,
    duration_ms: float = 10.0,
    seed: int = 0,
    buffer_bytes: int | None = None,
    cable_m: float = DEFAULT_CABLE_M,
    params: dict[str, Any] | None = None,
    **kwargs: Any,
) -> SimResult:
    """Simulate one configuration; see :func:`simulate_batch` for the keyword arguments."""
    return simulate_batch(profile, speed_gbps, [thresholds], flows=flows, load=load,
                          incast_degree=incast_degree, duration_ms=duration_ms, seed=seed,
                          buffer_bytes=buffer_bytes, cable_m=cable_m, params=params,
                          **kwargs)[0]


def simulate_batch(
    profile: str,
    speed_gbps: float,
    thresholds: Sequence[Thresholds],
    *,
    flows: int | None = None,
    load: float | None = None,
    incast_degree: int | None = None,
    duration_ms: float = 10.0,
    seed: int = 0,
    buffer_bytes: int | None = None,
    cable_m: float = DEFAULT_CABLE_M,
    params: dict[str, Any] | None = None,
    dt_us: float = 1.0,
    switch_ports: int = 32,
    lossless_pgs: int = 2,
    busy_ports: int = 8,
    nic_speed_gbps: float | None = None,
    pfc: bool = True,
    ecn: bool = True,
    dcqcn: Dcqcn | None = None,
    sample_us: float = 10.0,
    warmup_ms: float = 2.0,
) -> list[SimResult]:
    """Simulate B configurations of one traffic scenario in one vectorised run.

    ``params`` carries profile extras (``size_bytes``, ``period_us``, ``phase_bytes``,
    ``gap_us``, ``queues``, ``senders``, ``slots``); ``flows``/``load``/``incast_degree`` are
    the common ones. ``buffer_bytes`` defaults to 16 MB x bw/50G; ``switch_ports`` x
    ``lossless_pgs`` PGs have headroom reserved. ``pfc=False`` makes the class lossy (drops at
    the threshold, no pause); ``ecn=False`` disables marking. ``warmup_ms`` (2 ms) of traffic
    runs before the measurement starts, so that the start-up transient of DCQCN (all QPs at
    line rate, alpha = 1) does not dominate short runs; KPIs, counters and FCTs cover flows
    arriving after it, over ``duration_ms``. Same seed => identical results.
    """
    if not thresholds:
        return []
    for th in thresholds:
        th.validate()
    if speed_gbps <= 0:
        raise ValueError("speed_gbps must be > 0")
    if duration_ms <= 0:
        raise ValueError("duration_ms must be > 0")
    given = dict(params or {})
    # the keywords win where given; None leaves what ``params`` says (or the default)
    given.update({k: v for k, v in (("flows", flows), ("load", load),
                                    ("incast_degree", incast_degree)) if v is not None})
    resolved = resolve_params(profile, given)
    if warmup_ms < 0:
        raise ValueError("warmup_ms must be >= 0")
    dt_s = dt_us * 1e-6
    duration_s = (duration_ms + warmup_ms) * 1e-3
    plan = build_plan(profile, resolved, speed_gbps=speed_gbps, duration_s=duration_s,
                      dt_s=dt_s, seed=seed)
    env = _Env(
        speed_gbps=float(speed_gbps),
        buffer_bytes=float(buffer_bytes if buffer_bytes is not None
                           else buffers.default_buffer_bytes(speed_gbps)),
        cable_m=float(cable_m),
        dt_s=dt_s,
        switch_ports=switch_ports,
        lossless_pgs=lossless_pgs,
        busy_ports=busy_ports,
        nic_speed_gbps=float(nic_speed_gbps or speed_gbps),
        pfc=pfc,
        ecn=ecn,
        dcqcn=dcqcn or Dcqcn(),
        sample_steps=max(1, round(sample_us / dt_us)),
        seed=seed,
        warmup_steps=min(plan.steps - 1, round(warmup_ms / (dt_us * 1e-3))),
    )
    return _Engine(plan, list(thresholds), env).run()


@dataclass
class _Env:
    speed_gbps: float
    buffer_bytes: float
    cable_m: float
    dt_s: float
    switch_ports: int
    lossless_pgs: int
    busy_ports: int
    nic_speed_gbps: float
    pfc: bool
    ecn: bool
    dcqcn: Dcqcn
    sample_steps: int
    seed: int
    warmup_steps: int = 0


_BIG_STEP = np.iinfo(np.int64).max // 4
_P_CLIP = 1.0 - 1e-9  # keeps log1p(-p) finite when p = 1
_TINY = 1e-9


class _Engine:
    """State and step loop of one batched run (see the module docstring)."""

    def __init__(self, plan: TrafficPlan, ths: list[Thresholds], env: _Env) -> None:
        self.plan = plan
        self.ths = ths
        self.env = env

    # ----------------------------------------------------------------------------------
    def run(self) -> list[SimResult]:
        plan, env, ths = self.plan, self.env, self.ths
        dc = env.dcqcn
        B = len(ths)
        Qn, P, K = plan.queues, plan.ports, plan.slots
        Pt = Qn * P
        S = Pt * K
        PK = P * K
        steps = plan.steps
        dt = env.dt_s
        speed = env.speed_gbps
        line = speed * 1e9 / 8 * dt  # bytes per step at line rate
        port_line = line * plan.port_cap_factor
        rtt_s = base_rtt_us(env.cable_m) * 1e-6
        cnp_delay = max(1, math.ceil(rtt_s / dt - 1e-9))
        in_speed = speed * plan.port_cap_factor  # ingress port speed (uplinks are faster)
        pfc_delay = max(1, math.ceil(buffers.pfc_reaction_s(in_speed, env.cable_m,
                                                                 PACKET_BYTES) / dt - 1e-9))
        refresh_steps = max(1, int(buffers.MAX_PAUSE_QUANTA * 512 / (in_speed * 1e9) / 2 / dt))
        dec_steps = max(1, round(dc.decrease_interval_us * 1e-6 / dt))
        timer_steps = max(1, round(dc.rate_timer_us * 1e-6 / dt))
        # alpha updates every alpha interval; with dt = interval this is once per step
        alpha_per_step = max(1, round(dt / (dc.alpha_interval_us * 1e-6)))
        g_keep = (1.0 - dc.g) ** alpha_per_step
        g_add = 1.0 - g_keep
        rai = dc.rai_mbps_per_25g * 1e6 * speed / 25 / 8 * dt
        rhai = dc.rhai_mbps_per_25g * 1e6 * speed / 25 / 8 * dt
        min_rate = min(line, dc.min_rate_gbps * 1e9 / 8 * dt)
        bc_bytes = dc.byte_counter_bytes
        F = dc.f

        # ---- per-configuration constants, shaped (B, 1) to broadcast ----
        col = np.ones((B, 1))
        kmin = col * np.array([[t.kmin_bytes] for t in ths], float)
        kmax = col * np.array([[t.kmax_bytes] for t in ths], float)
        pmax = col * np.array([[t.pmax] for t in ths], float)
        inv_span = 1.0 / np.maximum(kmax - kmin, 1.0)
        default_h = buffers.default_headroom_bytes(in_speed, env.cable_m)
        hdrm_cap = np.array([[float(t.headroom_bytes if t.headroom_bytes is not None
                                    else default_h)] for t in ths])
        alpha_dt = np.array([[float(t.alpha if t.alpha is not None
                                    else buffers.default_alpha(speed, env.nic_speed_gbps))]
                             for t in ths])
        xoff = np.array([[float(t.xoff_bytes) if t.xoff_bytes is not None else np.inf]
                         for t in ths])
        xon = np.array([[float(t.xon_bytes) if t.xon_bytes is not None else np.inf]
                        for t in ths])
        has_xoff = bool(np.isfinite(xoff).any())
        has_xon = bool(np.isfinite(xon).any())
        reserve = float(buffers.PG_RESERVE_BYTES)
        n_pg = env.switch_ports * env.lossless_pgs
        if not env.pfc:
            hdrm_cap = np.zeros((B, 1))
        free_pool = env.buffer_bytes - n_pg * (hdrm_cap + reserve)  # (B, 1)
        if np.any(free_pool <= 0):
            bad = [ths[i] for i in np.nonzero(free_pool[:, 0] <= 0)[0]]
            raise ValueError(f"headroom x {n_pg} PGs exceeds the buffer for {bad[0]}")
        resume_off = float(buffers.RESUME_OFFSET_BYTES)

        # ---- state ----
        # offered: bytes handed to each QP so far; sent_cum: bytes it got into the switch.
        offered = np.zeros((B, S))
        if plan.continuous:
            offered[:] = CONTINUOUS_BYTES
        sent_cum = np.zeros((B, S))
        rc = np.full((B, S), line)
        rt = np.full((B, S), line)
        alpha = np.ones((B, S))
        started = np.zeros((B, S), bool)
        dec_flag = np.zeros((B, S), bool)
        dec_any = False
        stage_t = np.zeros((B, S), np.int64)
        stage_b = np.zeros((B, S), np.int64)
        next_timer = np.full((B, S), _BIG_STEP, np.int64)
        next_timer_min = _BIG_STEP
        bc_base = np.full((B, S), np.inf)  # sent_cum when the byte counter last restarted
        bc_armed = False
        qf = np.zeros((B, S))
        ing = np.zeros((B, Pt))
        hdrm = np.zeros((B, Pt))
        hdrm_active = False
        shared_total = np.zeros((B, 1))  # this switch's shared use incl. the mean field
        mf_ports = float(env.busy_ports)
        mf_keep = math.exp(-dt / (MEAN_FIELD_US * 1e-6))
        mf_ewma = np.zeros((B, 1))  # time-averaged shared use per bottleneck queue
        paused = np.zeros((B, Pt), bool)
        any_paused = False
        pause_age = np.zeros((B, Pt), np.int64)
        ptr = np.zeros((B, S), np.int64)
        target = np.broadcast_to(plan.slot_cum_end[:, 0], (B, S)).copy()
        target_eps = target - 1e-6
        Q = np.zeros((B, Qn))
        A_cum = np.zeros((B, Qn))
        D_cum = np.zeros((B, Qn))
        # counters
        marks_pk = np.zeros((B, Qn))
        marks_by = np.zeros((B, Qn))
        drop_by = np.zeros((B, Qn))
        pause_frames = np.zeros((B, Pt))
        paused_steps = np.zeros((B, Pt))
        q_hist = np.zeros((steps, B, Qn), np.float32)
        # rings of delayed signals; an entry is valid only if written at that exact step
        Dc = cnp_delay + 1
        cnp_ring = np.zeros((Dc, B, S), bool)
        cnp_ring_step = np.full(Dc, -1, np.int64)
        Dp = pfc_delay + 1
        pause_ring = np.zeros((Dp, B, Pt), bool)
        pause_ring_step = np.full(Dp, -1, np.int64)
        # common random numbers for ECN/CNP draws: (step, slot), identical for the batch;
        # stored as log(1-u) so that "u < 1 - (1-p)^n" becomes "n log1p(-p) < log1p(-u)"
        rng_mark = np.random.default_rng([env.seed, 0xEC7])
        blk = 512
        log_u = np.log1p(-rng_mark.random((blk, S)))
        # packet granularity: a QP puts whole packets on the wire; per step it sends
        # floor(RC dt / MTU + u) packets (u uniform, common to the batch), so the queue sees
        # the packet-level jitter of uncorrelated senders, not a perfectly smooth fluid
        rng_pkt = np.random.default_rng([env.seed, 0x9AC])
        u_pkt = rng_pkt.random((blk, S))
        inv_mtu = 1.0 / PACKET_BYTES
        # work buffers
        send = np.empty((B, S))
        dep = np.empty((B, S))
        tmp = np.empty((B, S))
        send3 = send.reshape(B, Qn, PK)
        dep3 = dep.reshape(B, Qn, PK)
        qf3 = qf.reshape(B, Qn, PK)
        tmp3 = tmp.reshape(B, Qn, PK)
        # completion bookkeeping: FIFO resolution in chunks of W steps
        W = 256
        d_chunk = np.zeros((W, B, Qn))
        d_before = np.zeros((B, Qn))
        chunk_k0 = 0
        pend: list[tuple[np.ndarray, ...]] = []
        done_b: list[np.ndarray] = []
        done_f: list[np.ndarray] = []
        done_t: list[np.ndarray] = []
        # phased allreduce: per configuration next phase start and phase bookkeeping
        phased = plan.phase_bytes is not None
        phase_bytes = float(plan.phase_bytes or 0.0)
        next_phase = np.zeros(B, np.int64)
        phase_open = np.zeros(B, bool)
        phases_done = np.zeros(B)
        phase_start_step = np.zeros(B, np.int64)
        phase_time_sum = np.zeros(B)
        ev_steps = plan.ev_steps
        ev_ptr = plan.ev_ptr
        n_ev = len(ev_steps)
        ev_i = 0
        slot_cum_end = plan.slot_cum_end
        slot_flows = plan.slot_flows
        reset_on_start = plan.reset_rate_on_start
        has_flows = plan.n_flows > 0
        bc_check = 8  # byte counters are checked every few steps (10 MB >> 8 steps of bytes)

        def resolve(k_end: int) -> None:
            """Resolve pending completions against departures of steps chunk_k0..k_end-1."""
            nonlocal pend
            if not pend:
                return
            n = k_end - chunk_k0
            if n <= 0:
                return
            pb = np.concatenate([p[0] for p in pend])
            pq = np.concatenate([p[1] for p in pend])
            pa = np.concatenate([p[2] for p in pend])
            pfid = np.concatenate([p[3] for p in pend])
            series = d_chunk[:n]
            d_end = series[-1, pb, pq]
            ready = pa <= d_end + 1e-6
            if ready.any():
                rb, rq, ra, rf = pb[ready], pq[ready], pa[ready], pfid[ready]
                ser = series[:, rb, rq]  # (n, E)
                idx = np.sum(ser < ra - 1e-6, axis=0)
                idx = np.minimum(idx, n - 1)
                cols = np.arange(len(idx))
                d_cur = ser[idx, cols]
                d_prev = np.where(idx > 0, ser[np.maximum(idx - 1, 0), cols], d_before[rb, rq])
                frac = np.clip((ra - d_prev) / np.maximum(d_cur - d_prev, _TINY), 0.0, 1.0)
                done_b.append(rb)
                done_f.append(rf)
                done_t.append((chunk_k0 + idx + frac) * dt)
            keep = ~ready
            pend = [(pb[keep], pq[keep], pa[keep], pfid[keep])] if keep.any() else []

        warm = env.warmup_steps
        snap: dict[str, np.ndarray] = {}
        for k in range(steps):
            if k == warm:
                snap = {"D": D_cum.copy(), "marks_pk": marks_pk.copy(),
                        "marks_by": marks_by.copy(), "drop_by": drop_by.copy(),
                        "pause_frames": pause_frames.copy(), "paused": paused_steps.copy(),
                        "sent": sent_cum.copy(), "phases": phases_done.copy(),
                        "phase_time": phase_time_sum.copy()}
            # ---------------- arrivals of new flows ----------------
            if ev_i < n_ev and ev_steps[ev_i] == k:
                lo, hi = ev_ptr[ev_i], ev_ptr[ev_i + 1]
                idx_s = plan.ev_slot[lo:hi]
                if reset_on_start:
                    idle = offered[:, idx_s] - sent_cum[:, idx_s] <= 0.5
                    if idle.any():
                        # a new QP starts at line rate with a fresh reaction point
                        rc[:, idx_s] = np.where(idle, line, rc[:, idx_s])
                        rt[:, idx_s] = np.where(idle, line, rt[:, idx_s])
                        alpha[:, idx_s] = np.where(idle, 1.0, alpha[:, idx_s])
                        started[:, idx_s] &= ~idle
                        dec_flag[:, idx_s] &= ~idle
                        stage_t[:, idx_s] = np.where(idle, 0, stage_t[:, idx_s])
                        stage_b[:, idx_s] = np.where(idle, 0, stage_b[:, idx_s])
                        bc_base[:, idx_s] = np.where(idle, np.inf, bc_base[:, idx_s])
                        next_timer[:, idx_s] = np.where(idle, _BIG_STEP, next_timer[:, idx_s])
                offered[:, idx_s] += plan.ev_bytes[lo:hi]
                ev_i += 1
            if phased:
                starting = next_phase == k
                if starting.any():
                    offered[starting] += phase_bytes
                    phase_open |= starting
                    phase_start_step[starting] = k
                    next_phase[starting] = _BIG_STEP

            # ---------------- NIC send ----------------
            np.multiply(rc, inv_mtu, out=send)
            send += u_pkt[k % blk]
            np.floor(send, out=send)
            send *= PACKET_BYTES
            np.subtract(offered, sent_cum, out=tmp)
            np.minimum(send, tmp, out=send)
            if K > 1:
                arr_pg = send.reshape(B, Pt, K).sum(axis=2)
                over_cap = arr_pg > port_line * (1 + 1e-12)
                if over_cap.any():
                    # element-wise decision so a batch member never sees another's branch
                    scale = np.where(over_cap, port_line / np.maximum(arr_pg, _TINY), 1.0)
                    send.reshape(B, Pt, K)[...] *= scale[:, :, None]
                    arr_pg *= scale
            else:
                arr_pg = send
            kp = k - pfc_delay
            if pause_ring_step[kp % Dp] == kp:
                ps = pause_ring[kp % Dp]
                paused_steps += ps
                if K > 1:
                    send[np.repeat(ps, K, axis=1)] = 0.0
                    arr_pg[ps] = 0.0
                else:
                    send[ps] = 0.0
            sent_cum += send

            # ---------------- MMU admission ----------------
            thr = alpha_dt * np.maximum(free_pool - shared_total, 0.0)
            lim = np.minimum(thr, xoff) if has_xoff else thr
            to_h = arr_pg - np.maximum((reserve + lim) - ing, 0.0)
            if hdrm_active or (to_h > 0).any():
                np.maximum(to_h, 0.0, out=to_h)
                hdrm += to_h
                ing += arr_pg - to_h
                ovf = hdrm - hdrm_cap
                if (ovf > 0).any():
                    drop_pg = np.maximum(ovf, 0.0)
                    hdrm -= drop_pg
                    dfrac = drop_pg / np.maximum(arr_pg, _TINY)
                    dfrac_s = np.repeat(dfrac, K, axis=1) if K > 1 else dfrac
                    drop_s = send * dfrac_s
                    send -= drop_s
                    sent_cum -= drop_s  # go-back-N: the sender has to send these again
                    drop_by += drop_s.reshape(B, Qn, PK).sum(axis=2)
                hdrm_active = bool((hdrm > 0).any())
            else:
                ing += arr_pg
            qf += send
            arr_q = send3.sum(axis=2)
            A_cum += arr_q
            Q += arr_q

            # ---------------- sender-side completions ----------------
            if has_flows:
                done = sent_cum >= target_eps
                while done.any():
                    bi, si = np.nonzero(done)
                    fl = slot_flows[si, ptr[bi, si]]
                    qi = si // PK
                    sd = send[bi, si]
                    over = sent_cum[bi, si] - target[bi, si]
                    phi = np.clip(1.0 - over / np.maximum(sd, _TINY), 0.0, 1.0)
                    a_last = A_cum[bi, qi] - arr_q[bi, qi] * (1.0 - phi)
                    pend.append((bi, qi, a_last, fl))
                    ptr[bi, si] += 1
                    target[bi, si] = slot_cum_end[si, ptr[bi, si]]
                    target_eps[bi, si] = target[bi, si] - 1e-6
                    done[bi, si] = sent_cum[bi, si] >= target_eps[bi, si]

            # ---------------- egress dequeue ----------------
            deq = np.minimum(Q, line)
            frac_q = deq / np.maximum(Q, _TINY)
            np.multiply(qf3, frac_q[:, :, None], out=dep3)
            qf -= dep
            Q -= deq
            np.maximum(Q, 0.0, out=Q)
            D_cum += deq
            q_hist[k] = Q
            ck = k - chunk_k0
            d_chunk[ck] = D_cum
            dep_pg = dep.reshape(B, Pt, K).sum(axis=2) if K > 1 else dep
            if hdrm_active:
                from_h = np.minimum(hdrm, dep_pg)
                hdrm -= from_h
                ing -= dep_pg - from_h
                hdrm_active = bool((hdrm > 0).any())
            else:
                ing -= dep_pg
            shared_pg = np.maximum(ing - reserve, 0.0)
            own = shared_pg.sum(axis=1, keepdims=True)
            if mf_ports:
                mf_ewma = mf_ewma * mf_keep + (1.0 - mf_keep) * own * (1.0 / Qn)
                shared_total = own + mf_ports * mf_ewma
            else:
                shared_total = own

            # ---------------- PFC ----------------
            if env.pfc:
                thr = alpha_dt * np.maximum(free_pool - shared_total, 0.0)
                lim = np.minimum(thr, xoff) if has_xoff else thr
                over_lim = shared_pg >= lim
                if any_paused or hdrm_active or over_lim.any():
                    pause_cond = over_lim | (hdrm > 0)
                    lim_on = np.minimum(thr, xon + resume_off) if has_xon else thr
                    resume_cond = (hdrm <= 0) & ((shared_pg <= 0)
                                                 | (shared_pg + resume_off <= lim_on))
                    new_paused = np.where(paused, ~resume_cond, pause_cond)
                    pause_age = np.where(new_paused, pause_age + 1, 0)
                    refresh = new_paused & (pause_age % refresh_steps == 0)
                    pause_frames += (new_paused != paused) | refresh
                    paused = new_paused
                    any_paused = bool(paused.any())
                    if any_paused:
                        pause_ring[k % Dp] = paused
                        pause_ring_step[k % Dp] = k

            # ---------------- ECN marking at dequeue ----------------
            if env.ecn and (kmin < Q).any():
                p = np.clip((Q - kmin) * inv_span, 0.0, 1.0) * pmax
                p[kmax < Q] = 1.0
                marks_pk += p * (deq / PACKET_BYTES)
                marks_by += p * deq
                lp = np.log1p(-np.minimum(p, _P_CLIP)) * (1.0 / PACKET_BYTES)
                np.multiply(dep3, lp[:, :, None], out=tmp3)
                np.less(tmp, log_u[k % blk], out=cnp_ring[k % Dc])
                cnp_ring_step[k % Dc] = k
            if k % blk == blk - 1:
                log_u = np.log1p(-rng_mark.random((blk, S)))
                u_pkt = rng_pkt.random((blk, S))

            # ---------------- DCQCN reaction point ----------------
            kc = k - cnp_delay
            got = False
            if cnp_ring_step[kc % Dc] == kc:
                cs = cnp_ring[kc % Dc]
                if cs.any():
                    got = True
                    alpha *= g_keep
                    np.add(alpha, g_add, out=alpha, where=cs)
                    first = cs > started
                    if first.any():
                        started |= first
                        np.copyto(rt, rc, where=first)
                        alpha[first] = 1.0
                    dec_flag |= cs
                    dec_any = True
            if not got:
                alpha *= g_keep
            if dec_any and k % dec_steps == 0:
                m = dec_flag
                clamp = m & ((stage_t > 0) | (stage_b > 0))
                np.copyto(rt, rc, where=clamp)
                np.copyto(rc, np.maximum(min_rate, rc * (1.0 - 0.5 * alpha)), where=m)
                stage_t[m] = 0
                stage_b[m] = 0
                next_timer[m] = k + timer_steps
                next_timer_min = min(next_timer_min, k + timer_steps)
                if bc_bytes is not None:
                    np.copyto(bc_base, sent_cum, where=m)
                    bc_armed = True
                dec_flag[:] = False
                dec_any = False
            if next_timer_min <= k:
                fire = next_timer <= k
                next_timer[fire] += timer_steps
                next_timer_min = int(next_timer.min())
                st = np.maximum(stage_t, stage_b)
                rt = np.minimum(line, rt + rai * (fire & (st == F)) + rhai * (fire & (st > F)))
                np.copyto(rc, 0.5 * (rc + rt), where=fire)
                stage_t += fire
            if bc_armed and k % bc_check == 0:
                bfire = sent_cum - bc_base >= bc_bytes
                if bfire.any():
                    bc_base[bfire] += bc_bytes
                    st = np.maximum(stage_t, stage_b)
                    rt = np.minimum(line, rt + rai * (bfire & (st == F))
                                    + rhai * (bfire & (st > F)))
                    np.copyto(rc, 0.5 * (rc + rt), where=bfire)
                    stage_b += bfire

            # ---------------- phased collectives: barrier ----------------
            if phased and phase_open.any():
                outstanding = (offered - sent_cum).sum(axis=1) + Q.sum(axis=1)
                fin = phase_open & (outstanding <= 0.5)
                if fin.any():
                    phase_open &= ~fin
                    phases_done += fin
                    phase_time_sum += fin * (k + 1 - phase_start_step)
                    next_phase[fin] = k + 1 + plan.gap_steps

            # ---------------- chunked FIFO completion resolution ----------------
            if ck == W - 1:
                resolve(k + 1)
                d_before = D_cum.copy()
                chunk_k0 = k + 1
        resolve(steps)

        # measurement window: everything from the warm-up step on
        return self._results(
            B=B, Qn=Qn, Pt=Pt, S=S, steps=steps, dt=dt, line=line, rtt_s=rtt_s,
            q_hist=q_hist[warm:], D_cum=D_cum - snap["D"],
            marks_pk=marks_pk - snap["marks_pk"], marks_by=marks_by - snap["marks_by"],
            drop_by=drop_by - snap["drop_by"], pause_frames=pause_frames - snap["pause_frames"],
            paused_steps=paused_steps - snap["paused"], sent_cum=sent_cum - snap["sent"],
            done_b=done_b, done_f=done_f, done_t=done_t,
            phases_done=phases_done - snap["phases"],
            phase_time_sum=phase_time_sum - snap["phase_time"],
        )

    # ----------------------------------------------------------------------------------
    def _results(self, *, B: int, Qn: int, Pt: int, S: int, steps: int, dt: float,
                 line: float, rtt_s: float, q_hist: np.ndarray, D_cum: np.ndarray,
                 marks_pk: np.ndarray, marks_by: np.ndarray, drop_by: np.ndarray,
                 pause_frames: np.ndarray, paused_steps: np.ndarray, sent_cum: np.ndarray,
                 done_b: list[np.ndarray], done_f: list[np.ndarray], done_t: list[np.ndarray],
                 phases_done: np.ndarray, phase_time_sum: np.ndarray) -> list[SimResult]:
        plan, env = self.plan, self.env
        warm = env.warmup_steps
        t_warm = warm * dt
        T_end = steps * dt
        steps = steps - warm  # steps of the measurement window
        T = steps * dt
        rate_bps = env.speed_gbps * 1e9
        bdp = rate_bps / 8 * rtt_s
        n_flows = plan.n_flows
        fct = np.full((B, n_flows), np.nan)
        if done_b:
            db = np.concatenate(done_b)
            dfl = np.concatenate(done_f)
            dtm = np.concatenate(done_t)
            fct[db, dfl] = dtm - plan.flow_arrival_s[dfl] + rtt_s
        sizes = plan.flow_bytes
        standalone = rtt_s + sizes * 8 / rate_bps
        mice = sizes < MICE_BYTES
        has_mice = bool(mice.any())
        # ideal work-conserving egress fed by the same arrivals, over the window
        if plan.continuous:
            ideal = np.full(B, line * steps * Qn)
        elif plan.phase_bytes is not None:
            # a phase at line rate, then the barrier step and the gap (as the engine runs it)
            busy = plan.ports * plan.phase_bytes / line
            cycle = busy + 1 + plan.gap_steps
            ideal = np.full(B, busy / cycle * line * steps)
        else:
            # after n steps the ideal backlog is W_n = max(0, a_{n-1} - n line
            # - min_{j<n}(a_{j-1} - j line)), a_{-1} = 0; delivered_n = a_{n-1} - W_n
            a = np.cumsum(plan.offered_per_step, axis=0)  # (all steps, Qn)
            n_all = len(a)
            j = np.arange(n_all)[:, None] * line
            prev = np.vstack([np.zeros((1, Qn)), a[:-1]])
            cmin = np.minimum.accumulate(prev - j, axis=0)

            def delivered_ideal(n: int) -> float:
                if n <= 0:
                    return 0.0
                w = np.maximum(0.0, a[n - 1] - n * line - cmin[n - 1])
                return float(np.sum(a[n - 1] - w))

            ideal = np.full(B, delivered_ideal(n_all) - delivered_ideal(warm))
        results: list[SimResult] = []
        sample = env.sample_steps
        for b in range(B):
            th = self.ths[b]
            kp: dict[str, float] = {}
            # --- FCT slowdowns ---
            f = fct[b]
            ok = ~np.isnan(f)
            slow = np.full(n_flows, np.nan)
            slow[ok] = np.maximum(1.0, f[ok] / standalone[ok])
            # unfinished flows that are already late count with their elapsed time
            elapsed = T_end - plan.flow_arrival_s + rtt_s
            late = ~ok & (elapsed > standalone)
            slow[late] = elapsed[late] / standalone[late]
            slow[plan.flow_arrival_s < t_warm] = np.nan  # arrived during the warm-up
            ms = slow[mice & ~np.isnan(slow)]
            kp["mice_flows"] = float(np.sum(mice & (plan.flow_arrival_s >= t_warm)))
            kp["mice_fct_slowdown_p50"] = float(np.percentile(ms, 50)) if len(ms) else 1.0
            kp["mice_fct_slowdown_p99"] = float(np.percentile(ms, 99)) if len(ms) else 1.0
            es = slow[~mice & ~np.isnan(slow)]
            kp["elephant_fct_slowdown_p50"] = float(np.percentile(es, 50)) if len(es) else 1.0
            in_win = plan.flow_arrival_s >= t_warm
            kp["flows_total"] = float(np.sum(in_win))
            kp["flows_completed"] = float(np.sum(ok & in_win))
            # --- throughput ---
            delivered = float(D_cum[b].sum())
            kp["utilisation"] = delivered / (line * steps * Qn)
            kp["offered_utilisation"] = float(ideal[b] / (line * steps * Qn))
            kp["offered_load"] = plan.nominal_load
            kp["lost_utilisation"] = (max(0.0, 1.0 - delivered / ideal[b])
                                      if ideal[b] > 0 else 0.0)
            if plan.continuous or plan.phase_bytes is not None:
                kp["elephant_goodput_gbps"] = float(np.mean(sent_cum[b]) * 8 / T / 1e9)
                per = sent_cum[b]
                kp["jain_fairness"] = (float(per.sum() ** 2 / (len(per) * np.sum(per * per)))
                                       if per.sum() > 0 else 1.0)
            else:
                big = ok & ~mice & in_win
                kp["elephant_goodput_gbps"] = (
                    float(np.mean(sizes[big] * 8 / f[big]) / 1e9) if big.any() else 0.0)
            if plan.phase_bytes is not None:
                kp["phases_completed"] = float(phases_done[b])
                kp["phase_time_us"] = (float(phase_time_sum[b] / phases_done[b] * dt * 1e6)
                                       if phases_done[b] else T * 1e6)
            # --- queue / PFC / ECN ---
            # contiguous float64 copy: reductions then do not depend on the batch size
            qh = np.array(q_hist[:, b, :], dtype=np.float64, order="C")
            kp["queue_p99_bytes"] = float(np.percentile(qh, 99)) if steps else 0.0
            kp["queue_mean_bytes"] = float(qh.mean())
            qmax = float(qh.max()) if steps else 0.0
            kp["queue_max_bytes"] = qmax
            kp["pause_time_fraction"] = float(paused_steps[b].mean() / steps)
            kp["pause_frames"] = float(pause_frames[b].sum())
            tx_pk = delivered / PACKET_BYTES
            kp["ecn_mark_fraction"] = float(marks_pk[b].sum() / tx_pk) if tx_pk > 0 else 0.0
            drops = max(0.0, float(np.ceil(drop_by[b].sum() / PACKET_BYTES - 1e-9)))
            kp["drops"] = drops
            kp["drop_bytes"] = float(drop_by[b].sum())
            kp["bdp_bytes"] = bdp
            feasible = drops <= 0
            kp["feasible"] = 1.0 if feasible else 0.0
            kp["objective"] = objective_from(kp, bdp_bytes=bdp, has_mice=has_mice)
            egress = [
                PortStats(
                    port=f"egress{q}",
                    tx_bytes=float(D_cum[b, q]),
                    tx_packets=float(D_cum[b, q] / PACKET_BYTES),
                    ecn_marked_packets=float(marks_pk[b, q]),
                    ecn_marked_bytes=float(marks_by[b, q]),
                    drop_packets=float(np.ceil(drop_by[b, q] / PACKET_BYTES - 1e-9)),
                    drop_bytes=float(drop_by[b, q]),
                    occupancy_max_bytes=float(qh[:, q].max()) if steps else 0.0,
                )
                for q in range(Qn)
            ]
            ingress = [
                PortStats(port=f"ingress{p}", tx_pause_frames=float(pause_frames[b, p]),
                          paused_time_s=float(paused_steps[b, p] * dt))
                for p in range(Pt)
            ]
            results.append(SimResult(
                profile=plan.profile, speed_gbps=env.speed_gbps, thresholds=th, kpis=kp,
                feasible=feasible, duration_s=T, egress=egress, ingress=ingress,
                occupancy_bytes=qh[::sample, 0].astype(float),
                occupancy_sample_s=sample * dt, occupancy_max_bytes=qmax,
                params=dict(plan.params),
            ))
        return results
