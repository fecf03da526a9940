"""Bad input to ``cl_pipeline.core.multiannotator``: a ValueError/TypeError naming the argument and value.

Each case records what cleanlab 2.9.0 does with the same input: ``"raises"`` (we are as
strict), or ``"accepts"`` (we are stricter: docs/differences-from-cleanlab.md, "Multiple
annotators"); the test checks that record against cleanlab too.
"""

import warnings

import numpy as np
import pytest

from cl_pipeline.core import multiannotator as ma

NAN = np.nan
GOOD = np.array([[0, 0, NAN], [1, NAN, 1], [2, 2, 1], [0, 1, NAN]])
PROBS = np.array([[0.7, 0.2, 0.1], [0.2, 0.5, 0.3], [0.1, 0.1, 0.8], [0.4, 0.4, 0.2]])


def _with(**changes):
    labels = GOOD.copy()
    for (i, j), value in changes.get("cells", {}).items():
        labels[i, j] = value
    return labels


#: id -> (labels, pred_probs, exception, words the message must contain, cleanlab's behaviour)
CASES = {
    "labels_1d": (np.array([0, 1, 2, 0]), PROBS, ValueError, ["labels_multiannotator", "2-D", "(4,)"], "raises"),
    "labels_strings": (GOOD.astype(str), PROBS, TypeError, ["labels_multiannotator", "dtype"], "raises"),
    "labels_none": (None, PROBS, TypeError, ["labels_multiannotator", "None"], "raises"),
    "row_without_label": (
        _with(cells={(1, 0): NAN, (1, 2): NAN}),
        PROBS,
        ValueError,
        ["labels_multiannotator", "no label", "rows [1]"],
        "raises",
    ),
    "annotator_without_label": (
        _with(cells={(2, 2): NAN, (1, 2): NAN}),
        PROBS,
        ValueError,
        ["labels_multiannotator", "annotator", "columns [2]"],
        "raises",
    ),
    "one_annotator": (GOOD[:, :1], PROBS, ValueError, ["labels_multiannotator", "at least 2 annotator"], "raises"),
    "one_label_per_example": (
        np.array([[0, NAN], [NAN, 1], [2, NAN], [NAN, 0]]),
        PROBS,
        ValueError,
        ["labels_multiannotator", "exactly one label per example"],
        "raises",
    ),
    "label_out_of_range": (
        _with(cells={(0, 0): 3}),
        PROBS,
        ValueError,
        ["labels_multiannotator", "0..2", "[0, 0]", "3"],
        "raises",
    ),
    "negative_label": (_with(cells={(2, 1): -1}), PROBS, ValueError, ["labels_multiannotator", ">= 0", "-1"], "raises"),
    "fractional_label": (
        _with(cells={(2, 1): 1.5}),
        PROBS,
        ValueError,
        ["labels_multiannotator", "integer", "1.5"],
        "raises",
    ),
    "infinite_label": (
        _with(cells={(2, 1): np.inf}),
        PROBS,
        ValueError,
        ["labels_multiannotator", "[2, 1]", "inf"],
        "raises",
    ),
    "fewer_prob_rows": (GOOD, PROBS[:3], ValueError, ["pred_probs", "same number of rows", "(3, 3)"], "raises"),
    "probs_1d": (GOOD, PROBS[:, 0], ValueError, ["pred_probs", "2-D"], "raises"),
    "probs_list": (GOOD, PROBS.tolist(), None, [], "raises"),
    "probs_int": (GOOD, (PROBS > 0.3).astype(int), TypeError, ["pred_probs", "dtype"], "accepts"),
    "probs_nan": (GOOD, np.where(PROBS == 0.7, NAN, PROBS), ValueError, ["pred_probs", "finite", "row 0"], "accepts"),
    "probs_not_summing_to_1": (GOOD, PROBS * 0.5, ValueError, ["pred_probs", "sum to 1", "row 0"], "accepts"),
    "probs_negative": (
        GOOD,
        PROBS + np.array([[-0.75, 0.5, 0.25], [0, 0, 0], [0, 0, 0], [0, 0, 0]]),
        ValueError,
        ["pred_probs", "non-negative", "row 0"],
        "accepts",
    ),
}


