"""VirtualFabric: a switch-like surface over the physics, for the mock driver, the virtual SSH
switches and the collector benchmarks.

Every (switch, interface, lossless priority) -- an *entry* -- carries a traffic profile (from
a :class:`~fabricsim.scenario.Scenario` or a deterministic default mix) and reports
monotonic counters (tx packets/bytes, ECN-marked packets/bytes, PFC rx/tx pause frames,
drops, WRED drops), the current occupancy and the watermark since the last clear.

Representative windows
----------------------
Simulating 1,000 switches x 64 ports x 2 priorities packet by packet in real time is out of
reach, and unnecessary: ports that carry the same traffic class behave alike. An entry's
*class* is (profile, parameter bucket, port speed, cable length, switch buffer, the switch's
waterlines for that priority, PFC/ECN enabled). For each class the discrete engine simulates
one short window (``window_ms``, 10 ms after a 1 ms warm-up by default); classes that share everything but the
waterlines are batch-simulated together (:func:`~fabricsim.physics.simulate_batch`), and the
results are cached for the process. From a window we keep per-second rates (egress tx bytes
and packets, ECN marks, drops; pause frames the switch sends on an ingress port) and the
occupancy distribution (33 quantiles) with its maximum.

Counters then advance analytically: over ``[t0, t1]`` an entry adds ``rate x integral of
m(t)``, where ``m(t) = f (1 + a sin(2 pi t / P + phi))`` is a per-entry load profile drawn
from the seed (``m`` within ``[1 - d, 1]``, ``d`` 2-10 %, ``P`` 20-120 s), so ports of one class are
not identical and the result does not depend on how often a switch is read (reading at 5 s
and 10 s gives the same counters at 10 s as reading once at 10 s). Ratios such as ECN
marks per packet, pause frames per second or the occupancy distribution come from the
physics of the class. The occupancy shown at a read is the class quantile at a
pseudo-random level that changes every 100 ms; the watermark is the largest occupancy the
interval since the previous read could plausibly have reached (the class maximum for
intervals much longer than the window). A switch is brought up to date only when it is read
or reconfigured (lazy per-switch time), so a poll costs O(ports) numpy work.

Link symmetry: ``rx_pause_frames`` of a switch port equals what its peer switch port sends
(the peer's ``tx_pause_frames`` rate); ports facing hosts receive no pause frames. WRED
drop counters stay 0 on lossless priorities (they mark instead of dropping); ``drop_*``
counts headroom-overflow drops.

Waterlines set with :meth:`VirtualFabric.set_thresholds` apply from that moment on (the
switch is first brought up to date under the old ones).
"""

from __future__ import annotations

import bisect
import functools
import math
import multiprocessing as mp
import threading
import time
import zlib
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

from . import buffers
from .physics import SimResult, Thresholds, simulate_batch, sonic_default
from .scenario import Assignment, Scenario

COUNTER_NAMES = (
    "tx_packets", "tx_bytes", "ecn_marked_packets", "ecn_marked_bytes", "rx_pause_frames",
    "tx_pause_frames", "drop_packets", "drop_bytes", "wred_drop_packets", "wred_drop_bytes",
)
_TX_PK, _TX_BY, _ECN_PK, _ECN_BY, _RXP, _TXP, _DR_PK, _DR_BY, _WR_PK, _WR_BY = range(10)
_NQ = 33  # occupancy quantiles per class
_QGRID = np.linspace(0.0, 1.0, _NQ)
_OCC_BUCKET_S = 0.1


@dataclass(frozen=True)
class PortCounters:
    """One interface x priority as a switch reports it (counters are monotonic)."""

    interface: str
    priority: int
    tx_packets: int
    tx_bytes: int
    ecn_marked_packets: int
    ecn_marked_bytes: int
    rx_pause_frames: int
    tx_pause_frames: int
    drop_packets: int
    drop_bytes: int
    wred_drop_packets: int
    wred_drop_bytes: int
    occupancy_bytes: int
    watermark_bytes: int


