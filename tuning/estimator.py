"""What live traffic is, from its telemetry: the descriptors of each profile, and the objective
of the waterlines in place.

Per profile (fitted by ``tuning.training`` on virtual-fabric windows whose traffic is known):

- one gradient-boosted-tree regressor per traffic descriptor (``tuning.descriptors``) from the
  port features (``tuning.features``; they include the current waterlines, so the same traffic
  seen under other thresholds is still recognised), with the out-of-fold residual spread of
  each: the optimiser weighs its candidates over that spread, not over one point estimate;
- a measurement model: log(J + offset) of the current waterlines from the same features --
  how an applied change's outcome is judged online.
"""

from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tuning.features import FEATURE_NAMES

UNUSED_FEATURES: tuple[str, ...] = ("mean_packet_bytes_kb",)
FEATURE_IDX = np.array([i for i, n in enumerate(FEATURE_NAMES) if n not in UNUSED_FEATURES])


def select(features: np.ndarray) -> np.ndarray:
    """The estimator's inputs of feature rows (NaN and infinities as 0)."""
    out: np.ndarray = np.nan_to_num(np.atleast_2d(np.asarray(features, dtype=float))[
        :, FEATURE_IDX], nan=0.0, posinf=0.0, neginf=0.0)
    return out


def single_thread() -> Any:
    """Trees predict (and fit) on one OpenMP thread: their work per call is small, and on
    few cores OpenMP's spinning worker threads cost far more than they save."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="openmp")


PARALLEL_ROWS = 20_000  # from this many rows a prediction is worth every core (tree_threads)


def tree_threads(rows: int) -> Any:
    """``single_thread`` for a call of few rows; no limit for one of ``PARALLEL_ROWS`` or
    more, where the threads' start-up is amortised (the diagnostic's risk of every port of
    a fleet: 128,000 rows, 6.6 s on one thread, 3.5 s on two, measured 2026-12-07)."""
    if rows >= PARALLEL_ROWS:
        return contextlib.nullcontext()
    return single_thread()


def tree_proba(model: Any, X: np.ndarray) -> np.ndarray:
    """``model.predict_proba(X)`` of a fitted histogram gradient-boosting classifier, with its
    trees walked on the bins of ``X`` rather than on its values: the same leaves (a value lies
    at or below a split's threshold exactly when its bin lies at or below the split's bin; the
    model's own bin mapper bins it, NaN to the missing-value bin), in three quarters of the
    time on a fleet's ports (the kind classifier over 97,000 port windows: 1.6 s against 2.1 s,
    measured 2026-12-07). The bins and the per-iteration walk are scikit-learn internals: a
    model without them, or with categorical features, predicts through ``predict_proba``."""
    parts = ("_bin_mapper", "_predictors", "_predict_iterations", "_baseline_prediction",
             "_loss", "n_trees_per_iteration_")
    if not all(hasattr(model, a) for a in parts) or \
            getattr(model, "is_categorical_", None) is not None:
        out: np.ndarray = np.asarray(model.predict_proba(X), dtype=float)
        return out
    from sklearn.utils._openmp_helpers import _openmp_effective_n_threads

    X = np.ascontiguousarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] != model.n_features_in_:
        raise ValueError(f"tree_proba: {X.shape} rows for a model of {model.n_features_in_} "
                         "features")
    mapper = copy.copy(model._bin_mapper)  # binned on the threads allowed now, not at fit
    mapper.n_threads = None
    binned = mapper.transform(X)
    back = None
    if len(binned) >= DISTINCT_ROWS:  # rows in the same bins reach the same leaves
        binned, back = distinct_rows(binned)
    raw = np.zeros((len(binned), model.n_trees_per_iteration_),
                   dtype=model._baseline_prediction.dtype, order="F")
    raw += model._baseline_prediction
    model._predict_iterations(binned, model._predictors, raw, True,
                              _openmp_effective_n_threads())
    proba: np.ndarray = np.asarray(model._loss.predict_proba(raw), dtype=float)
    return proba if back is None else proba[back]


DISTINCT_ROWS = 1_000  # from this many rows, ``tree_proba`` walks each distinct binned row once


def distinct_rows(binned: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct rows of a 2-D array of bins (any layout) and, per original row, the index
    of its distinct row. A fleet's ports share bins often (idle ports; the ports of one job
    carrying the same traffic; a model's 255 bins per feature): 100,266 port windows of the
    tuner benchmark fall in 5,989 distinct rows of the kind classifier's bins."""
    rows = np.ascontiguousarray(binned)
    if rows.ndim != 2 or not rows.shape[1]:
        raise ValueError(f"distinct_rows: rows of bins expected, got shape {rows.shape}")
    keys = rows.view(np.dtype((np.void, rows.dtype.itemsize * rows.shape[1]))).ravel()
    _, first, back = np.unique(keys, return_index=True, return_inverse=True)
    return rows[first], back.reshape(-1)


