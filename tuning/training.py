"""Training data from fabricsim and the fitting of the classifier and the optimiser.

Scenarios (``sample_scenario``) span every profile's parameters, the port speeds 100/200/400G,
two cable lengths and several buffer sizes. Integer and load parameters come from two
disjoint value sets: TRAIN_VALUES for training, HELDOUT_VALUES (with seeds from another
namespace) for the held-out evaluation, so the reported accuracy is on parameter values and
traffic the models never saw.

For every training scenario:

1. telemetry -- a :class:`~tuning.simulation.Rig` carries the scenario on a few ports of
   several switches, each switch under another *current* waterline set (the SONiC default,
   another static reference, random points of the search space): one warm-up poll, then a
   12-poll window (10 s apart), features per port;
2. outcomes -- one ``simulate_batch`` of the scenario's traffic (a training seed) with ~48
   waterline sets (random points of the search space, the static references and the current
   sets): the simulator's objective and KPIs of each.

The classifier learns profile from port windows; each profile's optimiser learns the
objective of a candidate from (the median window features of a switch under its current set,
the candidate), the policy the surrogate's minimum, the measurement model the objective of the
current set from its window. Everything is seeded: the same seed gives the same models.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fabricsim.fabric import clear_class_cache
from tuning.classifier import ProfileClassifier, confusion
from tuning.features import FEATURE_NAMES, PROFILES, features_matrix, stack_windows, waterline_matrix
from tuning.guard import Waterline
from tuning.optimiser import (
    FEATURE_IDX,
    J_OFFSET,
    KAPPA,
    ProfileModels,
    WaterlineOptimiser,
    design,
    fit_hgb,
    from_target,
    to_target,
)
from tuning.simulation import (
    Rig,
    Scenario,
    from_thresholds,
    measure_many,
    static_baselines,
    to_thresholds,
)
from tuning.space import (
    KMIN_BDP_LOG2,
    PMAX_LOG2,
    SPAN_LOG2,
    clip_coords,
    from_coords,
    to_coords,
)

TUNED_PROFILES: tuple[str, ...] = ("allreduce", "incast", "websearch", "hadoop")

TRAIN_VALUES: dict[str, dict[str, list[Any]]] = {
    "allreduce": {"flows": [2, 3, 4, 6, 8, 12, 16, 24, 32, 48]},
    "incast": {"incast_degree": [4, 8, 12, 16, 24, 32, 48, 64, 96, 128],
               "load": [0.1, 0.15, 0.25, 0.3, 0.35, 0.45, 0.5, 0.55, 0.65, 0.7]},
    "websearch": {"load": [0.2, 0.25, 0.3, 0.35, 0.45, 0.5, 0.55, 0.65, 0.7, 0.75, 0.85],
                  "flows": [2, 3, 4, 6, 8]},
    "hadoop": {"load": [0.2, 0.25, 0.3, 0.35, 0.45, 0.5, 0.55, 0.65, 0.7, 0.75, 0.85],
               "flows": [2, 3, 4, 6, 8]},
}
HELDOUT_VALUES: dict[str, dict[str, list[Any]]] = {
    "allreduce": {"flows": [5, 10, 20, 40]},
    "incast": {"incast_degree": [6, 20, 40, 80], "load": [0.2, 0.4, 0.6]},
    "websearch": {"load": [0.4, 0.6, 0.8], "flows": [5, 7]},
    "hadoop": {"load": [0.4, 0.6, 0.8], "flows": [5, 7]},
}
SPEEDS = (100, 200, 400)
SPEED_WEIGHTS = (0.4, 0.4, 0.2)
CABLES = (3.0, 40.0)
CABLE_WEIGHTS = (0.75, 0.25)
MIB = 1 << 20
BUFFERS_MIB = (32, 42, 64, 82)


@dataclass
class TrainConfig:
    """Sizes of a training run (``quick`` shrinks everything, for tests)."""

    seed: int = 0
    quick: bool = False
    duration_ms: float = 20.0
    warmup_ms: float = 2.0
    scenarios: dict[str, int] = field(default_factory=lambda: {
        "allreduce": 48, "incast": 40, "websearch": 22, "hadoop": 24})
    # traffic realisations averaged per training outcome
    repeats: dict[str, int] = field(default_factory=dict)
    telemetry_only: int = 12  # extra telemetry-only scenarios per profile (classifier)
    heldout: int = 16  # held-out telemetry scenarios per profile (classifier accuracy)
    candidates: int = 32
    currents: int = 4
    ports: int = 4
    members: int = 4
    workers: int = 2

    def __post_init__(self) -> None:
        if self.quick:
            self.scenarios = {p: max(3, n // 6) for p, n in self.scenarios.items()}
            self.telemetry_only = 4
            self.heldout = 4
            self.candidates = 20
            self.members = 3


# ---------------------------------------------------------------------------- scenarios
def sample_scenario(rng: np.random.Generator, profile: str, *, heldout: bool = False,
                    seed: int = 0) -> Scenario:
    """A random scenario of ``profile`` (parameter values from the train or held-out set)."""
    values = (HELDOUT_VALUES if heldout else TRAIN_VALUES).get(profile, {})
    speed = int(rng.choice(SPEEDS, p=SPEED_WEIGHTS))
    cable = float(rng.choice(CABLES, p=CABLE_WEIGHTS))
    buffer: int | None = None
    if rng.random() < 0.3:
        buffer = int(rng.choice(BUFFERS_MIB)) * MIB
    params: dict[str, Any] = {}
    for key, vals in values.items():
        params[key] = vals[int(rng.integers(len(vals)))]
    if profile == "allreduce" and rng.random() < 0.3:
        params["phase_bytes"] = int(2 ** rng.uniform(18, 23))
        params["gap_us"] = float(round(rng.uniform(5, 50), 1))
    if profile == "incast":
        if rng.random() < 0.25:
            params["size_bytes"] = int(2 ** rng.uniform(15, 20))
        degree = int(params["incast_degree"])
        if rng.random() < 0.2 and degree >= 8:
            params["ingress_ports"] = int(rng.choice([2, 4, 8]))
    return Scenario.make(profile, speed, params, seed=seed, cable_m=cable,
                         buffer_bytes=buffer)


def random_coords(rng: np.random.Generator, n: int, sc: Scenario, *,
                  pfc_share: float = 0.3) -> np.ndarray:
    """``n`` random points of the search space (PFC knobs varied on ``pfc_share`` of them)."""
    ctx = sc.ctx
    x = np.empty((n, 5))
    x[:, 0] = rng.uniform(*KMIN_BDP_LOG2, n)
    x[:, 1] = rng.uniform(SPAN_LOG2[0], 7.0, n)
    x[:, 2] = rng.uniform(*PMAX_LOG2, n)
    x[:, 3] = -3.0
    x[:, 4] = 1.0
    pfc = rng.random(n) < pfc_share
    x[pfc, 3] = rng.integers(-6, 2, int(pfc.sum()))
    x[pfc, 4] = rng.uniform(1.0, 2.0, int(pfc.sum()))
    out: np.ndarray = clip_coords(x, ctx)
    return out


def statics_for(sc: Scenario) -> dict[str, Waterline]:
    return {n: from_thresholds(t) for n, t in static_baselines(sc.speed_gbps).items()}


@dataclass
class ScenarioData:
    scenario: Scenario
    currents: list[Waterline]
    port_features: list[np.ndarray]  # per current: (ports, F)
    median_features: np.ndarray  # (currents, F)
    candidates: list[Waterline] = field(default_factory=list)
    objectives: np.ndarray = field(default_factory=lambda: np.zeros(0))
    kpis: list[dict[str, float]] = field(default_factory=list)


def _currents(rng: np.random.Generator, sc: Scenario, k: int) -> list[Waterline]:
    st = statics_for(sc)
    out = [st["sonic_default"]]
    others = [n for n in st if n != "sonic_default"]
    out.append(st[others[int(rng.integers(len(others)))]])
    for x in random_coords(rng, max(0, k - 2), sc, pfc_share=0.2):
        out.append(from_coords(x, sc.ctx))
    return out[:k]


def telemetry(scenarios: list[tuple[Scenario, list[Waterline]]], *, seed: int, ports: int,
              workers: int) -> list[tuple[list[np.ndarray], np.ndarray]]:
    """Per scenario and current set: the port feature rows and their median."""
    arms: list[tuple[str, Scenario]] = []
    for i, (sc, currents) in enumerate(scenarios):
        for j in range(len(currents)):
            arms.append((f"s{i}c{j}", sc))
    rig = Rig(arms, seed=seed, ports=ports, workers=workers)
    for i, (_sc, currents) in enumerate(scenarios):
        for j, w in enumerate(currents):
            rig.set_thresholds(f"s{i}c{j}", to_thresholds(w))
    rig.observe(polls=1)  # warm-up poll: the watermark settles before the window
    wins = rig.observe()
    clear_class_cache()
    out: list[tuple[list[np.ndarray], np.ndarray]] = []
    for i, (_sc, currents) in enumerate(scenarios):
        rows: list[np.ndarray] = []
        for j, w in enumerate(currents):
            ws = wins[f"s{i}c{j}"]
            rows.append(features_matrix(stack_windows(ws), waterline_matrix([w] * len(ws))))
        out.append((rows, np.stack([np.median(r, axis=0) for r in rows])))
    return out


def outcomes(sds: list[ScenarioData], rng: np.random.Generator, n_candidates: int,
             cfg: TrainConfig, pool: Executor | None) -> None:
    """Simulate every scenario's candidate sets (one batch per scenario, in ``pool``)."""
    items = []
    for sd in sds:
        sc = sd.scenario
        cands = [from_coords(x, sc.ctx) for x in random_coords(rng, n_candidates, sc)]
        cands += list(statics_for(sc).values()) + list(sd.currents)
        sd.candidates = cands
        items.append((sc, [to_thresholds(w) for w in cands]))
    reps = cfg.repeats.get(sds[0].scenario.profile, 1) if sds else 1
    results = measure_many(items, duration_ms=cfg.duration_ms, warmup_ms=cfg.warmup_ms,
                           repeats=reps, pool=pool, seed_namespace="train")
    for sd, res in zip(sds, results, strict=True):
        sd.objectives = np.array([r.objective for r in res])
        sd.kpis = [r.kpis for r in res]