@dataclass
class SwitchQos:
    """QoS state of one switch: PFC priorities, ECN-enabled queues (queue = priority) and the
    waterlines of each lossless priority. ``headroom_bytes`` defaults to the SONiC formula
    for the switch's fastest port and longest cable; ``alpha``/``xoff``/``xon`` None mean the
    per-port defaults of :class:`~fabricsim.physics.Thresholds`."""

    pfc_priorities: tuple[int, ...]
    ecn_queues: tuple[int, ...]
    thresholds: dict[int, Thresholds] = field(default_factory=dict)

    def copy(self) -> SwitchQos:
        return SwitchQos(tuple(self.pfc_priorities), tuple(self.ecn_queues),
                         dict(self.thresholds))


@dataclass
class _ClassStats:
    rates: np.ndarray  # (10,) per second, per port
    occ_q: np.ndarray  # (_NQ,) occupancy quantiles, bytes
    occ_max: float
    kpis: dict[str, float]


_CLASS_CACHE: dict[tuple[Any, ...], _ClassStats] = {}
# What an idle entry reports: nothing queued, nothing lost, nothing to improve.
IDLE_KPIS: dict[str, float] = {
    "mice_fct_slowdown_p50": 1.0, "mice_fct_slowdown_p99": 1.0, "utilisation": 0.0,
    "lost_utilisation": 0.0, "pause_time_fraction": 0.0, "queue_p99_bytes": 0.0,
    "queue_mean_bytes": 0.0, "queue_max_bytes": 0.0, "drops": 0.0, "ecn_mark_fraction": 0.0,
    "elephant_goodput_gbps": 0.0, "flows_completed": 0.0, "feasible": 1.0, "objective": 0.0,
}


_UNUSED = _ClassStats(np.zeros(10), np.zeros(_NQ), 0.0, dict(IDLE_KPIS))


def clear_class_cache() -> None:
    """Forget every simulated class (the cache is process-wide)."""
    _CLASS_CACHE.clear()


