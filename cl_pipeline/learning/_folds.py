"""Stratified K-fold out-of-sample predicted probabilities.

The first step of confident learning needs, for every example, class
probabilities from a model that never saw that example. This module computes
them with a shuffled, seeded stratified K-fold split and trains the folds in
parallel with joblib (no module-level process pools).
"""

import warnings
from typing import Any

import numpy as np
from joblib import Parallel, delayed
from sklearn.base import clone
from sklearn.model_selection import StratifiedKFold
from sklearn.utils import _safe_indexing, indexable
from sklearn.utils.validation import _num_samples, has_fit_parameter

from cl_pipeline.learning._validation import HasMethods, Integer, validate_params

__all__ = [
    "MissingClassWarning",
    "fit_predict_fold",
    "out_of_sample_pred_probs",
    "stratified_fold_indices",
]


class MissingClassWarning(UserWarning):
    """A class present in a held-out fold is absent from its training fold."""


def _scalar(value: Any) -> Any:
    """A numpy scalar as the Python value (for readable error messages)."""
    return value.item() if isinstance(value, np.generic) else value


#: Constraints of the fold parameters (see ``_validation``).
FOLD_CONSTRAINTS = {
    "estimator": HasMethods(("fit", "predict_proba")),
    "n_folds": Integer(minimum=2),
    "random_state": Integer(allow_none=True),
    "n_jobs": Integer(allow_none=True),
    "n_classes": Integer(minimum=2, allow_none=True),
}


def _check_int_labels(y: Any, n_classes: int | None, name: str = "y") -> tuple[np.ndarray, int]:
    """Validate encoded labels: 1-D integers in ``0..n_classes-1``."""
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {y.shape}")
    if y.size == 0:
        raise ValueError(f"{name} is empty")
    if y.dtype.kind == "f":
        if not np.all(np.isfinite(y)) or np.any(y != np.round(y)):
            raise ValueError(f"{name} must hold integer class ids, got non-integer values")
        y = y.astype(np.int64)
    elif y.dtype.kind not in "iu":
        raise TypeError(f"{name} must hold integer class ids 0..K-1, got dtype {y.dtype}")
    y = y.astype(np.int64, copy=False)
    if n_classes is None:
        n_classes = int(y.max()) + 1
    n_classes = int(n_classes)
    if y.min() < 0 or y.max() >= n_classes:
        bad = int(y.min()) if y.min() < 0 else int(y.max())
        raise ValueError(f"{name} must hold class ids in 0..{n_classes - 1}, found {bad}")
    return y, n_classes


