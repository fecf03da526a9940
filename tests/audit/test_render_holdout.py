"""The hold-out lines of the audit report say how the retrained model was trained."""

import pytest

from cl_pipeline.audit.render import holdout_lines

ROW = {"n_holdout": 40, "baseline_accuracy": 0.81, "retrained_accuracy": 0.84}


@pytest.mark.parametrize(
    ("kind", "said"),
    [(None, "(pruned + reweighted)"), ("single", "(pruned + reweighted)"), ("multilabel", "(pruned):")],
    ids=["unstated", "single-label", "multi-label"],
)
def test_the_retraining_is_named_as_it_was_done(kind, said):
    lines = holdout_lines(ROW | ({"label_kind": kind} if kind else {}))
    assert said in lines[0] and "40 rows" in lines[0]
    assert "baseline 0.8100, retrained 0.8400" in lines[1] and "checked by" in lines[1]