def _u64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser, element-wise on uint64."""
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    out: np.ndarray = x ^ (x >> np.uint64(31))
    return out


def _hash_uniform(seed: int, idx: np.ndarray, salt: int) -> np.ndarray:
    """Deterministic uniforms in [0, 1) from (seed, index, salt)."""
    with np.errstate(over="ignore"):
        x = (idx.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
             + np.uint64((salt * 0x632BE59BD9B4E019 + seed * 0x85EBCA77C2B2AE63)
                         & 0xFFFFFFFFFFFFFFFF))
        h = _u64(x)
    out: np.ndarray = (h >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))
    return out


def _pick(u: float, choices: list[Any]) -> Any:
    return choices[min(len(choices) - 1, int(u * len(choices)))]


def default_profile(u: float, v: float, w: float, *, host_port: bool,
                    first_lossless: bool) -> tuple[str, dict[str, Any]]:
    """The built-in traffic mix (deterministic in the uniforms u, v, w).

    Host ports of the first lossless priority: allreduce 35 %, incast 20 %, websearch 15 %,
    hadoop 10 %, idle 20 %; the second priority carries storage incast or hadoop on a third
    of the ports. Switch-to-switch ports: mostly allreduce (ECMP collisions) and some mix.
    """
    if host_port and first_lossless:
        if u < 0.35:
            return "allreduce", {"flows": _pick(v, [2, 4, 8])}
        if u < 0.55:
            return "incast", {"incast_degree": _pick(v, [8, 16, 32]), "load": _pick(w, [0.2, 0.4])}
        if u < 0.70:
            return "websearch", {"load": _pick(v, [0.3, 0.5, 0.7])}
        if u < 0.80:
            return "hadoop", {"load": _pick(v, [0.3, 0.5, 0.7])}
        return "idle", {}
    if host_port:
        if u < 0.25:
            return "incast", {"incast_degree": _pick(v, [8, 16, 32]), "load": _pick(w, [0.2, 0.4])}
        if u < 0.35:
            return "hadoop", {"load": _pick(v, [0.3, 0.5])}
        return "idle", {}
    if first_lossless:
        if u < 0.5:
            return "allreduce", {"flows": _pick(v, [4, 8, 16])}
        if u < 0.65:
            return "websearch", {"load": _pick(v, [0.3, 0.5, 0.7])}
        if u < 0.75:
            return "hadoop", {"load": _pick(v, [0.3, 0.5, 0.7])}
        if u < 0.85:
            return "incast", {"incast_degree": _pick(v, [16, 32]), "load": _pick(w, [0.2, 0.4])}
        return "idle", {}
    if u < 0.2:
        return "hadoop", {"load": _pick(v, [0.3, 0.5])}
    if u < 0.3:
        return "websearch", {"load": _pick(v, [0.3, 0.5])}
    return "idle", {}


def _simulate_job(job: dict[str, Any]) -> list[SimResult]:
    """One batch of classes that differ only in their waterlines (runs in a worker too)."""
    job = dict(job)
    return simulate_batch(job.pop("profile"), job.pop("speed_gbps"), job.pop("thresholds"),
                          **job)


_F = TypeVar("_F", bound=Callable[..., Any])


def _locked(method: _F) -> _F:
    """Serialise public calls: virtual switches read the fabric from several threads."""

    @functools.wraps(method)
    def wrapper(self: VirtualFabric, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            return method(self, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


def _params_key(params: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted((str(k), v) for k, v in params.items() if v is not None))


class VirtualFabric:
    """Switch-like counters and QoS state for every switch of an inventory (module docstring)."""

    def __init__(
        self,
        inventory: dict[str, Any],
        *,
        seed: int = 0,
        scenario: Scenario | dict[str, Any] | str | None = None,
        live: bool = True,
        window_ms: float = 10.0,
        warmup_ms: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        time_scale: float = 1.0,
        workers: int = 1,
    ) -> None:
        """``seed`` drives the default traffic mix, per-port variation and class windows (a
        scenario's non-zero seed wins); ``live`` follows ``clock`` x ``time_scale`` (plus any
        :meth:`advance`), otherwise only :meth:`advance` moves time; ``window_ms`` /
        ``warmup_ms`` size the representative class windows; ``workers`` > 1 simulates new
        classes in that many processes."""
        if isinstance(scenario, dict):
            scenario = Scenario.from_dict(scenario)
        elif isinstance(scenario, str):
            scenario = Scenario.from_yaml(scenario)
        self.scenario = scenario
        self.seed = int(seed if scenario is None or scenario.seed == 0 else scenario.seed)
        self.live = live
        self.window_ms = float(window_ms)
        self.warmup_ms = float(warmup_ms)
        self.workers = max(1, int(workers))
        self._lock = threading.RLock()
        self._clock = clock
        self._t0 = clock()
        self._offset_s = 0.0
        self.time_scale = float(time_scale)
        fab = inventory.get("fabric") or {}
        self.lossless_priorities: tuple[int, ...] = tuple(
            int(p) for p in fab.get("lossless_priorities") or (3, 4))
        self.inventory = inventory

        # ---- switches and entries ----
        self._switches: list[dict[str, Any]] = list(inventory.get("switches") or [])
        self._sw_index: dict[str, int] = {}
        names: list[str] = []
        prios: list[int] = []
        speeds: list[float] = []
        cables: list[float] = []
        hostp: list[bool] = []
        sw_of: list[int] = []
        self._sw_start: list[int] = []
        self._sw_end: list[int] = []
        self._entry_index: dict[tuple[str, str, int], int] = {}
        for si, sw in enumerate(self._switches):
            name = str(sw["name"])
            if name in self._sw_index:
                raise ValueError(f"duplicate switch {name!r}")
            self._sw_index[name] = si
            self._sw_start.append(len(names))
            for itf in sw.get("interfaces") or []:
                for p in self.lossless_priorities:
                    self._entry_index[(name, str(itf["name"]), p)] = len(names)
                    names.append(str(itf["name"]))
                    prios.append(p)
                    speeds.append(float(itf.get("speed_gbps") or 100))
                    cables.append(float(itf.get("cable_m") or 3))
                    hostp.append(False)
                    sw_of.append(si)
            self._sw_end.append(len(names))
        switch_names = set(self._sw_index)
        for e in range(len(names)):
            sw = self._switches[sw_of[e]]
            itf = next(i for i in sw["interfaces"] if str(i["name"]) == names[e])
            hostp[e] = str(itf.get("peer") or "") not in switch_names
        E = len(names)
        self._e_iface = names
        self._e_prio = np.asarray(prios, dtype=np.int64)
        self._e_speed = np.asarray(speeds)
        self._e_cable = np.asarray(cables)
        self._e_host = np.asarray(hostp, dtype=bool)
        self._e_switch = np.asarray(sw_of, dtype=np.int64)
        # peer entry (same priority) for switch-to-switch links
        peer = np.full(E, -1, dtype=np.int64)
        for link in inventory.get("links") or []:
            for p in self.lossless_priorities:
                a = self._entry_index.get((str(link["a_switch"]), str(link["a_interface"]), p))
                b = self._entry_index.get((str(link["b_switch"]), str(link["b_interface"]), p))
                if a is not None and b is not None:
                    peer[a] = b
                    peer[b] = a
        self._e_peer = peer

        # ---- per-entry load profile m(t) = f (1 + a sin(2 pi t / P + phi)), within
        # [1 - d, 1] for a depth d of 2-10 %: the counters carry the class's simulated load,
        # wobbling by a few per cent (a port's counters must agree with its own queue, ECN
        # and pause physics, which were simulated at the class's load) ----
        idx = np.arange(E)
        depth = 0.02 + 0.08 * _hash_uniform(self.seed, idx, 11)
        self._m_f = 1.0 - depth / 2.0
        self._m_a = (depth / 2.0) / self._m_f
        self._m_w = 2 * math.pi / (20.0 + 100.0 * _hash_uniform(self.seed, idx, 13))
        self._m_phi = 2 * math.pi * _hash_uniform(self.seed, idx, 14)

        # ---- QoS state ----
        self._qos: list[SwitchQos] = []
        for sw in self._switches:
            itfs = sw.get("interfaces") or [{"speed_gbps": 100, "cable_m": 3}]
            head = max(buffers.sonic_headroom(float(i.get("speed_gbps") or 100),
                                              float(i.get("cable_m") or 3))["xoff_bytes"]
                       for i in itfs)
            base = sonic_default()
            th = Thresholds(base.kmin_bytes, base.kmax_bytes, base.pmax, headroom_bytes=head)
            self._qos.append(SwitchQos(self.lossless_priorities, self.lossless_priorities,
                                       {p: th for p in self.lossless_priorities}))

        # ---- traffic assignment ----
        self._e_profile: list[str] = ["idle"] * E
        self._e_params: list[dict[str, Any]] = [{} for _ in range(E)]
        u = _hash_uniform(self.seed, idx, 21)
        v = _hash_uniform(self.seed, idx, 22)
        w = _hash_uniform(self.seed, idx, 23)
        first = self.lossless_priorities[0] if self.lossless_priorities else 3
        for e in range(E):
            if scenario is not None and scenario.default is not None:
                prof, params = scenario.default.profile, dict(scenario.default.params)
            else:
                prof, params = default_profile(float(u[e]), float(v[e]), float(w[e]),
                                               host_port=bool(hostp[e]),
                                               first_lossless=prios[e] == first)
            self._e_profile[e] = prof
            self._e_params[e] = params
        self._events: list[Assignment] = list(scenario.schedule) if scenario else []
        self._ev_pos = [0] * len(self._switches)

        # ---- classes ----
        self._class_ids: dict[tuple[Any, ...], int] = {}
        self._class_keys: list[tuple[Any, ...]] = []
        self._class_stats: list[_ClassStats | None] = []
        self._rates = np.zeros((0, 10))
        self._occq = np.zeros((0, _NQ))
        self._occmax = np.zeros(0)
        self._tables_dirty = True
        self._e_class = np.zeros(E, dtype=np.int64)
        for si in range(len(self._switches)):
            self._apply_events(si, 0.0)
            self._reclass(si)

        # ---- counters ----
        self._cnt = np.zeros((E, 10))
        self._occ = np.zeros(E)
        self._wm = np.zeros(E)
        self._last_t = [0.0] * len(self._switches)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_inventory(cls, inventory: dict[str, Any], *, seed: int = 0,
                       scenario: Scenario | dict[str, Any] | str | None = None,
                       live: bool = True, **kwargs: Any) -> VirtualFabric:
        return cls(inventory, seed=seed, scenario=scenario, live=live, **kwargs)

    # ------------------------------------------------------------------ time
    @property
    def now_s(self) -> float:
        """Simulated seconds since the fabric started."""
        if self.live:
            return (self._clock() - self._t0) * self.time_scale + self._offset_s
        return self._offset_s

    @_locked
    def advance(self, dt_s: float) -> None:
        """Move simulated time forward by ``dt_s`` (on top of the wall clock when live)."""
        if dt_s < 0:
            raise ValueError("time only moves forward")
        self._offset_s += dt_s

    # ------------------------------------------------------------------ inventory view
    def switches(self) -> list[str]:
        return [str(s["name"]) for s in self._switches]

    def interfaces(self, switch: str) -> list[str]:
        si = self._si(switch)
        return [str(i["name"]) for i in self._switches[si].get("interfaces") or []]

    def _si(self, switch: str) -> int:
        try:
            return self._sw_index[switch]
        except KeyError:
            raise KeyError(f"unknown switch {switch!r}") from None

    def _entry(self, switch: str, interface: str, priority: int) -> int:
        try:
            return self._entry_index[(switch, interface, int(priority))]
        except KeyError:
            raise KeyError(f"no lossless entry {switch}/{interface}/prio {priority}") from None

    # ------------------------------------------------------------------ classes
    def _class_key(self, e: int, qos: SwitchQos) -> tuple[Any, ...]:
        prof = self._e_profile[e]
        if prof == "idle":
            return ("idle",)
        si = int(self._e_switch[e])
        prio = int(self._e_prio[e])
        th = qos.thresholds.get(prio) or sonic_default()
        return (prof, _params_key(self._e_params[e]), float(self._e_speed[e]),
                float(self._e_cable[e]),
                int(self._switches[si].get("buffer_bytes") or 0), th,
                prio in qos.pfc_priorities, prio in qos.ecn_queues)

    def _reclass(self, si: int, only_priority: int | None = None) -> None:
        qos = self._qos[si]
        for e in range(self._sw_start[si], self._sw_end[si]):
            if only_priority is not None and int(self._e_prio[e]) != only_priority:
                continue
            key = self._class_key(e, qos)
            cid = self._class_ids.get(key)
            if cid is None:
                cid = len(self._class_keys)
                self._class_ids[key] = cid
                self._class_keys.append(key)
                self._class_stats.append(_CLASS_CACHE.get(self._cache_key(key)))
                self._tables_dirty = True
            self._e_class[e] = cid

    def _cache_key(self, key: tuple[Any, ...]) -> tuple[Any, ...]:
        return (key, self.window_ms, self.warmup_ms, self.seed)

    @_locked
    def prepare(self) -> int:
        """Simulate every class that is referenced and not cached yet; returns how many.

        Only classes some entry carries now count: a class left behind by a configuration
        change (e.g. the start-up waterlines replaced before the first read) is never
        simulated."""
        used = set(np.unique(self._e_class).tolist()) if len(self._e_class) else set()
        pending = [c for c, st in enumerate(self._class_stats) if st is None and c in used]
        if not pending:
            return 0
        groups: dict[tuple[Any, ...], list[int]] = {}
        for c in pending:
            key = self._class_keys[c]
            if key[0] == "idle":
                self._class_stats[c] = _ClassStats(np.zeros(10), np.zeros(_NQ), 0.0,
                                                   dict(IDLE_KPIS))
                continue
            gkey = key[:5] + key[6:]  # everything but the waterlines
            groups.setdefault(gkey, []).append(c)
        jobs: list[dict[str, Any]] = []
        for gkey, cids in groups.items():
            prof, pkey, speed, cable, buf, pfc, ecn = gkey
            jobs.append({
                "profile": prof, "speed_gbps": speed,
                "thresholds": [self._class_keys[c][5] for c in cids],
                "params": dict(pkey), "duration_ms": self.window_ms,
                "warmup_ms": self.warmup_ms,
                "seed": (zlib.crc32(repr(gkey).encode()) ^ self.seed) & 0x7FFFFFFF,
                "buffer_bytes": buf or None, "cable_m": cable, "pfc": pfc, "ecn": ecn,
                "nic_speed_gbps": min(speed, 200.0)})
        if self.workers > 1 and len(jobs) > 1:
            ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
            with ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx) as pool:
                all_results = list(pool.map(_simulate_job, jobs))
        else:
            all_results = [_simulate_job(job) for job in jobs]
        for cids, results in zip(groups.values(), all_results, strict=True):
            speed = float(self._class_keys[cids[0]][2])
            for c, res in zip(cids, results, strict=True):
                dur = res.duration_s
                nq = max(1, len(res.egress))
                ni = max(1, len(res.ingress))
                tx_by = sum(p.tx_bytes for p in res.egress) / nq
                tx_pk = sum(p.tx_packets for p in res.egress) / nq
                # Volume: a stable port carries its offered load in the long run (a few ms
                # cannot finish a 30 MB flow); saturating profiles carry what the physics
                # achieved. Ratios (marks per packet, drops per byte) come from the window.
                load = res.kpis.get("offered_load", 1.0)
                full_bytes = load * speed * 1e9 / 8 * dur
                scale = full_bytes / max(tx_by, 1.0) if load < 1.0 else 1.0
                rates = np.zeros(10)
                rates[_TX_BY] = tx_by * scale / dur
                rates[_TX_PK] = tx_pk * scale / dur
                rates[_ECN_PK] = sum(p.ecn_marked_packets for p in res.egress) / nq * scale / dur
                rates[_ECN_BY] = sum(p.ecn_marked_bytes for p in res.egress) / nq * scale / dur
                rates[_DR_PK] = sum(p.drop_packets for p in res.egress) / nq * scale / dur
                rates[_DR_BY] = sum(p.drop_bytes for p in res.egress) / nq * scale / dur
                rates[_TXP] = sum(p.tx_pause_frames for p in res.ingress) / ni / dur
                occ = res.occupancy_bytes
                occ_q = np.quantile(occ, _QGRID) if len(occ) else np.zeros(_NQ)
                stats = _ClassStats(rates, occ_q, float(res.occupancy_max_bytes),
                                    dict(res.kpis))
                self._class_stats[c] = stats
                _CLASS_CACHE[self._cache_key(self._class_keys[c])] = stats
        self._tables_dirty = True
        return len(pending)

    def _tables(self) -> None:
        if any(st is None for st in self._class_stats) and self.prepare():
            self._tables_dirty = True
        if not self._tables_dirty:
            return
        # Row c is class c; classes no entry carries (never simulated) get zero rows.
        stats = [st if st is not None else _UNUSED for st in self._class_stats]
        self._rates = np.array([s.rates for s in stats]).reshape(len(stats), 10)
        self._occq = np.array([s.occ_q for s in stats]).reshape(len(stats), _NQ)
        self._occmax = np.array([s.occ_max for s in stats])
        self._tables_dirty = False

    # ------------------------------------------------------------------ time evolution
    def _load_integral(self, sl: slice | np.ndarray, t0: float, t1: float) -> np.ndarray:
        w = self._m_w[sl]
        phi = self._m_phi[sl]
        a = self._m_a[sl]
        integral: np.ndarray = self._m_f[sl] * ((t1 - t0) + a / w * (np.cos(w * t0 + phi)
                                                                      - np.cos(w * t1 + phi)))
        return integral

    def _integrate(self, si: int, t0: float, t1: float) -> None:
        if t1 <= t0:
            return
        self._tables()
        sl = slice(self._sw_start[si], self._sw_end[si])
        if sl.start == sl.stop:
            return
        cls = self._e_class[sl]
        integ = self._load_integral(sl, t0, t1)
        self._cnt[sl] += self._rates[cls] * integ[:, None]
        peer = self._e_peer[sl]
        has_peer = peer >= 0
        if has_peer.any():
            pe = peer[has_peer]
            rx = self._rates[self._e_class[pe], _TXP] * self._load_integral(pe, t0, t1)
            self._cnt[sl][has_peer, _RXP] += rx
        # occupancy now, and the largest one the interval could have shown
        idx = np.arange(sl.start, sl.stop)
        u = _hash_uniform(self.seed, idx, int(t1 / _OCC_BUCKET_S) + 1000)
        occ = self._quantile(cls, u)
        span = t1 - t0
        window_s = self.window_ms * 1e-3
        level = 1.0 - (1.0 - u) * window_s / (window_s + span)
        wm = self._quantile(cls, level)
        self._occ[sl] = occ
        self._wm[sl] = np.maximum(self._wm[sl], np.maximum(wm, occ))

    def _quantile(self, cls: np.ndarray, level: np.ndarray) -> np.ndarray:
        pos = np.clip(level, 0.0, 1.0) * (_NQ - 1)
        lo = np.minimum(pos.astype(np.int64), _NQ - 2)
        frac = pos - lo
        q = self._occq[cls]
        rows = np.arange(len(cls))
        out: np.ndarray = q[rows, lo] * (1.0 - frac) + q[rows, lo + 1] * frac
        return out

    def _apply_events(self, si: int, t: float) -> None:
        """Apply schedule entries with at_s <= t that this switch has not seen yet."""
        sw = self._switches[si]
        name = str(sw["name"])
        role = str(sw.get("role") or "")
        pod = sw.get("pod")
        changed = False
        while self._ev_pos[si] < len(self._events) and self._events[self._ev_pos[si]].at_s <= t:
            ev = self._events[self._ev_pos[si]]
            self._ev_pos[si] += 1
            for e in range(self._sw_start[si], self._sw_end[si]):
                if ev.matches(switch=name, role=role, pod=pod, interface=self._e_iface[e],
                              priority=int(self._e_prio[e])):
                    self._e_profile[e] = ev.profile
                    self._e_params[e] = dict(ev.params)
                    changed = True
        if changed:
            self._reclass(si)

    def _sync(self, si: int, t: float) -> None:
        t_last = self._last_t[si]
        if t <= t_last:
            return
        while (self._ev_pos[si] < len(self._events)
               and self._events[self._ev_pos[si]].at_s <= t):
            t_ev = max(t_last, self._events[self._ev_pos[si]].at_s)
            self._integrate(si, t_last, t_ev)
            t_last = t_ev
            self._apply_events(si, t_ev)
        self._integrate(si, t_last, t)
        self._last_t[si] = t

    # ------------------------------------------------------------------ reading
    @_locked
    def read_counters(self, switch: str,
                      priorities: Iterable[int] | None = None) -> list[PortCounters]:
        """Counters of every interface x lossless priority (others, if asked, read zero)."""
        si = self._si(switch)
        self._sync(si, self.now_s)
        want = None if priorities is None else {int(p) for p in priorities}
        out: list[PortCounters] = []
        sw = self._switches[si]
        cnt = np.floor(self._cnt[self._sw_start[si]:self._sw_end[si]]).astype(np.int64)
        occ = self._occ[self._sw_start[si]:self._sw_end[si]].astype(np.int64)
        wm = self._wm[self._sw_start[si]:self._sw_end[si]].astype(np.int64)
        rows = cnt.tolist()
        occs = occ.tolist()
        wms = wm.tolist()
        k = 0
        for itf in sw.get("interfaces") or []:
            iname = str(itf["name"])
            seen: set[int] = set()
            for p in self.lossless_priorities:
                if want is None or p in want:
                    r = rows[k]
                    out.append(PortCounters(iname, p, r[0], r[1], r[2], r[3], r[4], r[5], r[6],
                                            r[7], r[8], r[9], occs[k], wms[k]))
                seen.add(p)
                k += 1
            if want is not None:
                for p in sorted(want - seen):
                    out.append(PortCounters(iname, p, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0))
        return out

    @_locked
    def kpis(self, switch: str, interface: str, priority: int) -> dict[str, float]:
        """KPIs of the class this entry carries right now (from its simulated window)."""
        e = self._entry(switch, interface, priority)
        self._sync(int(self._e_switch[e]), self.now_s)
        self._tables()
        st = self._class_stats[int(self._e_class[e])]
        assert st is not None
        return dict(st.kpis)

    @_locked
    def traffic(self, switch: str, interface: str, priority: int) -> dict[str, Any]:
        """The profile and parameters an entry carries now (ground truth for evaluation)."""
        e = self._entry(switch, interface, priority)
        self._sync(int(self._e_switch[e]), self.now_s)
        return {"profile": self._e_profile[e], "params": dict(self._e_params[e])}

    # ------------------------------------------------------------------ QoS
    @_locked
    def get_qos(self, switch: str) -> SwitchQos:
        return self._qos[self._si(switch)].copy()

    @_locked
    def set_thresholds(self, switch: str, priority: int, thresholds: Thresholds) -> None:
        thresholds.validate()
        si = self._si(switch)
        self._sync(si, self.now_s)
        self._qos[si].thresholds[int(priority)] = thresholds
        self._reclass(si, int(priority))

    @_locked
    def set_pfc_priorities(self, switch: str, priorities: Iterable[int]) -> None:
        prios = tuple(sorted({int(p) for p in priorities}))
        if any(not 0 <= p <= 7 for p in prios):
            raise ValueError("priorities are 0..7")
        si = self._si(switch)
        self._sync(si, self.now_s)
        self._qos[si].pfc_priorities = prios
        self._reclass(si)

    @_locked
    def set_ecn_queues(self, switch: str, queues: Iterable[int]) -> None:
        qs = tuple(sorted({int(q) for q in queues}))
        if any(not 0 <= q <= 7 for q in qs):
            raise ValueError("queues are 0..7")
        si = self._si(switch)
        self._sync(si, self.now_s)
        self._qos[si].ecn_queues = qs
        self._reclass(si)

    @_locked
    def reset_counters(self, switch: str) -> None:
        """Zero every counter and watermark of the switch (a reboot or 'clear counters')."""
        si = self._si(switch)
        self._sync(si, self.now_s)
        sl = slice(self._sw_start[si], self._sw_end[si])
        self._cnt[sl] = 0.0
        self._wm[sl] = self._occ[sl]

    @_locked
    def clear_watermarks(self, switch: str) -> None:
        si = self._si(switch)
        self._sync(si, self.now_s)
        sl = slice(self._sw_start[si], self._sw_end[si])
        self._wm[sl] = self._occ[sl]

    # ------------------------------------------------------------------ traffic
    @_locked
    def set_profile(self, profile: str, params: dict[str, Any] | None = None, *,
                    switch: str | None = None, interface: str | None = None,
                    priority: int | None = None, role: str | None = None,
                    pod: int | None = None, at_s: float | None = None) -> None:
        """Assign ``profile`` to the matching entries from ``at_s`` (default: now) on."""
        match: dict[str, Any] = {}
        for key, value in (("switch", switch), ("interface", interface),
                           ("priority", priority), ("role", role), ("pod", pod)):
            if value is not None:
                match[key] = value
        now = self.now_s
        item = {"at_s": now if at_s is None else max(float(at_s), now), "match": match,
                "profile": profile, "params": params or {}}
        ev = Scenario.from_dict({"schedule": [item]}).schedule[0]
        if at_s is None or at_s <= now:
            # apply now: bring each matching switch up to date, then switch it over
            for si, sw in enumerate(self._switches):
                hits = [e for e in range(self._sw_start[si], self._sw_end[si])
                        if ev.matches(switch=str(sw["name"]), role=str(sw.get("role") or ""),
                                      pod=sw.get("pod"), interface=self._e_iface[e],
                                      priority=int(self._e_prio[e]))]
                if not hits:
                    continue
                self._sync(si, now)
                for e in hits:
                    self._e_profile[e] = ev.profile
                    self._e_params[e] = dict(ev.params)
                self._reclass(si)
            return
        pos = bisect.bisect_right([x.at_s for x in self._events], ev.at_s)
        self._events.insert(pos, ev)