def stratified_fold_indices(
    labels: Any, n_folds: int = 5, random_state: int | None = 0, *, _name: str = "labels"
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Shuffled, seeded stratified K-fold split of ``range(n)``.

    Parameters
    ----------
    labels : array-like of shape (n,)
        Class labels (any values ``np.unique`` can sort: ints or strings).
    n_folds : int, default=5
        Number of folds, at least 2 and at most ``n``.
    random_state : int or None, default=0
        Seed of the shuffle; the same seed gives the same folds.

    Returns
    -------
    folds : list of (train_idx, test_idx)
        ``n_folds`` pairs of sorted int64 index arrays; the test sets
        partition ``range(n)``.

    Raises
    ------
    ValueError
        If ``labels`` is not 1-D or empty, ``n_folds`` is out of range, or a
        class has fewer than 2 examples. With 2 or more examples every
        training fold holds at least one example of every class (stratified
        allocation gives each test fold at most ``ceil(n_k / n_folds) < n_k``
        of them). A class with fewer than ``n_folds`` (but >= 2) examples is
        allowed: some test folds then hold none of it (scikit-learn warns).
    """
    validate_params({"n_folds": n_folds, "random_state": random_state}, FOLD_CONSTRAINTS)
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"{_name} must be 1-D, got shape {labels.shape}")
    if labels.size < n_folds:
        raise ValueError(f"n_folds={n_folds} is larger than the number of examples ({labels.size})")
    classes, counts = np.unique(labels, return_counts=True)
    small = counts < 2
    if np.any(small):
        raise ValueError(
            f"{_name}: every class needs at least 2 examples for stratified K-fold; "
            f"class {_scalar(classes[small][0])!r} has {int(counts[small][0])}"
            + (f" ({int(small.sum())} such classes)" if small.sum() > 1 else "")
        )
    splitter = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=random_state)
    dummy = np.zeros((labels.size, 1))
    return [(train.astype(np.int64), test.astype(np.int64)) for train, test in splitter.split(dummy, labels)]


def _place_columns(proba: np.ndarray, columns: np.ndarray, n_classes: int) -> np.ndarray:
    """Scatter ``proba`` (m, len(columns)) into an (m, n_classes) float64 array."""
    proba = np.asarray(proba, dtype=np.float64)
    if proba.ndim != 2 or proba.shape[1] != columns.size:
        raise ValueError(
            f"estimator.predict_proba returned shape {proba.shape}, expected "
            f"(n, {columns.size}) for classes_ {columns.tolist()}"
        )
    out = np.zeros((proba.shape[0], n_classes), dtype=np.float64)
    out[:, columns] = proba
    return out


def _fit_predict(
    estimator: Any,
    X: Any,
    y: np.ndarray,
    train_idx: np.ndarray,
    test_idx: np.ndarray,
    n_classes: int,
    sample_weight: np.ndarray | None,
) -> np.ndarray:
    """Unvalidated worker of :func:`fit_predict_fold` (runs in joblib workers)."""
    model = clone(estimator)
    fit_kwargs = {} if sample_weight is None else {"sample_weight": sample_weight[train_idx]}
    y_train = y[train_idx]
    model.fit(_safe_indexing(X, train_idx), y_train, **fit_kwargs)
    proba = model.predict_proba(_safe_indexing(X, test_idx))
    columns = np.asarray(getattr(model, "classes_", np.unique(y_train))).astype(np.int64)
    out = _place_columns(proba, columns, n_classes)
    y_test = y[test_idx]
    unseen = np.setdiff1d(np.unique(y_test), np.unique(y_train))
    if unseen.size:
        warnings.warn(
            f"classes {unseen.tolist()} are absent from a training fold; their "
            f"{int(np.isin(y_test, unseen).sum())} held-out examples get a one-hot "
            "prediction of their given label (no evidence against it)",
            MissingClassWarning,
            stacklevel=3,
        )
        rows = np.flatnonzero(np.isin(y_test, unseen))
        out[rows] = 0.0
        out[rows, y_test[rows]] = 1.0
    return out


def fit_predict_fold(
    estimator: Any,
    X: Any,
    y: Any,
    train_idx: Any,
    test_idx: Any,
    n_classes: int,
    *,
    sample_weight: Any = None,
) -> np.ndarray:
    """Fit a fresh clone on one training fold and predict its held-out fold.

    Parameters
    ----------
    estimator : classifier
        Unfitted template with ``fit`` and ``predict_proba``; it is cloned
        (``sklearn.base.clone``), never modified.
    X : array-like, sparse matrix or DataFrame with n rows
        Features, indexed with ``sklearn.utils._safe_indexing``.
    y : array-like of int, shape (n,)
        Encoded labels in ``0..n_classes-1``.
    train_idx, test_idx : array-like of int
        Row indices of the training and held-out folds.
    n_classes : int
        Number of output columns ``K``.
    sample_weight : array-like of shape (n,), optional
        Passed (restricted to ``train_idx``) to the clone's ``fit``.

    Returns
    -------
    pred_probs : ndarray of shape (len(test_idx), n_classes), float64
        Column ``k`` holds the probability of class ``k``; classes the fold
        model never saw get probability 0.

    Notes
    -----
    A held-out example whose class is absent from the training fold cannot be
    judged by that fold's model, so its row is replaced by the one-hot of its
    given label (it is then never flagged) and a :class:`MissingClassWarning`
    is issued. Unlike the reference (cleanlab), no held-out example is copied
    into the training fold, so the fold model never sees any held-out row and
    the training set does not depend on which held-out row is picked.
    """
    validate_params({"estimator": estimator, "n_classes": n_classes}, FOLD_CONSTRAINTS)
    y, n_classes = _check_int_labels(y, n_classes)
    (X,) = indexable(X)  # sparse -> CSR, array-likes -> ndarray; lists/DataFrames kept
    n = _num_samples(X)
    if n != y.size:
        raise ValueError(f"X has {n} rows but y has {y.size}")
    idx = []
    for name, ix in (("train_idx", train_idx), ("test_idx", test_idx)):
        ix = np.asarray(ix)
        if ix.ndim != 1 or ix.size == 0 or ix.dtype.kind not in "iu":
            raise ValueError(f"{name} must be a non-empty 1-D integer array")
        if ix.min() < 0 or ix.max() >= n:
            raise ValueError(f"{name} holds indices outside 0..{n - 1}")
        idx.append(ix.astype(np.int64, copy=False))
    sw = _check_weights(sample_weight, n, estimator)
    return _fit_predict(estimator, X, y, idx[0], idx[1], n_classes, sw)


def _check_weights(sample_weight: Any, n: int, estimator: Any) -> np.ndarray | None:
    if sample_weight is None:
        return None
    if not has_fit_parameter(estimator, "sample_weight"):
        raise ValueError(f"sample_weight was given but {type(estimator).__name__}.fit does not accept it")
    sw = np.asarray(sample_weight, dtype=np.float64)
    if sw.shape != (n,):
        raise ValueError(f"sample_weight must have shape ({n},), got {sw.shape}")
    if not np.all(np.isfinite(sw)) or np.any(sw < 0):
        raise ValueError("sample_weight must be finite and non-negative")
    return sw


def out_of_sample_pred_probs(
    estimator: Any,
    X: Any,
    y: Any,
    *,
    n_folds: int = 5,
    random_state: int | None = 0,
    n_jobs: int | None = None,
    n_classes: int | None = None,
    sample_weight: Any = None,
) -> np.ndarray:
    """Out-of-sample predicted probabilities by stratified K-fold.

    Parameters
    ----------
    estimator : classifier
        Unfitted template with ``fit`` and ``predict_proba``; one fresh clone
        is trained per fold.
    X : array-like, sparse matrix or DataFrame with n rows
        Features.
    y : array-like of int, shape (n,)
        Encoded labels in ``0..K-1``.
    n_folds : int, default=5
        Number of folds (see :func:`stratified_fold_indices`).
    random_state : int or None, default=0
        Seed of the fold shuffle.
    n_jobs : int or None, default=None
        Folds trained in parallel by joblib (``None``: 1 unless inside a
        ``joblib.parallel_config`` context; ``-1``: all cores).
    n_classes : int, optional
        ``K``; defaults to ``max(y) + 1``. Give it when some classes may be
        absent from ``y``.
    sample_weight : array-like of shape (n,), optional
        Per-example weights passed to every fold's ``fit``.

    Returns
    -------
    pred_probs : ndarray of shape (n, K), float64
        Row ``i`` comes from the model of the fold that held ``i`` out.
        Deterministic for a fixed ``random_state`` when ``estimator`` is.
    """
    params = {"estimator": estimator, "n_jobs": n_jobs, "n_classes": n_classes}
    validate_params(params, FOLD_CONSTRAINTS)
    y, n_classes = _check_int_labels(y, n_classes)
    (X,) = indexable(X)  # sparse -> CSR, array-likes -> ndarray; lists/DataFrames kept
    n = _num_samples(X)
    if n != y.size:
        raise ValueError(f"X has {n} rows but y has {y.size}")
    sw = _check_weights(sample_weight, n, estimator)
    folds = stratified_fold_indices(y, n_folds, random_state, _name="y")
    parts = Parallel(n_jobs=n_jobs)(
        delayed(_fit_predict)(estimator, X, y, train, test, n_classes, sw) for train, test in folds
    )
    pred_probs = np.empty((n, n_classes), dtype=np.float64)
    for (_, test), part in zip(folds, parts, strict=True):
        pred_probs[test] = part
    return pred_probs