# ---------------------------------------------------------------------------- fitting
def _kpi_targets(kpis: list[dict[str, float]]) -> np.ndarray:
    rows = []
    for k in kpis:
        rows.append([math.log2(max(1.0, k.get("mice_fct_slowdown_p99", 1.0))),
                     math.log2(max(1.0, k.get("mice_fct_slowdown_p50", 1.0))),
                     float(k.get("lost_utilisation", 0.0)),
                     float(k.get("pause_time_fraction", 0.0)),
                     math.log2(1.0 + float(k.get("queue_p99_bytes", 0.0)))])
    return np.array(rows)


def fit_profile(data: list[ScenarioData], *, seed: int, members: int) -> ProfileModels:
    """The surrogate ensemble, policy, measurement and KPI models of one profile."""
    rows: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    kys: list[np.ndarray] = []
    groups: list[np.ndarray] = []
    meas_x: list[np.ndarray] = []
    meas_y: list[float] = []
    for g, sd in enumerate(data):
        ctx = sd.scenario.ctx
        xs = np.stack([to_coords(w, ctx) for w in sd.candidates])
        y = to_target(sd.objectives)
        ky = _kpi_targets(sd.kpis)
        for j, cur in enumerate(sd.currents):
            f = sd.median_features[j]
            xc = to_coords(cur, ctx)
            n = len(xs)
            rows.append(design(np.repeat(f[None, :], n, axis=0),
                               np.repeat(xc[None, :], n, axis=0), xs))
            ys.append(y)
            kys.append(ky)
            groups.append(np.full(n, g))
            # the current set's own outcome: it is among the candidates (appended last)
            k = len(sd.candidates) - len(sd.currents) + j
            for pf in sd.port_features[j]:
                meas_x.append(pf)
                meas_y.append(float(y[k]))
    X = np.concatenate(rows)
    Y = np.concatenate(ys)
    KY = np.concatenate(kys)
    G = np.concatenate(groups)
    rng = np.random.default_rng(seed)
    surrogate: list[Any] = []
    n_groups = len(data)
    for m in range(members):
        pick = rng.integers(0, n_groups, n_groups)  # bootstrap over scenarios
        mask = np.concatenate([np.flatnonzero(g == G) for g in pick])
        surrogate.append(fit_hgb(X[mask], Y[mask], seed=seed * 100 + m, max_iter=120))
    pred = np.stack([np.asarray(m.predict(X)) for m in surrogate])
    resid = float(np.sqrt(np.mean((pred.mean(axis=0) - Y) ** 2)))
    kpis = [fit_hgb(X, KY[:, i], seed=seed * 100 + 50 + i, max_iter=40, rate=0.12)
            for i in range(KY.shape[1])]
    mx = _fsel_train(np.stack(meas_x))
    measure_model = fit_hgb(mx, np.array(meas_y), seed=seed * 100 + 60, max_iter=100)
    # policy: the surrogate's (mean + KAPPA std) minimum for every training window
    feats = np.concatenate([sd.median_features for sd in data])
    curx = np.concatenate([np.stack([to_coords(w, sd.scenario.ctx) for w in sd.currents])
                           for sd in data])
    ctxs = [sd.scenario.ctx for sd in data for _ in sd.currents]
    targets = np.stack([_surrogate_argmin(surrogate, feats[i], curx[i], ctxs[i])
                        for i in range(len(feats))])
    fsel = _fsel_train(feats)
    policy = [fit_hgb(fsel, targets[:, i], seed=seed * 100 + 70 + i, max_iter=60,
                      min_leaf=8, rate=0.1) for i in range(targets.shape[1])]
    fs = _fsel_train(np.concatenate([sd.median_features for sd in data]))
    scale = fs.std(axis=0)
    scale[scale < 1e-6] = 1.0
    info = {"scenarios": n_groups, "rows": len(X), "train_rmse_log": round(resid, 4),
            "members": members, "feature_mean": fs.mean(axis=0).tolist(),
            "feature_scale": scale.tolist()}
    return ProfileModels(surrogate, policy, measure_model, kpis, info)


