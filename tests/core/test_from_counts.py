"""``summarize_confident_joint``: from C and the label counts, exactly what the row-level API gives."""

import numpy as np
import pytest
from hypothesis import given, settings

import cl_pipeline.core as core

from ._kit import cases, examples


@settings(max_examples=examples(40))
@given(case=cases(max_n=800, max_K=12))
def test_equals_the_row_level_functions(case) -> None:
    labels, pred_probs = case.labels, case.pred_probs
    k = pred_probs.shape[1]
    calibrated = core.compute_confident_joint(labels, pred_probs)
    issues = core.num_label_issues(labels, pred_probs)  # off_diagonal, after the near-argmax rule
    summary = core.summarize_confident_joint(calibrated, np.bincount(labels, minlength=k), issues)
    np.testing.assert_array_equal(summary.joint, core.estimate_joint(labels, pred_probs, confident_joint=calibrated))
    py, noise, inverse = core.estimate_latent(calibrated, labels)
    np.testing.assert_array_equal(summary.py, py)
    np.testing.assert_array_equal(summary.noise_matrix, noise)
    np.testing.assert_array_equal(summary.inverse_noise_matrix, inverse)
    expected = core.rank_classes_by_label_quality(labels, pred_probs, confident_joint=calibrated)
    for field in ("classes", "label_issues", "inverse_label_issues", "label_noise", "label_quality"):
        np.testing.assert_array_equal(getattr(summary.class_quality, field), getattr(expected, field))
    assert summary.health_score == core.overall_label_health_score(labels, pred_probs)
    assert summary.joint.sum() == pytest.approx(1.0)
    columns = summary.noise_matrix.sum(axis=0)
    np.testing.assert_allclose(columns[columns > 0], 1.0)


@pytest.mark.parametrize(
    "counts, issues, match",
    [
        (np.array([3, 4]), 1, "label_counts must be 3"),
        (np.array([0, 0, 0]), 0, "at least one example"),
        (np.array([1.0, 2.0, 3.0]), 0, "non-negative integers"),
        (np.array([1, 2, 3]), 7, "at most n = 6"),
        (np.array([1, 2, 3]), -1, "num_label_issues"),
    ],
    ids=["wrong length", "no examples", "float counts", "too many issues", "negative issues"],
)
def test_bad_inputs_name_the_argument(counts, issues, match) -> None:
    with pytest.raises(ValueError, match=match):
        core.summarize_confident_joint(np.eye(3, dtype=np.int64), counts, issues)
