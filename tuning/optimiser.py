"""Waterline proposals: the least expected objective within one bounded step, over what the
traffic could be.

Per tuned profile the optimiser holds a :class:`~tuning.landscape.Landscape` (the simulator's
objective and KPIs as a function of traffic descriptors and waterlines, learned from fabricsim
sweeps) and a :class:`~tuning.estimator.TrafficEstimator` (the descriptors, and the objective
in place, from telemetry). A proposal for one (switch, priority):

1. the traffic: the profile posterior (the classifier's, tracked over cycles by the caller;
   one-hot on ``profile`` when none is given) and, per likely profile, the descriptors
   estimated from the group's median features, spread over the estimator's residual error
   (sigma points) -- what the switch cannot tell apart is averaged over, not guessed;
2. the candidates: every point of a coarse grid over one bounded step from the current set
   (Kmin and Kmax by up to 4 octaves, Pmax by up to 2), the static references within reach,
   then a finer grid around the best and the PFC knobs (alpha, headroom) at the best;
3. the score of a candidate: its predicted change of log J from the current set, averaged over
   the posterior and the sigma points, for every ensemble member (plus the online correction);
   mean + ``KAPPA`` x the members' spread, and a predicted loss for any plausible profile
   counted twice (``LOSS_AVERSION``: when the traffic could be either of two profiles, a move
   that helps one and hurts the other is not worth it). It moves only when the best candidate
   is predicted ``MIN_GAIN`` better and ``MIN_AGREEMENT`` of the members agree, preferring a
   static reference (the current set included) predicted within ``ANCHOR_MARGIN`` of the best,
   and leaving a reference for a set that is none only for ``LEAVE_REFERENCE`` x the needed
   gain; between near-equal best moves, the one heading for the landscape's best set of the
   whole box wins (``_prefer_heading``); when it would hold at a set that is no reference,
   it *settles* on a reference within
   one step that is predicted no worse (``_settle_pick``);
   when it would hold only because plausible profiles want opposite moves, it *probes*: one
   step towards a reference setting that the likelier ones gain from (``_probe_pick``); the
   caller remembers the probe (``TrafficTracker``), and the next windows, taken where the
   profiles' telemetry differs, decide -- back to the old set with the helped profiles ruled
   out for ``PROBE_COOLDOWN`` cycles, or on with the others ruled out once they are
   unlikely (undecided: back, no verdict); otherwise it holds. From the SONiC default, the
   deep-to-shallow diagnostic (``tuning.diagnostic``, :meth:`_diagnostic`) takes the place
   of the model's move whenever the profiles that gain from shallower thresholds are
   plausible; once it has sent the tuner back there, no ramp shallower than that start is
   proposed for ``PROBE_COOLDOWN`` cycles (``_with_diagnostic_avoid``), twice as long for
   each time in a row it did so before (``cooldown``);
4. a conservative step-wise :func:`heuristic` instead when the models cannot be trusted
   (telemetry unlike anything in training: the members disagree on the current set itself),
   and for profiles without a model; ``idle`` holds.

Online: :meth:`WaterlineOptimiser.observe` compares the measured objective of an applied
proposal (``estimate_objective`` over the next window) with its prediction; the error becomes
a local correction (a kernel over descriptors and waterlines) of later predictions. The sets
of changes the daemon rolled back (``ProposalRequest.avoid``) and their neighbourhood
(``AVOID_RADIUS``) are not proposed while the caller lists them.

Every proposal is a full, guard-clean waterline set (``tuning.space``), never more than one
bounded step from the current one.
"""

from __future__ import annotations

import functools
import io
import json
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import joblib
import numpy as np

from tuning import descriptors, diagnostic, mixed
from tuning.diagnostic import DiagnosticModel, Verdict
from tuning.estimator import TrafficEstimator
from tuning.features import FEATURE_NAMES, PROFILES, bdp_bytes, jsonable
from tuning.guard import Waterline, WaterlinesLike, check_waterlines
from tuning.landscape import Landscape, from_target, kpis_of, to_target
from tuning.space import (
    PortContext,
    clip_coords,
    complete,
    from_coords,
    ramp_depth,
    reference_waterlines,
    same_waterlines,
    step_bounded,
    step_bounded_rows,
    to_coords,
    within_step,
)

KAPPA = 1.0  # uncertainty penalty: score = mean + KAPPA x std of the predicted change
# Move only when the penalised predicted objective drops by 12 % or more: over the
# evaluation's trajectories, predicted gains below that came true about half the time (the
# landscapes' precision), and a coin flip is no reason to touch a production switch ...
MIN_GAIN = 0.12
MIN_AGREEMENT = 0.8  # ... and this share of the ensemble members predicts an improvement
RESOLUTION = 0.3  # ... and this share of the landscape's out-of-bag error of changes
MAX_SPREAD = 0.8  # members' spread (log J) at the current set above which: heuristic
CONFIDENCE_SCALE = 0.5  # confidence = exp(-spread / scale) x the members' agreement
MIN_POSTERIOR = 0.05  # profiles less likely than this are left out of the average
LANDSCAPE_MOVES = ("model", "probe")  # the methods whose moves are checked for other ports
OTHERS_TOP = 32  # candidates a request's other ports are predicted on (the best by score)
POSTERIOR_STEP = 0.02  # the resolution a decision takes the posterior at ...
DESCRIPTOR_STEP = 0.05  # ... and the descriptors (their own units: log2, load)
LOSS_AVERSION = 1.0  # a predicted loss for a plausible profile counts (1 + this) times
ANCHOR_MARGIN = 0.15  # a static reference predicted within 15 % of the best is preferred
# Leaving a static reference for a set that is none needs this many times the needed gain:
# a reference is a known operating point, a prediction near the needed gain is within the
# landscape's error (measured: allreduce 100G s23 on the vendor guide, the oracle's pick,
# left it for a set predicted 23 % better that measured 43 % worse).
LEAVE_REFERENCE = 2.0
IDLE_POSTERIOR = 0.5  # a group at least this likely idle holds
# Identification probes (``_probe_pick``): when plausible profiles want opposite moves, a
# static reference where they behave differently is tried for one cycle.
PROBE_MIN_MASS = 0.3  # the profiles a probe helps are at least this likely ...
PROBE_RIVAL_MASS = 0.15  # ... and those it hurts at least this likely (else: no ambiguity)
PROBE_CONFIRM = 0.5  # after the probe, the helped profiles this likely and the hurt ones
PROBE_REJECT = 0.3  # less than this: confirmed; the helped ones less likely than this: back
# (in between: one more window). A confirmation rules the hurt profiles out, so they must
# have become unlikely, not merely less likely than the helped ones.
PROBE_WINDOW = 3  # ... checked for this many cycles after the probe (verification windows)
PROBE_COOLDOWN = 20  # cycles a verdict holds, and before a setting is probed from again
MAX_BACKOFF = 3  # a diagnostic sent back again and again waits at most 2 ** this as long
PROBE_OVERRIDE = 0.95  # a ruled-out profile this likely again: the traffic changed (not
# 0.8: a switch priority of incast ports the diagnostic had just found hurt by shallow
# thresholds read Hadoop at 0.81-0.92 at the SONiC default, and went shallow again)
PROBE_RULED_OUT_WEIGHT = 0.05  # what is left of a ruled-out profile's posterior
PROBE_SAME = 0.02  # octaves: the same waterline coordinates (device rounding)
PORT_RISK_GAP = 0.2  # a port's predicted risk this far above its group's: other traffic
AVOID_RADIUS = 0.5  # octaves (Kmin, Kmax / Kmin, Pmax) around a rolled-back set: skipped
# Sigma points: the estimate and +-SIGMA_SPREAD residual std along each descriptor, the centre
# weighted SIGMA_CENTRE (the 3-point Gauss-Hermite rule in one dimension).
SIGMA_SPREAD = math.sqrt(3.0)
SIGMA_CENTRE = 2.0 / 3.0
RESIDUAL_MEMORY = 500  # online observations kept per profile
RESIDUAL_LX = 0.75  # kernel widths of the online correction: octaves of the waterlines ...
RESIDUAL_LT = 0.5  # ... and residual standard deviations of the descriptors
RESIDUAL_PRIOR = 3.0  # pseudo-count of the prior (the landscape) against observations
# Candidate grids (octaves): the coarse grid spans one bounded step, the fine one refines.
COARSE_K = (-4.0, -2.0, 0.0, 2.0, 4.0)
COARSE_P = (-2.0, 0.0, 2.0)
FINE_K = (-1.0, 0.0, 1.0)
FINE_P = (-1.0, 0.0, 1.0)
# The whole search box, coarsely (absolute coordinates: log2 Kmin / BDP, log2 Kmax / Kmin,
# log2 Pmax): where the landscape puts the best set beyond one step -- the heading that breaks
# ties between one-step candidates the landscape cannot tell apart (``_prefer_heading``).
HEADING_K = (-6.0, -4.5, -3.0, -1.5, 0.0, 1.5, 3.0, 4.0)
HEADING_SPAN = (1.0, 3.0, 5.0)
HEADING_P = (-5.0, -3.0, -1.5, -0.3)
HEADING_CLOSER = 1.0  # octaves of ramp depth towards the heading: a move that heads for it
FINE_TOP = 1  # coarse candidates refined ...
REFINE_SHARE = 0.5  # ... when the coarse best is predicted at least this share of MIN_GAIN
# Descriptors estimated to within this share of their training spread are taken as known
# (no sigma points along them: their residual moves the landscape little, and costs rows).
WELL_ESTIMATED = 0.3

_F = {n: i for i, n in enumerate(FEATURE_NAMES)}
TUNED: tuple[str, ...] = tuple(descriptors.PROFILE_DESCRIPTORS)


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
    # what the caller remembers for the next decision (TrafficTracker.note_probe): a probe
    # (method "probe": {"from": coords before, "to": coords probed, "for"/"against": the
    # profiles it was predicted to help / hurt}) or the verdict on the last one (the same
    # record with "ruled_out")
    probe: dict[str, Any] | None = None
    # per other port of the request (``ProposalRequest.others``, same order), what the set
    # proposed would do to it: {"weights": profile -> weight, "change_pct": profile -> the
    # predicted change of its objective in % from the current set, "from_origin_pct": ...}
    others: tuple[dict[str, dict[str, float]], ...] = ()
    spared_others: bool = False  # a move was held because it would slow an other port down
    # the change takes the switch back to where a probe or the diagnostic left from (its
    # record's "home", else "from"): a set in place, and verified, before the experiment,
    # which the caller does not verify against the experiment's window (``way_back``)
    way_back: bool = False


@dataclass(frozen=True)
class ProposalRequest:
    """The inputs of :meth:`WaterlineOptimiser.propose`, for batched calls. ``posterior``:
    probabilities over ``features.PROFILES`` (None: certain of ``profile``); ``descriptors``:
    per profile, the traffic descriptors to plan with (``tuning.tracker``; None or a missing
    profile: estimated from ``features``)."""

    profile: str
    features: np.ndarray
    current: WaterlinesLike
    speed_gbps: int
    buffer_bytes: int
    cable_m: float
    mtu: int = 9100
    posterior: np.ndarray | None = None
    descriptors: dict[str, np.ndarray] | None = None
    probe: dict[str, Any] | None = None  # the last probe here (TrafficTracker.probe_view)
    # waterline coordinates of changes rolled back here (TrafficTracker.avoid_view), each
    # optionally followed by those of the set it was rolled back to: not proposed again
    # while they are listed, nor (with the set before) ramps further the same way
    avoid: tuple[tuple[float, ...], ...] = ()
    # ports that share the switch's waterlines but read as other traffic (``tuning.mixed``),
    # each (features, posterior): no set predicted to slow one of them down (from the current
    # set, or from ``origin``, the set the tuner found there) is proposed
    others: tuple[tuple[np.ndarray, np.ndarray], ...] = ()
    origin: WaterlinesLike | None = None
    # the group's own ports (key, features), when it has more than one: ``features`` is
    # their median, and the deep-to-shallow diagnostic also judges each port's own windows
    # (``diagnostic.with_port_risk``: one set for all of them must not harm any)
    ports: tuple[tuple[str, np.ndarray], ...] = ()