def _fsel_train(f: np.ndarray) -> np.ndarray:
    out: np.ndarray = np.nan_to_num(np.atleast_2d(f)[:, FEATURE_IDX], nan=0.0, posinf=0.0,
                                    neginf=0.0)
    return out


def _fit_job(job: tuple[list[ScenarioData], int, int]) -> ProfileModels:
    data, seed, members = job
    return fit_profile(data, seed=seed, members=members)


_LATTICE = np.array([(a, b, c) for a in np.arange(-6.0, 4.01, 1.0)
                     for b in np.arange(1.0, 7.01, 1.0) for c in np.arange(-7.0, 0.01, 1.0)])


def _surrogate_argmin(surrogate: list[Any], f: np.ndarray, xc: np.ndarray, ctx: Any
                      ) -> np.ndarray:
    """The lattice point (then refined by half steps) of least mean + KAPPA std."""

    def score(pts: np.ndarray) -> np.ndarray:
        n = len(pts)
        rows = design(np.repeat(f[None, :], n, axis=0), np.repeat(xc[None, :], n, axis=0),
                      pts)
        p = np.stack([np.asarray(m.predict(rows)) for m in surrogate])
        out: np.ndarray = p.mean(axis=0) + KAPPA * p.std(axis=0)
        return out

    base = np.column_stack([_LATTICE, np.full(len(_LATTICE), -3.0), np.ones(len(_LATTICE))])
    base = clip_coords(base, ctx)
    s = score(base)
    best = base[int(np.argmin(s))]
    fine = []
    for da in (-0.5, 0.0, 0.5):
        for db in (-0.5, 0.0, 0.5):
            for dc in (-0.5, 0.0, 0.5):
                fine.append(best + np.array([da, db, dc, 0.0, 0.0]))
    fine_arr = clip_coords(np.stack(fine), ctx)
    sf = score(fine_arr)
    best = fine_arr[int(np.argmin(sf))]
    best_s = float(np.min(sf))
    # PFC knobs: keep the defaults unless another alpha/headroom predicts 1 % better
    pfc = []
    for a in range(-6, 2):
        for h in (1.0, 1.25, 1.5, 2.0):
            p = best.copy()
            p[3] = a
            p[4] = h
            pfc.append(p)
    pfc_arr = clip_coords(np.stack(pfc), ctx)
    sp = score(pfc_arr)
    if float(np.min(sp)) < best_s - math.log(1.01):
        best = pfc_arr[int(np.argmin(sp))]
    out: np.ndarray = best
    return out