def _cleanlab_raises(labels, probs) -> bool:
    import cleanlab.multiannotator as cma

    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            cma.get_label_quality_multiannotator(labels, probs, verbose=False)
    except Exception:
        return True
    return False


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_bad_input_is_refused_with_a_clear_message(case):
    labels, probs, error, words, cleanlab = CASES[case]
    assert _cleanlab_raises(labels, probs) == (cleanlab == "raises"), f"cleanlab no longer {cleanlab} this input"
    if error is None:  # a list of rows is fine for us (cleanlab insists on an ndarray)
        assert ma.get_label_quality_multiannotator(labels, probs).consensus_label.shape == (4,)
        return
    with pytest.raises(error) as info:
        ma.get_label_quality_multiannotator(labels, probs)
    for word in words:
        assert word in str(info.value), f"{word!r} not in {info.value}"


OPTION_CASES = {
    "consensus_method_unknown": ({"consensus_method": "dawid_skene"}, ValueError, "consensus_method"),
    "consensus_method_list": ({"consensus_method": ["best_quality", "majority_vote"]}, TypeError, "consensus_method"),
    "quality_method_unknown": ({"quality_method": "entropy"}, ValueError, "quality_method"),
    "calibrate_probs_string": ({"calibrate_probs": "no"}, TypeError, "calibrate_probs"),
    "return_weights_with_agreement": (
        {"return_weights": True, "quality_method": "agreement"},
        ValueError,
        "return_weights",
    ),
    "return_annotator_stats_int": ({"return_annotator_stats": 1}, TypeError, "return_annotator_stats"),
}


@pytest.mark.parametrize("case", list(OPTION_CASES), ids=list(OPTION_CASES))
def test_bad_options_are_refused(case):
    options, error, name = OPTION_CASES[case]
    with pytest.raises(error, match=name):
        ma.get_label_quality_multiannotator(GOOD, PROBS, **options)


def test_majority_vote_checks_labels_against_pred_probs_or_nothing():
    with pytest.raises(ValueError, match="0..1"):
        ma.get_majority_vote_label(_with(cells={(2, 0): 2}), PROBS[:, :2] / PROBS[:, :2].sum(axis=1, keepdims=True))
    assert ma.get_majority_vote_label(GOOD).tolist() == [0, 1, 2, 0]  # K from the largest label


ACTIVE_CASES = {
    "nothing": ({}, ValueError, "both None"),
    "probs_without_labels": ({"pred_probs": PROBS}, ValueError, "without labels_multiannotator"),
    "labels_without_probs": (
        {"labels_multiannotator": GOOD, "pred_probs_unlabeled": PROBS},
        ValueError,
        "without pred_probs",
    ),
    "unlabeled_class_mismatch": (
        {"labels_multiannotator": GOOD, "pred_probs": PROBS, "pred_probs_unlabeled": np.full((2, 2), 0.5)},
        ValueError,
        "same number of classes",
    ),
    "unlabeled_not_summing_to_1": ({"pred_probs_unlabeled": np.full((2, 3), 0.5)}, ValueError, "pred_probs_unlabeled"),
    "row_without_label": (
        {"labels_multiannotator": np.array([[0, NAN], [NAN, NAN], [1, 1], [2, 0]]), "pred_probs": PROBS},
        ValueError,
        "no label",
    ),
}


@pytest.mark.parametrize("case", list(ACTIVE_CASES), ids=list(ACTIVE_CASES))
def test_active_learning_bad_input(case):
    kwargs, error, words = ACTIVE_CASES[case]
    with pytest.raises(error, match=words):
        ma.get_active_learning_scores(**kwargs)


def test_active_learning_accepts_a_single_annotator():
    scores, unlabeled = ma.get_active_learning_scores(np.array([[0], [1], [2], [0]]), PROBS)
    assert scores.shape == (4,) and unlabeled.shape == (0,)
    assert np.all((scores > 0) & (scores < 1))


def test_result_is_read_only():
    result = ma.get_label_quality_multiannotator(GOOD, PROBS)
    with pytest.raises(ValueError, match="read-only"):
        result.consensus_label[0] = 2
    with pytest.raises(AttributeError):
        result.consensus_label = np.zeros(4)
