"""Dataset-level label health from the joint ``Q`` (``J`` below).

Per class ``k`` (``n`` examples):

- label issues ``round(n * (row_k(J) - J[k, k]))``; inverse label issues
  ``round(n * (col_k(J) - J[k, k]))``;
- label noise ``(row_k - J[k, k]) / max(row_k, 1e-6)``; inverse label noise
  likewise with the column; label quality ``1 - label noise``.

Classes are sorted by label quality ascending (stable: ties by class id).
Overlapping classes: ``J[i, j] + J[j, i]`` for ``i < j`` (or every ordered
pair ``J[i, j]``, ``i != j``, when asymmetric), counts ``round(n * value)``,
sorted descending (stable). Overall health: ``1 - num_label_issues / n``.
"""

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from . import _count
from . import _validation as v
from ._estimation import _joint, calibrated_from_pass, off_diagonal_count, prepare

_EPSILON = 1e-6


@dataclass(frozen=True)
class ClassLabelQuality:
    """Per-class label health, each array shape (K,), sorted by ``label_quality``."""

    classes: np.ndarray
    label_issues: np.ndarray
    inverse_label_issues: np.ndarray
    label_noise: np.ndarray
    inverse_label_noise: np.ndarray
    label_quality: np.ndarray


@dataclass(frozen=True)
class OverlappingClasses:
    """Class pairs by joint probability, each array shape (P,), sorted descending."""

    class_a: np.ndarray
    class_b: np.ndarray
    num_overlapping_examples: np.ndarray
    joint_probability: np.ndarray


@dataclass(frozen=True)
class HealthSummary:
    """Everything :func:`health_summary` reports."""

    overall_label_health_score: float
    joint: np.ndarray
    classes: ClassLabelQuality
    overlapping: OverlappingClasses


def class_quality_from_joint(joint: np.ndarray, n: int) -> ClassLabelQuality:
    """Per-class table from ``J`` (trusted input), sorted by quality ascending."""
    diagonal = np.diagonal(joint)
    rows, cols = joint.sum(axis=1), joint.sum(axis=0)
    given_noise, true_noise = rows - diagonal, cols - diagonal
    label_noise = given_noise / np.maximum(rows, _EPSILON)
    inverse_noise = true_noise / np.maximum(cols, _EPSILON)
    quality = 1 - label_noise
    order = np.argsort(quality, kind="stable")
    return ClassLabelQuality(
        classes=np.arange(joint.shape[0])[order],
        label_issues=np.round(given_noise * n).astype(np.int64)[order],
        inverse_label_issues=np.round(true_noise * n).astype(np.int64)[order],
        label_noise=label_noise[order],
        inverse_label_noise=inverse_noise[order],
        label_quality=quality[order],
    )


def overlap_from_joint(joint: np.ndarray, n: int, asymmetric: bool = False) -> OverlappingClasses:
    """Class pairs from ``J`` (trusted input), sorted by joint probability descending."""
    k = joint.shape[0]
    a, b = np.nonzero(~np.eye(k, dtype=bool)) if asymmetric else np.triu_indices(k, 1)
    values = joint[a, b] if asymmetric else joint[a, b] + joint[b, a]
    order = np.argsort(-values, kind="stable")
    return OverlappingClasses(
        class_a=a[order],
        class_b=b[order],
        num_overlapping_examples=np.round(values * n).astype(np.int64)[order],
        joint_probability=values[order],
    )


def rank_classes_by_label_quality(
    labels: ArrayLike, pred_probs: ArrayLike, *, confident_joint: ArrayLike | None = None
) -> ClassLabelQuality:
    """Classes ranked from lowest to highest label quality.

    Parameters
    ----------
    labels : array_like of int, shape (n,)
    pred_probs : array_like of float, shape (n, K)
    confident_joint : array_like, shape (K, K), optional

    Returns
    -------
    ClassLabelQuality
    """
    labels, pred_probs = v.check_labels_and_pred_probs(labels, pred_probs, check_rows=False)
    return class_quality_from_joint(_joint(labels, pred_probs, confident_joint), labels.shape[0])


