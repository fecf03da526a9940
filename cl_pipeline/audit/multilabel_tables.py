"""Multi-label data (a set of classes per example): issue flags, quality and per-class issues as tables."""

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from cl_pipeline.core import multilabel

__all__ = ["MultilabelTables", "find_multilabel_tables", "format_label_set"]


@dataclass(frozen=True)
class MultilabelTables:
    """Per example and per class results of the multi-label engine.

    Attributes
    ----------
    examples : DataFrame, n rows, most suspicious first
        ``index, given_labels, label_quality, is_label_issue, classes_with_issue, rank``
        (label sets as text ``"1,4"``).
    classes : DataFrame, K rows
        ``class, num_labeled, num_issues`` (one-vs-rest issues of that class).
    """

    examples: pd.DataFrame
    classes: pd.DataFrame


def format_label_set(row: np.ndarray) -> str:
    """The classes set in a 0/1 row, as ``"1,4"`` (empty string for none)."""
    return ",".join(str(k) for k in np.flatnonzero(row))


def find_multilabel_tables(
    labels: Any, pred_probs: np.ndarray, *, filter_by: str = "prune_by_noise_rate", rank_by: str = "self_confidence"
) -> MultilabelTables:
    """Label issues of multi-label data: the example mask, its quality score and the per-class issues.

    Parameters
    ----------
    labels : list of lists of int, or ndarray of 0/1, shape (n, K)
    pred_probs : ndarray of float, shape (n, K)
        Independent per-class probabilities in [0, 1].
    filter_by : str
        One of ``cl_pipeline.core.multilabel.FILTER_METHODS``.
    rank_by : str
        One of ``cl_pipeline.core.multilabel.SCORE_METHODS`` (the per-class score aggregated).

    Returns
    -------
    MultilabelTables
        Flagged examples first, each group by ascending quality, ties by index.
    """
    mask = multilabel.find_label_issues(labels, pred_probs, filter_by=filter_by)
    quality = multilabel.get_label_quality_scores(labels, pred_probs, method=rank_by)
    per_class = multilabel.find_multilabel_issues_per_class(labels, pred_probs, filter_by=filter_by)
    k = np.shape(pred_probs)[1]
    y = _indicator(labels, len(mask), k)
    flagged, rest = np.flatnonzero(mask), np.flatnonzero(~mask)
    order = np.concatenate(
        [flagged[np.argsort(quality[flagged], kind="stable")], rest[np.argsort(quality[rest], kind="stable")]]
    )
    rank = np.empty(len(mask), dtype=np.int64)
    rank[order] = np.arange(1, len(mask) + 1)
    examples = pd.DataFrame(
        {
            "index": np.arange(len(mask)),
            "given_labels": [format_label_set(r) for r in y],
            "label_quality": quality,
            "is_label_issue": mask,
            "classes_with_issue": [format_label_set(r) for r in per_class],
            "rank": rank,
        }
    ).sort_values("rank", ignore_index=True)
    classes = pd.DataFrame(
        {"class": np.arange(k), "num_labeled": y.sum(axis=0), "num_issues": per_class.sum(axis=0).astype(np.int64)}
    )
    return MultilabelTables(examples, classes)


def _indicator(labels: Any, n: int, k: int) -> np.ndarray:
    if isinstance(labels, np.ndarray) and labels.ndim == 2:
        return (labels != 0).astype(np.int64)
    y = np.zeros((n, k), dtype=np.int64)
    for i, row in enumerate(labels):
        y[i, list(row)] = 1
    return y
