"""Multi-label data (a set of classes per example): issue flags, quality and per-class issues as tables."""

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from cl_pipeline import core
from cl_pipeline.core import multilabel

__all__ = [
    "MultilabelTables",
    "binary_problem",
    "find_multilabel_tables",
    "format_label_set",
    "multilabel_confident_joint",
    "multilabel_joint_tables",
    "ranks_of_flagged",
]


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


# --- the multi-label audit (cl_pipeline.audit.multilabel_stage): per-class 2 x 2 tables ---------------


def binary_problem(y: np.ndarray, pred_probs: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Class ``k``'s one-vs-rest problem: labels (n,) 0/1 and probabilities (n, 2) ``[1 - p_k, p_k]``."""
    p = np.asarray(pred_probs[:, k], dtype=np.float64)
    return np.ascontiguousarray(y[:, k], dtype=np.int64), np.column_stack([1.0 - p, p])


def _pair_rows(classes: list[str]) -> pd.DataFrame:
    """4 rows per class: (class, given present?, true present?) in the order of the flattened (K, 2, 2)."""
    k = len(classes)
    cls, given, true = np.divmod(np.arange(4 * k), 4)[0], np.arange(4 * k) % 4 // 2, np.arange(4 * k) % 2
    return pd.DataFrame(
        {
            "class_index": cls,
            "class_label": np.asarray(classes, dtype=object)[cls],
            "given_present": given.astype(bool),
            "true_present": true.astype(bool),
        }
    )


def multilabel_confident_joint(y: np.ndarray, pred_probs: np.ndarray, classes: list[str]) -> tuple[pd.DataFrame, dict]:
    """The one-vs-rest confident joints (K, 2, 2), raw and calibrated, as a long table.

    Parameters
    ----------
    y : ndarray of 0/1, shape (n, K)
        Given label sets.
    pred_probs : ndarray of float, shape (n, K)
        Independent per-class out-of-sample probabilities.
    classes : list of str, length K

    Returns
    -------
    table : DataFrame, 4K rows
        ``class_index, class_label, given_present, true_present, count, calibrated_count, threshold``
        (``threshold``: the confident threshold of the row's true side of the class's binary problem).
        ``calibrated_count`` is cleanlab's ``compute_confident_joint(..., multi_label=True)``.
    info : dict
        ``thresholds`` (K x 2), ``label_counts`` (K x 2: examples without / with the class),
        ``num_label_issues`` (K, the core's off-diagonal count per class), ``off_diagonal``.
    """
    raw, calibrated, thresholds, counts, issues = [], [], [], [], []
    for c in range(len(classes)):
        labels, binary = binary_problem(y, pred_probs, c)
        t = core.get_confident_thresholds(labels, binary)
        raw.append(core.compute_confident_joint(labels, binary, thresholds=t, calibrate=False))
        calibrated.append(core.compute_confident_joint(labels, binary, thresholds=t, calibrate=True))
        thresholds.append([float(v) for v in t])
        counts.append(np.bincount(labels, minlength=2).tolist())
        issues.append(int(core.num_label_issues(labels, binary)))
    raw_joint, cal_joint = np.stack(raw), np.stack(calibrated)
    table = _pair_rows(classes)
    table["count"] = raw_joint.reshape(-1).astype(np.int64)
    table["calibrated_count"] = cal_joint.reshape(-1).astype(np.int64)
    table["threshold"] = np.asarray(thresholds)[table["class_index"], table["true_present"].astype(int)]
    off = int(sum(j[0, 1] + j[1, 0] for j in raw_joint))
    info = {"thresholds": thresholds, "label_counts": counts, "num_label_issues": issues, "off_diagonal": off}
    return table, info


def multilabel_joint_tables(
    classes: list[str], calibrated: np.ndarray, label_counts: np.ndarray, num_label_issues: list[int]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per class: the 2 x 2 joint Q_k and noise matrices (long table), and the class's label quality.

    Parameters
    ----------
    classes : list of str, length K
    calibrated : ndarray of int, shape (K, 2, 2)
        Calibrated one-vs-rest confident joints (rows: given absent/present; columns: true).
    label_counts : ndarray of int, shape (K, 2)
        Examples without / with each class.
    num_label_issues : list of int, length K

    Returns
    -------
    joint : DataFrame, 4K rows
        ``class_index, class_label, given_present, true_present, joint`` (Q_k),
        ``noise_rate`` = P(given | true), ``inverse_noise_rate`` = P(true | given).
    class_quality : DataFrame, K rows
        ``class_index, class_label, n`` (examples given the class), ``py`` = P(truly has the class),
        ``label_noise`` = P(truly without the class | given it) (the share of the class's tags
        that are wrong), ``inverse_label_noise`` = P(not given the class | truly has it) (missed
        tags), ``flip_rate`` = 1 - trace(Q_k) (share of all examples whose membership is wrong),
        ``label_quality`` = 1 - label_noise.
    """
    q, noise, inverse, rows = [], [], [], []
    for c, name in enumerate(classes):
        s = core.summarize_confident_joint(calibrated[c], label_counts[c], int(num_label_issues[c]))
        q.append(s.joint)
        noise.append(s.noise_matrix)
        inverse.append(np.asarray(s.inverse_noise_matrix).T)  # [given, true] = P(true | given)
        label_noise = float(inverse[-1][1, 0])
        rows.append(
            {
                "class_index": c,
                "class_label": name,
                "n": int(label_counts[c][1]),
                "py": float(s.py[1]),
                "label_noise": label_noise,
                "inverse_label_noise": float(s.noise_matrix[0, 1]),
                "flip_rate": float(1.0 - np.trace(s.joint)),
                "label_quality": 1.0 - label_noise,
            }
        )
    joint = _pair_rows(classes)
    joint["joint"] = np.stack(q).reshape(-1)
    joint["noise_rate"] = np.stack(noise).reshape(-1)
    joint["inverse_noise_rate"] = np.stack(inverse).reshape(-1)
    return joint, pd.DataFrame(rows)


def ranks_of_flagged(mask: np.ndarray, quality: np.ndarray) -> np.ndarray:
    """1, 2, ... over the flagged rows by ascending quality (ties: lower row first); -1 elsewhere."""
    flagged = np.flatnonzero(mask)
    rank = np.full(mask.size, -1, dtype=np.int64)
    rank[flagged[np.argsort(quality[flagged], kind="stable")]] = np.arange(1, flagged.size + 1)
    return rank