@dataclass
class ProfileModels:
    """What the optimiser knows of one profile."""

    landscape: Landscape
    estimator: TrafficEstimator
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Obs:
    theta: np.ndarray  # traffic descriptors, in residual standard deviations
    x: np.ndarray  # waterline coordinates
    r: float  # measured - predicted, log J


@dataclass
class _Traffic:
    """One request's traffic hypotheses: (profile, weight, sigma-point descriptors, weights)."""

    hypotheses: list[tuple[str, float, np.ndarray, np.ndarray]]
    theta_mean: dict[str, np.ndarray]


class WaterlineOptimiser:
    """Proposals (module docstring)."""

    def __init__(self, models: dict[str, ProfileModels] | None = None,
                 metadata: dict[str, Any] | None = None,
                 diagnostic: DiagnosticModel | None = None) -> None:
        self.models: dict[str, ProfileModels] = dict(models or {})
        self.metadata: dict[str, Any] = dict(metadata or {})
        self.diagnostic = diagnostic
        self._obs: dict[str, list[_Obs]] = {}

    # ------------------------------------------------------------------ public API
    def propose(self, profile: str, features: np.ndarray, current: WaterlinesLike, *,
                speed_gbps: int, buffer_bytes: int, cable_m: float, mtu: int = 9100,
                posterior: np.ndarray | None = None,
                descriptors: dict[str, np.ndarray] | None = None,
                probe: dict[str, Any] | None = None,
                avoid: Sequence[Sequence[float]] = (),
                others: Sequence[tuple[np.ndarray, np.ndarray]] = (),
                origin: WaterlinesLike | None = None,
                ports: Sequence[tuple[str, np.ndarray]] = ()) -> Proposal:
        """A guard-clean waterline set for a group's profile (or profile posterior) and its
        median features under ``current``."""
        return self.propose_batch([ProposalRequest(profile, np.asarray(features, dtype=float),
                                                   current, speed_gbps, buffer_bytes, cable_m,
                                                   mtu, posterior, descriptors, probe,
                                                   tuple(tuple(float(v) for v in a)
                                                         for a in avoid),
                                                   tuple(others), origin, tuple(ports))])[0]

    def propose_batch(self, requests: Sequence[ProposalRequest]) -> list[Proposal]:
        """:meth:`propose` for many groups. A decision depends on the features only through
        the posterior and the traffic descriptors (and the fallback rules): requests are taken
        at a resolution of ``POSTERIOR_STEP`` and ``DESCRIPTOR_STEP`` -- far finer than their
        uncertainty -- and equal ones are decided once (a fabric's many switches with alike
        traffic and the same waterlines), the fallback rules per request; a diagnostic under
        way reads its own windows, so only its search is shared (``_propose_many``). A
        switch's other ports (``ProposalRequest.others``) are not part of that: every move
        is checked against its own, and a model move that would slow them is decided again
        with them in the search (``_others_costs``) -- the best set that spares them, or a
        hold; a diagnostic's move is not (its path is not the search's)."""
        reqs = self._resolved(requests)
        base = [replace(rq, others=(), origin=None) for rq in reqs]
        # a diagnostic under way reads its own windows: decided on its own
        keys = [(i,) if _reads_windows(rq) else _request_key(rq) for i, rq in enumerate(base)]
        first: dict[tuple[Any, ...], int] = {}
        for i, k in enumerate(keys):
            first.setdefault(k, i)
        uniq = list(first.values())
        done = dict(zip(uniq, self._propose_many([base[i] for i in uniq]), strict=True))
        out = []
        for i, k in enumerate(keys):
            p = done[first[k]]
            if p.method == "heuristic" and first[k] != i:  # the rules read each own window
                p = self._propose_many([base[i]])[0]
            elif first[k] != i and p.method == "probe" and p.probe is not None and \
                    p.probe.get("diagnostic"):  # a diagnostic starts from its own windows
                p = replace(p, probe={**p.probe, **_start_windows(base[i])})
            out.append(p)
        moves = [i for i, (rq, p) in enumerate(zip(reqs, out, strict=True))
                 if rq.others and p.method in LANDSCAPE_MOVES and not returns_home(p)]
        if not moves:
            return out
        ctxs = [PortContext(int(reqs[i].speed_gbps), int(reqs[i].buffer_bytes),
                            float(reqs[i].cable_m), int(reqs[i].mtu)) for i in moves]
        checked = self._spare_others(
            [reqs[i] for i in moves], ctxs, self._others_traffic([reqs[i] for i in moves], ctxs),
            [clip_coords(to_coords(reqs[i].current, c), c) for i, c in zip(moves, ctxs,
                                                                          strict=True)],
            [out[i] for i in moves])
        # a diagnostic's move is its path's, whatever the search finds: deciding it again
        # would only hold it again
        redo = [i for i, p in zip(moves, checked, strict=True)
                if p.spared_others and out[i].method == "model"
                and not (out[i].probe or {}).get("diagnostic")]
        for i, p in zip(moves, checked, strict=True):
            out[i] = p
        if redo:
            for i, p in zip(redo, self._propose_many([reqs[i] for i in redo]), strict=True):
                out[i] = p
        return out

    def _resolved(self, requests: Sequence[ProposalRequest]) -> list[ProposalRequest]:
        """Requests with their posterior and every likely profile's descriptors filled in
        (estimated in one pass where missing) and rounded to the decision's resolution."""
        posts = np.stack([_posterior(rq) for rq in requests]) if requests else np.zeros(
            (0, len(PROFILES)))
        need = [i for i, rq in enumerate(requests)
                if any(p not in (rq.descriptors or {}) for p in self.models
                       if posts[i, PROFILES.index(p)] >= MIN_POSTERIOR)]
        est = self.estimate_descriptors_batch(
            np.stack([np.asarray(requests[i].features, dtype=float).reshape(-1)
                      for i in need]), posts[need]) if need else []
        filled = dict(zip(need, est, strict=True))
        out = []
        for i, rq in enumerate(requests):
            desc = {**filled.get(i, {}), **(rq.descriptors or {})}
            post = posts[i].copy()
            for name in ruled_out(rq.probe):  # a probe's verdict, unless the traffic changed
                k = PROFILES.index(name)
                if post[k] < PROBE_OVERRIDE:
                    post[k] *= PROBE_RULED_OUT_WEIGHT
            post = post / post.sum() if post.sum() > 0 else posts[i]
            post = np.round(post / POSTERIOR_STEP) * POSTERIOR_STEP
            post = post / post.sum() if post.sum() > 0 else posts[i]
            out.append(replace(rq, posterior=post, descriptors={
                p: np.round(np.asarray(v, dtype=float) / DESCRIPTOR_STEP) * DESCRIPTOR_STEP
                for p, v in desc.items()}))
        return out

    def observe(self, profile: str, features: np.ndarray, waterlines: WaterlinesLike,
                objective: float, *, speed_gbps: int | None = None,
                buffer_bytes: int | None = None, cable_m: float | None = None) -> None:
        """Learn from an applied change: ``objective`` was measured (``estimate_objective``)
        over a window with ``features`` under ``waterlines``. Its difference to the
        landscape's prediction becomes a local correction of later predictions."""
        pm = self.models.get(profile)
        if pm is None or not math.isfinite(objective) or objective < 0:
            return
        f = np.asarray(features, dtype=float).reshape(1, -1)
        ctx = _ctx_of(f[0], speed_gbps, buffer_bytes, cable_m)
        theta = self._theta_mean(pm, f[0], ctx)
        x = clip_coords(to_coords(waterlines, ctx), ctx)
        predicted = float(pm.landscape.predict(theta, x)[:, 0, 0].mean())
        r = float(to_target(np.array([objective]))[0]) - predicted
        obs = self._obs.setdefault(profile, [])
        obs.append(_Obs(self._theta_std(pm, theta), x, r))
        del obs[:-RESIDUAL_MEMORY]

    def predicted_changes(self, features: np.ndarray, posterior: np.ndarray,
                          current: WaterlinesLike, proposed: WaterlinesLike, *,
                          speed_gbps: int, buffer_bytes: int, cable_m: float, mtu: int = 9100,
                          origin: WaterlinesLike | None = None
                          ) -> dict[str, tuple[float, float, float]]:
        """What a change would do to traffic read as ``posterior`` with ``features`` (a port
        that shares a switch's waterlines but not its dominant profile, ``tuning.mixed``): per
        tuned profile at least ``MIN_POSTERIOR`` likely, its weight and the landscape's
        predicted change of log J to ``proposed`` from ``current`` and from ``origin`` (the
        current set when None)."""
        ctx = PortContext(int(speed_gbps), int(buffer_bytes), float(cable_m), int(mtu))
        sets = (current, proposed, origin if origin is not None else current)
        x = np.vstack([clip_coords(to_coords(w, ctx), ctx) for w in sets])
        got = self._changes_for(features, posterior, current, ctx, x)
        return {p: (w, float(d[1]), float(d[1] - d[2])) for p, (w, d) in got.items()}

    def _changes_for(self, features: np.ndarray, posterior: np.ndarray,
                     current: WaterlinesLike, ctx: PortContext, cands: np.ndarray
                     ) -> dict[str, tuple[float, np.ndarray]]:
        """Per tuned profile at least ``MIN_POSTERIOR`` likely for this traffic: its weight
        and the predicted change of log J from candidate 0 to each candidate."""
        rq = ProposalRequest("idle", np.zeros(0), current, ctx.speed_gbps, ctx.buffer_bytes,
                             ctx.cable_m, ctx.mtu, others=((features, posterior),))
        return self._changes_on(self._others_traffic([rq], [ctx])[0], [cands])[0]

    def _others_traffic(self, reqs: Sequence[ProposalRequest], ctxs: Sequence[PortContext]
                        ) -> list[list[_Traffic]]:
        """Per request, the traffic hypotheses of each of its other ports (one estimator pass
        per profile for all of them)."""
        flat = [(k, ProposalRequest(PROFILES[int(np.argmax(q))], np.asarray(f, dtype=float),
                                    rq.current, ctx.speed_gbps, ctx.buffer_bytes, ctx.cable_m,
                                    ctx.mtu, np.asarray(q, dtype=float).reshape(-1)))
                for k, (rq, ctx) in enumerate(zip(reqs, ctxs, strict=True))
                for f, q in rq.others]
        traffic = self._traffic_many([r for _k, r in flat],
                                     [ctxs[k] for k, _r in flat]) if flat else []
        out: list[list[_Traffic]] = [[] for _ in reqs]
        for (k, _r), t in zip(flat, traffic, strict=True):
            out[k].append(t)
        return out

    def _changes_on(self, traffic: Sequence[_Traffic], rows: Sequence[np.ndarray]
                    ) -> list[dict[str, tuple[float, np.ndarray]]]:
        """Per traffic and its candidate rows: per plausible profile, its weight and the
        predicted change of log J from row 0 to each row (the mean over the ensemble and the
        descriptors' sigma points, with the online correction); one forward pass per
        profile."""
        parts = self._predict_many(traffic, rows) if traffic else []
        return [{p: (float(w), (pt[p] - pt[p][:, :1]).mean(axis=0))
                 for p, w, _pts, _wts in t.hypotheses}
                for t, pt in zip(traffic, parts, strict=True)]

    def _others_costs(self, reqs: Sequence[ProposalRequest], ctxs: Sequence[PortContext],
                      others: Sequence[Sequence[_Traffic]], cands: Sequence[np.ndarray],
                      totals: Sequence[np.ndarray], needs: Sequence[float]
                      ) -> list[np.ndarray]:
        """Per request with other ports (``others``: their traffic): +inf for the candidates
        predicted to slow one of them down (``tuning.mixed.harmful``) and for those not
        checked, 0 otherwise. Checked are the ``OTHERS_TOP`` best by ``totals`` of those that
        could be a move at all (predicted at least the needed gain ``needs``): a request's
        others are predicted on a few sets, not on its whole grid, and not at all where
        nothing is worth a move. All requests' other ports in one batch."""
        out = [np.zeros(len(c)) for c in cands]
        checked = [np.zeros(0, dtype=int) for _ in cands]
        traffic: list[_Traffic] = []
        rows: list[np.ndarray] = []
        owner: list[int] = []
        for k, (rq, ctx, c) in enumerate(zip(reqs, ctxs, cands, strict=True)):
            if not rq.others:
                continue
            out[k][:] = np.inf
            out[k][0] = 0.0  # the current set spares everyone
            top = np.argsort(totals[k], kind="stable")[:OTHERS_TOP]
            checked[k] = top[(top != 0) & (totals[k][top] <= -needs[k])]
            if not len(checked[k]):
                continue
            mine = np.vstack([c[:1], c[checked[k]], _origin_row(rq, ctx)])
            for t in others[k]:
                traffic.append(t)
                rows.append(mine)
                owner.append(k)
        bad = {k: np.zeros(len(checked[k]), dtype=bool) for k in set(owner)}
        for k, got in zip(owner, self._changes_on(traffic, rows), strict=True):
            bad[k] |= mixed.harmful({p: (w, d[1:-1], d[1:-1] - d[-1])
                                     for p, (w, d) in got.items()}, len(checked[k]))
        for k, b in bad.items():
            out[k][checked[k][~b]] = 0.0
        return out

    def _spare_others(self, reqs: Sequence[ProposalRequest], ctxs: Sequence[PortContext],
                      others: Sequence[Sequence[_Traffic]], xcur: Sequence[np.ndarray],
                      props: Sequence[Proposal]) -> list[Proposal]:
        """Every landscape move (model or probe) of a request with other ports (``others``:
        their traffic; ``xcur``: the current set's coordinates), checked once more as
        proposed (the diagnostic's path, settles and probes are chosen outside the search):
        held when it would slow an other port down; each proposal carries what its set does
        to them (``Proposal.others``)."""
        traffic: list[_Traffic] = []
        rows: list[np.ndarray] = []
        owner: list[int] = []
        for k, (rq, ctx, p) in enumerate(zip(reqs, ctxs, props, strict=True)):
            mine = np.vstack([xcur[k], clip_coords(to_coords(p.waterlines, ctx), ctx),
                              _origin_row(rq, ctx)[0]])
            for t in others[k]:
                traffic.append(t)
                rows.append(mine)
                owner.append(k)
        report: dict[int, list[dict[str, dict[str, float]]]] = defaultdict(list)
        harm: dict[int, tuple[str, float]] = {}  # the first other port slowed, its change
        for k, got in zip(owner, self._changes_on(traffic, rows), strict=True):
            trio = {p: (w, float(d[1]), float(d[1] - d[2])) for p, (w, d) in got.items()}
            report[k].append({
                "weights": {p: round(w, 3) for p, (w, _c, _o) in trio.items()},
                "change_pct": {p: round(100 * math.expm1(c), 1)
                               for p, (_w, c, _o) in trio.items()},
                "from_origin_pct": {p: round(100 * math.expm1(o), 1)
                                    for p, (_w, _c, o) in trio.items()}})
            worst = mixed.harm(trio)
            if worst is not None and k not in harm:
                harm[k] = (f"other port {len(report[k])}", worst[1])
        out = []
        for k, (rq, ctx, p) in enumerate(zip(reqs, ctxs, props, strict=True)):
            if k not in report:
                out.append(p)
                continue
            spared = k in harm
            if spared:
                which, change = harm[k]
                held = hold_or_fix(rq.current, ctx, f"hold: {p.method} move "
                                   f"{', '.join(_moves(complete(rq.current, ctx), p.waterlines))}"
                                   f" would slow {which} {100 * math.expm1(change):.0f} % "
                                   f"(the switch's other traffic); {p.reason}")
                p = replace(held, confidence=p.confidence,
                            predicted_objective_current=p.predicted_objective_current,
                            predicted_objective_proposed=p.predicted_objective_current,
                            predicted_kpis_current=p.predicted_kpis_current,
                            predicted_kpis_proposed=p.predicted_kpis_current,
                            probe=None if p.method == "probe" else p.probe)
            out.append(replace(p, others=tuple(report[k]), spared_others=spared))
        return out

    def estimate_objective(self, profile: str, features: np.ndarray) -> float:
        """The objective of the window's current waterlines, estimated from telemetry."""
        return float(self.estimate_objective_batch(profile, np.atleast_2d(features))[0])

    def estimate_objective_batch(self, profile: str, features: np.ndarray) -> np.ndarray:
        pm = self.models.get(profile)
        f = np.atleast_2d(np.asarray(features, dtype=float))
        if pm is None:
            return np.zeros(len(f))
        return from_target(pm.estimator.measured(f))

    def estimate_descriptors(self, features: np.ndarray, posterior: np.ndarray | None = None
                             ) -> dict[str, np.ndarray]:
        """Per tuned profile (those at least ``MIN_POSTERIOR`` likely, when a posterior is
        given): the traffic descriptors of a window's features."""
        post = None if posterior is None else np.atleast_2d(posterior)
        return self.estimate_descriptors_batch(np.atleast_2d(features), post)[0]

    def estimate_descriptors_batch(self, features: np.ndarray,
                                   posteriors: np.ndarray | None = None
                                   ) -> list[dict[str, np.ndarray]]:
        """:meth:`estimate_descriptors` of many windows (one estimator pass per profile)."""
        f = np.atleast_2d(np.asarray(features, dtype=float))
        out: list[dict[str, np.ndarray]] = [{} for _ in range(len(f))]
        for p, pm in self.models.items():
            idx = np.arange(len(f)) if posteriors is None else np.flatnonzero(
                np.asarray(posteriors)[:, PROFILES.index(p)] >= MIN_POSTERIOR)
            if not len(idx):
                continue
            for i, row in zip(idx, pm.estimator.estimate(f[idx]), strict=True):
                out[int(i)][p] = row
        return out

    # ------------------------------------------------------------------ bytes
    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        obs = {p: [(o.theta, o.x, o.r) for o in v] for p, v in self._obs.items()}
        # the metadata as plain JSON values: it shares no objects with the models, so the
        # bytes do not depend on how the object was built (trained or loaded)
        meta = json.loads(json.dumps(self.metadata, default=jsonable))
        joblib.dump({"kind": "WaterlineOptimiser", "version": 2, "models": self.models,
                     "diagnostic": self.diagnostic, "metadata": meta, "observations": obs},
                    buf, compress=3)
        return buf.getvalue()

    def settled(self) -> WaterlineOptimiser:
        """This optimiser as loaded from its own bytes, once those bytes no longer change
        on a round trip (a freshly trained object pickles its arrays' sharing differently
        from a loaded one): saving a loaded model then reproduces its file and sha256."""
        data = self.to_bytes()
        for _ in range(4):
            opt = WaterlineOptimiser.from_bytes(data)
            again = opt.to_bytes()
            if again == data:
                return opt
            data = again
        return WaterlineOptimiser.from_bytes(data)

    @classmethod
    def from_bytes(cls, data: bytes) -> WaterlineOptimiser:
        obj = joblib.load(io.BytesIO(data))
        if not isinstance(obj, dict) or obj.get("kind") != "WaterlineOptimiser" \
                or obj.get("version") != 2:
            raise ValueError("not a serialised WaterlineOptimiser (version 2)")
        opt = cls(obj["models"], obj["metadata"], obj.get("diagnostic"))
        for p, rows in (obj.get("observations") or {}).items():
            opt._obs[p] = [_Obs(np.asarray(t), np.asarray(x), float(r)) for t, x, r in rows]
        return opt

    # ------------------------------------------------------------------ internals
    @staticmethod
    def _theta_mean(pm: ProfileModels, f: np.ndarray, ctx: PortContext) -> np.ndarray:
        traffic = pm.estimator.estimate(f.reshape(1, -1))[0]
        return np.concatenate([traffic, descriptors.context(ctx.speed_gbps, ctx.cable_m,
                                                            ctx.buffer_bytes)])

    @staticmethod
    def _theta_std(pm: ProfileModels, theta: np.ndarray) -> np.ndarray:
        k = len(pm.estimator.residual_std)
        scale = np.concatenate([np.maximum(pm.estimator.residual_std, 1e-3),
                                np.ones(len(theta) - k)])
        out: np.ndarray = theta / scale
        return out

    def _traffic_many(self, reqs: Sequence[ProposalRequest], ctxs: Sequence[PortContext]
                      ) -> list[_Traffic]:
        """Every request's traffic hypotheses (the estimators run once per profile)."""
        posts = [_posterior(rq) for rq in reqs]
        feats = np.stack([np.asarray(rq.features, dtype=float).reshape(-1) for rq in reqs])
        weights: list[dict[str, float]] = []
        for post in posts:
            busy = {p: float(post[PROFILES.index(p)]) for p in TUNED if p in self.models}
            total = sum(busy.values())
            weights.append({p: w / total for p, w in busy.items()
                            if total > 0 and w / total >= MIN_POSTERIOR})
        out = [_Traffic([], {}) for _ in reqs]
        for p in TUNED:
            idx = [i for i, w in enumerate(weights) if p in w]
            if not idx:
                continue
            pm = self.models[p]
            k = len(pm.estimator.descriptors)
            traffic: list[np.ndarray] = []
            missing: list[int] = []
            for j, i in enumerate(idx):
                g = (reqs[i].descriptors or {}).get(p)
                if g is not None and len(g) == k:
                    traffic.append(np.asarray(g, dtype=float))
                else:
                    traffic.append(np.zeros(k))
                    missing.append(j)
            if missing:
                rows = pm.estimator.estimate(feats[[idx[j] for j in missing]])
                for j, row in zip(missing, rows, strict=True):
                    traffic[j] = row
            context = {c: descriptors.context(c.speed_gbps, c.cable_m, c.buffer_bytes)
                       for c in {ctxs[i] for i in idx}}
            thetas = np.hstack([np.stack(traffic), np.stack([context[ctxs[i]] for i in idx])])
            pts, wts = _sigma_points(thetas, _uncertain(pm.estimator),
                                     pm.landscape.info.get("theta_low"),
                                     pm.landscape.info.get("theta_high"))
            for j, i in enumerate(idx):
                out[i].hypotheses.append((p, weights[i][p], pts[j], wts))
                out[i].theta_mean[p] = thetas[j]
        for t in out:
            t.hypotheses.sort(key=lambda h: -h[1])
        return out

    def _predict_many(self, traffic: Sequence[_Traffic], cands: Sequence[np.ndarray]
                      ) -> list[dict[str, np.ndarray]]:
        """Per request and traffic hypothesis (profile): log J (members x candidates) of its
        candidates, averaged over the sigma points, with the online correction; one forward
        pass per profile for all requests."""
        out: list[dict[str, np.ndarray]] = [{} for _ in cands]
        for p in TUNED:
            jobs = [(i, h) for i, t in enumerate(traffic) for h in t.hypotheses
                    if h[0] == p and len(cands[i])]
            if not jobs:
                continue
            pm = self.models[p]
            thetas = [np.repeat(h[2], len(cands[i]), axis=0) for i, h in jobs]
            xs = [np.tile(cands[i], (len(h[2]), 1)) for i, h in jobs]
            pred = pm.landscape.predict(np.concatenate(thetas), np.concatenate(xs))[:, :, 0]
            start = 0
            for i, h in jobs:
                n_pts, n_c = len(h[2]), len(cands[i])
                part = pred[:, start:start + n_pts * n_c].reshape(-1, n_pts, n_c)
                start += n_pts * n_c
                logj = np.tensordot(h[3], part, axes=([0], [1]))  # members x candidates
                out[i][p] = logj + self._correction(p, pm, traffic[i].theta_mean[p],
                                                    cands[i])
        return out

    def _outputs_many(self, traffic: Sequence[_Traffic], pairs: Sequence[np.ndarray]
                      ) -> list[np.ndarray]:
        """The most likely profile's mean outputs (OUTPUTS) at each request's candidates."""
        out: list[np.ndarray] = [np.zeros((len(c), 6)) for c in pairs]
        for p in TUNED:
            idx = [i for i, t in enumerate(traffic) if t.hypotheses and t.hypotheses[0][0] == p]
            if not idx:
                continue
            pm = self.models[p]
            hs = [traffic[i].hypotheses[0] for i in idx]
            thetas = [np.repeat(h[2], len(pairs[i]), axis=0) for i, h in zip(idx, hs,
                                                                             strict=True)]
            xs = [np.tile(pairs[i], (len(h[2]), 1)) for i, h in zip(idx, hs, strict=True)]
            pred = pm.landscape.predict(np.concatenate(thetas), np.concatenate(xs)).mean(
                axis=0)
            start = 0
            for i, h in zip(idx, hs, strict=True):
                n_pts, n_c = len(h[2]), len(pairs[i])
                part = pred[start:start + n_pts * n_c].reshape(n_pts, n_c, -1)
                start += n_pts * n_c
                out[i] = np.tensordot(h[3], part, axes=([0], [0]))
        return out

    def _correction(self, profile: str, pm: ProfileModels, theta: np.ndarray,
                    x: np.ndarray) -> np.ndarray:
        obs = self._obs.get(profile)
        if not obs:
            return np.zeros(len(x))
        to = np.stack([o.theta for o in obs])
        xo = np.stack([o.x for o in obs])
        ro = np.array([o.r for o in obs])
        tq = self._theta_std(pm, theta)
        dt = np.sum((tq[None, :] - to) ** 2, axis=1) / RESIDUAL_LT ** 2  # (obs,)
        dx = np.sum((x[:, None, :3] - xo[None, :, :3]) ** 2, axis=2) / RESIDUAL_LX ** 2
        w = np.exp(-0.5 * (dt[None, :] + dx))
        out: np.ndarray = (w @ ro) / (w.sum(axis=1) + RESIDUAL_PRIOR)
        return out

    def _propose_many(self, reqs: Sequence[ProposalRequest]) -> list[Proposal]:
        reqs = [_with_diagnostic_avoid(rq) for rq in reqs]
        ctxs = [PortContext(int(r.speed_gbps), int(r.buffer_bytes), float(r.cable_m),
                            int(r.mtu)) for r in reqs]
        out: list[Proposal | None] = [None] * len(reqs)
        live: list[int] = []
        for i, rq in enumerate(reqs):
            if _posterior(rq)[PROFILES.index("idle")] >= IDLE_POSTERIOR:
                out[i] = hold_or_fix(rq.current, ctxs[i], "idle: no traffic, nothing to tune")
            else:
                live.append(i)
        if not live:
            return [p for p in out if p is not None]
        traffic_all = self._traffic_many([reqs[i] for i in live], [ctxs[i] for i in live])
        work: list[int] = []
        for i, t in zip(live, traffic_all, strict=True):
            if t.hypotheses:
                work.append(i)
            else:
                out[i] = _checked(heuristic(reqs[i].features, reqs[i].current, ctxs[i]),
                                  reqs[i], ctxs[i])
        traffic_of = [t for i, t in zip(live, traffic_all, strict=True) if t.hypotheses]
        xcur_of = [clip_coords(to_coords(reqs[i].current, ctxs[i]), ctxs[i]) for i in work]
        # the search depends on the traffic hypotheses, the current set, its context and the
        # sets to avoid -- not on a probe's record, which only the decision reads: requests
        # alike in these (a fleet's switches in one diagnostic) are searched once; a
        # request with other ports searches with them, on its own
        found: dict[tuple[Any, ...], int] = {}  # search key -> its search's index
        rep: list[int] = []  # per request of ``work``: the index of its search
        firsts: list[int] = []  # per search: the first request of ``work`` it is for
        for k, (i, t, x) in enumerate(zip(work, traffic_of, xcur_of, strict=True)):
            key = (k,) if reqs[i].others else _search_key(reqs[i], ctxs[i], t, x)
            if key not in found:
                found[key] = len(firsts)
                firsts.append(k)
            rep.append(found[key])
        searched = [work[k] for k in firsts]
        traffic = [traffic_of[k] for k in firsts]
        xcur = [xcur_of[k] for k in firsts]
        # the candidate sets depend on the current set, its context and the picks so far,
        # not on the traffic: a fleet's many switches at one setting share them (``memo``;
        # never written to in place)
        memo: dict[tuple[Any, ...], tuple[np.ndarray, ...]] = {}
        keys: list[tuple[Any, ...]] = [(x.tobytes(), ctxs[i])
                                       for x, i in zip(xcur, searched, strict=True)]
        for key, x, i in zip(keys, xcur, searched, strict=True):
            if key not in memo:
                memo[key] = _start_sets(x, ctxs[i])
        starts = [memo[key] for key in keys]
        # 1. coarse grid over one step and the static references within reach
        towards = [s[0] for s in starts]
        cands = [s[1] for s in starts]
        parts = self._predict_many(traffic, cands)
        # 2. finer around the best coarse candidates, 3. the PFC knobs at the best -- only
        # where the coarse grid found a region worth refining (a refinement of a step is
        # not going to turn a small predicted gain into one worth a change)
        worth = -math.log1p(MIN_GAIN * REFINE_SHARE)
        hot = [float(_scores(pt, t).min()) <= worth for pt, t in zip(parts, traffic,
                                                                      strict=True)]
        for stage in (2, 3):
            extra = []
            for k, i in enumerate(searched):
                if not hot[k]:
                    extra.append(np.zeros((0, 5)))
                    continue
                sc = _scores(parts[k], traffic[k])
                picks = np.argsort(sc)[:FINE_TOP] if stage == 2 else np.array([np.argmin(sc)])
                keys[k] = (*keys[k], stage, picks.tobytes())
                if keys[k] not in memo:
                    memo[keys[k]] = (_refinement(stage, cands[k], picks, xcur[k], ctxs[i]),)
                extra.append(memo[keys[k]][0])
            more = self._predict_many(traffic, extra)
            cands = [np.vstack([c, e]) for c, e in zip(cands, extra, strict=True)]
            parts = [{p: np.concatenate([a[p], b[p]], axis=1) if p in b else a[p] for p in a}
                     for a, b in zip(parts, more, strict=True)]
        statics = [s[2] for s in starts]
        needs = [self._needed_gain(t) for t in traffic]
        totals = [_scores(pt, t) + _pfc_cost(c, nd) + _avoid_cost(c, reqs[i].avoid)
                  for pt, t, c, nd, i in zip(parts, traffic, cands, needs, searched, strict=True)]
        others = self._others_traffic([reqs[i] for i in searched],
                                      [ctxs[i] for i in searched])
        spare = self._others_costs([reqs[i] for i in searched], [ctxs[i] for i in searched],
                                   others, cands, totals, needs)
        totals = [t + o for t, o in zip(totals, spare, strict=True)]
        bests = [_prefer_static(sc, c, st) for sc, c, st in zip(totals, cands, statics,
                                                                strict=True)]
        # the heading (``_prefer_heading``), only where it could change the pick
        rivals = [_heading_rivals(totals[k], cands[k], statics[k], bests[k], needs[k])
                  if hot[k] else np.zeros(len(cands[k]), dtype=bool) for k in range(len(searched))]
        ask = [k for k, r in enumerate(rivals) if r.any()]
        for k, h in zip(ask, self._headings([traffic[k] for k in ask], [xcur[k] for k in ask],
                                            [ctxs[searched[k]] for k in ask]), strict=True):
            bests[k] = _prefer_heading(totals[k], cands[k], bests[k], rivals[k], h)
        outputs = self._outputs_many(traffic, [c[[0, b]] for c, b in zip(cands, bests,
                                                                        strict=True)])
        verdicts = self._verdicts([reqs[i] for i in work], xcur_of)
        for k, (i, r) in enumerate(zip(work, rep, strict=True)):
            out[i] = self._decide(reqs[i], ctxs[i], traffic[r], cands[r], parts[r], bests[r],
                                  outputs[r], towards[r], verdicts[k])
        moves = [(r, i, prop) for i, r in zip(work, rep, strict=True) if reqs[i].others
                 and (prop := out[i]) is not None and prop.method in LANDSCAPE_MOVES
                 and not returns_home(prop)]
        spared = self._spare_others([reqs[i] for _k, i, _p in moves],
                                    [ctxs[i] for _k, i, _p in moves],
                                    [others[k] for k, _i, _p in moves],
                                    [cands[k][0] for k, _i, _p in moves],
                                    [prop for _k, _i, prop in moves])
        for (_k, i, _p), prop in zip(moves, spared, strict=True):
            out[i] = prop
        return [p for p in out if p is not None]

    def _headings(self, traffic: Sequence[_Traffic], xcur: Sequence[np.ndarray],
                  ctxs: Sequence[PortContext]) -> list[np.ndarray]:
        """Where the landscape puts the best set of the whole box (``_heading_grid``), per
        request; one forward pass per profile."""
        boxes = [_heading_grid(x, c) for x, c in zip(xcur, ctxs, strict=True)]
        parts = self._predict_many(traffic, [np.vstack([x[None, :], b])
                                             for x, b in zip(xcur, boxes, strict=True)])
        return [b[int(np.argmin(_scores(pt, t)[1:]))]
                for b, pt, t in zip(boxes, parts, traffic, strict=True)]

    def _verdicts(self, reqs: Sequence[ProposalRequest], xcur: Sequence[np.ndarray]
                  ) -> list[Verdict | None]:
        """The diagnostic's verdict for every request whose diagnostic awaits one (a window
        after its step: the first stage; a window after reaching the vendor guide: the
        second), each stage in one pass; None for the others."""
        out: list[Verdict | None] = [None] * len(reqs)
        if self.diagnostic is None:
            return out
        stages = [_diagnostic_stage(rq.probe, x) for rq, x in zip(reqs, xcur, strict=True)]
        for stage in ("verdict", "check"):
            due = [k for k, st in enumerate(stages) if st == stage]
            if not due:
                continue
            rec = [reqs[k].probe or {} for k in due]
            now = np.stack([np.asarray(reqs[k].features, dtype=float).reshape(-1)
                            for k in due])
            start = np.array([r["features"] for r in rec], dtype=float)
            ports = [_port_windows(r, reqs[k], stage) for r, k in zip(rec, due, strict=True)]
            if stage == "verdict":
                got = self.diagnostic.verdicts(start, now, ports)
            else:
                got = self.diagnostic.checks(
                    start, np.array([r["step_features"] for r in rec], dtype=float), now,
                    ports)
            for k, v in zip(due, got, strict=True):
                out[k] = v
        return out

    def _decide(self, rq: ProposalRequest, ctx: PortContext, traffic: _Traffic,
                cands: np.ndarray, parts: dict[str, np.ndarray], best: int,
                outputs: np.ndarray, towards: np.ndarray, verdict: Verdict | None = None
                ) -> Proposal:
        """The decision, with the verdict of a probe that just ended attached (``probe``:
        the caller remembers it; ``_resolved`` applies it to later posteriors)."""
        outcome = _probe_outcome(rq.probe, cands[0], traffic)
        prop = self._decide_core(rq, ctx, traffic, cands, parts, best, outputs, towards,
                                 outcome, verdict)
        if outcome is not None and prop.probe is None:
            prop = replace(prop, probe=outcome[1])
        if way_back(prop, cands[0], ctx):
            prop = replace(prop, way_back=True)
        return _carry_hold(prop, rq.probe)

    def _decide_core(self, rq: ProposalRequest, ctx: PortContext, traffic: _Traffic,
                     cands: np.ndarray, parts: dict[str, np.ndarray], best: int,
                     outputs: np.ndarray, towards: np.ndarray,
                     outcome: tuple[np.ndarray | None, dict[str, Any]] | None,
                     verdict: Verdict | None = None) -> Proposal:
        logj = _mix(parts, traffic)
        spread = float(logj[:, 0].std())
        if spread > MAX_SPREAD:
            h = heuristic(rq.features, rq.current, ctx)
            return _checked(Proposal(h.waterlines, h.method, 0.0, 0.0, 0.0, {}, {},
                                     f"models unsure of this traffic (spread {spread:.2f}); "
                                     + h.reason), rq, ctx)
        score = _scores(parts, traffic)
        diff = logj - logj[:, :1]
        agree = float(np.mean(diff[:, best] < 0)) if best else 1.0
        conf = float(math.exp(-spread / CONFIDENCE_SCALE)) * agree
        mu = logj.mean(axis=0)
        j_cur = float(from_target(mu[0]))
        bdp = bdp_bytes(ctx.speed_gbps)
        kp_cur = kpis_of(outputs[0], bdp)
        story = self._story(traffic)
        diag = self._diagnostic(rq, ctx, traffic, cands, parts, story, verdict)
        if diag is not None:
            w, method, reason, record = diag
            i = _row_of(cands, clip_coords(to_coords(w, ctx), ctx))
            j_new = j_cur if i is None else float(from_target(mu[i]))
            if method == "hold":
                return Proposal(_as_waterline(rq.current), method, conf, j_cur, j_cur, kp_cur,
                                kp_cur, reason, record)
            return _checked(Proposal(w, method, conf, j_cur, j_new, kp_cur, kp_cur, reason,
                                     record), rq, ctx)
        if outcome is not None and outcome[0] is not None:  # the probe disproved its profiles
            w = from_coords(outcome[0], ctx)
            others = [p for p, _wt, _pts, _wts in traffic.hypotheses if p not in
                      (rq.probe or {}).get("for", ())]
            return _checked(Proposal(
                w, "model", conf, j_cur, j_cur, kp_cur, kp_cur,
                f"{story}; the probe told the traffic apart ({', '.join(others) or 'other'} "
                f"more likely now): back to the setting before the probe", outcome[1]),
                rq, ctx)
        need = self._needed_gain(traffic)
        statics = _statics(cands[0], ctx, exact=True)
        if best and _is_reference(cands[0], statics) and not _is_reference(cands[best], statics):
            need *= LEAVE_REFERENCE
        move = not (best == 0 or score[best] > -need or agree < MIN_AGREEMENT)
        avoided = _avoid_cost(cands, rq.avoid)
        if not move and _may_probe(rq.probe, cands[0]):
            probe = _probe_pick(parts, traffic, cands, towards[~_avoided(towards, rq.avoid)])
            if probe is not None:
                i, helps, hurts, gain = probe
                w = from_coords(cands[i], ctx)
                j_new = float(from_target(mu[i]))
                reason = (f"{story}; probe: the likely profiles want opposite moves; "
                          f"{', '.join(helps)} would gain {100 * (1 - math.exp(gain)):.0f} % "
                          f"one step towards a reference setting, where their telemetry "
                          f"differs: probing it, back if they prove unlikely")
                rec = {"from": [float(v) for v in cands[0]], "to": [float(v) for v in cands[i]],
                       "for": helps, "against": hurts}
                return _checked(Proposal(w, "probe", conf, j_cur, j_new, kp_cur, kp_cur,
                                         reason, rec), rq, ctx)
        if not move:
            settle = _settle_pick(score + avoided, parts, traffic, cands, statics)
            if settle is not None:
                w = from_coords(cands[settle], ctx)
                j_new = float(from_target(mu[settle]))
                reason = (f"{story}; settle: the static reference "
                          f"{_reference_name(cands[settle], ctx)} is within one step and "
                          f"predicted no worse than the current set (the landscape cannot "
                          f"tell them apart): an operator's known setting is the safer of "
                          f"two equals; moving {', '.join(_moves(complete(rq.current, ctx), w))}")
                return _checked(Proposal(w, "model", conf, j_cur, j_new, kp_cur, kp_cur,
                                         reason), rq, ctx)
            why = ("no candidate within one step is predicted better" if best == 0 else
                   f"best candidate predicted {100 * (1 - math.exp(score[best])):.1f} % "
                   f"better (needs {100 * math.expm1(need):.0f} %), {100 * agree:.0f} % of the "
                   "ensemble agree")
            held = hold_or_fix(rq.current, ctx, f"{story}; hold: {why}")
            return Proposal(held.waterlines, held.method, conf, j_cur, j_cur, kp_cur, kp_cur,
                            held.reason)
        w = from_coords(cands[best], ctx)
        j_new = float(from_target(mu[best]))
        kp_new = kpis_of(outputs[1], bdp)
        moved = _moves(complete(rq.current, ctx), w)
        reason = (f"{story}; predicted objective {j_cur:.3g} -> {j_new:.3g} "
                  f"({100 * (1 - j_new / max(j_cur, 1e-12)):.0f} % lower, {100 * agree:.0f} % "
                  f"of the ensemble agree) moving {', '.join(moved) or 'nothing'}")
        # a move some plausible profile is predicted to lose from is taken as a probe: the
        # next windows judge it, and it is undone if the profiles it serves prove unlikely
        weights, d = _changes(parts, traffic, best)
        hurts = sorted(p for p in d if d[p] > 0 and weights[p] >= PROBE_RIVAL_MASS)
        if hurts:
            if not _may_probe(rq.probe, cands[0]):
                held = hold_or_fix(rq.current, ctx, f"{story}; hold: the best move would hurt "
                                   f"{', '.join(hurts)}, and a probe is under way or was "
                                   "just made from here")
                return Proposal(held.waterlines, held.method, conf, j_cur, j_cur, kp_cur,
                                kp_cur, held.reason)
            rec = {"from": [float(v) for v in cands[0]], "to": [float(v) for v in cands[best]],
                   "for": sorted(p for p in d if d[p] < 0), "against": hurts}
            return _checked(Proposal(w, "probe", conf, j_cur, j_new, kp_cur, kp_new,
                                     reason + f"; a probe: it would hurt {', '.join(hurts)}, "
                                     "undone if they prove likelier", rec), rq, ctx)
        return _checked(Proposal(w, "model", conf, j_cur, j_new, kp_cur, kp_new, reason),
                        rq, ctx)

    def _diagnostic(self, rq: ProposalRequest, ctx: PortContext, traffic: _Traffic,
                    cands: np.ndarray, parts: dict[str, np.ndarray], story: str,
                    v: Verdict | None) -> tuple[Waterline, str, str, dict[str, Any]] | None:
        """The deep-to-shallow diagnostic (``tuning.diagnostic``), with its record in the
        probe slot: its step from the SONiC default, whenever the profiles that gain from
        shallower thresholds (the landscapes' predicted change at the step) are at least
        ``PROBE_RIVAL_MASS`` likely and allreduce, which the classifier tells apart, is not
        the likely profile -- however unlikely the posterior makes the profiles that lose:
        incast read as Hadoop is read so confidently (a switch priority of incast ports at
        81-92 % Hadoop on the demo fabric), and the experiment's harm model, not the
        classifier, is what tells them apart; the first stage's verdict
        ``v`` one window after the step; the second stage's one window after reaching the
        vendor guide; the bounded steps back to the start when that reversed the verdict.
        None: it has nothing to say. Returns (waterlines, method, reason, record)."""
        if self.diagnostic is None:
            return None
        xcur = cands[0]
        probe = rq.probe
        stage = _diagnostic_stage(probe, xcur)
        if probe is not None and stage == "return":
            home = np.asarray(probe.get("home", probe["from"]), dtype=float)
            return _homeward(home, xcur, ctx, f"{story}; diagnostic: on the way back",
                             {k: val for k, val in probe.items() if k != "age"})
        if probe is not None and v is not None and stage in ("verdict", "check"):
            record = {k: val for k, val in probe.items() if k != "age"}
            why = f"{story}; diagnostic: {v.reason}"
            if stage == "check":
                record.update(checked=True, check=v.predicted)
                if v.go == "target":
                    return _as_waterline(rq.current), "hold", why + ": staying", record
                # the guide is avoided for a while (``_with_diagnostic_avoid``)
                record.update(rejected=True)
                if diagnostic.settled(str(probe.get("verdict", "")), v) == "step":
                    ruled = list(probe.get("ruled_out", ()))
                    record.update(returning=True, home=probe["to"])
                    where = "back to the step"
                else:
                    ruled = list(probe.get(v.rule_out, ())) if v.rule_out else []
                    record.update(ruled_out=ruled, returning=True, home=probe["from"])
                    where = "back to the start"
                goal = np.asarray(record["home"], dtype=float)
            else:
                ruled = list(probe.get(v.rule_out, ())) if v.rule_out else []
                record.update(ruled_out=ruled, verdict=v.go, predicted=v.predicted)
                if v.go == "start":
                    goal, where = np.asarray(probe["from"], dtype=float), "back to the start"
                else:  # on to the guide, whose own window decides (the second stage)
                    goal = diagnostic.path(xcur, ctx)[2]
                    record.update(step_features=_row(rq.features),
                                  port_step_features=_port_rows(rq.ports),
                                  guide=[float(x) for x in goal])
                    where = "on to the vendor guide, whose own window decides"
            if ruled:
                why += f" ({', '.join(ruled)} ruled out)"
            if record.get("returning"):
                return _homeward(goal, xcur, ctx, f"{why}: {where}", record)
            return from_coords(step_bounded(goal, xcur, ctx), ctx), "model", \
                f"{why}: {where}", record
        start, step, _target = diagnostic.path(xcur, ctx)
        if stage is not None or not diagnostic.at(xcur, start) or \
                not _may_probe(probe, xcur) or \
                _posterior(rq)[PROFILES.index("allreduce")] >= 0.5:
            return None
        i = _row_of(cands, step)
        # the last diagnostic's own hold on shallower ramps does not stop it trying again
        held = _held_shallow(probe)
        if i is None or _avoided(cands[i:i + 1], [a for a in rq.avoid if a != held])[0]:
            return None
        weights, d = _changes(parts, traffic, i)
        helps = sorted(p for p in d if d[p] < 0)
        hurts = sorted(p for p in d if d[p] > 0)
        if sum(weights[p] for p in helps) < PROBE_RIVAL_MASS:
            return None
        record = {"from": [float(v) for v in xcur], "to": [float(v) for v in cands[i]],
                  "for": helps, "against": hurts, "diagnostic": True, **_start_windows(rq)}
        if probe is not None and _went_back(probe) and _near(xcur, probe["from"]):
            record["backs"] = int(probe.get("backs", 0)) + 1  # the same again: ``cooldown``
        reason = (f"{story}; diagnostic: {', '.join(helps)} would gain from shallower "
                  f"thresholds, {', '.join(hurts)} would lose: one step towards the vendor "
                  "guide, where the next window tells them apart")
        return from_coords(cands[i], ctx), "probe", reason, record

    def _needed_gain(self, traffic: _Traffic) -> float:
        """The predicted gain (log J) a move needs: ``MIN_GAIN``, or ``RESOLUTION`` x the
        landscapes' own error (over the traffic hypotheses) where that is larger -- a
        landscape fitted to noisy outcomes cannot promise small gains. The error is that of
        predicted changes on traffic the landscape was not fitted to (out of bag, less each
        scenario's level: what a decision compares); models without it: the training RMSE."""
        rmse = 0.0
        for p, w, _pts, _wts in traffic.hypotheses:
            if p in self.models:
                info = self.models[p].landscape.info
                err = info.get("oob_shape_rmse_log_objective")
                rmse += w * float(err if err is not None else
                                  info.get("train_rmse_log_objective", 0.0))
        return max(math.log1p(MIN_GAIN), RESOLUTION * rmse)

    @staticmethod
    def _story(traffic: _Traffic) -> str:
        parts = []
        for p, w, _pts, _wts in traffic.hypotheses[:2]:
            theta = traffic.theta_mean[p]
            d = descriptors.PROFILE_DESCRIPTORS[p]
            desc = ", ".join(f"{n}={v:.2f}" for n, v in zip(d, theta, strict=False))
            parts.append(f"{p} {100 * w:.0f} % ({desc})")
        return "traffic " + "; ".join(parts)


