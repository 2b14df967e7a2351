"""Traffic plans for the discrete engine: who sends how many bytes, when, through which port.

A plan is independent of the waterlines, so one plan drives every configuration of a batch
(identical traffic for a fair comparison). Layout: ``queues`` bottleneck egress queues (one
per receiver port), each fed by ``ports`` sender NIC ports, each port with ``slots`` queue
pairs (QPs). A slot serves its flows in arrival order; slot ``s`` belongs to port
``s // slots`` and queue ``s // (ports * slots)``.

Profiles (all deterministic from the seed):
- ``allreduce``: ``flows`` long-lived elephants converging on one egress (an ECMP collision on
  an uplink or a ring step). Continuous by default; with ``phase_bytes`` every flow sends
  that many bytes per synchronised phase and the next phase starts ``gap_us`` after the
  last byte of the slowest flow has left the switch (a collective's barrier).
- ``incast``: ``incast_degree`` senders to one receiver, repeated bursts. Sizes from the
  AliStorage2019 CDF, or a fixed ``size_bytes`` (HPCC's incast uses 500 KB). The burst period
  makes the offered load ``load`` (default 0.3) unless ``period_us`` is given; senders start
  each burst with a sub-microsecond jitter. ``ingress_ports`` (default: one per sender)
  makes the senders arrive through that many uplinks, several flows per ingress PG, as when
  the storage servers sit in other racks.
- ``websearch`` / ``hadoop``: Poisson arrivals at ``load`` (default 0.5) of the receiver's
  line rate, sizes from the HPCC CDFs, each flow from a random sender port.
- ``idle``: nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .workloads import load_cdf, poisson_arrivals

PROFILES = ("allreduce", "incast", "websearch", "hadoop", "idle")
MICE_BYTES = 100_000  # mice are flows < 100 KB (DESIGN.md KPIs)
CONTINUOUS_BYTES = 1e18  # "infinite" backlog of a continuous elephant
UPLINK_FACTOR = 4  # uplink speed / host speed (400G uplinks over 100G hosts)

DEFAULTS: dict[str, dict[str, Any]] = {
    "allreduce": {"flows": 8, "phase_bytes": None, "gap_us": 10.0},
    "incast": {"incast_degree": 32, "size_bytes": None, "load": 0.3, "period_us": None,
               "ingress_ports": None},
    "websearch": {"load": 0.5, "queues": 8, "senders": 4, "slots": 4},
    "hadoop": {"load": 0.5, "queues": 4, "senders": 4, "slots": 4},
    "idle": {},
}


@dataclass
class TrafficPlan:
    profile: str
    queues: int
    ports: int
    slots: int
    steps: int
    dt_s: float
    # Flow table, sorted by arrival; slot-local cumulative end offsets for completion checks.
    flow_arrival_s: np.ndarray = field(default_factory=lambda: np.zeros(0))
    flow_bytes: np.ndarray = field(default_factory=lambda: np.zeros(0))
    flow_slot: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    # Per slot: flow ids in service order and their cumulative end (bytes sent by the slot
    # once that flow is complete), padded with -1 / inf.
    slot_flows: np.ndarray = field(default_factory=lambda: np.zeros((0, 1), dtype=np.int64))
    slot_cum_end: np.ndarray = field(default_factory=lambda: np.zeros((0, 1)))
    # Arrival events: unique steps, and for each a CSR slice into ev_slot / ev_bytes.
    ev_steps: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    ev_ptr: np.ndarray = field(default_factory=lambda: np.zeros(1, dtype=np.int64))
    ev_slot: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    ev_bytes: np.ndarray = field(default_factory=lambda: np.zeros(0))
    continuous: bool = False
    phase_bytes: float | None = None
    gap_steps: int = 0
    reset_rate_on_start: bool = True
    # A port's capacity in line rates: 1 for a NIC (its QPs share it), ``slots`` for an
    # uplink that aggregates ``slots`` senders' NICs (PFC pauses them all together).
    port_cap_factor: float = 1.0
    # Long-run offered load as a fraction of the bottleneck line rate (1.0 = saturating).
    nominal_load: float = 0.0
    # Offered bytes per step per queue (for the ideal work-conserving reference).
    offered_per_step: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def n_slots(self) -> int:
        return self.queues * self.ports * self.slots

    @property
    def n_flows(self) -> int:
        return len(self.flow_bytes)


def resolve_params(profile: str, given: dict[str, Any]) -> dict[str, Any]:
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; known: {', '.join(PROFILES)}")
    params = dict(DEFAULTS[profile])
    for key, value in given.items():
        if value is None:
            continue
        if key == "flows" and profile == "incast" and given.get("incast_degree") is None:
            params["incast_degree"] = value
            continue
        if key == "incast_degree" and profile != "incast":
            continue
        if key not in params:
            if key in ("flows", "load") and profile in ("idle",):
                continue
            if key == "flows" and profile in ("websearch", "hadoop"):
                params["senders"] = value
                continue
            if key == "load" and profile == "allreduce":
                continue  # elephants are saturating; load does not apply
            raise ValueError(f"profile {profile!r} takes no parameter {key!r}")
        params[key] = value
    return params


def build_plan(
    profile: str,
    params: dict[str, Any],
    *,
    speed_gbps: float,
    duration_s: float,
    dt_s: float,
    seed: int,
) -> TrafficPlan:
    """Make the traffic plan of one profile; ``params`` as returned by :func:`resolve_params`."""
    steps = max(1, round(duration_s / dt_s))
    rng = np.random.default_rng([seed, 0x7AFF1C])
    line_bps = speed_gbps * 1e9
    if profile == "idle":
        plan = TrafficPlan(profile, 1, 1, 1, steps, dt_s)
        return _finish(plan, np.zeros(0), np.zeros(0), np.zeros(0, dtype=np.int64))
    if profile == "allreduce":
        n = int(params["flows"])
        if n < 1:
            raise ValueError("allreduce needs flows >= 1")
        plan = TrafficPlan(profile, 1, n, 1, steps, dt_s, params=params)
        plan.nominal_load = 1.0
        phase = params.get("phase_bytes")
        if phase:
            plan.phase_bytes = float(phase)
            plan.gap_steps = max(0, round(float(params["gap_us"]) * 1e-6 / dt_s))
            plan.reset_rate_on_start = False  # the same QPs carry every phase
        else:
            plan.continuous = True
        return _finish(plan, np.zeros(0), np.zeros(0), np.zeros(0, dtype=np.int64))
    if profile == "incast":
        n = int(params["incast_degree"])
        if n < 1:
            raise ValueError("incast needs incast_degree >= 1")
        fixed = params.get("size_bytes")
        cdf = load_cdf("alistorage2019")
        mean = float(fixed) if fixed else cdf.mean_bytes
        period_us = params.get("period_us")
        if period_us is None:
            load = float(params["load"])
            if not 0 < load <= 1:
                raise ValueError("incast load must be in (0, 1]")
            period_s = n * mean * 8 / (line_bps * load)
        else:
            period_s = float(period_us) * 1e-6
        starts = np.arange(10e-6, duration_s, period_s)
        arrivals: list[np.ndarray] = []
        sizes: list[np.ndarray] = []
        slots: list[np.ndarray] = []
        for t0 in starts:
            jitter = rng.random(n) * 1e-6
            arrivals.append(t0 + jitter)
            sizes.append(np.full(n, float(fixed)) if fixed else cdf.sample(rng, n))
            slots.append(np.arange(n))
        n_in = int(params.get("ingress_ports") or n)
        if not 1 <= n_in <= n:
            raise ValueError("ingress_ports must be between 1 and incast_degree")
        per = -(-n // n_in)  # senders per ingress port
        plan = TrafficPlan(profile, 1, n_in, per, steps, dt_s, params=params)
        plan.nominal_load = min(1.0, n * mean * 8 / (line_bps * period_s))
        if per > 1:
            # an uplink runs at UPLINK_FACTOR x the host speed (400G over 100G hosts)
            plan.port_cap_factor = float(min(per, UPLINK_FACTOR))
        # sender i enters on port i % n_in, as its slot i // n_in there
        sender_slot = (np.arange(n) % n_in) * per + np.arange(n) // n_in
        if not arrivals:
            return _finish(plan, np.zeros(0), np.zeros(0), np.zeros(0, dtype=np.int64))
        return _finish(plan, np.concatenate(arrivals), np.concatenate(sizes),
                       sender_slot[np.concatenate(slots)])
    # websearch / hadoop
    cdf = load_cdf(profile)
    nq = int(params["queues"])
    npt = int(params["senders"])
    ns = int(params["slots"])
    load = float(params["load"])
    if not 0 <= load <= 1.5:
        raise ValueError("load must be in [0, 1.5]")
    plan = TrafficPlan(profile, nq, npt, ns, steps, dt_s, params=params)
    plan.nominal_load = min(1.0, load)
    t_all: list[np.ndarray] = []
    s_all: list[np.ndarray] = []
    slot_all: list[np.ndarray] = []
    for q in range(nq):
        t, sz = poisson_arrivals(rng, cdf, speed_gbps=speed_gbps, load=load,
                                 duration_s=duration_s)
        port = rng.integers(0, npt, len(t))
        # Put each flow on the QP of its port expected to free first (a deterministic
        # estimate at half the line rate). Mice and larger flows use separate QPs, as a
        # NIC with one QP per connection would not make a mouse wait behind an elephant.
        free_at = np.zeros((npt, ns))
        half = max(1, ns // 2)
        slot = np.empty(len(t), dtype=np.int64)
        for i in range(len(t)):
            p = port[i]
            lo, hi = (0, half) if sz[i] < MICE_BYTES or ns == 1 else (half, ns)
            k = lo + int(np.argmin(free_at[p, lo:hi]))
            free_at[p, k] = max(free_at[p, k], t[i]) + sz[i] * 8 / (0.5 * line_bps)
            slot[i] = (q * npt + p) * ns + k
        t_all.append(t)
        s_all.append(sz)
        slot_all.append(slot)
    return _finish(plan, np.concatenate(t_all), np.concatenate(s_all),
                   np.concatenate(slot_all))


def _finish(plan: TrafficPlan, arrival_s: np.ndarray, sizes: np.ndarray,
            slots: np.ndarray) -> TrafficPlan:
    order = np.argsort(arrival_s, kind="stable")
    arrival_s = arrival_s[order]
    sizes = sizes[order]
    slots = slots[order].astype(np.int64)
    plan.flow_arrival_s = arrival_s
    plan.flow_bytes = sizes
    plan.flow_slot = slots
    n_slots = plan.n_slots
    counts = np.bincount(slots, minlength=n_slots) if len(slots) else np.zeros(n_slots, int)
    width = int(counts.max()) + 1 if len(slots) else 1
    slot_flows = np.full((n_slots, width), -1, dtype=np.int64)
    slot_cum = np.full((n_slots, width), np.inf)
    fill = np.zeros(n_slots, dtype=np.int64)
    running = np.zeros(n_slots)
    for i in range(len(slots)):
        s = slots[i]
        running[s] += sizes[i]
        slot_flows[s, fill[s]] = i
        slot_cum[s, fill[s]] = running[s]
        fill[s] += 1
    plan.slot_flows = slot_flows
    plan.slot_cum_end = slot_cum
    steps_of = np.minimum((arrival_s / plan.dt_s).astype(np.int64), plan.steps - 1)
    # Group arrivals by step and slot (several flows of one slot in one step add up).
    key = steps_of * n_slots + slots
    ukey, inv = np.unique(key, return_inverse=True)
    ev_bytes = np.bincount(inv, weights=sizes, minlength=len(ukey)) if len(ukey) else np.zeros(0)
    ev_step_each = ukey // n_slots
    plan.ev_slot = (ukey % n_slots).astype(np.int64)
    plan.ev_bytes = ev_bytes
    plan.ev_steps, first = np.unique(ev_step_each, return_index=True)
    plan.ev_ptr = np.append(first, len(ukey)).astype(np.int64)
    per_q = plan.ports * plan.slots
    offered = np.zeros((plan.steps, plan.queues))
    if len(slots):
        np.add.at(offered, (steps_of, slots // per_q), sizes)
    plan.offered_per_step = offered
    return plan


def is_mouse(size_bytes: np.ndarray) -> np.ndarray:
    return size_bytes < MICE_BYTES
