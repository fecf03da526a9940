"""Public estimation API: thresholds, confident joint, joint ``Q``, latent estimates.

Each function validates its inputs once (``_validation``) and then calls the
trusted helpers of ``_count`` and ``_latent``. See those modules for the
notation and the invariants.
"""

import numpy as np
from numpy.typing import ArrayLike

from . import _count, _latent
from . import _validation as v

ARGMAX_RULES = ("cleanlab", "paper")
ESTIMATION_METHODS = ("off_diagonal", "off_diagonal_calibrated", "off_diagonal_custom")


def _thresholds(labels: np.ndarray, pred_probs: np.ndarray) -> np.ndarray:
    """Thresholds of structurally valid inputs; validates every row first."""
    v.check_probability_rows(pred_probs)
    index = _count.class_index(labels, pred_probs.shape[1])
    return _count.confident_thresholds(_count.self_confidence(labels, pred_probs), index, pred_probs.dtype)


def get_confident_thresholds(labels: ArrayLike, pred_probs: ArrayLike) -> np.ndarray:
    """Per-class confident thresholds ``t_k`` (mean self-confidence of class k).

    Parameters
    ----------
    labels : array_like of int, shape (n,)
    pred_probs : array_like of float, shape (n, K)

    Returns
    -------
    ndarray, shape (K,)
        In the input dtype; float64 when a class is absent (its threshold is 2).
    """
    labels, pred_probs = v.check_labels_and_pred_probs(labels, pred_probs, check_rows=False)
    return _thresholds(labels, pred_probs)


def prepare(
    labels: np.ndarray,
    pred_probs: np.ndarray,
    thresholds: np.ndarray | None = None,
    argmax_rule: str = "cleanlab",
) -> tuple[_count.ClassIndex, _count.ConfidentPass]:
    """The passes shared by every estimator and filter (inputs structurally valid).

    Gathers the self-confidence (one value per row), computes thresholds
    when ``thresholds`` is None, then reads ``pred_probs`` once in chunks,
    validating each chunk's rows before using them. Returns the rows grouped
    by class and the confident pass.
    """
    index = _count.class_index(labels, pred_probs.shape[1])
    own = _count.self_confidence(labels, pred_probs)
    if thresholds is None:
        thresholds = _count.confident_thresholds(own, index, pred_probs.dtype)
    cpass = _count.confident_pass(labels, pred_probs, own, thresholds, argmax_rule, v.check_probability_block)
    return index, cpass


def calibrated_from_pass(labels: np.ndarray, index: _count.ClassIndex, cpass: _count.ConfidentPass) -> np.ndarray:
    """Calibrated ``C`` from a confident pass, shape (K, K) int64."""
    k = index.bounds.shape[0] - 1
    raw = _count.count_joint(labels, cpass.guess, k)
    return _count.calibrate(raw, index.counts.astype(np.int64))


def compute_confident_joint(
    labels: ArrayLike,
    pred_probs: ArrayLike,
    *,
    thresholds: ArrayLike | None = None,
    calibrate: bool = True,
    argmax_rule: str = "cleanlab",
) -> np.ndarray:
    """The confident joint ``C`` (rows = given label, columns = guessed true label).

    Parameters
    ----------
    labels : array_like of int, shape (n,)
    pred_probs : array_like of float, shape (n, K)
    thresholds : array_like of float, shape (K,), optional
        Defaults to :func:`get_confident_thresholds`.
    calibrate : bool, default True
        Calibrate rows to the class counts and the total to ``n``.
    argmax_rule : {"cleanlab", "paper"}, default "cleanlab"
        With several confident classes, take the argmax over all classes
        (reference) or over the confident ones only (paper).

    Returns
    -------
    ndarray of int64, shape (K, K)
    """
    labels, pred_probs = v.check_labels_and_pred_probs(labels, pred_probs, check_rows=False)
    v.check_choice(argmax_rule, "argmax_rule", ARGMAX_RULES)
    calibrate = v.check_flag(calibrate, "calibrate")
    k = pred_probs.shape[1]
    if thresholds is not None:
        thresholds = v.check_thresholds(thresholds, k)
    index, cpass = prepare(labels, pred_probs, thresholds, argmax_rule)
    joint = _count.count_joint(labels, cpass.guess, k)
    if calibrate:
        joint = _count.calibrate(joint, index.counts.astype(np.int64))
    return joint


def calibrate_confident_joint(confident_joint: ArrayLike, labels: ArrayLike) -> np.ndarray:
    """Calibrate ``C``: row k sums to ``n_k``, total ``n``, integer entries.

    Parameters
    ----------
    confident_joint : array_like, shape (K, K)
    labels : array_like of int, shape (n,)

    Returns
    -------
    ndarray of int64, shape (K, K)
    """
    cj = v.check_confident_joint(confident_joint)
    labels = v.check_labels(labels, cj.shape[0], k_source="rows of confident_joint")
    return _count.calibrate(cj, _count.label_counts(labels, cj.shape[0]))


def estimate_joint(labels: ArrayLike, pred_probs: ArrayLike, *, confident_joint: ArrayLike | None = None) -> np.ndarray:
    """The joint distribution ``Q[i, j] = P(given = i, true = j)``, summing to 1.

    Parameters
    ----------
    labels : array_like of int, shape (n,)
    pred_probs : array_like of float, shape (n, K)
    confident_joint : array_like, shape (K, K), optional
        Recalibrated against ``labels`` when given.

    Returns
    -------
    ndarray of float64, shape (K, K)
    """
    labels, pred_probs = v.check_labels_and_pred_probs(labels, pred_probs, check_rows=False)
    return _joint(labels, pred_probs, confident_joint)


