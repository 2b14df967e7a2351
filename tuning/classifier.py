"""Traffic-profile classifier: which profile (``features.PROFILES``) a port's window carries.

A small neural network (scikit-learn ``MLPClassifier`` on standardised window features) with
its probabilities calibrated by one temperature fitted on held-out scenarios (3-fold, by
scenario), trained on labelled virtual-fabric windows (``tuning.training``). A network rather
than boosted trees because the daemon classifies every port of the fabric each cycle -- 128,000 windows for
1,000 switches x 64 ports x 2 priorities -- and a forward pass is ~50x cheaper than
thousands of trees at the same held-out accuracy here (the websearch/hadoop confusion is in
the telemetry, not the model). Idle ports are recognised by rule (no traffic: nothing to
learn). Serialised with joblib into bytes (the daemon stores them in its database;
``tuning.models`` writes them as package data).
"""

from __future__ import annotations

import io
import json
import warnings
from typing import Any

import joblib
import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from tuning.features import FEATURE_NAMES, PROFILES, jsonable

IDLE_UTILISATION = 1e-3  # below this mean utilisation (and no queue) a port is idle
_UTIL = FEATURE_NAMES.index("utilisation_mean")
_OCC = FEATURE_NAMES.index("log_occupancy_mean_bdp")
# Features that say nothing about the traffic in simulation and would be out of range on real
# switches (packet size is constant in fabricsim): left out of the model.
UNUSED_FEATURES: tuple[str, ...] = ("mean_packet_bytes_kb",)
USED = np.array([i for i, n in enumerate(FEATURE_NAMES) if n not in UNUSED_FEATURES])
TRAFFIC_PROFILES: tuple[str, ...] = tuple(p for p in PROFILES if p != "idle")


class ProfileClassifier:
    """``predict_proba`` / ``predict`` over feature rows (``features.FEATURE_NAMES``)."""

    def __init__(self, model: Any = None, metadata: dict[str, Any] | None = None) -> None:
        self.model = model
        self.metadata: dict[str, Any] = dict(metadata or {})

    # ------------------------------------------------------------------ training
    @classmethod
    def fit(cls, X: np.ndarray, y: list[str], *, groups: np.ndarray | None = None,
            seed: int = 0, metadata: dict[str, Any] | None = None) -> ProfileClassifier:
        """Fit on labelled port windows. ``groups`` (the scenario of each window): the
        probabilities are calibrated by one temperature fitted on out-of-fold predictions of
        held-out scenarios (3 folds), so that a window unlike its training scenarios is not
        classified with the confidence of one seen in training."""
        X = np.asarray(X, dtype=float)
        labels = np.asarray(y)
        busy = labels != "idle"
        target = np.array([TRAFFIC_PROFILES.index(str(v)) for v in labels[busy]])
        Xb = _prepare(X[busy])
        g = np.asarray(groups)[busy] if groups is not None else np.arange(len(Xb)) % 97
        temperature = 1.0
        uniq = np.unique(g)
        if len(uniq) >= 3:
            fold_of = dict(zip(uniq.tolist(), np.random.default_rng(seed).permutation(
                len(uniq)) % 3, strict=True))
            fold = np.array([fold_of[v] for v in g.tolist()])
            logp = np.zeros((len(Xb), len(TRAFFIC_PROFILES)))
            for k in range(3):
                tr, te = fold != k, fold == k
                m = _fit_net(Xb[tr], target[tr], seed + k)
                logp[te] = _log_proba(m, Xb[te])
            temperature = _temperature(logp, target)
        model = _fit_net(Xb, target, seed)
        meta = {"version": 2, "seed": seed, "model": "MLPClassifier (64, 32) on standardised "
                "features, balanced classes, temperature-calibrated on held-out scenarios",
                "temperature": round(temperature, 4), "classes": list(PROFILES),
                "features": list(FEATURE_NAMES), "training_windows": len(labels)}
        meta.update(metadata or {})
        return cls(model, meta)

    # ------------------------------------------------------------------ inference
    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """(n, len(PROFILES)) probabilities, columns in PROFILES order."""
        X = np.atleast_2d(np.asarray(X, dtype=float))
        out = np.zeros((len(X), len(PROFILES)))
        if not len(X):
            return out
        idle = _is_idle(X)
        out[idle, PROFILES.index("idle")] = 1.0
        busy = ~idle
        if busy.any():
            if self.model is None:
                raise RuntimeError("the classifier is not trained")
            t = float(self.metadata.get("temperature", 1.0))
            logp = _log_proba(self.model, _prepare(X[busy])) / t
            p = np.exp(logp - logp.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)
            for j, name in enumerate(TRAFFIC_PROFILES):
                out[busy, PROFILES.index(name)] = p[:, j]
        return out

    def predict(self, X: np.ndarray) -> tuple[list[str], np.ndarray]:
        """Labels and their probability (the row maximum)."""
        p = self.predict_proba(X)
        idx = np.argmax(p, axis=1)
        return [PROFILES[int(i)] for i in idx], p[np.arange(len(p)), idx]

    # ------------------------------------------------------------------ bytes
    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        # the metadata as plain JSON values, sharing no objects with the model: the bytes do
        # not depend on how the object was built (trained or loaded)
        meta = json.loads(json.dumps(self.metadata, default=jsonable))
        joblib.dump({"kind": "ProfileClassifier", "model": self.model,
                     "metadata": meta}, buf, compress=3)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> ProfileClassifier:
        obj = joblib.load(io.BytesIO(data))
        if not isinstance(obj, dict) or obj.get("kind") != "ProfileClassifier":
            raise ValueError("not a serialised ProfileClassifier")
        return cls(obj["model"], obj["metadata"])


