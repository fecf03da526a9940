"""Exact, fast confident learning in pure numpy.

The public API mirrors cleanlab 2.9.0's names and defaults (see
``docs/differences-from-cleanlab.md`` for the two places where we fix the
reference and the options we add). Implementation lives in private modules:

- ``_count``: thresholds, confident joint, calibration (notation + invariants);
- ``_latent``: priors and noise matrices;
- ``_filter`` / ``_select``: prune matrix and exact linear-time selections;
- ``_rank``: label quality scores;
- ``_health``: dataset-level summaries;
- ``_noise_generation``: synthetic noise for benchmarks and tests;
- ``_streaming`` / ``_streaming_issues`` / ``_batched``: the same engine over
  row batches, exact, with mergeable per-pass states (``_pairwise``
  reproduces numpy's summation tree for the thresholds).

Public submodules with cleanlab's module names: ``multiannotator`` (several
annotators: consensus, annotator quality, ActiveLab) and ``multilabel``
(one-vs-rest over this engine).

This package imports numpy only (a test enforces it).
"""

from ._batched import BatchedLabelIssues, find_label_issues_batched, score_batches
from ._estimation import (
    calibrate_confident_joint,
    compute_confident_joint,
    estimate_joint,
    estimate_latent,
    estimate_py_and_noise_matrices_from_probabilities,
    get_confident_thresholds,
    num_label_issues,
)
from ._from_counts import JointSummary, summarize_confident_joint
from ._health import (
    ClassLabelQuality,
    HealthSummary,
    OverlappingClasses,
    find_overlapping_classes,
    health_summary,
    overall_label_health_score,
    rank_classes_by_label_quality,
)
from ._issues import (
    CLEANLAB_FILTER_METHODS,
    FILTER_METHODS,
    PRUNE_METHODS,
    RECOMMENDED_FILTER,
    RECOMMENDED_RANK_BY,
    default_rank_by,
    find_label_issues,
    get_label_quality_scores,
    order_label_issues,
)
from ._noise_generation import (
    generate_noise_matrix_from_trace,
    generate_noisy_labels,
    noise_matrix_is_valid,
)
from ._rank import SCORE_METHODS
from ._streaming import (
    ClassCounts,
    ClassCountsState,
    ConfidentJointCounts,
    ConfidentJointState,
    InOrderThresholdsState,
    ThresholdsState,
)
from ._streaming_issues import IssueBatch, IssuePlan, IssueSelectionState, LabelIssues, plan_label_issues
from ._validation import ROW_SUM_TOLERANCE, invalid_probability_rows

__all__ = [
    "BatchedLabelIssues",
    "ClassCounts",
    "ClassCountsState",
    "ConfidentJointCounts",
    "ConfidentJointState",
    "IssueBatch",
    "IssuePlan",
    "IssueSelectionState",
    "LabelIssues",
    "InOrderThresholdsState",
    "ThresholdsState",
    "find_label_issues_batched",
    "plan_label_issues",
    "score_batches",
    "CLEANLAB_FILTER_METHODS",
    "FILTER_METHODS",
    "PRUNE_METHODS",
    "RECOMMENDED_FILTER",
    "RECOMMENDED_RANK_BY",
    "ROW_SUM_TOLERANCE",
    "SCORE_METHODS",
    "ClassLabelQuality",
    "HealthSummary",
    "JointSummary",
    "OverlappingClasses",
    "calibrate_confident_joint",
    "compute_confident_joint",
    "default_rank_by",
    "estimate_joint",
    "estimate_latent",
    "estimate_py_and_noise_matrices_from_probabilities",
    "find_label_issues",
    "find_overlapping_classes",
    "generate_noise_matrix_from_trace",
    "generate_noisy_labels",
    "get_confident_thresholds",
    "get_label_quality_scores",
    "health_summary",
    "invalid_probability_rows",
    "noise_matrix_is_valid",
    "num_label_issues",
    "order_label_issues",
    "overall_label_health_score",
    "rank_classes_by_label_quality",
    "summarize_confident_joint",
]
