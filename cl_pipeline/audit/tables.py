"""The tables of the numeric stages, as plain functions of the labels and probabilities.

Notation (the paper's): ``n`` examples, ``K`` classes, ``labels`` the given
labels ``0..K-1``, ``pred_probs`` (n, K) out-of-sample probabilities, ``C``
the confident joint, ``Q`` the calibrated joint. Everything that decides
*what* a label issue is lives in :mod:`cl_pipeline.core`; these functions
only lay its results out as tables:

- :func:`confident_joint_table`: K*K rows (given, true) with raw and calibrated counts;
  the calibrated counts of row ``given`` sum to ``n_given``;
- :func:`calibrated_joint_tables`: K*K rows of Q and both noise matrices, K rows per class;
- :func:`find_table`: n rows, one per example, rank 1 = most suspicious (``cl-pipeline find``).

The ``label_issues`` table of the pipeline is written batch by batch by
:mod:`cl_pipeline.audit.streaming`.
"""

from typing import Any

import numpy as np
import pandas as pd

from cl_pipeline import core
from cl_pipeline.config import IssuesConfig

__all__ = [
    "calibrated_joint_tables",
    "confident_joint_table",
    "find_table",
    "rank_examples",
    "stored_confident_joint",
]


def _matrix_table(classes: list[str], **matrices: np.ndarray) -> pd.DataFrame:
    k = len(classes)
    given, true = np.divmod(np.arange(k * k), k)
    table = pd.DataFrame(
        {
            "given_index": given,
            "given_label": np.asarray(classes, dtype=object)[given],
            "true_index": true,
            "true_label": np.asarray(classes, dtype=object)[true],
        }
    )
    for name, matrix in matrices.items():
        table[name] = np.asarray(matrix).reshape(-1)
    return table