def fit_trees(X: np.ndarray, y: np.ndarray, *, seed: int = 0, max_iter: int = 150,
              leaves: int = 15, min_leaf: int = 20, rate: float = 0.06,
              quantile: float | None = None) -> Any:
    """A histogram gradient-boosting regressor (squared error, or the pinball loss of
    ``quantile``; no early stopping)."""
    from sklearn.ensemble import HistGradientBoostingRegressor

    loss: dict[str, Any] = {} if quantile is None else {"loss": "quantile",
                                                        "quantile": quantile}
    model = HistGradientBoostingRegressor(**loss, max_iter=max_iter, learning_rate=rate,
                                          max_leaf_nodes=leaves, min_samples_leaf=min_leaf,
                                          l2_regularization=1e-3, early_stopping=False,
                                          random_state=seed)
    with single_thread():
        model.fit(np.asarray(X, dtype=float), np.asarray(y, dtype=float))
    return model


def fit_tree_classifier(X: np.ndarray, y: np.ndarray, *, seed: int = 0, max_iter: int = 200,
                        leaves: int = 15, min_leaf: int = 10, rate: float = 0.05) -> Any:
    """A histogram gradient-boosting classifier of a yes/no event (no early stopping)."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    model = HistGradientBoostingClassifier(max_iter=max_iter, learning_rate=rate,
                                           max_leaf_nodes=leaves, min_samples_leaf=min_leaf,
                                           l2_regularization=1e-3, early_stopping=False,
                                           random_state=seed)
    with single_thread():
        model.fit(np.asarray(X, dtype=float), np.asarray(y, dtype=bool))
    return model


def fit_kind_classifier(X: np.ndarray, kinds: np.ndarray, *, seed: int = 0, folds: int = 5
                        ) -> tuple[Any, np.ndarray]:
    """A histogram gradient-boosting classifier of the kind of each row (labels), and its
    out-of-fold class probabilities of the same rows (``folds`` stratified folds; columns in
    the order of ``classes_``): what a model stacked on it must be fitted on, since
    in-sample probabilities are far surer than those it gives rows it has not seen."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    # Not smaller: 100 trees of 15 leaves per class (a third of the prediction time over a
    # fleet's ports) decided as well offline, but sent a 6-sender incast at 200G to the
    # vendor guide in closed loop, 2.26 x worse than its start (measured 2026-12-07)
    def make() -> Any:
        return HistGradientBoostingClassifier(max_iter=300, learning_rate=0.05,
                                              max_leaf_nodes=31, min_samples_leaf=20,
                                              l2_regularization=1e-3, early_stopping=False,
                                              random_state=seed)

    X = np.asarray(X, dtype=float)
    labels = np.asarray(kinds)
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    with single_thread():
        oof = np.asarray(cross_val_predict(make(), X, labels, cv=cv, method="predict_proba"),
                         dtype=float)
        model = make().fit(X, labels)
    return model, oof


@dataclass
class TrafficEstimator:
    """One profile's descriptor regressors and measurement model (module docstring)."""

    descriptors: tuple[str, ...]
    regressors: list[Any]
    residual_std: np.ndarray
    measure: Any
    info: dict[str, Any] = field(default_factory=dict)

    def estimate(self, features: np.ndarray) -> np.ndarray:
        """The traffic descriptors of feature rows: shape (rows, descriptors)."""
        f = select(features)
        with single_thread():
            return np.stack([np.asarray(r.predict(f), dtype=float) for r in self.regressors],
                            axis=1)

    def measured(self, features: np.ndarray) -> np.ndarray:
        """log(J + offset) of the current waterlines of feature rows."""
        with single_thread():
            return np.asarray(self.measure.predict(select(features)), dtype=float)

    @classmethod
    def fit(cls, descriptors: tuple[str, ...], features: np.ndarray, targets: np.ndarray,
            groups: np.ndarray, measure_features: np.ndarray, measured: np.ndarray, *,
            seed: int = 0, folds: int = 4) -> TrafficEstimator:
        """Fit on port feature rows with their scenario's true descriptors (``targets``);
        the residual spread comes from ``folds``-fold predictions over scenarios
        (``groups``). The measurement model: ``measure_features`` rows -> ``measured``, the
        log objective of their current waterlines."""
        X = select(features)
        T = np.asarray(targets, dtype=float)
        uniq = np.unique(groups)
        rng = np.random.default_rng(seed)
        fold_of = dict(zip(uniq.tolist(), rng.permutation(len(uniq)) % folds, strict=True))
        fold = np.array([fold_of[g] for g in groups.tolist()])
        oof = np.zeros_like(T)
        for k in range(folds):
            train, test = fold != k, fold == k
            if not test.any() or not train.any():
                continue
            for j in range(T.shape[1]):
                m = fit_trees(X[train], T[train, j], seed=seed + 10 * k + j, max_iter=100)
                with single_thread():
                    oof[test, j] = m.predict(X[test])
        resid = np.sqrt(np.mean((oof - T) ** 2, axis=0))
        regs = [fit_trees(X, T[:, j], seed=seed + 100 + j) for j in range(T.shape[1])]
        meas = fit_trees(select(measure_features), np.asarray(measured, dtype=float),
                         seed=seed + 200)
        info = {"rows": len(X), "scenarios": len(uniq),
                "residual_std": [round(float(r), 4) for r in resid],
                "target_std": [round(float(s), 4) for s in T.std(axis=0)]}
        return cls(tuple(descriptors), regs, resid, meas, info)
