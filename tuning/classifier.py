"""Traffic-profile classifier: which profile (``features.PROFILES``) a port's window carries.

A small neural network (scikit-learn ``MLPClassifier`` on standardised window features) with
its probabilities calibrated by isotonic regression (3-fold cross-validation), trained on
labelled virtual-fabric windows (``tuning.training``). A network rather than boosted trees
because the daemon classifies every port of the fabric each cycle -- 128,000 windows for
1,000 switches x 64 ports x 2 priorities -- and a forward pass is ~50x cheaper than
thousands of trees at the same held-out accuracy here (the websearch/hadoop confusion is in
the telemetry, not the model). Idle ports are recognised by rule (no traffic: nothing to
learn). Serialised with joblib into bytes (the daemon stores them in its database;
``tuning.models`` writes them as package data).
"""

from __future__ import annotations

import io
import warnings
from typing import Any

import joblib
import numpy as np
from sklearn.calibration import CalibratedClassifierCV
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from tuning.features import FEATURE_NAMES, PROFILES

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
    def fit(cls, X: np.ndarray, y: list[str], *, seed: int = 0,
            metadata: dict[str, Any] | None = None) -> ProfileClassifier:
        X = np.asarray(X, dtype=float)
        labels = np.asarray(y)
        busy = labels != "idle"
        target = np.array([TRAFFIC_PROFILES.index(str(v)) for v in labels[busy]])
        Xb = X[busy]
        # balanced classes: every profile's windows repeated up to the largest class's count
        # (the training sets are sized by simulation cost, not by how common a profile is)
        rng = np.random.default_rng(seed)
        counts = np.bincount(target, minlength=len(TRAFFIC_PROFILES))
        idx: list[np.ndarray] = []
        for c in range(len(TRAFFIC_PROFILES)):
            rows = np.flatnonzero(target == c)
            if len(rows):
                extra = rng.choice(rows, int(counts.max()) - len(rows), replace=True)
                idx.append(np.concatenate([rows, extra]))
        pick = rng.permutation(np.concatenate(idx))
        Xb, target = Xb[pick], target[pick]
        base = make_pipeline(StandardScaler(), MLPClassifier(
            hidden_layer_sizes=(64, 32), alpha=1e-3, max_iter=600, early_stopping=True,
            validation_fraction=0.15, n_iter_no_change=30, random_state=seed))
        model = CalibratedClassifierCV(base, method="isotonic", cv=3)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(_prepare(Xb), target)
        meta = {"version": 1, "seed": seed, "model": "MLPClassifier (64, 32) on standardised "
                "features + isotonic calibration (3-fold)", "classes": list(PROFILES),
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
            p = np.asarray(self.model.predict_proba(_prepare(X[busy])), dtype=float)
            cols = [PROFILES.index(TRAFFIC_PROFILES[int(c)]) for c in self.model.classes_]
            full = np.zeros((int(busy.sum()), len(PROFILES)))
            full[:, cols] = p
            full /= np.maximum(full.sum(axis=1, keepdims=True), 1e-12)
            out[busy] = full
        return out

    def predict(self, X: np.ndarray) -> tuple[list[str], np.ndarray]:
        """Labels and their probability (the row maximum)."""
        p = self.predict_proba(X)
        idx = np.argmax(p, axis=1)
        return [PROFILES[int(i)] for i in idx], p[np.arange(len(p)), idx]

    # ------------------------------------------------------------------ bytes
    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        joblib.dump({"kind": "ProfileClassifier", "model": self.model,
                     "metadata": self.metadata}, buf, compress=3)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> ProfileClassifier:
        obj = joblib.load(io.BytesIO(data))
        if not isinstance(obj, dict) or obj.get("kind") != "ProfileClassifier":
            raise ValueError("not a serialised ProfileClassifier")
        return cls(obj["model"], obj["metadata"])


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
