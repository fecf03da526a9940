"""``ConfidentLearner``: prune label issues, reweight, refit (scikit-learn API)."""

from typing import Any, Self

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, MetaEstimatorMixin, clone
from sklearn.utils import _safe_indexing, get_tags, indexable
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import (
    _num_samples,
    check_is_fitted,
    column_or_1d,
    has_fit_parameter,
)

from cl_pipeline import core
from cl_pipeline.learning._folds import (
    _check_weights,
    _place_columns,
    _scalar,
    out_of_sample_pred_probs,
)
from cl_pipeline.learning._validation import Choice, HasMethods, Integer, validate_params

__all__ = ["ConfidentLearner"]

QUALITY_METHODS = core.SCORE_METHODS
#: Floor of the diagonal of the noise matrix in the weights 1 / max(nm[k, k], floor).
WEIGHT_FLOOR = 1e-3


#: Constraints of ``ConfidentLearner``'s constructor parameters (see ``_validation``), checked by ``fit``.
LEARNER_CONSTRAINTS = {
    "estimator": HasMethods(("fit", "predict_proba")),
    "cv_n_folds": Integer(minimum=2),
    "random_state": Integer(allow_none=True),
    "n_jobs": Integer(allow_none=True),
    "filter_by": Choice(core.FILTER_METHODS),
    "min_examples_per_class": Integer(minimum=0),
    "quality_method": Choice(QUALITY_METHODS, allow_none=True),
}


