"""fabricsim adapters for training and evaluation (on fabricsim's public API only).

- :class:`Scenario`: one traffic scenario (profile, its parameters, port speed, seed, cable,
  buffer) of one bottleneck port.
- :func:`measure`: the simulator's objective and KPIs of waterline sets on a scenario's traffic
  -- the yardstick of every evaluation. ``repeats`` independent traffic realisations (seeds
  derived from the scenario's seed; repeat 0 is the seed itself) are simulated and averaged, so
  that a comparison of configurations is not decided by the packet-level luck of one short
  window (see ``tuning.evaluate``).
- :class:`Rig`: a small :class:`~fabricsim.fabric.VirtualFabric` (``live=False``) whose switches
  each carry one scenario on a few host-facing ports; ``observe`` polls it every 10 s like the
  collectors and returns :class:`~tuning.features.PortWindow` s built like the daemon's.

The simulator's physical set-up mirrors the virtual fabric's class windows: the switch buffer,
the port's cable, NIC speed ``min(speed, 200G)``.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fabricsim import buffers
from fabricsim.fabric import VirtualFabric
from fabricsim.physics import STATIC_BASELINES, SimResult, Thresholds, simulate_batch
from tuning.features import PortWindow
from tuning.guard import Waterline, WaterlinesLike
from tuning.space import PortContext
from tuning.telemetry import GAUGES, RATE_COUNTERS, window_from_polls

LOSSLESS_PRIORITY = 3
DEFAULT_CABLE_M = 3.0  # a TOR's host-facing port (fabricsim.topology.HOST_CABLE_M)
POLL_INTERVAL_S = 10.0
WINDOW_POLLS = 12


@dataclass(frozen=True)
class Scenario:
    """A traffic scenario of one bottleneck port."""

    profile: str
    speed_gbps: int
    params: tuple[tuple[str, Any], ...] = ()
    seed: int = 0
    cable_m: float = DEFAULT_CABLE_M
    buffer_bytes: int | None = None

    @staticmethod
    def make(profile: str, speed_gbps: int, params: dict[str, Any] | None = None, *,
             seed: int = 0, cable_m: float = DEFAULT_CABLE_M,
             buffer_bytes: int | None = None) -> Scenario:
        items = tuple(sorted((k, v) for k, v in (params or {}).items() if v is not None))
        return Scenario(profile, int(speed_gbps), items, int(seed), float(cable_m),
                        buffer_bytes)

    @property
    def param_dict(self) -> dict[str, Any]:
        return dict(self.params)

    @property
    def buffer(self) -> int:
        return int(self.buffer_bytes or buffers.default_buffer_bytes(self.speed_gbps))

    @property
    def ctx(self) -> PortContext:
        return PortContext(self.speed_gbps, self.buffer, self.cable_m)

    def label(self) -> str:
        ps = ",".join(f"{k}={v}" for k, v in self.params)
        return f"{self.profile}[{ps}]@{self.speed_gbps}G/s{self.seed}"


def to_thresholds(w: WaterlinesLike) -> Thresholds:
    """fabricsim's Thresholds of a waterline set. Waterline's headroom and alpha map directly;
    its xoff/xon are the SONiC buffer-profile values, already inside the headroom, whereas
    fabricsim's xoff/xon are static pause thresholds on the shared buffer: left unset."""
    head = w.headroom_bytes
    if head is None and w.xoff_bytes is not None and w.xon_bytes is not None:
        head = int(w.xoff_bytes) + int(w.xon_bytes)
    return Thresholds(int(w.kmin_bytes), int(w.kmax_bytes), float(w.pmax),
                      headroom_bytes=None if head is None else int(head),
                      alpha=None if w.alpha is None else float(w.alpha))


def from_thresholds(th: Thresholds) -> Waterline:
    return Waterline(kmin_bytes=th.kmin_bytes, kmax_bytes=th.kmax_bytes, pmax=th.pmax,
                     headroom_bytes=th.headroom_bytes, alpha=th.alpha)


def static_baselines(speed_gbps: float) -> dict[str, Thresholds]:
    """The static waterlines operators use today (fabricsim.physics.STATIC_BASELINES)."""
    return {name: make(speed_gbps) for name, make in STATIC_BASELINES.items()}


def repeat_seeds(seed: int, repeats: int, namespace: str = "eval", *,
                 own_seed: bool = True) -> list[int]:
    """Traffic seeds of a measurement: the scenario's seed (unless ``own_seed`` is False),
    then seeds derived from it in ``namespace``."""
    out = [int(seed)] if own_seed else []
    for r in range(len(out), max(1, repeats)):
        out.append(zlib.crc32(f"{namespace}:{seed}:{r}".encode()) & 0x7FFFFFFF)
    return out