# ---------------------------------------------------------------------------- pipeline
@dataclass
class TrainResult:
    classifier: ProfileClassifier
    optimiser: WaterlineOptimiser
    seconds: float
    data: dict[str, list[ScenarioData]]


def train(cfg: TrainConfig, log: Callable[[str], None] | None = None) -> TrainResult:
    """Simulate, fit and evaluate (module docstring). ``log`` receives progress lines."""
    say = log or (lambda s: None)
    t0 = time.perf_counter()
    rng = np.random.default_rng([cfg.seed, 0x7E41])
    # held-out scenarios and their seeds come from a stream of their own
    rng_ho = np.random.default_rng([cfg.seed, 0x4E1D])

    def seed_of(r: np.random.Generator = rng) -> int:
        return int(r.integers(1, 2**31 - 1))

    pool: ProcessPoolExecutor | None = None
    if cfg.workers > 1:
        import multiprocessing as mp

        ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
        pool = ProcessPoolExecutor(max_workers=cfg.workers, mp_context=ctx)
    try:
        data: dict[str, list[ScenarioData]] = {p: [] for p in TUNED_PROFILES}
        extra: list[tuple[str, np.ndarray]] = []
        held: list[tuple[str, np.ndarray]] = []
        for profile in TUNED_PROFILES:
            n = cfg.scenarios[profile]
            scs = [sample_scenario(rng, profile, seed=seed_of()) for _ in range(n)]
            cur = [_currents(rng, sc, cfg.currents) for sc in scs]
            tel = telemetry(list(zip(scs, cur, strict=True)), seed=seed_of(), ports=cfg.ports,
                            workers=cfg.workers)
            for sc, c, (pf, med) in zip(scs, cur, tel, strict=True):
                data[profile].append(ScenarioData(sc, c, pf, med))
            say(f"{profile}: telemetry of {n} scenarios x {cfg.currents} current sets "
                f"({time.perf_counter() - t0:.0f} s)")
            outcomes(data[profile], rng, cfg.candidates, cfg, pool)
            say(f"{profile}: outcomes of {n} x {len(data[profile][0].candidates)} waterline "
                f"sets ({time.perf_counter() - t0:.0f} s)")
            for heldout, count, sink in ((False, cfg.telemetry_only, extra),
                                         (True, cfg.heldout, held)):
                r = rng_ho if heldout else rng
                scs2 = [sample_scenario(r, profile, heldout=heldout, seed=seed_of(r))
                        for _ in range(count)]
                cur2 = [_currents(r, sc, 2) for sc in scs2]
                ns = "held-out" if heldout else "train"
                tel2 = telemetry(list(zip(scs2, cur2, strict=True)), seed=seed_of(r),
                                 ports=cfg.ports, workers=cfg.workers)
                for pf, _ in tel2:
                    for rows in pf:
                        for r in rows:
                            sink.append((profile, r))
                say(f"{profile}: {count} {ns} telemetry-only scenarios")
        # idle ports: all zero but for the waterlines
        idle_sc = [(Scenario.make("idle", int(s), seed=seed_of()), ) for s in SPEEDS]
        idle = telemetry([(sc[0], _currents(rng, sc[0], 2)) for sc in idle_sc],
                         seed=seed_of(), ports=cfg.ports, workers=1)
        for pf, _ in idle:
            for rows in pf:
                for r in rows:
                    extra.append(("idle", r))
                    held.append(("idle", r))
        # ---- classifier
        Xc: list[np.ndarray] = []
        yc: list[str] = []
        for profile, sds in data.items():
            for sd in sds:
                for rows in sd.port_features:
                    Xc.extend(rows)
                    yc.extend([profile] * len(rows))
        for profile, row in extra:
            Xc.append(row)
            yc.append(profile)
        Xh = np.stack([row for _, row in held])
        yh = [p for p, _ in held]
        clf = ProfileClassifier.fit(np.stack(Xc), yc, seed=cfg.seed)
        pred, _ = clf.predict(Xh)
        acc = float(np.mean([a == b for a, b in zip(pred, yh, strict=True)]))
        busy = [i for i, p in enumerate(yh) if p != "idle"]
        acc_busy = float(np.mean([pred[i] == yh[i] for i in busy])) if busy else acc
        clf.metadata.update({
            "heldout_accuracy": round(acc, 4),
            "heldout_accuracy_traffic_ports": round(acc_busy, 4),
            "heldout_windows": len(yh),
            "confusion": confusion(yh, pred),
            "training_scenarios": {p: [sd.scenario.label() for sd in v]
                                   for p, v in data.items()},
            "train_values": TRAIN_VALUES, "heldout_values": HELDOUT_VALUES,
        })
        say(f"classifier: held-out accuracy {acc:.3f} ({acc_busy:.3f} on ports with "
            f"traffic), {len(yh)} windows")
        # ---- optimiser
        # fitted here, not in the fork pool: OpenMP (the trees' threads) and fork do not mix
        jobs = [(sds, cfg.seed, cfg.members) for sds in data.values()]
        fitted = [_fit_job(j) for j in jobs]
        models: dict[str, ProfileModels] = dict(zip(data, fitted, strict=True))
        for profile, pm in models.items():
            say(f"{profile}: optimiser fitted on {pm.info['scenarios']} scenarios, "
                f"{pm.info['rows']} rows, train RMSE {pm.info['train_rmse_log']:.3f} (log J)")
        opt = WaterlineOptimiser(models, {
            "version": 1, "seed": cfg.seed, "quick": cfg.quick,
            "model": "per profile: gradient-boosted-tree ensemble surrogate of log(J + 0.05) "
                     "(bootstrap over scenarios), policy, measurement and KPI models",
            "duration_ms": cfg.duration_ms, "warmup_ms": cfg.warmup_ms,
            "training_scenarios": {p: len(v) for p, v in data.items()},
            "candidates_per_scenario": cfg.candidates + 4 + cfg.currents,
            "profiles": {p: m.info for p, m in models.items()},
            "features": list(FEATURE_NAMES), "j_offset": J_OFFSET,
        })
        secs = time.perf_counter() - t0
        clf.metadata["training_seconds"] = round(secs, 1)
        opt.metadata["training_seconds"] = round(secs, 1)
        say(f"trained in {secs:.0f} s")
        return TrainResult(clf, opt, secs, data)
    finally:
        if pool is not None:
            pool.shutdown()