def _joint(labels, pred_probs, confident_joint) -> np.ndarray:
    """``Q`` from the data or from a supplied ``C`` (recalibrated); rows validated either way."""
    if confident_joint is None:
        index, cpass = prepare(labels, pred_probs)
        return _count.joint_from_calibrated(calibrated_from_pass(labels, index, cpass))
    k = pred_probs.shape[1]
    raw = v.check_confident_joint(confident_joint, k)
    v.check_probability_rows(pred_probs)
    return _count.joint_from_calibrated(_count.calibrate(raw, _count.label_counts(labels, k)))


def estimate_latent(
    confident_joint: ArrayLike,
    labels: ArrayLike,
    *,
    py_method: str = "cnt",
    converge_latent_estimates: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Prior of true labels and both noise matrices from a confident joint.

    Parameters
    ----------
    confident_joint : array_like, shape (K, K)
    labels : array_like of int, shape (n,)
    py_method : {"cnt", "eqn", "marginal", "marginal_ps"}, default "cnt"
    converge_latent_estimates : bool, default False

    Returns
    -------
    py : ndarray, shape (K,)
        ``P(true = k)``.
    noise_matrix : ndarray, shape (K, K)
        ``P(given = i | true = j)``; columns sum to 1.
    inverse_noise_matrix : ndarray, shape (K, K)
        ``P(true = j | given = i)`` at ``[j, i]``; columns sum to 1.
    """
    cj = v.check_confident_joint(confident_joint)
    labels = v.check_labels(labels, cj.shape[0], k_source="rows of confident_joint")
    v.check_choice(py_method, "py_method", _latent.PY_METHODS)
    converge = v.check_flag(converge_latent_estimates, "converge_latent_estimates")
    counts = _count.label_counts(labels, cj.shape[0])
    return _latent.latent_estimates(cj, counts, labels.shape[0], py_method, converge)


def estimate_py_and_noise_matrices_from_probabilities(
    labels: ArrayLike,
    pred_probs: ArrayLike,
    *,
    thresholds: ArrayLike | None = None,
    converge_latent_estimates: bool = True,
    py_method: str = "cnt",
    calibrate: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(py, noise_matrix, inverse_noise_matrix, confident_joint)`` from probabilities.

    Parameters
    ----------
    labels : array_like of int, shape (n,)
    pred_probs : array_like of float, shape (n, K)
    thresholds : array_like, shape (K,), optional
    converge_latent_estimates : bool, default True
    py_method : {"cnt", "eqn", "marginal", "marginal_ps"}, default "cnt"
    calibrate : bool, default True

    Returns
    -------
    py : ndarray, shape (K,)
    noise_matrix, inverse_noise_matrix : ndarray, shape (K, K)
    confident_joint : ndarray of int64, shape (K, K)
    """
    labels, pred_probs = v.check_labels_and_pred_probs(labels, pred_probs, check_rows=False)
    v.check_choice(py_method, "py_method", _latent.PY_METHODS)
    converge = v.check_flag(converge_latent_estimates, "converge_latent_estimates")
    calibrate = v.check_flag(calibrate, "calibrate")
    k = pred_probs.shape[1]
    if thresholds is not None:
        thresholds = v.check_thresholds(thresholds, k)
    index, cpass = prepare(labels, pred_probs, thresholds)
    counts = index.counts.astype(np.int64)
    cj = _count.count_joint(labels, cpass.guess, k)
    if calibrate:
        cj = _count.calibrate(cj, counts)
    py, nm, inv = _latent.latent_estimates(cj, counts, labels.shape[0], py_method, converge)
    return py, nm, inv, cj


def num_label_issues(
    labels: ArrayLike,
    pred_probs: ArrayLike,
    *,
    confident_joint: ArrayLike | None = None,
    estimation_method: str = "off_diagonal",
) -> int:
    """Estimated number of label issues.

    Parameters
    ----------
    labels : array_like of int, shape (n,)
    pred_probs : array_like of float, shape (n, K)
    confident_joint : array_like, shape (K, K), optional
        Required by (and only used by) ``"off_diagonal_custom"``.
    estimation_method : {"off_diagonal", "off_diagonal_calibrated", "off_diagonal_custom"}
        ``off_diagonal``: off-diagonal examples of the raw ``C`` that the
        near-argmax rule keeps (= size of the ``confident_learning`` filter);
        the other two: ``rint(n * (1 - trace(Q)))``.

    Returns
    -------
    int
    """
    labels, pred_probs = v.check_labels_and_pred_probs(labels, pred_probs, check_rows=False)
    v.check_choice(estimation_method, "estimation_method", ESTIMATION_METHODS)
    if estimation_method == "off_diagonal_custom" and confident_joint is None:
        raise ValueError("estimation_method='off_diagonal_custom' requires confident_joint, got None")
    if estimation_method != "off_diagonal_custom" and confident_joint is not None:
        raise ValueError(
            f"confident_joint is only used with estimation_method='off_diagonal_custom', "
            f"got estimation_method={estimation_method!r}"
        )
    if estimation_method == "off_diagonal":
        return off_diagonal_count(labels, prepare(labels, pred_probs)[1])
    joint = _joint(labels, pred_probs, confident_joint)
    return int(np.rint(labels.shape[0] * (1.0 - joint.trace())))


def off_diagonal_count(labels: np.ndarray, cpass: _count.ConfidentPass) -> int:
    """Off-diagonal examples not protected by the near-argmax rule."""
    return int(np.count_nonzero(cpass.off_diagonal(labels) & ~cpass.keep))
