"""``estimator.tree_proba``: the trees walked on bins give exactly ``predict_proba``'s answer,
at split thresholds, between them, beyond the training range and on missing values."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.ensemble import HistGradientBoostingClassifier

from tuning.estimator import distinct_rows, tree_proba


def _fitted(classes: int, seed: int = 0) -> HistGradientBoostingClassifier:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(600, 5)) * [1.0, 10.0, 0.01, 1e6, 3.0]
    y = (X[:, 0] + X[:, 1] / 10 + rng.normal(0, 0.5, 600) > 0).astype(int)
    if classes == 3:
        y = y + (X[:, 4] > 2.0).astype(int)
    model = HistGradientBoostingClassifier(max_iter=40, max_leaf_nodes=15,
                                           early_stopping=False, random_state=seed)
    return model.fit(X, y)


MODELS = {2: _fitted(2), 3: _fitted(3)}


def _at_thresholds(model: HistGradientBoostingClassifier) -> np.ndarray:
    """Rows whose values sit exactly on the model's bin thresholds, just above and below."""
    cols = []
    for thr in model._bin_mapper.bin_thresholds_:
        cols.append(np.concatenate([thr, np.nextafter(thr, np.inf), np.nextafter(thr, -np.inf)]))
    n = min(len(c) for c in cols)
    return np.stack([c[:n] for c in cols], axis=1)


@pytest.mark.parametrize("classes", [2, 3])
def test_same_probabilities_as_predict_proba_on_the_thresholds(classes: int) -> None:
    model = MODELS[classes]
    X = _at_thresholds(model)
    got = tree_proba(model, X)
    assert got.shape == (len(X), classes)
    assert np.array_equal(got, model.predict_proba(X))


@pytest.mark.parametrize("classes", [2, 3])
def test_missing_and_extreme_values(classes: int) -> None:
    model = MODELS[classes]
    X = np.array([[np.nan, 0.0, 0.0, 0.0, 0.0], [1e300, -1e300, np.inf, -np.inf, 0.0],
                  [0.0, np.nan, np.nan, np.nan, np.nan]])
    assert np.array_equal(tree_proba(model, X), model.predict_proba(X))


def test_the_bins_are_walked_not_predict_proba(monkeypatch: pytest.MonkeyPatch) -> None:
    model = _fitted(3, seed=1)
    X = _at_thresholds(model)
    want = model.predict_proba(X)

    def refuse(_X: Any) -> np.ndarray:
        raise AssertionError("predict_proba called")

    monkeypatch.setattr(model, "predict_proba", refuse)
    assert np.array_equal(tree_proba(model, X), want)


def test_a_model_without_bins_predicts_through_predict_proba() -> None:
    class Plain:
        def predict_proba(self, X: np.ndarray) -> np.ndarray:
            return np.tile([0.25, 0.75], (len(X), 1))

    assert tree_proba(Plain(), np.zeros((4, 2))).tolist() == [[0.25, 0.75]] * 4


def test_rows_of_the_wrong_width_are_refused() -> None:
    with pytest.raises(ValueError, match="5 features"):
        tree_proba(MODELS[2], np.zeros((3, 4)))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 300), st.sampled_from([-1, 0, 1])),
                min_size=1, max_size=40))
def test_any_rows_near_the_thresholds(picks: list[tuple[int, int, int]]) -> None:
    """Rows built from threshold values (each column picks one of its thresholds, or a
    neighbour one ulp away): the walk on bins never leaves a row in another leaf."""
    model = MODELS[3]
    thr = model._bin_mapper.bin_thresholds_
    X = np.zeros((len(picks), 5))
    for i, (col, k, side) in enumerate(picks):
        t = thr[col][k % len(thr[col])]
        X[i, :] = [c[(k + j) % len(c)] for j, c in enumerate(thr)]
        X[i, col] = t if side == 0 else np.nextafter(t, np.inf * side)
    assert np.array_equal(tree_proba(model, X), model.predict_proba(X))


@pytest.mark.parametrize("classes", [2, 3])
def test_rows_sharing_bins_are_walked_once_with_the_same_answer(
        classes: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Past ``DISTINCT_ROWS`` rows, each distinct binned row is walked once and its answer
    given to every row in the same bins: values apart within a bin, NaN, repeats in any
    order."""
    model = MODELS[classes]
    rng = np.random.default_rng(3)
    base = _at_thresholds(model)[:40]
    X = base[rng.integers(0, len(base), 3000)]
    X[::7, 2] = np.nan
    X[::5, 0] = np.nextafter(X[::5, 0], -np.inf)  # the same bin: at or below a threshold
    walked: list[int] = []
    real = model._predict_iterations

    def counting(binned: np.ndarray, *args: Any) -> Any:
        walked.append(len(binned))
        return real(binned, *args)

    monkeypatch.setattr(model, "_predict_iterations", counting)
    got = tree_proba(model, X)
    assert walked and walked[0] <= 2 * len(base) < len(X)
    assert np.array_equal(got, model.predict_proba(X))


def test_distinct_rows_gives_each_row_back() -> None:
    rows = np.array([[1, 2, 3], [4, 5, 6], [1, 2, 3], [0, 0, 0], [4, 5, 6]], dtype=np.uint8)
    uniq, back = distinct_rows(rows)
    assert len(uniq) == 3
    assert np.array_equal(uniq[back], rows)


def test_distinct_rows_refuses_rows_without_bins() -> None:
    with pytest.raises(ValueError, match="rows of bins"):
        distinct_rows(np.zeros((3, 0), dtype=np.uint8))
