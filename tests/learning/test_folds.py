"""Stratified folds and out-of-sample probabilities."""

import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.naive_bayes import GaussianNB

from cl_pipeline.learning import (
    MissingClassWarning,
    fit_predict_fold,
    out_of_sample_pred_probs,
    stratified_fold_indices,
)


def _data(n=120, k=3, seed=0):
    X, y = make_classification(n_samples=n, n_features=6, n_informative=4, n_classes=k, random_state=seed)
    return X, y


def test_folds_partition_and_are_deterministic():
    y = np.repeat(np.arange(4), [30, 20, 7, 3])
    a = stratified_fold_indices(y, 5, 7)
    b = stratified_fold_indices(y, 5, 7)
    c = stratified_fold_indices(y, 5, 8)
    assert len(a) == 5
    for (tr1, te1), (tr2, te2) in zip(a, b, strict=True):
        np.testing.assert_array_equal(tr1, tr2)
        np.testing.assert_array_equal(te1, te2)
    assert any(not np.array_equal(t1, t2) for (_, t1), (_, t2) in zip(a, c, strict=True))
    tests = np.concatenate([te for _, te in a])
    np.testing.assert_array_equal(np.sort(tests), np.arange(y.size))
    for tr, te in a:
        assert np.intersect1d(tr, te).size == 0 and tr.size + te.size == y.size
        # every class with >= 2 examples stays in every training fold
        assert set(np.unique(y[tr])) == {0, 1, 2, 3}
        # stratified: each test fold gets floor or ceil of n_k / 5 of class k
        counts = np.bincount(y[te], minlength=4)
        assert np.all(np.abs(counts - np.array([30, 20, 7, 3]) / 5) < 1)


def test_folds_string_labels():
    y = np.array(["cat", "dog"] * 10)
    folds = stratified_fold_indices(y, 2, 0)
    assert all(np.bincount((y[te] == "dog").astype(int)).tolist() == [5, 5] for _, te in folds)


@pytest.mark.parametrize(
    "labels, n_folds, match",
    [
        (np.array([0, 0, 1, 1, 2]), 2, r"labels: .*class 2 has 1"),
        (np.array([0, 0, 1, 1]), 1, "n_folds"),
        (np.array([0, 0, 1, 1]), 5, "n_folds=5 is larger"),
        (np.zeros((4, 2)), 2, "labels must be 1-D"),
    ],
)
def test_folds_bad_inputs(labels, n_folds, match):
    with pytest.raises(ValueError, match=match):
        stratified_fold_indices(labels, n_folds, 0)


def test_folds_bad_types():
    with pytest.raises(TypeError, match="n_folds"):
        stratified_fold_indices([0, 0, 1, 1], 2.0, 0)
    with pytest.raises(TypeError, match="random_state"):
        stratified_fold_indices([0, 0, 1, 1], 2, "0")


def test_out_of_sample_deterministic_and_parallel_equal():
    X, y = _data()
    est = LogisticRegression(max_iter=200)
    p1 = out_of_sample_pred_probs(est, X, y, n_folds=4, random_state=3)
    p2 = out_of_sample_pred_probs(est, X, y, n_folds=4, random_state=3, n_jobs=2)
    assert p1.shape == (120, 3) and p1.dtype == np.float64
    np.testing.assert_array_equal(p1, p2)
    np.testing.assert_allclose(p1.sum(axis=1), 1.0, atol=1e-12)
    # truly out of sample: row i equals a model fitted without row i
    folds = stratified_fold_indices(y, 4, 3)
    tr, te = folds[0]
    np.testing.assert_array_equal(p1[te], fit_predict_fold(est, X, y, tr, te, 3))


def test_out_of_sample_absent_class_column_is_zero():
    X, y = _data(k=3)
    y = np.where(y == 2, 3, y)  # classes 0, 1, 3 of K = 5
    p = out_of_sample_pred_probs(GaussianNB(), X, y, n_folds=3, n_classes=5)
    assert p.shape == (120, 5)
    assert np.all(p[:, [2, 4]] == 0)


def test_fit_predict_fold_missing_class_gets_one_hot():
    X, y = _data(n=90, k=3)
    test_idx = np.flatnonzero(y == 2)[:5]
    test_idx = np.concatenate([test_idx, np.flatnonzero(y == 0)[:5]])
    train_idx = np.flatnonzero(y != 2)
    train_idx = np.setdiff1d(train_idx, test_idx)
    with pytest.warns(MissingClassWarning, match=r"classes \[2\]"):
        p = fit_predict_fold(LogisticRegression(), X, y, train_idx, test_idx, 3)
    np.testing.assert_array_equal(p[:5], np.tile([0.0, 0.0, 1.0], (5, 1)))
    assert np.all(p[5:, 2] == 0) and np.allclose(p[5:].sum(axis=1), 1)
    assert np.all(p[5:, 0] > 0)


def test_fit_predict_fold_does_not_touch_template():
    X, y = _data()
    est = LogisticRegression()
    fit_predict_fold(est, X, y, np.arange(60), np.arange(60, 120), 3)
    assert not hasattr(est, "coef_")


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        ({"y": np.array([0.5] * 120)}, ValueError, "y must hold integer"),
        ({"y": np.array(["a"] * 120)}, TypeError, "y must hold integer"),
        ({"y": np.full(120, 3)}, ValueError, r"y must hold class ids in 0..2"),
        ({"y": np.zeros(119, dtype=int)}, ValueError, "X has 120 rows but y has 119"),
        ({"n_classes": 1}, ValueError, "n_classes"),
        ({"train_idx": np.array([0, 500])}, ValueError, "train_idx"),
        ({"test_idx": np.array([], dtype=int)}, ValueError, "test_idx"),
        ({"estimator": object()}, TypeError, "estimator must implement fit"),
        ({"sample_weight": np.ones(3)}, ValueError, r"sample_weight must have shape \(120,\)"),
        ({"sample_weight": -np.ones(120)}, ValueError, "sample_weight must be finite"),
    ],
)
def test_fit_predict_fold_bad_inputs(kwargs, exc, match):
    X, y = _data()
    args = dict(
        estimator=LogisticRegression(), X=X, y=y, train_idx=np.arange(60), test_idx=np.arange(60, 120), n_classes=3
    )
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        fit_predict_fold(**args)


def test_out_of_sample_bad_inputs():
    X, y = _data()
    with pytest.raises(TypeError, match="n_jobs"):
        out_of_sample_pred_probs(LogisticRegression(), X, y, n_jobs="2")
    with pytest.raises(ValueError, match="y: every class .*class 2 has 1"):
        out_of_sample_pred_probs(LogisticRegression(), X[:5], np.array([0, 0, 1, 1, 2]), n_folds=2)
