"""Per-annotator statistics: label quality, agreement with the consensus, worst class.

- ``detailed_label_quality[i, j]`` = posterior probability of the class annotator
  ``j`` gave example ``i`` (NaN where ``j`` did not label ``i``).
- ``annotator_quality_j`` (crowdlab) = ``v * mean_i detailed[i, j] + (1 - v) * agree_j``,
  ``agree_j`` the fraction of ``j``'s labels on multi-annotated examples equal to
  the consensus (NaN if ``j`` labeled none), ``v = w / (w + sum(a) * mean(annotations) / m)``;
  ``agreement`` method: ``agree_j``.
- ``agreement_with_consensus_j``: the same fraction over all of ``j``'s labels.
- ``worst_class_j``: among the classes ``j`` used, the one whose labels agree least
  with the consensus; ties by most labels of that class, then by highest mean
  consensus quality of those examples (means computed exactly, ``math.fsum``), then
  the lowest class id.
"""

import math

import numpy as np

from ._multiannotator_crowdlab import ConsensusStats
from ._multiannotator_input import Annotations


def detailed_quality(ann: Annotations, posterior: np.ndarray) -> np.ndarray:
    """(n, m) float64, Fortran order (the reference's layout, which fixes the column sums' rounding)."""
    n, m = ann.shape
    by_annotator = np.full((m, n), np.nan)
    cells = ann.cells
    by_annotator[cells.cols, cells.rows] = posterior[cells.rows, cells.labels]
    return by_annotator.T


def annotator_quality(ann: Annotations, stats: ConsensusStats, method: str, detailed: np.ndarray | None) -> np.ndarray:
    """(m,) float64 (see module docstring)."""
    agree = _agreement_on(ann, stats.consensus_label, ann.num_annotations != 1)
    if method == "agreement":
        return agree
    if detailed is not None:
        label_quality = np.nanmean(detailed, axis=0)
    else:
        cells = ann.cells
        own = stats.posterior[cells.rows, cells.labels]
        label_quality = np.array(
            [np.mean(own[lo:hi]) for lo, hi in zip(cells.bounds[:-1], cells.bounds[1:], strict=True)]
        )
    weights = stats.annotator_weight
    share = np.mean(ann.num_annotations) / len(weights)
    v = stats.model_weight / (stats.model_weight + np.sum(weights) * share)
    return v * label_quality + (1 - v) * agree


def agreement_with_consensus(ann: Annotations, consensus: np.ndarray) -> np.ndarray:
    """(m,) fraction of each annotator's labels equal to the consensus."""
    return _agreement_on(ann, consensus, np.ones(consensus.shape[0], dtype=bool))


def _agreement_on(ann: Annotations, consensus: np.ndarray, rows: np.ndarray) -> np.ndarray:
    cells, m = ann.cells, ann.shape[1]
    kept = rows[cells.rows]
    total = np.bincount(cells.cols[kept], minlength=m)
    hits = np.bincount(cells.cols[kept & (cells.labels == consensus[cells.rows])], minlength=m)
    out = np.full(m, np.nan)
    np.divide(hits, total, out=out, where=total > 0)
    return out


def worst_class(ann: Annotations, consensus: np.ndarray, quality: np.ndarray) -> np.ndarray:
    """(m,) int64 (see module docstring)."""
    m, k = ann.shape[1], ann.num_classes
    cells = ann.cells
    key = cells.cols * k + cells.labels
    used = np.bincount(key, minlength=m * k).reshape(m, k)
    right = np.bincount(key, weights=cells.labels == consensus[cells.rows], minlength=m * k).reshape(m, k)
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = np.where(used > 0, right / np.maximum(used, 1), np.inf)
    cand = accuracy == accuracy.min(axis=1, keepdims=True)
    counts = np.where(cand, used, -1)
    cand &= counts == counts.max(axis=1, keepdims=True)
    for j in np.flatnonzero(cand.sum(axis=1) > 1):
        cand[j] = _best_mean_quality(cand[j], ann.codes[:, j], quality)
    return np.argmax(cand, axis=1).astype(np.int64)


def _best_mean_quality(cand: np.ndarray, codes: np.ndarray, quality: np.ndarray) -> np.ndarray:
    classes = np.flatnonzero(cand)
    means = np.array([math.fsum(quality[codes == c]) / np.count_nonzero(codes == c) for c in classes])
    out = np.zeros_like(cand)
    out[classes[means == means.max()]] = True
    return out
