"""Metrics of the synthetic-noise grid (``benchmarks/noise_grid.py``).

Pure numpy, so ``tests/benchmarks/test_grid_metrics.py`` can check each against
hand-computed small cases.
"""

import math
from collections.abc import Sequence

import numpy as np

__all__ = [
    "detection_scores",
    "empirical_joint",
    "joint_rmse",
    "noise_rate",
    "not_worse_within_noise",
    "replace_section",
]


def detection_scores(flagged: np.ndarray, flipped: np.ndarray) -> tuple[float, float, float]:
    """Precision, recall and F1 of flagged examples against the true flips.

    Parameters
    ----------
    flagged : bool ndarray of shape (n,)
        Examples flagged as label issues.
    flipped : bool ndarray of shape (n,)
        Examples whose given label differs from the true label.

    Returns
    -------
    precision, recall, f1 : float
        ``precision`` is NaN when nothing is flagged, ``recall`` is NaN when
        nothing is flipped; ``f1`` is NaN when either is NaN and 0 when both
        are 0.
    """
    flagged = np.asarray(flagged, dtype=bool)
    flipped = np.asarray(flipped, dtype=bool)
    if flagged.shape != flipped.shape or flagged.ndim != 1:
        raise ValueError(f"flagged {flagged.shape} and flipped {flipped.shape} must be equal 1-D")
    tp = int(np.count_nonzero(flagged & flipped))
    n_flag, n_flip = int(flagged.sum()), int(flipped.sum())
    precision = tp / n_flag if n_flag else math.nan
    recall = tp / n_flip if n_flip else math.nan
    if math.isnan(precision) or math.isnan(recall):
        return precision, recall, math.nan
    f1 = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
    return precision, recall, f1


def empirical_joint(given: np.ndarray, true: np.ndarray, n_classes: int) -> np.ndarray:
    """Observed joint ``P(given = i, true = j)`` of the realised noise.

    Parameters
    ----------
    given, true : int ndarray of shape (n,)
        Labels in ``0..n_classes-1``.
    n_classes : int

    Returns
    -------
    joint : ndarray of shape (n_classes, n_classes)
        Rows given label, columns true label; sums to 1 (the same layout as
        ``confident_joint / n``).
    """
    given, true = np.asarray(given), np.asarray(true)
    if given.shape != true.shape or given.ndim != 1 or given.size == 0:
        raise ValueError("given and true must be non-empty 1-D arrays of equal length")
    counts = np.bincount(given * n_classes + true, minlength=n_classes * n_classes)
    return counts.reshape(n_classes, n_classes) / given.size


def joint_rmse(estimated: np.ndarray, true: np.ndarray) -> float:
    """Root mean squared error over the K x K entries of two joints.

    Parameters
    ----------
    estimated, true : ndarray of shape (K, K)

    Returns
    -------
    rmse : float
    """
    estimated, true = np.asarray(estimated, float), np.asarray(true, float)
    if estimated.shape != true.shape:
        raise ValueError(f"shapes differ: {estimated.shape} vs {true.shape}")
    return float(np.sqrt(np.mean((estimated - true) ** 2)))


def noise_rate(joint: np.ndarray) -> float:
    """Fraction of mislabelled examples implied by a joint: ``1 - trace(joint) / sum(joint)``.

    Parameters
    ----------
    joint : ndarray of shape (K, K)
        Counts or probabilities.

    Returns
    -------
    rate : float
    """
    joint = np.asarray(joint, dtype=float)
    return float(1.0 - np.trace(joint) / joint.sum())


def not_worse_within_noise(ours: Sequence[float], theirs: Sequence[float], z: float = 2.0) -> bool:
    """Whether ``ours`` is at least ``theirs`` within seed noise (paired by seed).

    True when the mean paired difference ``ours - theirs`` is >= ``-z`` standard
    errors of that mean (standard deviation with ddof=1 over the seeds). With
    identical pairs the difference is 0 and the answer is True.

    Parameters
    ----------
    ours, theirs : sequence of float, same length >= 1
    z : float, default=2.0

    Returns
    -------
    bool
    """
    diff = np.asarray(ours, float) - np.asarray(theirs, float)
    if diff.ndim != 1 or diff.size == 0:
        raise ValueError("ours and theirs must be non-empty sequences of equal length")
    mean = float(diff.mean())
    sem = float(diff.std(ddof=1) / math.sqrt(diff.size)) if diff.size > 1 else 0.0
    return mean >= -z * sem - 1e-12


def replace_section(text: str, start: str, end: str, body: str) -> str:
    """Replace what lies between two marker lines (or append a new marked section).

    Parameters
    ----------
    text : str
        Whole document.
    start, end : str
        Marker strings, e.g. ``<!-- grid:start -->``.
    body : str
        New content placed between the markers.

    Returns
    -------
    str
        The document with only that section changed.
    """
    block = f"{start}\n{body.rstrip()}\n{end}"
    i, j = text.find(start), text.find(end)
    if i == -1 or j == -1 or j < i:
        sep = "" if not text or text.endswith("\n\n") else ("\n" if text.endswith("\n") else "\n\n")
        return f"{text}{sep}{block}\n"
    return text[:i] + block + text[j + len(end) :]
