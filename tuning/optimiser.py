"""Per-profile waterline optimiser: a learned surrogate of the simulator's objective, a bounded
step inside the guard, a conservative heuristic when the model is unsure, online corrections.

Models (one set per traffic profile, fitted by ``tuning.training`` on fabricsim sweeps, all
scikit-learn histogram gradient-boosted trees):

- *surrogate*: an ensemble (each member fitted on a bootstrap of the training scenarios)
  predicting log(J + 0.05) of a candidate waterline set from (the window features observed
  under the current waterlines, the candidate's coordinates, the candidate minus the
  current). Its mean is the prediction, the spread of the members the uncertainty.
- *policy*: where the surrogate's minimum lies, predicted from the features (amortised
  optimisation: fitted on the argmin of the surrogate over a fine lattice for every training
  window). It saves evaluating thousands of candidates per switch in the daemon's cycle.
- *measure*: the objective of the current waterlines estimated from telemetry alone
  (``estimate_objective``; what an applied change's outcome is measured with).
- *kpis*: the objective's components (mice FCT slowdowns, lost utilisation, pause time, queue
  p99) of a candidate, for the proposal's explanation.

A proposal (``propose``) scores the current set, the step-bounded move towards the policy's
target, a lattice around it and the static references within reach by the ensemble's
predicted change from the current set (mean + 0.5 std over the members, plus the online
correction), and moves only when the gain is at least 3 %, beats the members' disagreement
and 80 % of the members agree on its sign. When the ensemble is unsure of the traffic itself
(a large spread at the current set: telemetry unlike the training data) it falls back to
:func:`heuristic`, step-wise rules from the physics.
Every proposal is a full, guard-clean waterline set within one bounded step
(``tuning.space``).
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import joblib
import numpy as np

from tuning.features import FEATURE_NAMES
from tuning.guard import Waterline, WaterlinesLike, check_waterlines
from tuning.space import (
    COORD_NAMES,
    MAX_K_FACTOR,
    PortContext,
    clip_coords,
    complete,
    from_coords,
    reference_waterlines,
    same_waterlines,
    step_bounded,
    to_coords,
    within_step,
)

J_OFFSET = 0.05  # targets are log(J + J_OFFSET): relative errors matter at every scale
J_CAP = 30.0  # an infeasible configuration (drops) is learned as this objective
KAPPA = 0.5  # uncertainty penalty: score = mean + KAPPA x std (log space)
MIN_GAIN = 0.03  # move only when the predicted objective drops by 3 % or more ...
GAIN_SIGMAS = 1.0  # ... and by more than this many standard deviations of the difference
CONFIDENCE_SCALE = 0.5  # confidence = exp(-spread / scale) x the members' agreement
MAX_SPREAD = 0.6  # ensemble spread (log J) at the current set above which: heuristic
MIN_AGREEMENT = 0.8  # share of the members that must predict the move improves
RESIDUAL_MEMORY = 2000  # observations kept per profile
RESIDUAL_LX = 1.0  # kernel widths of the online correction: octaves of the coordinates ...
RESIDUAL_LF = 1.0  # ... and standard deviations of the features (rms)
RESIDUAL_PRIOR = 2.0  # pseudo-count of the prior (the surrogate) against observations

UNUSED_FEATURES: tuple[str, ...] = ("mean_packet_bytes_kb",)
FEATURE_IDX = np.array([i for i, n in enumerate(FEATURE_NAMES) if n not in UNUSED_FEATURES])
KPI_NAMES: tuple[str, ...] = ("mice_fct_slowdown_p99", "mice_fct_slowdown_p50",
                              "lost_utilisation", "pause_time_fraction", "queue_p99_bytes")
_F = {n: i for i, n in enumerate(FEATURE_NAMES)}


@dataclass(frozen=True)
class Proposal:
    """A full, guard-clean waterline set for one (switch, priority), with its explanation."""

    waterlines: Waterline
    method: str  # "model" | "heuristic" | "hold"
    confidence: float
    predicted_objective_current: float
    predicted_objective_proposed: float
    predicted_kpis_current: dict[str, float]
    predicted_kpis_proposed: dict[str, float]
    reason: str


@dataclass(frozen=True)
class ProposalRequest:
    """The inputs of :meth:`WaterlineOptimiser.propose`, for batched calls."""

    profile: str
    features: np.ndarray
    current: WaterlinesLike
    speed_gbps: int
    buffer_bytes: int
    cable_m: float
    mtu: int = 9100


def to_target(j: np.ndarray) -> np.ndarray:
    jj = np.where(np.asarray(j, dtype=float) >= 1e5, J_CAP, np.minimum(j, J_CAP))
    out: np.ndarray = np.log(np.maximum(jj, 0.0) + J_OFFSET)
    return out


def from_target(y: np.ndarray | float) -> np.ndarray:
    out: np.ndarray = np.maximum(0.0, np.exp(np.asarray(y, dtype=float)) - J_OFFSET)
    return out


def design(features: np.ndarray, current: np.ndarray, cands: np.ndarray) -> np.ndarray:
    """Surrogate input rows: features (of the window under ``current``), the candidate's
    coordinates, and the candidate's move (in log2 Kmin, log2 Kmax, log2 Pmax, log2 alpha,
    headroom) -- one row per (features, current, candidate) triple (arrays of equal length)."""
    f = np.nan_to_num(np.asarray(features, dtype=float)[:, FEATURE_IDX], nan=0.0,
                      posinf=0.0, neginf=0.0)
    c = np.asarray(current, dtype=float)
    x = np.asarray(cands, dtype=float)
    move = np.stack([x[:, 0] - c[:, 0], (x[:, 0] + x[:, 1]) - (c[:, 0] + c[:, 1]),
                     x[:, 2] - c[:, 2], x[:, 3] - c[:, 3], x[:, 4] - c[:, 4]], axis=1)
    return np.concatenate([f, x, move], axis=1)


# ---------------------------------------------------------------------------- models
def fit_hgb(X: np.ndarray, y: np.ndarray, *, seed: int = 0, max_iter: int = 150,
            leaves: int = 15, min_leaf: int = 20, rate: float = 0.06) -> Any:
    """A histogram gradient-boosting regressor (squared error, no early stopping)."""
    from sklearn.ensemble import HistGradientBoostingRegressor

    model = HistGradientBoostingRegressor(max_iter=max_iter, learning_rate=rate,
                                          max_leaf_nodes=leaves, min_samples_leaf=min_leaf,
                                          l2_regularization=1e-3, early_stopping=False,
                                          random_state=seed)
    model.fit(np.asarray(X, dtype=float), np.asarray(y, dtype=float))
    return model


@dataclass
class ProfileModels:
    """The fitted models of one traffic profile (gradient-boosted trees)."""

    surrogate: list[Any]  # ensemble members: design rows -> log(J + offset)
    policy: list[Any]  # one per coordinate: features -> the surrogate's argmin
    measure: Any  # features -> log(J + offset) of the current set
    kpis: list[Any]  # one per KPI_NAMES entry (transformed, see optimiser._kpis)
    info: dict[str, Any] = field(default_factory=dict)

    def members(self, rows: np.ndarray) -> np.ndarray:
        """Every member's prediction (members x rows, log(J + offset) units)."""
        return np.stack([np.asarray(m.predict(rows), dtype=float) for m in self.surrogate])

    def predict(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and std (log(J + offset) units) of the surrogate ensemble."""
        preds = self.members(rows)
        return preds.mean(axis=0), preds.std(axis=0)

    def target(self, f: np.ndarray) -> np.ndarray:
        return np.stack([np.asarray(m.predict(f), dtype=float) for m in self.policy], axis=1)

    def kpi_rows(self, rows: np.ndarray) -> np.ndarray:
        return np.stack([np.asarray(m.predict(rows), dtype=float) for m in self.kpis], axis=1)


@dataclass
class _Obs:
    f: np.ndarray
    x: np.ndarray
    r: float


class WaterlineOptimiser:
    """Proposals per profile (module docstring)."""

    def __init__(self, models: dict[str, ProfileModels] | None = None,
                 metadata: dict[str, Any] | None = None) -> None:
        self.models: dict[str, ProfileModels] = dict(models or {})
        self.metadata: dict[str, Any] = dict(metadata or {})
        self._obs: dict[str, list[_Obs]] = {}

    # ------------------------------------------------------------------ public API
    def propose(self, profile: str, features: np.ndarray, current: WaterlinesLike, *,
                speed_gbps: int, buffer_bytes: int, cable_m: float, mtu: int = 9100
                ) -> Proposal:
        """A guard-clean waterline set for the group's profile and median features."""
        return self.propose_batch([ProposalRequest(profile, np.asarray(features, dtype=float),
                                                   current, speed_gbps, buffer_bytes, cable_m,
                                                   mtu)])[0]

    def propose_batch(self, requests: Sequence[ProposalRequest]) -> list[Proposal]:
        """:meth:`propose` for many groups at once (one model pass per profile)."""
        out: list[Proposal | None] = [None] * len(requests)
        by_profile: dict[str, list[int]] = {}
        for i, rq in enumerate(requests):
            by_profile.setdefault(rq.profile, []).append(i)
        for profile, idx in by_profile.items():
            models = self.models.get(profile)
            for i, p in zip(idx, self._propose_profile(profile, models,
                                                       [requests[i] for i in idx]),
                            strict=True):
                out[i] = p
        return [p for p in out if p is not None]

    def observe(self, profile: str, features: np.ndarray, waterlines: WaterlinesLike,
                objective: float) -> None:
        """Learn from an applied change: ``objective`` was measured (``estimate_objective``)
        over a window with ``features`` under ``waterlines``. The difference to the
        surrogate's prediction becomes a local correction (a kernel average over similar
        features and nearby waterlines) of later predictions."""
        models = self.models.get(profile)
        if models is None or not math.isfinite(objective):
            return
        f = np.asarray(features, dtype=float).reshape(1, -1)
        x = to_coords(waterlines, _ctx_from_features(f[0])).reshape(1, -1)
        x[0, 4] = float(f[0, _F["headroom_rel_formula"]])  # the formula of the port's cable
        mu, _ = models.predict(design(f, x, x))
        r = float(to_target(np.array([objective]))[0] - mu[0])
        obs = self._obs.setdefault(profile, [])
        obs.append(_Obs(self._fstd(models, f)[0], x[0], r))
        del obs[:-RESIDUAL_MEMORY]

    def estimate_objective(self, profile: str, features: np.ndarray) -> float:
        """The objective of the window's current waterlines, estimated from telemetry."""
        return float(self.estimate_objective_batch(profile, np.atleast_2d(features))[0])

    def estimate_objective_batch(self, profile: str, features: np.ndarray) -> np.ndarray:
        models = self.models.get(profile)
        f = np.atleast_2d(np.asarray(features, dtype=float))
        if models is None:
            return np.zeros(len(f))
        return from_target(np.asarray(models.measure.predict(_fsel(f)), dtype=float))

    # ------------------------------------------------------------------ bytes
    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        obs = {p: [(o.f, o.x, o.r) for o in v] for p, v in self._obs.items()}
        joblib.dump({"kind": "WaterlineOptimiser", "models": self.models,
                     "metadata": self.metadata, "observations": obs}, buf, compress=3)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> WaterlineOptimiser:
        obj = joblib.load(io.BytesIO(data))
        if not isinstance(obj, dict) or obj.get("kind") != "WaterlineOptimiser":
            raise ValueError("not a serialised WaterlineOptimiser")
        opt = cls(obj["models"], obj["metadata"])
        for p, rows in (obj.get("observations") or {}).items():
            opt._obs[p] = [_Obs(np.asarray(f), np.asarray(x), float(r)) for f, x, r in rows]
        return opt

    # ------------------------------------------------------------------ internals
    @staticmethod
    def _fstd(models: ProfileModels, f: np.ndarray) -> np.ndarray:
        mean = np.asarray(models.info.get("feature_mean", 0.0), dtype=float)
        scale = np.asarray(models.info.get("feature_scale", 1.0), dtype=float)
        out: np.ndarray = (_fsel(f) - mean) / scale
        return out

    def _correction(self, profile: str, models: ProfileModels, f: np.ndarray,
                    x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Online correction (log units) and the prior's remaining weight, per row."""
        obs = self._obs.get(profile)
        if not obs:
            return np.zeros(len(x)), np.ones(len(x))
        fo = np.stack([o.f for o in obs])
        xo = np.stack([o.x for o in obs])
        ro = np.array([o.r for o in obs])
        fq = self._fstd(models, f)
        df = np.mean((fq[:, None, :] - fo[None, :, :]) ** 2, axis=2) / RESIDUAL_LF ** 2
        dx = np.sum((x[:, None, :] - xo[None, :, :]) ** 2, axis=2) / RESIDUAL_LX ** 2
        w = np.exp(-0.5 * (df + dx))
        sw = w.sum(axis=1)
        corr = (w @ ro) / (sw + RESIDUAL_PRIOR)
        out: tuple[np.ndarray, np.ndarray] = (corr, RESIDUAL_PRIOR / (sw + RESIDUAL_PRIOR))
        return out

    def _propose_profile(self, profile: str, models: ProfileModels | None,
                         reqs: list[ProposalRequest]) -> list[Proposal]:
        n = len(reqs)
        ctxs = [PortContext(int(r.speed_gbps), int(r.buffer_bytes), float(r.cable_m),
                            int(r.mtu)) for r in reqs]
        feats = np.stack([np.asarray(r.features, dtype=float).reshape(-1) for r in reqs])
        cur_w = [r.current for r in reqs]
        xcur = np.stack([clip_coords(to_coords(w, c), c) for w, c in zip(cur_w, ctxs,
                                                                         strict=True)])
        if profile == "idle":
            return [hold_or_fix(r.current, c, "idle: no traffic, nothing to tune")
                    for r, c in zip(reqs, ctxs, strict=True)]
        if models is None:
            return [heuristic(r.features, r.current, c) for r, c in zip(reqs, ctxs, strict=True)]
        # candidate sets: current, the bounded move towards the policy's target, a lattice
        # around that move, the static references within one step
        targets = models.target(_fsel(feats))
        cands: list[np.ndarray] = []
        anchors: list[np.ndarray] = []
        for i in range(n):
            c, a = _candidates(xcur[i], targets[i], ctxs[i])
            cands.append(c)
            anchors.append(a)
        counts = np.array([len(c) for c in cands])
        owner = np.repeat(np.arange(n), counts)
        allc = np.concatenate(cands)
        rows = design(feats[owner], xcur[owner], allc)
        preds = models.members(rows)
        corr, keep = self._correction(profile, models, feats[owner], allc)
        preds = preds + corr[None, :]
        out: list[Proposal] = []
        start = 0
        for i, rq in enumerate(reqs):
            sl = slice(start, start + counts[i])
            start += counts[i]
            out.append(self._decide(models, rq, ctxs[i], feats[i], xcur[i], allc[sl],
                                    preds[:, sl], keep[sl], anchors[i]))
        return out

    def _decide(self, models: ProfileModels, rq: ProposalRequest, ctx: PortContext,
                f: np.ndarray, xc: np.ndarray, cands: np.ndarray, preds: np.ndarray,
                keep: np.ndarray, anchor: np.ndarray) -> Proposal:
        """Pick among the candidates by the ensemble's predicted change from the current set:
        each member's difference (candidate - current) is what the members agree or disagree
        on; the current set's own uncertainty cancels out of it."""
        mu = preds.mean(axis=0)
        spread = float(preds[:, 0].std())  # how sure the model is of this traffic at all
        diff = preds - preds[:, :1]  # members x candidates
        d_mu = diff.mean(axis=0)
        d_sd = diff.std(axis=0) * np.sqrt(keep)
        score = d_mu + KAPPA * d_sd
        score[0] = 0.0
        best = int(np.argmin(score))
        # a static reference the model cannot tell from the best candidate is preferred:
        # an operator's well-known setting is the safer of two equals
        if anchor.any() and not anchor[best] and best != 0:
            tol = np.maximum(math.log1p(MIN_GAIN), GAIN_SIGMAS * d_sd)
            near = np.flatnonzero(anchor & (score - score[best] <= tol) & (d_mu < 0))
            if len(near):
                best = int(near[np.argmin(score[near])])
        agree = float(np.mean(diff[:, best] < 0)) if best != 0 else 1.0
        conf = float(math.exp(-spread / CONFIDENCE_SCALE)) * (agree if best else 1.0)
        j_cur = float(from_target(mu[0]))
        kp = self._kpis(models, f, xc, cands[[0, best]])
        if spread > MAX_SPREAD:
            h = heuristic(rq.features, rq.current, ctx)
            return Proposal(h.waterlines, h.method, conf, j_cur, j_cur, kp[0], kp[0],
                            f"model unsure of this traffic (spread {spread:.2f}); {h.reason}")
        gain = -float(d_mu[best])
        if best == 0 or gain < math.log1p(MIN_GAIN) or gain < GAIN_SIGMAS * float(d_sd[best]) \
                or agree < MIN_AGREEMENT:
            held = self._hold_or_fix(rq, ctx, f"{rq.profile}: no reachable set predicted "
                                     f"better than the current ({j_cur:.3f}) by more than "
                                     "the model's uncertainty")
            return Proposal(held.waterlines, held.method, conf, j_cur, j_cur, kp[0], kp[0],
                            held.reason)
        w = from_coords(cands[best], ctx)
        j_new = float(from_target(mu[best]))
        moved = [name for name, a, b in zip(COORD_NAMES, xc, cands[best], strict=True)
                 if abs(a - b) > 1e-6]
        ref = " (a static reference)" if anchor[best] else ""
        reason = (f"{rq.profile}: predicted objective {j_cur:.3f} -> {j_new:.3f}{ref} "
                  f"({100 * (1 - math.exp(-gain)):.0f} % lower, {100 * agree:.0f} % of the "
                  f"ensemble agree) moving {', '.join(moved)}; step bounded to x"
                  f"{MAX_K_FACTOR:g} on Kmin/Kmax")
        return _checked(Proposal(w, "model", conf, j_cur, j_new, kp[0], kp[1], reason), rq, ctx)

    def _kpis(self, models: ProfileModels, f: np.ndarray, xc: np.ndarray,
              xs: np.ndarray) -> list[dict[str, float]]:
        rows = design(np.repeat(f[None, :], len(xs), axis=0),
                      np.repeat(xc[None, :], len(xs), axis=0), xs)
        pred = models.kpi_rows(rows)
        out = []
        for p in pred:
            out.append({
                "mice_fct_slowdown_p99": float(2.0 ** max(0.0, p[0])),
                "mice_fct_slowdown_p50": float(2.0 ** max(0.0, p[1])),
                "lost_utilisation": float(min(1.0, max(0.0, p[2]))),
                "pause_time_fraction": float(min(1.0, max(0.0, p[3]))),
                "queue_p99_bytes": float(max(0.0, 2.0 ** p[4] - 1.0)),
            })
        return out

    @staticmethod
    def _hold_or_fix(rq: ProposalRequest, ctx: PortContext, reason: str) -> Proposal:
        return hold_or_fix(rq.current, ctx, reason)


# ---------------------------------------------------------------------------- helpers
def _fsel(f: np.ndarray) -> np.ndarray:
    out: np.ndarray = np.nan_to_num(np.atleast_2d(f)[:, FEATURE_IDX], nan=0.0, posinf=0.0,
                                    neginf=0.0)
    return out


def _ctx_from_features(f: np.ndarray) -> PortContext:
    speed = int(np.rint(2.0 ** f[_F["log_speed_gbps"]]))
    speed = min((10, 25, 40, 50, 100, 200, 400), key=lambda s: abs(s - speed))
    return PortContext(speed, 1 << 40, 3.0)


LATTICE = np.array([(-1.0, 0.0, 0.0), (1.0, 0.0, 0.0), (0.0, -1.0, 0.0), (0.0, 1.0, 0.0),
                    (0.0, 0.0, -1.0), (0.0, 0.0, 1.0)])


def _candidates(xc: np.ndarray, target: np.ndarray, ctx: PortContext
                ) -> tuple[np.ndarray, np.ndarray]:
    """Current first, then the bounded move towards ``target`` and a lattice around it (one
    octave in Kmin, Kmax and Pmax), alpha/headroom variants and the static references, all
    within one step of current; with the mask of the static references."""
    tgt = clip_coords(np.asarray(target, dtype=float), ctx)
    tgt[3] = np.round(tgt[3])
    move = step_bounded(tgt, xc, ctx)
    pts = [xc, move]
    ecn_only = move.copy()
    ecn_only[3:] = xc[3:]
    pts.append(ecn_only)
    half = xc + 0.5 * (ecn_only - xc)
    half[3] = xc[3]
    pts.append(half)
    for base in (ecn_only,):
        for dk, dK, dp in LATTICE:
            p = base.copy()
            kmax = p[0] + p[1] + dK
            p[0] += dk
            p[1] = kmax - p[0]
            p[2] += dp
            pts.append(p)
    for da in (-1.0, 1.0):
        p = ecn_only.copy()
        p[3] += da
        pts.append(p)
    p = ecn_only.copy()
    p[4] = 1.0
    pts.append(p)
    n_model = len(pts)
    for ref in reference_waterlines(ctx.speed_gbps).values():
        r = to_coords(ref, ctx)
        r[3:] = xc[3:]
        pts.append(r)
    arr = clip_coords(np.stack(pts), ctx)
    is_anchor = np.arange(len(arr)) >= n_model
    ok = within_step(arr, xc)
    ok[0] = True
    out: tuple[np.ndarray, np.ndarray] = (arr[ok], is_anchor[ok])
    return out


def _checked(p: Proposal, rq: ProposalRequest, ctx: PortContext) -> Proposal:
    refusals = check_waterlines(p.waterlines, speed_gbps=ctx.speed_gbps,
                                buffer_bytes=ctx.buffer_bytes, cable_m=ctx.cable_m, mtu=ctx.mtu)
    if refusals:  # never propose what the guard refuses: hold instead
        held = hold_or_fix(rq.current, ctx, "proposal refused by the guard: "
                           + "; ".join(str(r) for r in refusals))
        return Proposal(held.waterlines, held.method, 0.0, p.predicted_objective_current,
                        p.predicted_objective_current, p.predicted_kpis_current,
                        p.predicted_kpis_current, held.reason)
    return p


def hold_or_fix(current: WaterlinesLike, ctx: PortContext, reason: str) -> Proposal:
    """No change -- unless the current set breaks the guard (e.g. headroom below the formula),
    in which case the nearest guard-clean set (same ECN, PFC from the formula)."""
    full = complete(current, ctx)
    refusals = check_waterlines(current, speed_gbps=ctx.speed_gbps,
                                buffer_bytes=ctx.buffer_bytes, cable_m=ctx.cable_m, mtu=ctx.mtu)
    if not refusals and _pfc_complete(current):
        return Proposal(_as_waterline(current), "hold", 1.0, 0.0, 0.0, {}, {}, reason)
    if not check_waterlines(full, speed_gbps=ctx.speed_gbps, buffer_bytes=ctx.buffer_bytes,
                            cable_m=ctx.cable_m, mtu=ctx.mtu):
        why = "; ".join(str(r) for r in refusals) or "PFC fields completed from the formula"
        return Proposal(full, "heuristic", 1.0, 0.0, 0.0, {}, {},
                        f"current waterlines made guard-clean ({why}); {reason}")
    x = clip_coords(to_coords(current, ctx), ctx)
    safe = from_coords(x, ctx)
    return Proposal(safe, "heuristic", 1.0, 0.0, 0.0, {}, {},
                    f"current waterlines outside the guard, clipped into it; {reason}")


def _pfc_complete(w: WaterlinesLike) -> bool:
    return w.headroom_bytes is not None and w.xoff_bytes is not None \
        and w.xon_bytes is not None and w.alpha is not None


def _as_waterline(w: WaterlinesLike) -> Waterline:
    return Waterline(kmin_bytes=int(w.kmin_bytes), kmax_bytes=int(w.kmax_bytes),
                     pmax=float(w.pmax), xoff_bytes=w.xoff_bytes, xon_bytes=w.xon_bytes,
                     headroom_bytes=w.headroom_bytes, alpha=w.alpha)


# ---------------------------------------------------------------------------- heuristic
PAUSE_PER_GBPS = 0.5  # pause frames per second per Gb/s of port speed worth acting on
DEEP_QUEUE_BDP = 16.0  # a standing queue of this many BDPs (p90) is too deep
MARKING_HEAVY = 0.05  # ECN-mark ratio above which an empty queue means over-marking
EMPTY_QUEUE_BDP = 0.5


def heuristic(features: np.ndarray, current: WaterlinesLike, ctx: PortContext) -> Proposal:
    """Conservative step-wise rules from the physics (one rule per change, factor-2 steps):

    1. drops on a lossless class: headroom overflowed -> 1.5x headroom (the formula's size
       at least) and half the alpha (pause earlier);
    2. PFC pauses, or a deep standing queue (p90 above 16 BDP) that ECN lets grow: halve Kmin
       and Kmax, double Pmax -- mark earlier so DCQCN slows senders before PFC must;
    3. heavy marking (over 5 % of packets) while the queue stays nearly empty (p90 below half
       a BDP): throughput is being given away -> double Kmin and Kmax, halve Pmax;
    4. otherwise hold.
    """
    f = np.asarray(features, dtype=float).reshape(-1)
    x = clip_coords(to_coords(current, ctx), ctx)
    drops = float(f[_F["log_drops_per_s"]])
    pause = float(f[_F["log_pause_per_gbps"]])
    q90_bdp = float(2.0 ** f[_F["log_occupancy_p90_bdp"]] - 1.0)
    marks = float(f[_F["ecn_mark_ratio"]])
    rule = ""
    y = x.copy()
    if drops > 0:
        y[4] = max(1.0, x[4]) * 1.5
        y[3] = x[3] - 1
        rule = "drops on the lossless class: more headroom, pause earlier (alpha / 2)"
    elif pause > math.log1p(PAUSE_PER_GBPS) or q90_bdp > DEEP_QUEUE_BDP:
        y[0] -= 1.0
        y[2] += 1.0
        rule = ("PFC pauses" if pause > math.log1p(PAUSE_PER_GBPS) else
                f"deep standing queue (p90 {q90_bdp:.0f} BDP)") + \
            ": Kmin/Kmax / 2, Pmax x 2 (mark earlier)"
    elif marks > MARKING_HEAVY and q90_bdp < EMPTY_QUEUE_BDP:
        y[0] += 1.0
        y[2] -= 1.0
        rule = (f"{100 * marks:.0f} % of packets marked with an empty queue: Kmin/Kmax x 2, "
                "Pmax / 2 (stop giving throughput away)")
    if not rule:
        return hold_or_fix(current, ctx, "heuristic: no rule fires (no drops, pauses, deep "
                           "queue or over-marking)")
    w = from_coords(step_bounded(y, x, ctx), ctx)
    if same_waterlines(w, complete(current, ctx)):
        return hold_or_fix(current, ctx, f"heuristic: {rule}, but already at the bound")
    return Proposal(w, "heuristic", 0.5, 0.0, 0.0, {}, {}, f"heuristic: {rule}")