# ---------------------------------------------------------------------------- helpers
def _posterior(rq: ProposalRequest) -> np.ndarray:
    if rq.posterior is not None:
        p = np.clip(np.asarray(rq.posterior, dtype=float).reshape(-1), 0.0, None)
        if len(p) == len(PROFILES) and p.sum() > 0:
            out: np.ndarray = p / p.sum()
            return out
    one = np.zeros(len(PROFILES))
    one[PROFILES.index(rq.profile) if rq.profile in PROFILES else 0] = 1.0
    return one


def _request_key(rq: ProposalRequest) -> tuple[Any, ...]:
    """What a (resolved) request's model decision depends on, its other ports aside
    (``propose_batch`` checks those per request) and its windows (``_reads_windows``)."""
    c = rq.current
    post = None if rq.posterior is None else tuple(np.round(np.asarray(rq.posterior), 6))
    desc = None if rq.descriptors is None else tuple(
        (p, tuple(np.round(np.asarray(v, dtype=float), 6))) for p, v in
        sorted(rq.descriptors.items()))
    probe = None if rq.probe is None else _probe_key(rq.probe)
    avoid = tuple(tuple(round(float(v), 6) for v in a) for a in rq.avoid)
    return (rq.profile, desc, int(c.kmin_bytes), int(c.kmax_bytes), round(float(c.pmax), 9),
            c.alpha, c.headroom_bytes, c.xoff_bytes, c.xon_bytes, rq.speed_gbps,
            rq.buffer_bytes, rq.cable_m, rq.mtu, post, probe, avoid)