def _fit_net(X: np.ndarray, target: np.ndarray, seed: int) -> Any:
    """The network on class-balanced rows: every profile's windows repeated up to the largest
    class's count (the training sets are sized by simulation cost, not by how common a profile
    is)."""
    rng = np.random.default_rng(seed)
    counts = np.bincount(target, minlength=len(TRAFFIC_PROFILES))
    idx: list[np.ndarray] = []
    for c in range(len(TRAFFIC_PROFILES)):
        rows = np.flatnonzero(target == c)
        if len(rows):
            extra = rng.choice(rows, int(counts.max()) - len(rows), replace=True)
            idx.append(np.concatenate([rows, extra]))
    pick = rng.permutation(np.concatenate(idx))
    model = make_pipeline(StandardScaler(), MLPClassifier(
        hidden_layer_sizes=(64, 32), alpha=1e-3, max_iter=600, early_stopping=True,
        validation_fraction=0.15, n_iter_no_change=30, random_state=seed))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X[pick], target[pick])
    return model


def _log_proba(model: Any, X: np.ndarray) -> np.ndarray:
    """log-probabilities, columns in TRAFFIC_PROFILES order (a class the model never saw:
    probability ~0)."""
    out = np.full((len(X), len(TRAFFIC_PROFILES)), -30.0)
    p = np.asarray(model.predict_proba(X), dtype=float)
    for j, c in enumerate(model.classes_):
        out[:, int(c)] = np.log(np.maximum(p[:, j], 1e-13))
    return out


def _temperature(logp: np.ndarray, target: np.ndarray) -> float:
    """The temperature T minimising the log-loss of softmax(logp / T)."""
    from scipy.optimize import minimize_scalar

    def nll(t: float) -> float:
        z = logp / t
        z = z - z.max(axis=1, keepdims=True)
        lse = np.log(np.exp(z).sum(axis=1))
        return float(np.mean(lse - z[np.arange(len(z)), target]))

    res = minimize_scalar(nll, bounds=(0.2, 20.0), method="bounded")
    return float(res.x)


def _is_idle(X: np.ndarray) -> np.ndarray:
    out: np.ndarray = (np.nan_to_num(X[:, _UTIL]) < IDLE_UTILISATION) & (
        np.nan_to_num(X[:, _OCC]) < 1e-3)
    return out


def _prepare(X: np.ndarray) -> np.ndarray:
    out: np.ndarray = np.clip(np.nan_to_num(X[:, USED], nan=0.0, posinf=0.0, neginf=0.0),
                              -1e3, 1e3)
    return out


def confusion(y_true: list[str], y_pred: list[str]) -> dict[str, dict[str, int]]:
    """Confusion counts: confusion[true][predicted]."""
    out = {t: {p: 0 for p in PROFILES} for t in PROFILES}
    for t, p in zip(y_true, y_pred, strict=True):
        out[t][p] += 1
    return out
