"""The objective landscape of one traffic profile: what the simulator would say of a waterline
set, given the traffic's descriptors.

A small ensemble of neural networks (scikit-learn ``MLPRegressor``, two ReLU layers), each
fitted on another 80 % of the training scenarios, maps (descriptors, waterline coordinates) to

- ``log(J + J_OFFSET)``, the simulator's objective (infeasible sets learned as ``J_CAP``), and
- its components: log2 mice p99 / p50 slowdown, lost utilisation, pause-time fraction,
  log2(1 + queue p99 / BDP) -- the predicted KPIs of a proposal's explanation.

Inputs: the descriptors (``tuning.descriptors``) and the waterlines as log2(Kmin / BDP),
log2(Kmax / BDP), log2(Pmax), log2(alpha), headroom / formula size. The networks are smooth in
the waterlines (piecewise linear), so the minimum over candidates is not an artefact of a step
in a tree. The members' spread is the model's uncertainty. Prediction is a plain numpy forward
pass over the stored weights (float32), fast enough for thousands of switches per cycle.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

J_OFFSET = 0.05  # targets are log(J + J_OFFSET): relative errors matter at every scale
J_CAP = 30.0  # an infeasible configuration (drops) is learned as this objective
OUTPUTS: tuple[str, ...] = ("log_objective", "log2_mice_p99", "log2_mice_p50",
                            "lost_utilisation", "pause_time_fraction", "log2_queue_p99_bdp")
KPI_KEYS: tuple[str, ...] = ("mice_fct_slowdown_p99", "mice_fct_slowdown_p50",
                             "lost_utilisation", "pause_time_fraction", "queue_p99_bytes")
# The objective's weight in the loss against each KPI output (the networks share layers; the
# KPIs regularise, the objective decides).
OBJECTIVE_WEIGHT = 2.0
PREDICT_BLOCK_ROWS = 16384  # rows per forward pass (``Landscape.predict``)
SUBSAMPLE = 0.8  # share of the training scenarios each member sees (drawn without replacement)


def to_target(j: np.ndarray | float) -> np.ndarray:
    jj = np.asarray(j, dtype=float)
    jj = np.where(jj >= 1e5, J_CAP, np.minimum(jj, J_CAP))
    out: np.ndarray = np.log(np.maximum(jj, 0.0) + J_OFFSET)
    return out


def from_target(y: np.ndarray | float) -> np.ndarray:
    out: np.ndarray = np.maximum(0.0, np.exp(np.asarray(y, dtype=float)) - J_OFFSET)
    return out


def waterline_inputs(coords: np.ndarray) -> np.ndarray:
    """Network inputs of search-space coordinates (``tuning.space.COORD_NAMES``)."""
    x = np.atleast_2d(np.asarray(coords, dtype=float))
    return np.column_stack([x[:, 0], x[:, 0] + x[:, 1], x[:, 2], x[:, 3], x[:, 4]])


def kpi_targets(kpis: Sequence[dict[str, float]], bdp: float) -> np.ndarray:
    """The KPI outputs (OUTPUTS[1:]) of measured KPI dicts."""
    rows = []
    for k in kpis:
        rows.append([math.log2(max(1.0, float(k.get("mice_fct_slowdown_p99", 1.0)))),
                     math.log2(max(1.0, float(k.get("mice_fct_slowdown_p50", 1.0)))),
                     float(k.get("lost_utilisation", 0.0)),
                     float(k.get("pause_time_fraction", 0.0)),
                     math.log2(1.0 + float(k.get("queue_p99_bytes", 0.0)) / bdp)])
    return np.array(rows, dtype=float).reshape(len(rows), len(OUTPUTS) - 1)


def kpis_of(row: np.ndarray, bdp: float) -> dict[str, float]:
    """Predicted KPIs (KPI_KEYS) of one output row."""
    return {
        "mice_fct_slowdown_p99": float(2.0 ** max(0.0, row[1])),
        "mice_fct_slowdown_p50": float(2.0 ** max(0.0, row[2])),
        "lost_utilisation": float(min(1.0, max(0.0, row[3]))),
        "pause_time_fraction": float(min(1.0, max(0.0, row[4]))),
        "queue_p99_bytes": float(max(0.0, (2.0 ** row[5] - 1.0) * bdp)),
    }


@dataclass
class _Net:
    weights: list[np.ndarray]
    biases: list[np.ndarray]

    def __call__(self, a: np.ndarray) -> np.ndarray:
        h = a
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            h = h @ w + b
            if i < last:
                np.maximum(h, 0.0, out=h)
        return h


@dataclass
class Landscape:
    """One profile's ensemble (module docstring)."""

    descriptors: tuple[str, ...]
    in_mean: np.ndarray
    in_scale: np.ndarray
    out_mean: np.ndarray
    out_scale: np.ndarray
    members: list[_Net] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)

    def predict(self, theta: np.ndarray, coords: np.ndarray) -> np.ndarray:
        """Outputs (OUTPUTS) of every member: shape (members, rows, outputs); ``theta`` rows
        broadcast against ``coords`` rows (either may have one row)."""
        t = np.atleast_2d(np.asarray(theta, dtype=float))
        x = waterline_inputs(coords)
        n = max(len(t), len(x))
        if len(t) == 1 and n > 1:
            t = np.repeat(t, n, axis=0)
        if len(x) == 1 and n > 1:
            x = np.repeat(x, n, axis=0)
        res = np.empty((len(self.members), n, len(self.out_mean)))
        # in blocks of rows: a block's activations stay in the cache, where one pass over a
        # fleet's candidates (180,000 rows) allocated and faulted in 46 MB per layer
        # (0.43 s -> 0.20 s for four members, measured 2026-12-07)
        for lo in range(0, n, PREDICT_BLOCK_ROWS):
            hi = min(n, lo + PREDICT_BLOCK_ROWS)
            a = ((np.concatenate([t[lo:hi], x[lo:hi]], axis=1) - self.in_mean)
                 / self.in_scale).astype(np.float32)
            for k, m in enumerate(self.members):
                res[k, lo:hi] = m(a)
        res *= self.out_scale
        res += self.out_mean
        return res

    @classmethod
    def fit(cls, descriptors: tuple[str, ...], theta: np.ndarray, coords: np.ndarray,
            targets: np.ndarray, groups: np.ndarray, *, members: int = 4, seed: int = 0,
            hidden: tuple[int, ...] = (64, 64)) -> Landscape:
        """Fit on rows (descriptors, coordinates) -> targets (OUTPUTS); each member sees a
        random ``SUBSAMPLE`` of the ``groups`` (one group per training scenario)."""
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.neural_network import MLPRegressor

        a = np.concatenate([np.asarray(theta, dtype=float), waterline_inputs(coords)], axis=1)
        y = np.asarray(targets, dtype=float)
        in_mean, in_scale = a.mean(axis=0), a.std(axis=0)
        in_scale[in_scale < 1e-9] = 1.0
        out_mean, out_scale = y.mean(axis=0), y.std(axis=0)
        out_scale[out_scale < 1e-9] = 1.0
        a_std = (a - in_mean) / in_scale
        y_std = (y - out_mean) / out_scale
        y_std[:, 0] *= OBJECTIVE_WEIGHT
        rng = np.random.default_rng(seed)
        uniq = np.unique(groups)
        nets: list[_Net] = []
        seen = np.zeros((members, len(y)), dtype=bool)  # rows each member was fitted on
        for m in range(members):
            pick = rng.choice(uniq, max(1, round(SUBSAMPLE * len(uniq))), replace=False)
            seen[m] = np.isin(groups, pick)
            idx = np.concatenate([np.flatnonzero(groups == g) for g in pick])
            est = MLPRegressor(hidden_layer_sizes=hidden, activation="relu", alpha=1e-3,
                               learning_rate_init=3e-3, max_iter=600, early_stopping=True,
                               validation_fraction=0.15, n_iter_no_change=30,
                               random_state=seed * 1000 + m)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                est.fit(a_std[idx], y_std[idx])
            ws = [np.asarray(w, dtype=np.float32) for w in est.coefs_]
            bs = [np.asarray(b, dtype=np.float32) for b in est.intercepts_]
            ws[-1] = ws[-1].copy()
            bs[-1] = bs[-1].copy()
            ws[-1][:, 0] /= OBJECTIVE_WEIGHT
            bs[-1][0] /= OBJECTIVE_WEIGHT
            nets.append(_Net(ws, bs))
        land = cls(tuple(descriptors), in_mean, in_scale, out_mean, out_scale, nets)
        each = land.predict(theta, coords)[:, :, 0]
        pred = each.mean(axis=0)
        # out of bag: per row, the members that never saw its scenario -- the error on
        # traffic the landscape was not fitted to (what a live switch is)
        unseen = ~seen
        oob = unseen.any(axis=0)
        oob_pred = (each * unseen).sum(axis=0)[oob] / unseen.sum(axis=0)[oob]
        land.info = {"rows": len(y), "scenarios": len(uniq), "members": members,
                     "hidden": list(hidden),
                     "train_rmse_log_objective": round(float(np.sqrt(np.mean(
                         (pred - y[:, 0]) ** 2))), 4),
                     "oob_rmse_log_objective": round(float(np.sqrt(np.mean(
                         (oob_pred - y[oob, 0]) ** 2))), 4) if oob.any() else None,
                     "oob_shape_rmse_log_objective": _shape_rmse(
                         oob_pred - y[oob, 0], groups[oob]) if oob.any() else None,
                     "oob_rows": int(oob.sum())}
        return land


def _shape_rmse(resid: np.ndarray, groups: np.ndarray) -> float:
    """RMSE of residuals less their scenario's mean: the error of predicted *changes* between
    waterline sets of one traffic (what a decision compares), not of the level."""
    out = np.asarray(resid, dtype=float).copy()
    for g in np.unique(groups):
        m = groups == g
        out[m] -= out[m].mean()
    return round(float(np.sqrt(np.mean(out ** 2))), 4)