def _reads_windows(rq: ProposalRequest) -> bool:
    """Whether a request's decision reads its own windows (a diagnostic under way), not only
    what ``_request_key`` holds."""
    return bool(rq.probe and rq.probe.get("diagnostic") and not rq.probe.get("checked"))


def _search_key(rq: ProposalRequest, ctx: PortContext, traffic: _Traffic, xcur: np.ndarray
                ) -> tuple[Any, ...]:
    """What a request's search (``_propose_many``) depends on: its traffic hypotheses, the
    current set's coordinates, their context and the sets to avoid."""
    return (xcur.tobytes(), ctx, tuple(tuple(round(float(v), 9) for v in a) for a in rq.avoid),
            tuple((p, w, pts.tobytes(), wts.tobytes(), traffic.theta_mean[p].tobytes())
                  for p, w, pts, wts in traffic.hypotheses))


# a diagnostic's recorded windows: compared as arrays, not as text
_WINDOW_RECORDS = ("features", "step_features", "port_features", "port_step_features")


def _probe_key(probe: dict[str, Any]) -> tuple[Any, ...]:
    """A probe record as part of a request's key: its windows as bytes of their values."""
    rest = json.dumps({k: v for k, v in probe.items() if k not in _WINDOW_RECORDS},
                      sort_keys=True, default=jsonable)
    windows: list[tuple[Any, ...]] = []
    for name in _WINDOW_RECORDS:
        got = probe.get(name)
        if isinstance(got, dict):
            windows.append((name, tuple(sorted(got)), np.asarray(
                [got[k] for k in sorted(got)], dtype=float).tobytes()))
        elif got is not None:
            windows.append((name, np.asarray(got, dtype=float).tobytes()))
    return rest, tuple(windows)


