"""Everything the calibrated confident joint determines, from counts alone (no row is read).

Notation: ``C`` the calibrated confident joint (K, K) with row ``k`` summing to
``n_k`` and total ``n``; ``Q = C / n`` the estimated joint of given and true
labels. Given ``C``, the label counts ``n_k`` and the number of off-diagonal
examples of the *raw* joint, this module gives exactly what the row-level API
gives for the same data (``estimate_joint(labels, pred_probs, confident_joint=C)``,
``estimate_latent(C, labels)``, ``rank_classes_by_label_quality(..., confident_joint=C)``,
``overall_label_health_score(labels, pred_probs)``), so a streaming pass that
produced ``C`` (``ConfidentJointState``) needs no second look at the rows.

Invariants (tested): ``Q`` sums to 1; every column of the noise matrix with any mass sums
to 1; equal to the row-level functions on the same data.
"""

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from . import _count, _health, _latent
from . import _validation as v

__all__ = ["JointSummary", "summarize_confident_joint"]


@dataclass(frozen=True)
class JointSummary:
    """What ``C`` determines.

    Attributes
    ----------
    joint : ndarray, shape (K, K)
        ``Q`` (rows: given label, columns: true label).
    py : ndarray, shape (K,)
        Prior of the true labels (``py_method="cnt"``, not converged).
    noise_matrix : ndarray, shape (K, K)
        ``P(given = i | true = j)``.
    inverse_noise_matrix : ndarray, shape (K, K)
        ``P(true = i | given = j)``.
    class_quality : ClassLabelQuality
        Per class, sorted by label quality ascending.
    health_score : float
        ``1 - num_label_issues / n``.
    """

    joint: np.ndarray
    py: np.ndarray
    noise_matrix: np.ndarray
    inverse_noise_matrix: np.ndarray
    class_quality: _health.ClassLabelQuality
    health_score: float


def summarize_confident_joint(
    confident_joint: ArrayLike, label_counts: ArrayLike, num_label_issues: int
) -> JointSummary:
    """``Q``, priors, noise matrices, per-class quality and health from counts.

    Parameters
    ----------
    confident_joint : array_like of int, shape (K, K)
        ``C`` (recalibrated against ``label_counts``, as the row-level API does).
    label_counts : array_like of int, shape (K,)
        ``n_k``, the number of examples with given label ``k``; at least one positive.
    num_label_issues : int
        ``num_label_issues(labels, pred_probs)`` (``"off_diagonal"``: off-diagonal examples
        after the near-argmax rule; ``ConfidentJointCounts.num_label_issues``), for the health score.

    Returns
    -------
    JointSummary
    """
    cj = v.check_confident_joint(confident_joint)
    counts = np.asarray(label_counts)
    if counts.shape != (cj.shape[0],) or counts.dtype.kind not in "iu" or counts.size and counts.min() < 0:
        raise ValueError(
            f"label_counts must be {cj.shape[0]} non-negative integers (one per row of confident_joint), "
            f"got {v._describe(label_counts)}"
        )
    n = int(counts.sum())
    if n < 1:
        raise ValueError(f"label_counts must count at least one example, got {v._describe(label_counts)}")
    issues = v.check_count(num_label_issues, "num_label_issues")
    if issues > n:
        raise ValueError(f"num_label_issues must be at most n = {n}, got {issues}")
    counts = counts.astype(np.int64)
    joint = _count.joint_from_calibrated(_count.calibrate(cj, counts))
    py, noise, inverse = _latent.latent_estimates(cj, counts, n, "cnt", False)
    quality = _health.class_quality_from_joint(joint, n)
    return JointSummary(joint, py, noise, inverse, quality, 1.0 - issues / n)
