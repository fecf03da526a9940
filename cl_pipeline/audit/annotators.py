"""Several annotators per example: consensus labels, annotator quality, what to relabel next.

The two-step of the audit (docs/pipeline.md, "Multiple annotators and multi-label data"):
out-of-sample probabilities need labels to train the folds, and CROWDLAB's consensus
needs out-of-sample probabilities. So the folds are trained on the majority vote
(:func:`majority_vote_labels`, as cleanlab's multi-annotator tutorial does), then
:func:`consensus_tables` runs CROWDLAB with those probabilities; the consensus is the
given label of the confident-learning stages.
"""

from dataclasses import dataclass

import numpy as np
import pandas as pd

from cl_pipeline.config import IssuesConfig
from cl_pipeline.core import multiannotator

__all__ = [
    "ANNOTATOR_COLUMNS",
    "CONSENSUS_COLUMNS",
    "ConsensusTables",
    "consensus_tables",
    "find_multiannotator_tables",
    "majority_vote_labels",
]

#: Columns of the per-example consensus table (after the example key).
CONSENSUS_COLUMNS = (
    "consensus_label",
    "consensus_quality_score",
    "annotator_agreement",
    "num_annotations",
    "active_learning_score",
)
#: Columns of the per-annotator table.
ANNOTATOR_COLUMNS = (
    "annotator",
    "annotator_quality",
    "agreement_with_consensus",
    "worst_class",
    "num_examples_labeled",
)


@dataclass(frozen=True)
class ConsensusTables:
    """What CROWDLAB says about a labeled dataset.

    Attributes
    ----------
    consensus : DataFrame, n rows
        ``CONSENSUS_COLUMNS`` in example order.
    annotators : DataFrame, m rows
        ``ANNOTATOR_COLUMNS`` in annotator (column) order.
    """

    consensus: pd.DataFrame
    annotators: pd.DataFrame


def majority_vote_labels(labels_multiannotator: np.ndarray, num_classes: int) -> np.ndarray:
    """Majority vote of each example (ties: the core's rule without model probabilities).

    Parameters
    ----------
    labels_multiannotator : ndarray of float, shape (n, m)
        Class ids, NaN where missing.
    num_classes : int
        K; a label ``>= K`` is refused (the core's message).

    Returns
    -------
    ndarray of int64, shape (n,)
    """
    uniform = np.full((labels_multiannotator.shape[0], num_classes), 1.0 / num_classes)
    return multiannotator.get_majority_vote_label(labels_multiannotator, uniform)


def consensus_tables(
    labels_multiannotator: np.ndarray, pred_probs: np.ndarray, annotators: list[str]
) -> ConsensusTables:
    """CROWDLAB consensus, quality and ActiveLab score per example; quality per annotator.

    Parameters
    ----------
    labels_multiannotator : ndarray of float, shape (n, m)
        Class ids ``0..K-1``, NaN where missing (validated by the core).
    pred_probs : ndarray of float, shape (n, K)
        Out-of-sample probabilities.
    annotators : list of str, length m
        Names of the columns.

    Returns
    -------
    ConsensusTables
    """
    if len(annotators) != np.shape(labels_multiannotator)[1]:
        raise ValueError(f"annotators has {len(annotators)} names for {np.shape(labels_multiannotator)[1]} columns")
    result = multiannotator.get_label_quality_multiannotator(
        labels_multiannotator, pred_probs, return_detailed_quality=False
    )
    scores, _ = multiannotator.get_active_learning_scores(labels_multiannotator, pred_probs)
    consensus = pd.DataFrame(
        {
            "consensus_label": result.consensus_label,
            "consensus_quality_score": result.consensus_quality_score,
            "annotator_agreement": result.annotator_agreement,
            "num_annotations": result.num_annotations,
            "active_learning_score": scores,
        }
    )
    table = pd.DataFrame(
        {
            "annotator": [str(a) for a in annotators],
            "annotator_quality": result.annotator_quality,
            "agreement_with_consensus": result.agreement_with_consensus,
            "worst_class": result.worst_class,
            "num_examples_labeled": result.num_examples_labeled,
        }
    )
    return ConsensusTables(consensus, table)


def find_multiannotator_tables(
    labels_multiannotator: np.ndarray, pred_probs: np.ndarray, annotators: list[str], issues: IssuesConfig
) -> ConsensusTables:
    """``cl-pipeline find --annotators``: consensus and label issues against it, most suspicious first.

    Returns
    -------
    ConsensusTables
        ``consensus``: ``index``, ``CONSENSUS_COLUMNS``, then ``find_table``'s
        ``suggested_label, label_quality, is_label_issue, rank`` with the consensus
        as the given label, sorted by rank; ``annotators`` as :func:`consensus_tables`.
    """
    from cl_pipeline.audit.tables import find_table

    tables = consensus_tables(labels_multiannotator, pred_probs, annotators)
    issues_table = find_table(tables.consensus["consensus_label"].to_numpy(), pred_probs, issues)
    issues_table = issues_table.drop(columns="given_label").sort_values("index")
    merged = pd.concat(
        [
            issues_table[["index"]].reset_index(drop=True),
            tables.consensus,
            issues_table.drop(columns="index").reset_index(drop=True),
        ],
        axis=1,
    )
    return ConsensusTables(merged.sort_values("rank", ignore_index=True), tables.annotators)
