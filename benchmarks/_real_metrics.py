"""Metrics of the real label-error benchmark (``benchmarks/real_label_errors.py``).

Ground truth is partial: only *reviewed* examples have a known status, and
the confirmed errors are a subset of them. So every precision is reported
twice: over all flagged examples (unreviewed counted as correct: a lower
bound) and over the flagged examples that were reviewed.

Pure numpy, checked against hand-computed cases in
``tests/benchmarks/test_real_metrics.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class FlagScores:
    """How a boolean mask of flags fares against the confirmed errors."""

    flagged: int
    confirmed_flagged: int
    reviewed_flagged: int
    precision_all: float
    precision_reviewed: float
    recall: float


def flag_scores(mask: np.ndarray, confirmed: np.ndarray, reviewed: np.ndarray) -> FlagScores:
    """Counts, precisions and recall of a mask.

    Parameters
    ----------
    mask : bool ndarray, shape (n,)
    confirmed, reviewed : int ndarray
        Indices of confirmed errors and of reviewed examples (confirmed ⊆ reviewed).
    """
    flagged = np.flatnonzero(mask)
    hits = int(np.isin(flagged, confirmed).sum())
    seen = int(np.isin(flagged, reviewed).sum())
    return FlagScores(
        flagged=int(flagged.size),
        confirmed_flagged=hits,
        reviewed_flagged=seen,
        precision_all=hits / flagged.size if flagged.size else float("nan"),
        precision_reviewed=hits / seen if seen else float("nan"),
        recall=hits / confirmed.size if confirmed.size else float("nan"),
    )


def ranking(scores: np.ndarray, subset: np.ndarray | None = None) -> np.ndarray:
    """Indices ordered most suspicious first (lowest score; ties by index)."""
    idx = np.arange(scores.shape[0]) if subset is None else np.sort(subset)
    return idx[np.argsort(scores[idx], kind="stable")]


def average_precision(order: np.ndarray, positives: np.ndarray) -> float:
    """Mean over all positives of the precision at the rank where each is found.

    Positives missing from ``order`` count as never found (precision 0).
    """
    hit = np.isin(order, positives)
    if positives.size == 0:
        return float("nan")
    ranks = np.flatnonzero(hit) + 1
    return float((np.arange(1, ranks.size + 1) / ranks).sum() / positives.size)


def precision_at_k(order: np.ndarray, positives: np.ndarray, k: int) -> float:
    """Fraction of the first ``k`` of ``order`` that are positives."""
    if k <= 0:
        return float("nan")
    return float(np.isin(order[:k], positives).sum() / k)