def _ctx_of(f: np.ndarray, speed_gbps: int | None, buffer_bytes: int | None,
            cable_m: float | None) -> PortContext:
    if speed_gbps is None:
        s = int(np.rint(2.0 ** f[_F["log_speed_gbps"]]))
        speed_gbps = min((10, 25, 40, 50, 100, 200, 400), key=lambda v: abs(v - s))
    from fabricsim.buffers import default_buffer_bytes

    return PortContext(int(speed_gbps), int(buffer_bytes or default_buffer_bytes(speed_gbps)),
                       float(cable_m if cable_m is not None else 3.0))


def _uncertain(est: TrafficEstimator) -> np.ndarray:
    """The residual std of each descriptor, 0 for the well-estimated ones."""
    resid = np.asarray(est.residual_std, dtype=float)
    spread = np.asarray(est.info.get("target_std", resid), dtype=float)
    out: np.ndarray = np.where(resid > WELL_ESTIMATED * spread, resid, 0.0)
    return out


def _sigma_points(thetas: np.ndarray, resid: np.ndarray, low: Any, high: Any
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Per descriptor vector (rows of ``thetas``): itself and +-SIGMA_SPREAD residual std
    along each traffic descriptor with a residual, clipped into the training range
    (vectors x points x descriptors); the points' weights sum to 1."""
    axes = np.flatnonzero(np.asarray(resid) > 0)
    k = len(axes)
    offsets = np.zeros((1 + 2 * k, thetas.shape[1]))
    for n, i in enumerate(axes):
        step = SIGMA_SPREAD * float(resid[i])
        offsets[1 + 2 * n, i] = -step
        offsets[2 + 2 * n, i] = step
    arr = thetas[:, None, :] + offsets[None, :, :]
    if low is not None and high is not None:
        arr = np.clip(arr, np.asarray(low, dtype=float), np.asarray(high, dtype=float))
    wts = np.full(1 + 2 * k, (1.0 - SIGMA_CENTRE) / max(1, 2 * k))
    wts[0] = SIGMA_CENTRE if k else 1.0
    return arr, wts


def _prefer_static(score: np.ndarray, cands: np.ndarray, statics: np.ndarray) -> int:
    """The best candidate -- or a static reference (exact, within one step) the model
    cannot tell from it (``ANCHOR_MARGIN``): an operator's well-known setting is the safer of
    two equals, and the way back to where a switch was."""
    best = int(np.argmin(score))
    if best == 0 or not len(statics):
        return best
    near = np.flatnonzero(score <= score[best] + math.log1p(ANCHOR_MARGIN))
    is_ref = np.any(np.all(np.abs(statics[None, :, :] - cands[near][:, None, :]) < 1e-6,
                           axis=2), axis=1)
    # the current set first, when it is a reference: no move between near-equals
    if not is_ref.any():
        return best
    return int(min(near[is_ref].tolist(), key=lambda k: (k != 0, score[k])))


def _heading_rivals(score: np.ndarray, cands: np.ndarray, statics: np.ndarray, best: int,
                    tol: float) -> np.ndarray:
    """Mask of the candidates a heading could pick instead of ``best`` (``_prefer_heading``):
    when ``best`` is the plain best and no static reference, those predicted better than the
    current set and within ``tol`` (the needed gain: the landscape's resolution) of it that
    move the ramp's depth (the mean of log2 Kmin and log2 Kmax) ``HEADING_CLOSER`` or more,
    not the way ``best`` moves it."""
    none = np.zeros(len(score), dtype=bool)
    if best == 0 or best != int(np.argmin(score)) or _is_reference(cands[best], statics):
        return none
    move = ramp_depth(cands) - ramp_depth(cands[:1])
    out: np.ndarray = ((score <= score[best] + tol) & (score < 0.0)
                       & (np.abs(move) >= HEADING_CLOSER) & (move * move[best] <= 0.0))
    return out


def _prefer_heading(score: np.ndarray, cands: np.ndarray, best: int, rivals: np.ndarray,
                    heading: np.ndarray) -> int:
    """``best`` -- unless it moves the ramp's depth away from the heading (where the
    landscape puts the best set of the whole box, ``HEADING_CLOSER`` or more away): then the
    best of the ``rivals`` (``_heading_rivals``) that takes the depth towards it, if any.
    The step bound is a safety limit per change, not a horizon: from the SONiC default a
    step to deeper thresholds and one to shallower ones can score alike, and the deeper one
    can end in a basin worse than the shallow optimum (allreduce, 20 flows at 100G: 0.99 vs
    0.94 after the first step, oracle 0.72; measured). Only the direction is taken from the
    heading: the landscape's error is small next to the gap between basins, not next to the
    detail inside one (taking the point nearest the heading instead lost two evaluation
    rows)."""
    move = ramp_depth(cands) - ramp_depth(cands[:1])
    way = float(ramp_depth(heading[None, :])[0] - ramp_depth(cands[:1])[0])
    if abs(way) <= HEADING_CLOSER or move[best] * way > 0:
        return best
    ok = rivals & (move * way > 0)
    if not np.any(ok):
        return best
    return int(np.flatnonzero(ok)[int(np.argmin(score[ok]))])


def _settle_pick(score: np.ndarray, parts: dict[str, np.ndarray], traffic: _Traffic,
                 cands: np.ndarray, statics: np.ndarray) -> int | None:
    """When the tuner would hold at a set that is no static reference: the exact reference
    within one step (ECN part; the current PFC knobs) that is predicted no worse -- the
    members' mean plus ``KAPPA`` x their spread, loss aversion included (``score`` <= 0)
    -- and that no plausible profile is predicted to lose from; the best such. A bounded
    step towards a reference (a probe's, or the model's) often ends short of it, at a point
    the landscape cannot tell from it; the reference is the operator's validated setting.
    None: the current set is a reference, or no reference qualifies."""
    if not len(statics) or np.any(np.all(np.abs(statics - cands[0]) < 1e-6, axis=1)):
        return None
    pick: int | None = None
    for i in np.flatnonzero(_among(cands, statics)).tolist():
        if i == 0 or score[i] > 0:
            continue
        weights, d = _changes(parts, traffic, i)
        if any(d[p] > 0 and weights[p] >= PROBE_RIVAL_MASS for p in d):
            continue
        if pick is None or score[i] < score[pick]:
            pick = i
    return pick


def _among(cands: np.ndarray, sets: np.ndarray) -> np.ndarray:
    """Per candidate, whether it is one of ``sets`` (all coordinates)."""
    if not len(sets):
        return np.zeros(len(cands), dtype=bool)
    out: np.ndarray = np.any(np.all(np.abs(cands[:, None, :] - sets[None, :, :]) < 1e-6,
                                    axis=2), axis=1)
    return out


def _is_reference(x: np.ndarray, statics: np.ndarray) -> bool:
    """Whether ``x``'s ECN part (Kmin, Kmax, Pmax) is one of the ``statics``'."""
    return bool(len(statics)) and bool(np.any(np.all(np.abs(statics[:, :3] - x[:3]) < 1e-6,
                                                      axis=1)))


def _reference_name(x: np.ndarray, ctx: PortContext) -> str:
    refs = _reference_coords(ctx)
    names = list(reference_waterlines(ctx.speed_gbps))
    hit = np.flatnonzero(np.all(np.abs(refs[:, :3] - x[:3]) < 1e-6, axis=1))
    return names[int(hit[0])] if len(hit) else "setting"


def way_back(prop: Proposal, xcur: np.ndarray, ctx: PortContext) -> bool:
    """Whether ``prop`` moves the switch from ``xcur`` (coordinates) back to where the
    probe or diagnostic of its record left from ("home" when the record has one, else
    "from"). Such a change restores a set whose windows were judged before the experiment:
    verifying it against the experiment's window would compare it with the set the tuner
    has just disproved, and a "regression" there (a deep set's longer queue next to the
    probe's shallow one) would roll the switch back onto that set."""
    rec = prop.probe
    if not rec or prop.method == "hold":
        return False
    home = rec.get("home", rec.get("from"))
    if home is None or len(home) != len(xcur):
        return False
    x = clip_coords(to_coords(prop.waterlines, ctx), ctx)
    return _near(x, home) and not _near(xcur, home)


def returns_home(prop: Proposal) -> bool:
    """Whether ``prop`` is a step of an experiment's way back to the set in place before it
    (the record's "from"): the last (``way_back``) or one before it (a diagnostic's record
    still "returning"); not the second stage's return to the step, nor a return to a set the
    experiment itself took. Such a step is not held for the switch's other ports
    (``_spare_others``): it takes them back to the set they ran at before the experiment,
    and an other port that gained from the experiment's step must not keep the group on a
    step its own traffic was found hurt by (measured on the demo fabric: an allreduce port
    0.69 x its start at a diagnostic's step held the way back of two incast ports running
    2.3 and 3.6 x slower there, for the rest of the hour)."""
    rec = prop.probe or {}
    if not (prop.way_back or rec.get("returning") is True):
        return False
    start, home = rec.get("from"), rec.get("home", rec.get("from"))
    return isinstance(start, list) and isinstance(home, list) and len(start) == len(home) \
        and _near(np.asarray(home, dtype=float), start)


def _near(x: np.ndarray, y: Any) -> bool:
    return bool(np.all(np.abs(np.asarray(x, dtype=float) - np.asarray(y, dtype=float))
                       < PROBE_SAME))


def _with_diagnostic_avoid(rq: ProposalRequest) -> ProposalRequest:
    """``rq`` with the vendor guide among the sets to avoid for the verdict's cycles
    (``cooldown``) after a diagnostic's second stage rejected it: the landscape, which
    could not tell the traffic apart there, must not lead the tuner straight back. And
    when the diagnostic sent the tuner back to its start (the first stage's verdict, or
    the second stage's "back to the start"), for as long its step counts as a failed
    shallowing and so does a lowering of the start's Kmin (``_shallow_hold``): no ramp
    shallower than the start (like the step's entry, for as long as the diagnostic's record
    stands). The landscape read the same traffic at the start, where the
    classifier cannot tell incast from the Poisson mixes (the reason for the diagnostic),
    and must not take the tuner by another shallow set -- even one deeper than the step --
    to what the experiment did not find safe: on the demo fabric, three cycles after the
    diagnostic went back undecided on a switch priority of two hadoop and two incast ports,
    the landscape, reading hadoop 82 %, went to a 128 KB / 500 KB ramp and then, its wait
    over, to 8 KB / 125 KB: the incast ports ran 1.75 and 3.3 x slower. When a port at risk
    sent it back, for longer (``_held_shallow``)."""
    probe = rq.probe
    avoid = list(rq.avoid)
    held = _held_shallow(probe)
    if held is not None:
        avoid.append(held)
    if probe and int(probe.get("age", PROBE_COOLDOWN)) < cooldown(probe):
        if probe.get("rejected") and isinstance(probe.get("guide"), list):
            avoid.append(tuple(float(v) for v in probe["guide"]))
        if _went_back(probe) and isinstance(probe.get("to"), list):
            avoid.append(tuple(float(v) for v in [*probe["to"], *probe["from"]]))
            if held is None and isinstance(probe.get("from"), list) and \
                    len(probe["from"]) == 5:
                avoid.append(_shallow_hold(probe["from"]))
    return rq if len(avoid) == len(rq.avoid) else replace(rq, avoid=tuple(avoid))


def _held_shallow(probe: dict[str, Any] | None) -> tuple[float, ...] | None:
    """After a diagnostic that went back because one of the group's ports was predicted at
    risk (``port_at_risk``): a failed lowering of the start's Kmin, whose avoidance rules
    out every ramp shallower than the start and every Kmin more than half an octave below
    its own (``_avoided``), for as long as the record stands or a plain probe's record
    carries it (``_carry_hold``) -- until the next diagnostic, which may try its step again
    once its wait is over. The landscape plans with the
    group's median port, where that port does not show: on the demo fabric, after the
    diagnostic went back on an incast port's risk (70-97 %), the landscape took the group
    to a 64-200 KB Kmin or settled it at the vendor guide within 20-40 cycles, and the
    incast ports ran 10-25 % slower."""
    if not probe:
        return None
    carried = probe.get("held_shallow")  # kept by a plain probe's record (``_carry_hold``)
    if not probe.get("diagnostic") and isinstance(carried, list) and len(carried) == 10:
        return tuple(float(v) for v in carried)
    if not _went_back(probe) or not port_at_risk(probe) or \
            not isinstance(probe.get("from"), list) or len(probe["from"]) != 5:
        return None
    return _shallow_hold(probe["from"])


def _shallow_hold(start_coords: Sequence[float]) -> tuple[float, ...]:
    """An avoid entry that holds the landscape at or deeper than ``start_coords``: a failed
    lowering of its Kmin by an octave (and a device's rounding), Kmax where it was -- no ramp
    shallower than the start, no Kmin more than half an octave below its own
    (``_avoided``); the start itself, read back a few bytes off, stays open."""
    start = [float(v) for v in start_coords]
    lower = 2 * AVOID_RADIUS + PROBE_SAME
    return tuple([start[0] - lower, start[1] + lower, *start[2:], *start])


def _carry_hold(prop: Proposal, probe: dict[str, Any] | None) -> Proposal:
    """``prop`` with the diagnostic's hold on shallower ramps (``_held_shallow``) copied into
    the record of a plain probe that replaces the diagnostic's: the hold lasts until the next
    diagnostic, not until the next record (a deeper probe from the start would end it)."""
    held = _held_shallow(probe)
    if held is None or prop.probe is None or prop.probe.get("diagnostic") or \
            "held_shallow" in prop.probe:
        return prop
    return replace(prop, probe={**prop.probe, "held_shallow": list(held)})


def port_at_risk(probe: dict[str, Any]) -> bool:
    """Whether a diagnostic's record shows a port of its group predicted at risk where the
    group was not: a port's risk of the harm event over ``diagnostic.TRY_HARM_LIMIT`` and
    at least ``PORT_RISK_GAP`` above the group's own (other traffic among its ports)."""
    preds = [*(probe.get("predicted") or {}).values(), *(probe.get("check") or {}).values()]
    return any(isinstance(q, dict) and "port_harm" in q and "own_harm" in q
               and float(q["port_harm"]) > diagnostic.TRY_HARM_LIMIT
               and float(q["port_harm"]) - float(q["own_harm"]) >= PORT_RISK_GAP
               for q in preds)


def _homeward(home: np.ndarray, xcur: np.ndarray, ctx: PortContext, reason: str,
              record: dict[str, Any]) -> tuple[Waterline, str, str, dict[str, Any]]:
    """One bounded step of a diagnostic's way back; the step that arrives ends the return (the
    tuner plans freely from there)."""
    x = step_bounded(home, xcur, ctx)
    return from_coords(x, ctx), "model", reason, {**record, "returning": not _near(x, home)}


def _diagnostic_stage(probe: dict[str, Any] | None, xcur: np.ndarray) -> str | None:
    """What a diagnostic's record (the probe slot) awaits at the current set: "verdict" (its
    step in place for a window), "check" (the vendor guide in place for a window after the
    first stage sent it there), "return" (the second stage reversed it: steps back to
    where the first stage was sure of), "wait" (a window first, or the set was changed
    under it), or None (no diagnostic under way)."""
    if not probe or not probe.get("diagnostic"):
        return None
    aged = int(probe.get("age", 0)) >= 1
    if "ruled_out" not in probe:
        return "verdict" if aged and _near(xcur, probe.get("to", ())) else "wait"
    if probe.get("returning"):
        return None if _near(xcur, probe.get("home", probe.get("from", ()))) else "return"
    if probe.get("verdict") in ("target", "step") and not probe.get("checked"):
        return "check" if aged and _near(xcur, probe.get("guide", ())) else "wait"
    return None


def _row(f: Any) -> list[float]:
    out: list[float] = np.asarray(f, dtype=float).reshape(-1).tolist()
    return out


def _start_windows(rq: ProposalRequest) -> dict[str, Any]:
    """A diagnostic's record of the windows at its start: the group's and its ports' own."""
    return {"features": _row(rq.features),
            "port_features": _port_rows(rq.ports)}


def _port_rows(ports: Sequence[tuple[str, Any]]) -> dict[str, np.ndarray]:
    """Each port's feature row by key (a record's windows; the tracker packs them when it
    stores the record): one array for all of a group's ports, each port's row a view of it
    (a fleet's verdict cycle records 100,000 of them)."""
    if not ports:
        return {}
    rows = np.stack([np.asarray(f, dtype=float).reshape(-1) for _k, f in ports])
    return dict(zip((k for k, _f in ports), rows, strict=True))


def _port_windows(record: dict[str, Any], rq: ProposalRequest, stage: str
                  ) -> diagnostic.PortWindows:
    """The windows of the ports a diagnostic has seen at every setting of its path so far
    and sees now (``stage``: "verdict", at the step; "check", at the guide): per setting, a
    (ports x features) array; empty when it has none (a single port, or ports that came
    and went: the group's median alone then)."""
    seen = [record.get("port_features") or {}]
    if stage == "check":
        seen.append(record.get("port_step_features") or {})
    now = dict(rq.ports)
    keys = [k for k in now if all(k in s for s in seen)]
    if len(keys) < 2:
        return ()
    then = [np.array([s[k] for k in keys], dtype=float) for s in seen]
    return (*then, np.stack([np.asarray(now[k], dtype=float).reshape(-1) for k in keys]))


def _row_of(cands: np.ndarray, x: np.ndarray) -> int | None:
    """The index of the candidate equal to ``x`` (None: not among them)."""
    hit = np.flatnonzero(np.all(np.abs(cands - np.asarray(x)[None, :]) < 1e-6, axis=1))
    return int(hit[0]) if len(hit) else None


def _probe_outcome(probe: dict[str, Any] | None, xcur: np.ndarray, traffic: _Traffic
                   ) -> tuple[np.ndarray | None, dict[str, Any]] | None:
    """The verdict of the probe in place (the current set is the probed one, within
    ``PROBE_WINDOW`` cycles of it, no verdict yet): (where to go back to, the record with the
    profiles it ruled out). The profiles it was to help proved unlikely: back, and they are
    ruled out; they proved likely and the profiles it would hurt unlikely: those are ruled
    out; still undecided after ``PROBE_WINDOW`` cycles: back, no verdict. None: no probe to
    judge (or one more window)."""
    if not probe or "ruled_out" in probe or probe.get("diagnostic") or \
            int(probe.get("age", PROBE_COOLDOWN)) > PROBE_WINDOW or \
            not _near(xcur, probe.get("to", ())):
        return None
    helps = list(probe.get("for", ()))
    against = list(probe.get("against", ()))
    mass = sum(w for p, w, _pts, _wts in traffic.hypotheses if p in helps)
    rival = sum(w for p, w, _pts, _wts in traffic.hypotheses if p in against)
    record = {k: v for k, v in probe.items() if k != "age"}
    if mass >= PROBE_CONFIRM and rival < PROBE_REJECT:
        return None, {**record, "ruled_out": against}
    if mass < PROBE_REJECT:
        return np.asarray(probe["from"], dtype=float), {**record, "ruled_out": helps}
    if int(probe.get("age", 0)) >= PROBE_WINDOW:  # still undecided: back, no verdict
        return np.asarray(probe["from"], dtype=float), {**record, "ruled_out": []}
    return None


def cooldown(probe: dict[str, Any]) -> int:
    """Cycles a probe's verdict holds: ``PROBE_COOLDOWN``, doubled for each diagnostic in a
    row before it that also sent the tuner back to its start (at most ``MAX_BACKOFF``
    doublings): each new try sends the traffic the experiment found hurt by shallower
    thresholds to its step for two or three cycles."""
    backs = probe.get("backs", 0)
    n = min(backs, MAX_BACKOFF) if isinstance(backs, int) and backs > 0 else 0
    return PROBE_COOLDOWN * (1 << n)


def _went_back(probe: dict[str, Any] | None) -> bool:
    """Whether a diagnostic's record ends with the tuner back at its start: the first
    stage's verdict, or the second stage's "back to the start"."""
    if not probe or not probe.get("diagnostic") or "ruled_out" not in probe or \
            not isinstance(probe.get("from"), list):
        return False
    home = probe.get("home", probe.get("from"))
    return probe.get("verdict") == "start" or bool(
        probe.get("rejected") and home is not None and _near(np.asarray(home, dtype=float),
                                                            probe["from"]))


def ruled_out(probe: dict[str, Any] | None) -> list[str]:
    """The profiles a recent probe's verdict ruled out (``cooldown`` cycles)."""
    if not probe or int(probe.get("age", PROBE_COOLDOWN)) >= cooldown(probe):
        return []
    return [str(p) for p in probe.get("ruled_out", ())]


def _may_probe(probe: dict[str, Any] | None, xcur: np.ndarray) -> bool:
    """Not from the setting the last probe started from (or came back to), unless that was
    ``PROBE_COOLDOWN`` cycles ago."""
    if not probe:
        return True
    if "ruled_out" not in probe and int(probe.get("age", 0)) <= PROBE_WINDOW:
        return False  # the last probe still awaits its verdict
    return int(probe.get("age", 0)) >= cooldown(probe) or not _near(xcur, probe.get("from", ()))


def _changes(parts: dict[str, np.ndarray], traffic: _Traffic, i: int
             ) -> tuple[dict[str, float], dict[str, float]]:
    """Per traffic hypothesis with a landscape: its weight, and the predicted change of log J
    (members' mean) from the current set to candidate ``i``."""
    weights = {p: w for p, w, _pts, _wts in traffic.hypotheses if p in parts}
    return weights, {p: float((parts[p][:, i] - parts[p][:, 0]).mean()) for p in weights}


def _probe_pick(parts: dict[str, np.ndarray], traffic: _Traffic, cands: np.ndarray,
                towards: np.ndarray) -> tuple[int, list[str], list[str], float] | None:
    """An identification probe: a static reference (or the bounded step towards it,
    ``towards``) that some plausible profiles are predicted to gain from and others to lose
    from -- the hold was
    the traffic's ambiguity, not the landscape. Taken when the profiles it helps are
    ``PROBE_MIN_MASS`` likely, those it hurts ``PROBE_RIVAL_MASS`` likely, and the gain it
    would bring them (weighted by their probability, i.e. if the tuner goes back whenever
    the probe proves them unlikely) is ``MIN_GAIN``. The best such candidate; None when
    there is none."""
    if not len(towards):
        return None
    best: tuple[int, list[str], list[str], float] | None = None
    for i in np.flatnonzero(_among(cands, towards)).tolist():
        if i == 0:
            continue
        weights, d = _changes(parts, traffic, i)
        helps = [p for p in d if d[p] < 0]
        hurts = [p for p in d if d[p] > 0]
        if sum(weights[p] for p in helps) < PROBE_MIN_MASS or \
                sum(weights[p] for p in hurts) < PROBE_RIVAL_MASS:
            continue
        gain = sum(weights[p] * d[p] for p in helps)
        if gain <= -math.log1p(MIN_GAIN) and (best is None or gain < best[3]):
            best = (i, sorted(helps), sorted(hurts), gain)
    return best


def _mix(parts: dict[str, np.ndarray], traffic: _Traffic) -> np.ndarray:
    """log J (members x candidates) averaged over the traffic hypotheses."""
    total: np.ndarray | None = None
    for p, w, _pts, _wts in traffic.hypotheses:
        if p in parts:
            total = w * parts[p] if total is None else total + w * parts[p]
    assert total is not None
    return total


def _scores(parts: dict[str, np.ndarray], traffic: _Traffic) -> np.ndarray:
    """Each candidate's predicted change of log J from the current set (candidate 0), over
    the traffic hypotheses: mean + KAPPA std over the members, plus LOSS_AVERSION x the
    expected predicted loss of the hypotheses it would make worse (0 for the current)."""
    logj = _mix(parts, traffic)
    diff = logj - logj[:, :1]
    s: np.ndarray = diff.mean(axis=0) + KAPPA * diff.std(axis=0)
    for p, w, _pts, _wts in traffic.hypotheses:
        if p in parts:
            d = (parts[p] - parts[p][:, :1]).mean(axis=0)
            s = s + LOSS_AVERSION * w * np.maximum(d, 0.0)
    s[0] = 0.0
    return s


def _pfc_cost(cands: np.ndarray, need: float) -> np.ndarray:
    """What touching the lossless knobs costs a candidate in the choice of the best: the
    needed gain again when its alpha or headroom differs from the current set's (candidate
    0). PFC is the backstop, not the lever: the landscapes' pause predictions are their least
    reliable (measured on the virtual fabric: alpha changes predicted to lower pause time
    brought pause frames where there were none, and were rolled back), so a PFC change has to
    pay for itself on top of the ECN move it comes with."""
    moved = np.any(np.abs(cands[:, 3:5] - cands[:1, 3:5]) > PROBE_SAME, axis=1)
    out: np.ndarray = np.where(moved, need, 0.0)
    return out


def _avoided(x: np.ndarray, avoid: Sequence[Sequence[float]]) -> np.ndarray:
    """Rows of ``x`` within ``AVOID_RADIUS`` (every ECN coordinate) of a rolled-back set
    (``ProposalRequest.avoid``) -- and, where the entry carries the set it was rolled back to
    and the failed change moved the ramp (``space.ramp_depth``), every row that far that way or further,
    less ``AVOID_RADIUS``: a deeper ramp whose queue reached PFC's threshold, or bought
    nothing, is not cured by a deeper one still; a shallower one that starved throughput
    not by a shallower one. A failed raise of Kmax is also bisected: no Kmax from its
    midpoint up, whatever the Kmin; and a failed lowering of Kmin alone: no Kmin from its
    midpoint down, whatever the Kmax."""
    out = np.zeros(len(x), dtype=bool)
    if not len(x):
        return out
    depth = ramp_depth(x)
    for entry in avoid:
        a = np.asarray(entry, dtype=float)
        out |= np.all(np.abs(x[:, :3] - a[None, :3]) < AVOID_RADIUS, axis=1)
        n = x.shape[1]
        if len(a) == 2 * n:
            bad, prior = ramp_depth(a[None, :n])[0], ramp_depth(a[None, n:])[0]
            if bad > prior + PROBE_SAME:
                out |= depth > bad - AVOID_RADIUS
                # many flows hold the queue near the ramp's top (their marking probability
                # exceeds Pmax): a failed raise of Kmax rules out, whatever the Kmin, a Kmax
                # from the midpoint (in octaves) of the raise up -- bisecting towards where
                # the queue reaches PFC's threshold -- or within AVOID_RADIUS of the failed one
                top, bad_top, prior_top = x[:, 0] + x[:, 1], a[0] + a[1], a[n] + a[n + 1]
                if bad_top > prior_top + PROBE_SAME:
                    out |= top > min(bad_top - AVOID_RADIUS,
                                     0.5 * (bad_top + prior_top) - PROBE_SAME)
            elif bad < prior - PROBE_SAME:
                out |= depth < bad + AVOID_RADIUS
                # a failed lowering of Kmin alone (Kmax where it was) is bisected too: no Kmin
                # from its midpoint down, whatever the Kmax -- marking that starts earlier
                if abs((a[0] + a[1]) - (a[n] + a[n + 1])) < PROBE_SAME and \
                        a[0] < a[n] - PROBE_SAME:
                    out |= x[:, 0] < 0.5 * (a[0] + a[n])
    return out


def _avoid_cost(cands: np.ndarray, avoid: Sequence[Sequence[float]]) -> np.ndarray:
    """+inf for the avoided candidates (``_avoided``), 0 otherwise; never for the current set
    (candidate 0)."""
    out = np.where(_avoided(cands, avoid), np.inf, 0.0)
    if len(out):
        out[0] = 0.0
    return out


def _new_rows(x: np.ndarray, have: np.ndarray) -> np.ndarray:
    """Rows of ``x`` not in ``have`` (nor repeated)."""
    seen = {tuple(r) for r in np.round(have, 6)}
    keep = []
    for i, r in enumerate(np.round(x, 6)):
        t = tuple(r)
        if t not in seen:
            seen.add(t)
            keep.append(i)
    out: np.ndarray = x[keep] if keep else np.zeros((0, x.shape[1]))
    return out


def _dedupe(x: np.ndarray) -> np.ndarray:
    _, idx = np.unique(np.round(x, 6), axis=0, return_index=True)
    keep = np.sort(idx)
    if 0 not in keep:
        keep = np.concatenate([[0], keep])
    out: np.ndarray = x[keep]
    return out


def _grid(centre: np.ndarray, xcur: np.ndarray, ctx: PortContext, ks: Sequence[float],
          ps: Sequence[float]) -> np.ndarray:
    """Points at offsets (octaves) of log2 Kmin, log2 Kmax and log2 Pmax from ``centre``,
    clipped into the box, within one step of ``xcur``."""
    dk, dm, dp = (a.ravel() for a in np.meshgrid(ks, ks, ps, indexing="ij"))
    pts = np.repeat(centre[None, :], len(dk), axis=0)
    pts[:, 0] = centre[0] + dk
    pts[:, 1] = centre[0] + centre[1] + dm - pts[:, 0]
    pts[:, 2] = centre[2] + dp
    arr = step_bounded_rows(pts, xcur, ctx)
    out: np.ndarray = arr[within_step(arr, xcur)]
    return out


def _heading_grid(xcur: np.ndarray, ctx: PortContext) -> np.ndarray:
    """The whole box, coarsely (``HEADING_*``), and the static references, at the current PFC
    knobs."""
    k, m, p = (a.ravel() for a in np.meshgrid(HEADING_K, HEADING_SPAN, HEADING_P,
                                              indexing="ij"))
    pts = np.repeat(xcur[None, :], len(k), axis=0)
    pts[:, 0], pts[:, 1], pts[:, 2] = k, m, p
    out: np.ndarray = _dedupe(clip_coords(np.vstack([_references_at(xcur, ctx), pts]), ctx))
    return out


def _start_sets(xcur: np.ndarray, ctx: PortContext) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The static references within reach (bounded moves towards them), the first candidates
    (the current set, the coarse grid and those moves) and the exact references in reach."""
    towards = _statics(xcur, ctx)
    return (towards, _dedupe(np.vstack([xcur[None, :], _coarse(xcur, ctx), towards])),
            _statics(xcur, ctx, exact=True))


def _refinement(stage: int, cands: np.ndarray, picks: np.ndarray, xcur: np.ndarray,
                ctx: PortContext) -> np.ndarray:
    """The candidates a stage adds: 2, a finer grid around each pick; 3, the PFC knobs at
    the pick."""
    if stage == 2:
        new = np.vstack([_fine(t, xcur, ctx) for t in cands[picks]])
    else:
        new = _pfc_variants(cands[int(picks[0])], xcur, ctx)
    return _new_rows(new, cands)


def _coarse(xcur: np.ndarray, ctx: PortContext) -> np.ndarray:
    return _grid(xcur, xcur, ctx, COARSE_K, COARSE_P)


def _fine(centre: np.ndarray, xcur: np.ndarray, ctx: PortContext) -> np.ndarray:
    return _grid(centre, xcur, ctx, FINE_K, FINE_P)


def _statics(xcur: np.ndarray, ctx: PortContext, *, exact: bool = False) -> np.ndarray:
    """The static references (ECN part, the current PFC knobs), exact when within one step,
    else the bounded move towards them (``exact``: only the exact ones)."""
    refs = _references_at(xcur, ctx)
    arr = refs if exact else step_bounded_rows(refs, xcur, ctx)
    out: np.ndarray = arr[within_step(arr, xcur)]
    return out


def _references_at(xcur: np.ndarray, ctx: PortContext) -> np.ndarray:
    """The static references' ECN part with the current PFC knobs."""
    refs = _reference_coords(ctx).copy()
    refs[:, 3:] = xcur[3:]
    return refs


@functools.lru_cache(maxsize=256)
def _reference_coords(ctx: PortContext) -> np.ndarray:
    return clip_coords(np.stack([to_coords(ref, ctx) for ref in
                                 reference_waterlines(ctx.speed_gbps).values()]), ctx)


def _pfc_variants(best: np.ndarray, xcur: np.ndarray, ctx: PortContext) -> np.ndarray:
    pts = []
    for da in (-2.0, -1.0, 1.0, 2.0):
        p = best.copy()
        p[3] = best[3] + da
        pts.append(p)
    for dh in (-0.5, -0.25, 0.25, 0.5):
        p = best.copy()
        p[4] = best[4] + dh
        pts.append(p)
    arr = clip_coords(np.stack(pts), ctx)
    out: np.ndarray = arr[within_step(arr, xcur)]
    return out


def _moves(a: Waterline, b: Waterline) -> list[str]:
    out = []
    for name in ("kmin_bytes", "kmax_bytes", "pmax", "alpha", "headroom_bytes"):
        va, vb = getattr(a, name), getattr(b, name)
        if va != vb:
            out.append(f"{name} {va:g} -> {vb:g}" if isinstance(vb, float)
                       else f"{name} {va} -> {vb}")
    return out


def _origin_row(rq: ProposalRequest, ctx: PortContext) -> np.ndarray:
    """The coordinates of the set the tuner found on the switch (the current set if unknown),
    as one row."""
    origin = rq.origin if rq.origin is not None else rq.current
    out: np.ndarray = clip_coords(to_coords(origin, ctx), ctx)[None, :]
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