def find_overlapping_classes(
    labels: ArrayLike,
    pred_probs: ArrayLike,
    *,
    confident_joint: ArrayLike | None = None,
    asymmetric: bool = False,
) -> OverlappingClasses:
    """Pairs of classes most often confused with each other.

    Parameters
    ----------
    labels : array_like of int, shape (n,)
    pred_probs : array_like of float, shape (n, K)
    confident_joint : array_like, shape (K, K), optional
    asymmetric : bool, default False
        Report every ordered pair instead of unordered pairs.

    Returns
    -------
    OverlappingClasses
    """
    labels, pred_probs = v.check_labels_and_pred_probs(labels, pred_probs, check_rows=False)
    asymmetric = v.check_flag(asymmetric, "asymmetric")
    joint = _joint(labels, pred_probs, confident_joint)
    return overlap_from_joint(joint, labels.shape[0], asymmetric)


def overall_label_health_score(
    labels: ArrayLike, pred_probs: ArrayLike, *, confident_joint: ArrayLike | None = None
) -> float:
    """Fraction of examples not flagged: ``1 - num_label_issues / n``.

    The count is :func:`num_label_issues` with its default
    ``"off_diagonal"`` method (the raw confident joint of ``pred_probs``),
    as in cleanlab 2.9.0.

    Parameters
    ----------
    labels : array_like of int, shape (n,)
    pred_probs : array_like of float, shape (n, K)
    confident_joint : None, default None
        Kept for cleanlab's signature only. cleanlab ignores a supplied
        joint here (with a warning); we raise ValueError instead (an ignored
        argument is a caller bug). For a score from your own joint use
        ``1 - num_label_issues(..., estimation_method="off_diagonal_custom",
        confident_joint=C) / n``; :func:`health_summary` uses a supplied
        joint for its tables.

    Returns
    -------
    float in [0, 1]

    Raises
    ------
    ValueError
        If ``confident_joint`` is not None.
    """
    labels, pred_probs = v.check_labels_and_pred_probs(labels, pred_probs, check_rows=False)
    if confident_joint is not None:
        raise ValueError(
            "confident_joint is not used by overall_label_health_score (the count comes from the raw "
            "confident joint of pred_probs; cleanlab ignores it too); pass confident_joint=None, or use "
            "num_label_issues(..., estimation_method='off_diagonal_custom', confident_joint=...)"
        )
    return _health_score(labels, pred_probs)


def _health_score(labels: np.ndarray, pred_probs: np.ndarray) -> float:
    issues = off_diagonal_count(labels, prepare(labels, pred_probs)[1])
    return 1.0 - issues / labels.shape[0]


def health_summary(
    labels: ArrayLike, pred_probs: ArrayLike, *, confident_joint: ArrayLike | None = None
) -> HealthSummary:
    """Overall score, joint, per-class table and overlapping classes in one call.

    One pass over ``pred_probs`` serves every part. The overall score is
    always :func:`overall_label_health_score` of ``(labels, pred_probs)``;
    a supplied ``confident_joint`` is used (recalibrated against ``labels``)
    for the joint and the two tables, as in cleanlab 2.9.0.

    Parameters
    ----------
    labels : array_like of int, shape (n,)
    pred_probs : array_like of float, shape (n, K)
    confident_joint : array_like, shape (K, K), optional
        Source of the joint ``J`` instead of the calibrated confident joint
        of ``pred_probs``.

    Returns
    -------
    HealthSummary
        ``overall_label_health_score`` (float), ``joint`` (K, K) float64,
        ``classes`` (:class:`ClassLabelQuality`, arrays of shape (K,)) and
        ``overlapping`` (:class:`OverlappingClasses`, arrays of shape
        (K (K - 1) / 2,)).
    """
    labels, pred_probs = v.check_labels_and_pred_probs(labels, pred_probs, check_rows=False)
    n = labels.shape[0]
    index, cpass = prepare(labels, pred_probs)
    if confident_joint is None:
        joint = _count.joint_from_calibrated(calibrated_from_pass(labels, index, cpass))
    else:
        joint = _joint(labels, pred_probs, confident_joint)
    return HealthSummary(
        overall_label_health_score=1.0 - off_diagonal_count(labels, cpass) / n,
        joint=joint,
        classes=class_quality_from_joint(joint, n),
        overlapping=overlap_from_joint(joint, n),
    )