class ConfidentLearner(MetaEstimatorMixin, ClassifierMixin, BaseEstimator):
    """Train any classifier on labels cleaned by confident learning.

    ``fit`` computes out-of-sample predicted probabilities by stratified
    K-fold (folds in parallel), estimates the confident joint and the noise
    matrices, flags label issues, drops them, and refits a clone of
    ``estimator`` on the rest, weighting an example with given label ``k``
    by ``1 / max(noise_matrix_[k, k], 1e-3)`` when ``estimator.fit`` accepts
    ``sample_weight``.

    Parameters
    ----------
    estimator : classifier
        Unfitted scikit-learn classifier with ``fit`` and ``predict_proba``.
    cv_n_folds : int, default=5
        Folds for the out-of-sample probabilities.
    random_state : int or None, default=0
        Seed of the fold shuffle (the estimator's own seed is its own).
    n_jobs : int or None, default=None
        Folds trained in parallel by joblib (``-1``: all cores).
    filter_by : str, default="prune_by_noise_rate"
        Method of :func:`cl_pipeline.core.find_label_issues`.
    min_examples_per_class : int, default=10
        Never prune a class below this many examples.
    quality_method : str or None, default=None
        Score stored in ``label_issues_["label_quality"]`` (lower = more
        suspicious), see :func:`cl_pipeline.core.get_label_quality_scores`.
        ``None``: the ranking that goes with ``filter_by``:
        ``core.RECOMMENDED_RANK_BY`` for ``"recommended"``, else
        ``"self_confidence"`` (cleanlab's).

    Attributes
    ----------
    classes_ : ndarray of shape (K,)
        Sorted original class labels; column ``k`` of every matrix is
        ``classes_[k]``.
    estimator_ : classifier
        The clone fitted on the kept examples, with the original labels.
    label_issues_ : pandas.DataFrame with n rows
        Columns ``is_label_issue`` (bool), ``label_quality`` (float),
        ``given_label`` and ``predicted_label`` (original label space).
    confident_joint_ : ndarray of shape (K, K), int64
        Calibrated confident joint (rows given label, columns true label).
    noise_matrix_ : ndarray of shape (K, K)
        ``P(given = i | true = j)``.
    inverse_noise_matrix_ : ndarray of shape (K, K)
        ``P(true = j | given = i)``.
    py_ : ndarray of shape (K,)
        Estimated prior of the true labels.
    pred_probs_ : ndarray of shape (n, K)
        The out-of-sample probabilities the issues were found from (the
        ``pred_probs`` passed to ``fit``, or the K-fold ones it computed);
        columns in the order of ``classes_``.
    sample_weight_ : ndarray of shape (n_kept,) or None
        Weights used in the final fit (None if not supported).
    """

    def __init__(
        self,
        estimator: Any,
        *,
        cv_n_folds: int = 5,
        random_state: int | None = 0,
        n_jobs: int | None = None,
        filter_by: str = "prune_by_noise_rate",
        min_examples_per_class: int = 10,
        quality_method: str | None = None,
    ) -> None:
        self.estimator = estimator
        self.cv_n_folds = cv_n_folds
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.filter_by = filter_by
        self.min_examples_per_class = min_examples_per_class
        self.quality_method = quality_method

    def _check_params(self) -> None:
        validate_params(self.get_params(deep=False), LEARNER_CONSTRAINTS)

    def _quality_method(self) -> str:
        if self.quality_method is not None:
            return self.quality_method
        return core.default_rank_by(self.filter_by)

    def _encode_y(self, X: Any, y: Any) -> np.ndarray:
        if y is None:
            raise ValueError("ConfidentLearner requires y to be passed, but the target y is None")
        y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        n = _num_samples(X)
        if n == 0:
            raise ValueError("X has 0 sample(s); ConfidentLearner needs at least 2 per class")
        if n != y.shape[0]:
            raise ValueError(f"X has {n} rows but y has {y.shape[0]}")
        self.classes_, y_enc = np.unique(y, return_inverse=True)
        if self.classes_.size < 2:
            raise ValueError(
                f"y has 1 class ({_scalar(self.classes_[0])!r}); ConfidentLearner needs at least 2 classes"
            )
        return y_enc.astype(np.int64)

    def fit(self, X: Any, y: Any, *, pred_probs: Any = None, sample_weight: Any = None) -> Self:
        """Find label issues, drop them and fit ``estimator_`` on the rest.

        Parameters
        ----------
        X : array-like, sparse matrix or DataFrame with n rows
            Features, in any form ``estimator`` accepts.
        y : array-like of shape (n,)
            Given (possibly noisy) labels: ints, strings, any sortable values.
        pred_probs : array-like of shape (n, K), optional
            Out-of-sample probabilities with columns in the order of
            ``np.unique(y)``; when given, no cross-validation is run.
        sample_weight : array-like of shape (n,), optional
            User weights: used by the fold models and multiplied with the
            noise-rate weights in the final fit.

        Returns
        -------
        self : ConfidentLearner

        Raises
        ------
        ValueError
            Bad parameters, fewer than 2 classes, a class with fewer than 2
            examples when ``pred_probs`` is not given (stratified K-fold
            could not keep it in every training fold), ``pred_probs`` of the
            wrong shape, a class whose ``sample_weight`` sums to 0, or
            ``sample_weight`` with an estimator whose ``fit`` ignores it.

        Notes
        -----
        Steps, as in the spec's "Retraining": out-of-sample probabilities
        (:func:`~cl_pipeline.learning.out_of_sample_pred_probs`, seeded by
        ``random_state``); ``core.estimate_py_and_noise_matrices_from_probabilities``
        without convergence; ``core.find_label_issues`` with the calibrated
        confident joint and ``min_examples_per_class``; drop the issues;
        refit a clone with weights ``1 / max(noise_matrix_[k, k], 1e-3)``
        (times the user's weights). Deterministic for a fixed
        ``random_state`` and a deterministic ``estimator``, whatever ``n_jobs``.
        """
        self._check_params()
        (X,) = indexable(X)  # sparse -> CSR, array-likes -> ndarray; lists/DataFrames kept
        y_enc = self._encode_y(X, y)
        n, n_classes = y_enc.size, self.classes_.size
        sw = _check_weights(sample_weight, n, self.estimator)
        if sw is not None:
            per_class = np.bincount(y_enc, weights=sw, minlength=n_classes)
            if np.any(per_class <= 0):
                raise ValueError(
                    f"sample_weight: class {_scalar(self.classes_[np.argmin(per_class)])!r} has zero "
                    "total weight; drop its examples instead of weighting them out"
                )
        if pred_probs is None:
            self._check_class_sizes(y_enc)
            pred_probs = out_of_sample_pred_probs(
                self.estimator,
                X,
                y_enc,
                n_folds=self.cv_n_folds,
                random_state=self.random_state,
                n_jobs=self.n_jobs,
                n_classes=n_classes,
                sample_weight=sw,
            )
        else:
            pred_probs = _check_pred_probs(pred_probs, n, n_classes)
        self.pred_probs_ = pred_probs
        issues = self._find_issues(y_enc, pred_probs)
        keep = np.flatnonzero(~issues)
        self.sample_weight_ = self._final_weights(y_enc[keep], None if sw is None else sw[keep])
        fit_kwargs = {} if self.sample_weight_ is None else {"sample_weight": self.sample_weight_}
        self.estimator_ = clone(self.estimator).fit(_safe_indexing(X, keep), self.classes_[y_enc[keep]], **fit_kwargs)
        return self

    def _check_class_sizes(self, y_enc: np.ndarray) -> None:
        counts = np.bincount(y_enc, minlength=self.classes_.size)
        if counts.min() < 2:
            k = int(np.argmin(counts))
            raise ValueError(
                f"y: class {_scalar(self.classes_[k])!r} has {counts[k]} example(s); stratified "
                "K-fold needs at least 2 per class (or pass out-of-sample pred_probs)"
            )

    def _find_issues(self, y_enc: np.ndarray, pred_probs: np.ndarray) -> np.ndarray:
        """Estimate the noise and store the fitted diagnostics; return the issue mask."""
        py, nm, inv, cj = core.estimate_py_and_noise_matrices_from_probabilities(
            y_enc, pred_probs, converge_latent_estimates=False
        )
        self.py_, self.noise_matrix_, self.inverse_noise_matrix_ = py, nm, inv
        self.confident_joint_ = cj
        # As the reference does: the prune filters reuse the calibrated joint;
        # the others are defined without one (off-diagonal examples, argmax,
        # lowest scores) and the core rejects a joint it would ignore.
        method = core.RECOMMENDED_FILTER if self.filter_by == "recommended" else self.filter_by
        cj_arg = cj if method in core.PRUNE_METHODS else None
        issues = np.asarray(
            core.find_label_issues(
                y_enc,
                pred_probs,
                filter_by=self.filter_by,
                min_examples_per_class=self.min_examples_per_class,
                confident_joint=cj_arg,
            ),
            dtype=bool,
        )
        quality = core.get_label_quality_scores(y_enc, pred_probs, method=self._quality_method())
        self.label_issues_ = pd.DataFrame(
            {
                "is_label_issue": issues,
                "label_quality": np.asarray(quality, dtype=np.float64),
                "given_label": self.classes_[y_enc],
                "predicted_label": self.classes_[pred_probs.argmax(axis=1)],
            }
        )
        return issues

    def _final_weights(self, y_kept: np.ndarray, user_w: np.ndarray | None) -> np.ndarray | None:
        if not has_fit_parameter(self.estimator, "sample_weight"):
            return None
        diag = np.diagonal(self.noise_matrix_)
        w = 1.0 / np.maximum(diag, WEIGHT_FLOOR)
        weights = w[y_kept]
        return weights if user_w is None else weights * user_w

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities of the refitted model.

        Parameters
        ----------
        X : array-like with m rows

        Returns
        -------
        proba : ndarray of shape (m, K)
            Columns in the order of ``classes_`` (0 for a class that was
            pruned away entirely).
        """
        check_is_fitted(self, "estimator_")
        proba = self.estimator_.predict_proba(X)
        cols = np.searchsorted(self.classes_, self.estimator_.classes_)
        return _place_columns(proba, cols, self.classes_.size)

    def predict(self, X: Any) -> np.ndarray:
        """Predicted labels of the refitted model (original label space).

        Parameters
        ----------
        X : array-like with m rows

        Returns
        -------
        labels : ndarray of shape (m,)
        """
        check_is_fitted(self, "estimator_")
        return self.estimator_.predict(X)

    @property
    def n_features_in_(self) -> int:
        """Number of features seen by ``estimator_`` (when it records it)."""
        return self.estimator_.n_features_in_

    @property
    def feature_names_in_(self) -> np.ndarray:
        """Feature names seen by ``estimator_`` (when it records them)."""
        return self.estimator_.feature_names_in_

    def __sklearn_tags__(self):  # noqa: D105
        tags = super().__sklearn_tags__()
        inner = get_tags(self.estimator)
        tags.input_tags.sparse = inner.input_tags.sparse
        tags.input_tags.allow_nan = inner.input_tags.allow_nan
        tags.input_tags.string = inner.input_tags.string
        tags.input_tags.categorical = inner.input_tags.categorical
        return tags


def _check_pred_probs(pred_probs: Any, n: int, n_classes: int) -> np.ndarray:
    pred_probs = np.asarray(pred_probs)
    if pred_probs.shape != (n, n_classes):
        raise ValueError(f"pred_probs must have shape (n, K) = ({n}, {n_classes}), got {pred_probs.shape}")
    if pred_probs.dtype.kind != "f":
        raise TypeError(f"pred_probs must be float32 or float64, got dtype {pred_probs.dtype}")
    return pred_probs