COMMON_PARAMS = ("flows", "load", "incast_degree")


def sim_kwargs(sc: Scenario) -> dict[str, Any]:
    """simulate_batch's keyword arguments for a scenario. The common parameters (flows, load,
    incast degree) go as keywords: given inside ``params`` they are overridden by the
    keywords' None defaults (``fabricsim.physics.simulate_batch`` merges them that way)."""
    params = sc.param_dict
    kw: dict[str, Any] = {k: params.pop(k) for k in COMMON_PARAMS if k in params}
    kw.update({"params": params, "buffer_bytes": sc.buffer, "cable_m": sc.cable_m,
               "nic_speed_gbps": float(min(sc.speed_gbps, 200))})
    return kw


def _run_one(job: tuple[Scenario, list[Thresholds], int, float, float]
             ) -> list[tuple[float, dict[str, float]]]:
    sc, ths, seed, duration_ms, warmup_ms = job
    res: list[SimResult] = simulate_batch(sc.profile, sc.speed_gbps, ths, seed=seed,
                                          duration_ms=duration_ms, warmup_ms=warmup_ms,
                                          **sim_kwargs(sc))
    return [(r.objective, dict(r.kpis)) for r in res]


@dataclass
class Measured:
    """The simulator's verdict on one waterline set, averaged over the traffic repeats."""

    objective: float
    kpis: dict[str, float]
    feasible: bool
    per_repeat: list[float] = field(default_factory=list)


def measure(sc: Scenario, ths: Sequence[Thresholds], *, duration_ms: float = 20.0,
            warmup_ms: float = 2.0, repeats: int = 1, pool: Executor | None = None,
            chunk: int = 0, seed_namespace: str = "eval", own_seed: bool = True
            ) -> list[Measured]:
    """Objective and KPIs of every configuration on the scenario's traffic (common random
    numbers: every configuration sees the same flows). Repeats run in ``pool`` when given;
    ``chunk`` > 0 splits big batches (memory); ``own_seed`` False: none of the realisations
    is the scenario's own seed (:func:`repeat_seeds`)."""
    if not ths:
        return []
    seeds = repeat_seeds(sc.seed, repeats, seed_namespace, own_seed=own_seed)
    parts = [list(ths)] if chunk <= 0 else [list(ths[i:i + chunk])
                                            for i in range(0, len(ths), chunk)]
    jobs = [(sc, part, s, duration_ms, warmup_ms) for s in seeds for part in parts]
    outs = list(pool.map(_run_one, jobs)) if pool is not None else [_run_one(j) for j in jobs]
    per_seed: list[list[tuple[float, dict[str, float]]]] = []
    k = 0
    for _ in seeds:
        rows: list[tuple[float, dict[str, float]]] = []
        for _part in parts:
            rows.extend(outs[k])
            k += 1
        per_seed.append(rows)
    return [_combine([per_seed[s][i] for s in range(len(seeds))]) for i in range(len(ths))]


def measure_many(items: Sequence[tuple[Scenario, Sequence[Thresholds]]], *,
                 duration_ms: float = 20.0, warmup_ms: float = 2.0, repeats: int = 1,
                 pool: Executor | None = None, seed_namespace: str = "eval"
                 ) -> list[list[Measured]]:
    """:func:`measure` for several scenarios, every (scenario, repeat) a job of ``pool``."""
    jobs: list[tuple[Scenario, list[Thresholds], int, float, float]] = []
    for sc, ths in items:
        for s in repeat_seeds(sc.seed, repeats, seed_namespace):
            jobs.append((sc, list(ths), s, duration_ms, warmup_ms))
    outs = list(pool.map(_run_one, jobs)) if pool is not None else [_run_one(j) for j in jobs]
    result: list[list[Measured]] = []
    k = 0
    for _sc, ths in items:
        reps = outs[k:k + max(1, repeats)]
        k += max(1, repeats)
        result.append([_combine([rep[i] for rep in reps]) for i in range(len(ths))])
    return result


def _combine(rows: list[tuple[float, dict[str, float]]]) -> Measured:
    objs = [o for o, _ in rows]
    keys = rows[0][1].keys()
    kpis: dict[str, float] = {}
    for key in keys:
        vals = [float(k[key]) for _, k in rows if key in k]
        kpis[key] = float(np.sum(vals)) if key in ("drops", "drop_bytes") else float(
            np.mean(vals))
    feasible = all(k.get("drops", 0.0) <= 0 for _, k in rows)
    kpis["feasible"] = 1.0 if feasible else 0.0
    kpis["objective"] = float(np.mean(objs))
    return Measured(float(np.mean(objs)), kpis, feasible, [float(o) for o in objs])