def confident_joint_table(
    thresholds: np.ndarray, joint: core.ConfidentJointCounts, classes: list[str]
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The confident joint (raw and calibrated counts) as a long table, with the thresholds.

    Rows are (given label, guessed true label) pairs; ``threshold`` is the confident
    threshold of the *true* class of the row. ``info`` also keeps what later stages need
    without reading any row again: ``label_counts`` (``n_k``) and ``num_label_issues``.
    """
    raw, calibrated = joint.raw, joint.calibrated
    table = _matrix_table(classes, count=raw, calibrated_count=calibrated)
    table["threshold"] = np.asarray(thresholds, dtype=np.float64)[table["true_index"]]
    info = {
        "thresholds": [float(t) for t in thresholds],
        "thresholds_dtype": str(np.asarray(thresholds).dtype),
        "off_diagonal": int(raw.sum() - np.trace(raw)),
        "noise_rate": float(1.0 - np.trace(calibrated) / calibrated.sum()),
        "label_counts": [int(c) for c in joint.label_counts],
        "num_label_issues": int(joint.num_label_issues),
        "health_score": core.summarize_confident_joint(
            calibrated, joint.label_counts, joint.num_label_issues
        ).health_score,
    }
    return table, info


def stored_confident_joint(table: pd.DataFrame, info: dict[str, Any]) -> tuple[np.ndarray, core.ConfidentJointCounts]:
    """The thresholds and confident joint that :func:`confident_joint_table` laid out, rebuilt exactly.

    The thresholds come back in their own dtype (a float32 threshold survives the float64
    JSON round trip bit for bit); the raw joint in the Fortran order the core keeps it in.
    """
    k = len(info["label_counts"])
    raw = np.asfortranarray(table["count"].to_numpy(dtype=np.int64).reshape(k, k))
    calibrated = table["calibrated_count"].to_numpy(dtype=np.int64).reshape(k, k)
    counts = np.asarray(info["label_counts"], dtype=np.int64)
    thresholds = np.asarray(info["thresholds"], dtype=np.float64).astype(info["thresholds_dtype"])
    return thresholds, core.ConfidentJointCounts(raw, calibrated, counts, int(info["num_label_issues"]))


def calibrated_joint_tables(
    classes: list[str], calibrated: np.ndarray, label_counts: np.ndarray, num_label_issues: int
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Q, the priors and both noise matrices (long table) and per-class label quality, from counts.

    Returns
    -------
    joint : DataFrame
        Per (given, true) pair: ``joint`` (Q), ``noise_rate`` = P(given | true),
        ``inverse_noise_rate`` = P(true | given).
    class_quality : DataFrame
        Per class: ``n``, ``py`` (latent prior), ``label_issues``, ``inverse_label_issues``,
        ``label_noise``, ``inverse_label_noise``, ``label_quality``.
    info : dict
        ``noise_rate`` (1 - trace Q), ``Q``, ``noise_matrix``, ``py`` as nested lists, ``health_score``.
    """
    summary = core.summarize_confident_joint(calibrated, label_counts, num_label_issues)
    q, py, noise, inverse = summary.joint, summary.py, summary.noise_matrix, summary.inverse_noise_matrix
    joint = _matrix_table(classes, joint=q, noise_rate=noise, inverse_noise_rate=inverse.T)
    quality = summary.class_quality
    order = np.asarray(quality.classes, dtype=np.int64)
    per_class = pd.DataFrame(
        {
            "class_index": order,
            "class_label": np.asarray(classes, dtype=object)[order],
            "n": np.asarray(label_counts)[order],
            "py": np.asarray(py)[order],
            "label_issues": quality.label_issues,
            "inverse_label_issues": quality.inverse_label_issues,
            "label_noise": quality.label_noise,
            "inverse_label_noise": quality.inverse_label_noise,
            "label_quality": quality.label_quality,
        }
    ).sort_values("class_index", ignore_index=True)
    info = {
        "noise_rate": float(1.0 - np.trace(q)),
        "Q": np.asarray(q).tolist(),
        "noise_matrix": np.asarray(noise).tolist(),
        "py": np.asarray(py).tolist(),
        "health_score": summary.health_score,
    }
    return joint, per_class, info


def rank_examples(
    labels: np.ndarray, pred_probs: np.ndarray, issues: IssuesConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flag label issues and rank every example (the CLI ``find`` and the pipeline share this).

    Returns
    -------
    mask : bool ndarray (n,)
        ``core.find_label_issues`` with the configured filter.
    quality : float ndarray (n,)
        ``core.get_label_quality_scores`` with ``issues.rank_by`` (lower = more suspicious).
    rank : int ndarray (n,)
        1 = most suspicious: flagged examples first in ``core.order_label_issues`` order,
        then the others by ascending quality.
    """
    mask = np.asarray(
        core.find_label_issues(
            labels,
            pred_probs,
            filter_by=issues.filter_by,
            min_examples_per_class=issues.min_examples_per_class,
        ),
        dtype=bool,
    )
    quality = np.asarray(core.get_label_quality_scores(labels, pred_probs, method=issues.rank_by))
    # flagged first, each group by ascending quality, ties by index: the first
    # group is exactly core.order_label_issues (scores computed once here)
    flagged, rest = np.flatnonzero(mask), np.flatnonzero(~mask)
    order = np.concatenate(
        [flagged[np.argsort(quality[flagged], kind="stable")], rest[np.argsort(quality[rest], kind="stable")]]
    )
    rank = np.empty(labels.size, dtype=np.int64)
    rank[order] = np.arange(1, labels.size + 1)
    return mask, quality, rank


def find_table(labels: np.ndarray, pred_probs: np.ndarray, issues: IssuesConfig) -> pd.DataFrame:
    """One row per example, most suspicious first (the output of ``cl-pipeline find``).

    Returns
    -------
    DataFrame
        ``index, given_label, suggested_label, label_quality, is_label_issue, rank`` (n rows).
    """
    mask, quality, rank = rank_examples(labels, pred_probs, issues)
    order = np.empty_like(rank)
    order[rank - 1] = np.arange(labels.size)  # ranks are a permutation of 1..n: rows in rank order, no sort
    return pd.DataFrame(
        {
            "index": order,
            "given_label": np.asarray(labels)[order],
            "suggested_label": np.asarray(pred_probs).argmax(axis=1)[order],
            "label_quality": quality[order],
            "is_label_issue": mask[order],
            "rank": rank[order],
        }
    )
