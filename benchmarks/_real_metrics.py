"""Metrics of the real label-error benchmark (``benchmarks/real_label_errors.py``).

Ground truth is partial: only *reviewed* examples have a known status, and
the confirmed errors are a subset of them. So every precision is reported
twice: over all flagged examples (unreviewed counted as correct: a lower
bound) and over the flagged examples that were reviewed.

Pure numpy, checked against hand-computed cases in
``tests/benchmarks/test_real_metrics.py``.
"""

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


def _tie_groups(scores: np.ndarray, positives: np.ndarray, subset: np.ndarray | None):
    """Per group of equal scores, lowest first: its size and its number of positives."""
    idx = np.arange(scores.shape[0]) if subset is None else np.unique(subset)
    order = np.argsort(scores[idx], kind="stable")
    values, hits = scores[idx][order], np.isin(idx[order], positives)
    starts = np.flatnonzero(np.r_[True, values[1:] != values[:-1]])
    sizes = np.diff(np.r_[starts, values.size])
    return sizes, np.add.reduceat(hits.astype(np.int64), starts) if values.size else sizes


def average_precision_tied(scores: np.ndarray, positives: np.ndarray, subset: np.ndarray | None = None) -> float:
    """Average precision of ranking by ascending score, ties handled as one threshold.

    The step-wise definition of scikit-learn's ``average_precision_score``:
    the sum over distinct score thresholds of (recall gained) x (precision at
    that threshold), so examples with equal scores are taken together and the
    result does not depend on an arbitrary order among them. ``subset``
    restricts the ranking to those indices; positives outside it (or absent)
    count as never found.
    """
    positives = np.unique(positives)
    if positives.size == 0:
        return float("nan")
    sizes, hits = _tie_groups(scores, positives, subset)
    taken, found = np.cumsum(sizes), np.cumsum(hits)
    return float((hits / positives.size * found / taken).sum())


def precision_at_k_tied(scores: np.ndarray, positives: np.ndarray, k: int, subset: np.ndarray | None = None) -> float:
    """Expected precision of the ``k`` lowest scores when ties are ordered at random.

    The tie group that straddles position ``k`` contributes its share of
    positives in proportion to how many of its members fall within the first ``k``.
    """
    if k <= 0:
        return float("nan")
    sizes, hits = _tie_groups(scores, np.unique(positives), subset)
    if sizes.size == 0:
        return 0.0
    taken = np.cumsum(sizes)
    reach = min(k, int(taken[-1]))  # places beyond the ranked examples count as misses
    g = int(np.searchsorted(taken, reach))  # the group holding place `reach`
    before = int(taken[g - 1]) if g else 0
    expected = hits[:g].sum() + (reach - before) * hits[g] / sizes[g]
    return float(expected / k)


def precision_at_k(order: np.ndarray, positives: np.ndarray, k: int) -> float:
    """Fraction of the first ``k`` of ``order`` that are positives."""
    if k <= 0:
        return float("nan")
    return float(np.isin(order[:k], positives).sum() / k)