# ---------------------------------------------------------------------------- the rig
def _inventory(arms: Sequence[tuple[str, Scenario]], ports: int) -> dict[str, Any]:
    switches: list[dict[str, Any]] = []
    for name, sc in arms:
        itfs = [{"name": f"Ethernet{4 * i}", "speed_gbps": sc.speed_gbps,
                 "peer": f"host-{name}-{i}", "cable_m": sc.cable_m} for i in range(ports)]
        switches.append({"name": name, "role": "tor", "pod": 1, "interfaces": itfs,
                         "buffer_bytes": sc.buffer})
    return {"fabric": {"name": "tuner-rig", "lossless_priorities": [LOSSLESS_PRIORITY],
                       "cnp_priority": 6},
            "switches": switches, "links": []}


class Rig:
    """Switches of a virtual fabric, each carrying one scenario, polled like the collectors."""

    def __init__(self, arms: Sequence[tuple[str, Scenario]], *, seed: int = 0, ports: int = 4,
                 window_ms: float = 10.0, warmup_ms: float = 1.0, workers: int = 1) -> None:
        self.arms = {name: sc for name, sc in arms}
        schedule = [{"at_s": 0.0, "match": {"switch": name}, "profile": sc.profile,
                     "params": sc.param_dict} for name, sc in arms]
        scen = {"seed": int(seed), "default": {"profile": "idle"}, "schedule": schedule}
        self.fabric = VirtualFabric.from_inventory(
            _inventory(arms, ports), seed=int(seed), scenario=scen, live=False,
            window_ms=window_ms, warmup_ms=warmup_ms, workers=workers)
        self._last: dict[str, tuple[float, list[Any]]] = {}

    def set_thresholds(self, switch: str, th: Thresholds) -> None:
        self.fabric.set_thresholds(switch, LOSSLESS_PRIORITY, th)

    def set_profile(self, switch: str, profile: str, params: dict[str, Any] | None = None
                    ) -> None:
        self.fabric.set_profile(profile, params or {}, switch=switch)
        sc = self.arms[switch]
        self.arms[switch] = Scenario.make(profile, sc.speed_gbps, params, seed=sc.seed,
                                          cable_m=sc.cable_m, buffer_bytes=sc.buffer_bytes)

    def kpis(self, switch: str) -> dict[str, float]:
        itf = self.fabric.interfaces(switch)[0]
        self.fabric.prepare()
        return self.fabric.kpis(switch, itf, LOSSLESS_PRIORITY)

    def observe(self, switches: Iterable[str] | None = None, *, polls: int = WINDOW_POLLS,
                interval_s: float = POLL_INTERVAL_S) -> dict[str, list[PortWindow]]:
        """Poll the switches ``polls`` times, ``interval_s`` apart (after a baseline read), and
        return each one's per-port windows."""
        names = list(switches) if switches is not None else list(self.arms)
        self.fabric.prepare()
        reads: dict[str, list[tuple[float, list[Any]]]] = {n: [] for n in names}
        for n in names:
            reads[n].append((self.fabric.now_s, self.fabric.read_counters(n)))
        for _ in range(polls):
            self.fabric.advance(interval_s)
            for n in names:
                reads[n].append((self.fabric.now_s, self.fabric.read_counters(n)))
        out: dict[str, list[PortWindow]] = {}
        for n in names:
            sc = self.arms[n]
            times = np.array([t for t, _ in reads[n]])
            n_ports = len(reads[n][0][1])
            wins: list[PortWindow] = []
            for p in range(n_ports):
                cnt = np.array([[getattr(rows[p], f) for f in RATE_COUNTERS]
                                for _, rows in reads[n]], dtype=float)
                gau = np.array([[getattr(rows[p], f) for f in GAUGES] for _, rows in reads[n]],
                               dtype=float)
                wins.append(window_from_polls(times, cnt, gau, speed_gbps=sc.speed_gbps,
                                              buffer_bytes=sc.buffer, cable_m=sc.cable_m))
            out[n] = wins
        return out


def median_features(rows: np.ndarray) -> np.ndarray:
    """The daemon's group summary: the median feature vector of a switch's ports."""
    out: np.ndarray = np.median(np.atleast_2d(rows), axis=0)
    return out


def log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))