def surrogate_quality(opt: WaterlineOptimiser, data: dict[str, list[ScenarioData]]
                      ) -> dict[str, float]:
    """Mean regret (J of the surrogate's pick over the best sampled J, relative) per profile
    on given scenario data -- a diagnostic."""
    out: dict[str, float] = {}
    for profile, sds in data.items():
        models = opt.models.get(profile)
        if models is None or not sds:
            continue
        regrets = []
        for sd in sds:
            ctx = sd.scenario.ctx
            xs = np.stack([to_coords(w, ctx) for w in sd.candidates])
            f = sd.median_features[0]
            xc = to_coords(sd.currents[0], ctx)
            rows = design(np.repeat(f[None, :], len(xs), axis=0),
                          np.repeat(xc[None, :], len(xs), axis=0), xs)
            mu, sdv = models.predict(rows)
            pick = int(np.argmin(mu + KAPPA * sdv))
            best = float(np.min(sd.objectives))
            regrets.append(float(sd.objectives[pick]) / max(best, 1e-9) - 1.0)
        out[profile] = float(np.mean(regrets))
    return out


__all__ = [
    "PROFILES",
    "TUNED_PROFILES",
    "TrainConfig",
    "TrainResult",
    "from_target",
    "sample_scenario",
    "surrogate_quality",
    "train",
]
