"""The paper's argmax rule (``argmax_rule="paper"``), row by row, on many rows at once.

With several confident classes the paper guesses the most probable *confident*
class (the reference: the argmax over all classes). The only other test of the
rule has a single such row, so a guess computed over the whole block instead of
per row (a surviving mutant, docs/mutation-testing.md) went unnoticed. Here the
raw confident joint is rebuilt from its definition, one row at a time.
"""

import numpy as np
from hypothesis import given, settings

from cl_pipeline import core

from ._kit import cases, examples


def paper_joint(labels, probs, thresholds):
    k = probs.shape[1]
    joint = np.zeros((k, k), dtype=np.int64)
    cut = thresholds - 1e-6
    for y, p in zip(labels, probs, strict=True):
        confident = np.flatnonzero(p >= cut)
        if confident.size:
            joint[y, confident[np.argmax(p[confident])]] += 1
    np.fill_diagonal(joint, np.maximum(np.diagonal(joint), 1))
    return joint


@settings(max_examples=examples(15))
@given(case=cases(max_n=300))
def test_paper_rule_joint_is_the_per_row_definition(case):
    labels, probs = case.labels, case.pred_probs
    thresholds = core.get_confident_thresholds(labels, probs)
    ours = core.compute_confident_joint(labels, probs, calibrate=False, argmax_rule="paper")
    np.testing.assert_array_equal(ours, paper_joint(labels, probs, thresholds))


def test_several_rows_whose_argmax_is_not_confident():
    thresholds = np.array([0.5, 0.3, 0.33])
    probs = np.array([[0.36, 0.30, 0.34], [0.40, 0.35, 0.25], [0.36, 0.34, 0.30], [0.10, 0.60, 0.30]])
    labels = np.array([1, 2, 0, 1])
    ours = core.compute_confident_joint(labels, probs, thresholds=thresholds, calibrate=False, argmax_rule="paper")
    np.testing.assert_array_equal(ours, paper_joint(labels, probs, thresholds))
    assert ours[1, 2] == 1 and ours[2, 1] == 1 and ours[0, 1] == 1  # rows 0, 1, 2: the best confident class
