"""Discrete-time RoCE physics: DCQCN reaction points, ECN marking, a shared-buffer MMU with PFC.

Topology of the engine
----------------------
One switch. ``queues`` bottleneck egress queues (one per receiver port, at ``speed_gbps``),
each fed by ``ports`` sender NIC ports (also at ``speed_gbps``); a NIC port runs ``slots``
queue pairs (QPs) that share its line rate. See :mod:`fabricsim.traffic` for the profiles.
Time advances in steps of ``dt_us`` (1 us by default: 12.5 KB at 100G). The state is numpy
arrays shaped ``(B, slots)``, ``(B, ports)`` or ``(B, queues)`` where ``B`` is the number of
configurations simulated together (:func:`simulate_batch`); the traffic plan and every random
draw are shared by the batch (common random numbers), so a batch member is bit-for-bit the
individual run of that configuration. The step loop below is compiled
(:mod:`fabricsim.kernel`, numba); this module prepares it and turns its counters into KPIs.

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

from . import buffers, kernel
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
        steps = plan.steps
        dt = env.dt_s
        speed = env.speed_gbps
        line = speed * 1e9 / 8 * dt  # bytes per step at line rate
        rtt_s = base_rtt_us(env.cable_m) * 1e-6
        in_speed = speed * plan.port_cap_factor  # ingress port speed (uplinks are faster)
        # alpha updates every alpha interval; with dt = interval this is once per step
        alpha_per_step = max(1, round(dt / (dc.alpha_interval_us * 1e-6)))
        g_keep = (1.0 - dc.g) ** alpha_per_step
        ints = np.zeros(kernel.N_INTS, np.int64)
        ints[kernel.I_WARM] = env.warmup_steps
        ints[kernel.I_QN] = Qn
        ints[kernel.I_PT] = Pt
        ints[kernel.I_K] = K
        pfc_delay = max(1, math.ceil(buffers.pfc_reaction_s(in_speed, env.cable_m,
                                                                 PACKET_BYTES) / dt - 1e-9))
        cnp_delay = max(1, math.ceil(rtt_s / dt - 1e-9))
        ints[kernel.I_PFC_DELAY] = pfc_delay
        ints[kernel.I_CNP_DELAY] = cnp_delay
        ints[kernel.I_REFRESH] = max(
            1, int(buffers.MAX_PAUSE_QUANTA * 512 / (in_speed * 1e9) / 2 / dt))
        ints[kernel.I_DEC] = max(1, round(dc.decrease_interval_us * 1e-6 / dt))
        ints[kernel.I_TIMER] = max(1, round(dc.rate_timer_us * 1e-6 / dt))
        ints[kernel.I_BC_CHECK] = 8  # byte counters: every few steps (10 MB >> 8 steps)
        ints[kernel.I_F] = dc.f
        ints[kernel.I_GAP] = plan.gap_steps
        ints[kernel.I_PFC] = env.pfc
        ints[kernel.I_ECN] = env.ecn
        ints[kernel.I_RESET_ON_START] = plan.reset_rate_on_start
        ints[kernel.I_HAS_FLOWS] = plan.n_flows > 0
        ints[kernel.I_PHASED] = plan.phase_bytes is not None
        ints[kernel.I_HAS_BC] = dc.byte_counter_bytes is not None
        floats = np.zeros(kernel.N_FLOATS)
        floats[kernel.F_LINE] = line
        floats[kernel.F_PORT_LINE] = line * plan.port_cap_factor
        floats[kernel.F_G_KEEP] = g_keep
        floats[kernel.F_G_ADD] = 1.0 - g_keep
        floats[kernel.F_RAI] = dc.rai_mbps_per_25g * 1e6 * speed / 25 / 8 * dt
        floats[kernel.F_RHAI] = dc.rhai_mbps_per_25g * 1e6 * speed / 25 / 8 * dt
        floats[kernel.F_MIN_RATE] = min(line, dc.min_rate_gbps * 1e9 / 8 * dt)
        floats[kernel.F_BC_BYTES] = dc.byte_counter_bytes or 0.0
        floats[kernel.F_RESERVE] = float(buffers.PG_RESERVE_BYTES)
        floats[kernel.F_RESUME_OFF] = float(buffers.RESUME_OFFSET_BYTES)
        floats[kernel.F_MF_PORTS] = float(env.busy_ports)
        floats[kernel.F_MF_KEEP] = math.exp(-dt / (MEAN_FIELD_US * 1e-6))
        floats[kernel.F_PHASE_BYTES] = float(plan.phase_bytes or 0.0)
        floats[kernel.F_PACKET] = float(PACKET_BYTES)
        floats[kernel.F_DT] = dt
        floats[kernel.F_P_CLIP] = _P_CLIP
        floats[kernel.F_TINY] = _TINY

        # ---- per-configuration constants ----
        th = np.zeros((kernel.N_TH, B))
        th[kernel.T_KMIN] = [t.kmin_bytes for t in ths]
        th[kernel.T_KMAX] = [t.kmax_bytes for t in ths]
        th[kernel.T_PMAX] = [t.pmax for t in ths]
        th[kernel.T_INV_SPAN] = 1.0 / np.maximum(th[kernel.T_KMAX] - th[kernel.T_KMIN], 1.0)
        default_h = buffers.default_headroom_bytes(in_speed, env.cable_m)
        hdrm_cap = np.array([float(t.headroom_bytes if t.headroom_bytes is not None
                                   else default_h) for t in ths])
        if not env.pfc:
            hdrm_cap = np.zeros(B)
        th[kernel.T_HDRM_CAP] = hdrm_cap
        th[kernel.T_ALPHA] = [float(t.alpha if t.alpha is not None
                                    else buffers.default_alpha(speed, env.nic_speed_gbps))
                              for t in ths]
        th[kernel.T_XOFF] = [float(t.xoff_bytes) if t.xoff_bytes is not None else np.inf
                             for t in ths]
        th[kernel.T_XON] = [float(t.xon_bytes) if t.xon_bytes is not None else np.inf
                            for t in ths]
        n_pg = env.switch_ports * env.lossless_pgs
        free_pool = env.buffer_bytes - n_pg * (hdrm_cap + float(buffers.PG_RESERVE_BYTES))
        if np.any(free_pool <= 0):
            bad = [ths[i] for i in np.nonzero(free_pool <= 0)[0]]
            raise ValueError(f"headroom x {n_pg} PGs exceeds the buffer for {bad[0]}")
        th[kernel.T_FREE_POOL] = free_pool

        # ---- state ----
        # offered: bytes handed to each QP so far; sent_cum: bytes it got into the switch.
        offered = np.full((B, S), CONTINUOUS_BYTES if plan.continuous else 0.0)
        sent_cum = np.zeros((B, S))
        rc = np.full((B, S), line)
        rt = np.full((B, S), line)
        alpha = np.ones((B, S))
        started = np.zeros((B, S), bool)
        dec_flag = np.zeros((B, S), bool)
        stage_t = np.zeros((B, S), np.int64)
        stage_b = np.zeros((B, S), np.int64)
        next_timer = np.full((B, S), kernel.BIG_STEP, np.int64)
        bc_base = np.full((B, S), np.inf)  # sent_cum when the byte counter last restarted
        qf = np.zeros((B, S))  # each QP's bytes in its egress queue
        ptr = np.zeros((B, S), np.int64)  # each QP's next flow to complete
        target = np.broadcast_to(plan.slot_cum_end[:, 0], (B, S)).copy()
        ing = np.zeros((B, Pt))
        hdrm = np.zeros((B, Pt))
        paused = np.zeros((B, Pt), bool)
        pause_age = np.zeros((B, Pt), np.int64)
        pause_frames = np.zeros((B, Pt))
        paused_steps = np.zeros((B, Pt))
        Q = np.zeros((B, Qn))
        A_cum = np.zeros((B, Qn))
        D_cum = np.zeros((B, Qn))
        marks_pk = np.zeros((B, Qn))
        marks_by = np.zeros((B, Qn))
        drop_by = np.zeros((B, Qn))
        q_hist = np.zeros((steps, B, Qn), np.float32)
        shared_total = np.zeros(B)  # this switch's shared use incl. the mean field
        mf_ewma = np.zeros(B)  # time-averaged shared use per bottleneck queue
        # phased allreduce: per configuration next phase start and phase bookkeeping
        next_phase = np.zeros(B, np.int64)
        phase_open = np.zeros(B, bool)
        phases_done = np.zeros(B)
        phase_start_step = np.zeros(B, np.int64)
        phase_time_sum = np.zeros(B)
        # rings of delayed signals: the switch's pause decisions, the CNPs of marked packets
        pause_ring = np.zeros((pfc_delay + 1, B, Pt), bool)
        cnp_ring = np.zeros((cnp_delay + 1, B, S), bool)
        # flows: completed at the sender, waiting for their last byte to leave the queue
        n_flows = plan.n_flows
        cap = max(1, n_flows)
        pend_q = np.zeros((B, cap), np.int64)
        pend_a = np.zeros((B, cap))
        pend_f = np.zeros((B, cap), np.int64)
        pend_n = np.zeros(B, np.int64)
        done_f = np.zeros((B, cap), np.int64)
        done_t = np.zeros((B, cap))
        done_n = np.zeros(B, np.int64)
        ev_i = np.zeros(B, np.int64)
        snap = {"D": np.zeros((B, Qn)), "marks_pk": np.zeros((B, Qn)),
                "marks_by": np.zeros((B, Qn)), "drop_by": np.zeros((B, Qn)),
                "pause_frames": np.zeros((B, Pt)), "paused": np.zeros((B, Pt)),
                "sent": np.zeros((B, S)), "phases": np.zeros(B), "phase_time": np.zeros(B)}
        # common random numbers, identical for the batch, drawn per block of steps: per
        # (step, QP) the packet rounding u (a QP sends floor(RC dt / MTU + u) packets, so the
        # queue sees the packet-level jitter of uncorrelated senders) and the CNP draw, stored
        # as log(1-u) so that "u < 1 - (1-p)^n" becomes "n log1p(-p) < log1p(-u)"
        rng_mark = np.random.default_rng([env.seed, 0xEC7])
        rng_pkt = np.random.default_rng([env.seed, 0x9AC])
        blk = 2 * kernel.CHUNK
        slot_flows = np.ascontiguousarray(plan.slot_flows)
        slot_cum_end = np.ascontiguousarray(plan.slot_cum_end, dtype=float)
        ev_bytes = np.ascontiguousarray(plan.ev_bytes, dtype=float)
        for k0 in range(0, steps, blk):
            log_u = np.log1p(-rng_mark.random((blk, S)))
            u_pkt = rng_pkt.random((blk, S))
            kernel.run_steps(
                k0, min(steps, k0 + blk), ints, floats, th,
                plan.ev_steps, plan.ev_ptr, plan.ev_slot, ev_bytes, ev_i,
                slot_flows, slot_cum_end, log_u, u_pkt,
                offered, sent_cum, rc, rt, alpha, started, dec_flag, stage_t, stage_b,
                next_timer, bc_base, qf, ptr, target,
                ing, hdrm, paused, pause_age, pause_frames, paused_steps, pause_ring,
                Q, A_cum, D_cum, marks_pk, marks_by, drop_by, q_hist,
                shared_total, mf_ewma, next_phase, phase_open, phases_done, phase_start_step,
                phase_time_sum, cnp_ring,
                pend_q, pend_a, pend_f, pend_n, done_f, done_t, done_n,
                snap["D"], snap["marks_pk"], snap["marks_by"], snap["drop_by"],
                snap["pause_frames"], snap["paused"], snap["sent"], snap["phases"],
                snap["phase_time"])
        done_b = [np.repeat(np.arange(B), done_n)]
        done_fl = [np.concatenate([done_f[b, :done_n[b]] for b in range(B)])]
        done_tm = [np.concatenate([done_t[b, :done_n[b]] for b in range(B)])]

        # measurement window: everything from the warm-up step on
        warm = env.warmup_steps
        return self._results(
            B=B, Qn=Qn, Pt=Pt, S=S, steps=steps, dt=dt, line=line, rtt_s=rtt_s,
            q_hist=q_hist[warm:], D_cum=D_cum - snap["D"],
            marks_pk=marks_pk - snap["marks_pk"], marks_by=marks_by - snap["marks_by"],
            drop_by=drop_by - snap["drop_by"], pause_frames=pause_frames - snap["pause_frames"],
            paused_steps=paused_steps - snap["paused"], sent_cum=sent_cum - snap["sent"],
            done_b=done_b, done_f=done_fl, done_t=done_tm,
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
