"""Bad input to ``cl_pipeline.core.multilabel``: a ValueError/TypeError naming the argument and value.

For the data cases the test also records what cleanlab 2.9.0 does with the same input
(``"raises"``: we are as strict; ``"accepts"``: we are stricter, docs/differences-from-cleanlab.md,
"Multi-label data").
"""

import warnings

import numpy as np
import pytest

from cl_pipeline.core import multilabel as ml

LABELS = [[0], [1, 2], [], [0, 2], [1], [2], [0, 1], [1]]
PROBS = np.array(
    [
        [0.9, 0.1, 0.2],
        [0.2, 0.8, 0.7],
        [0.1, 0.2, 0.1],
        [0.7, 0.3, 0.6],
        [0.3, 0.9, 0.2],
        [0.1, 0.2, 0.8],
        [0.6, 0.7, 0.1],
        [0.2, 0.4, 0.3],
    ]
)


def _probs(i, k, value):
    p = PROBS.copy()
    p[i, k] = value
    return p


def _labels(i, row):
    labels = [list(r) for r in LABELS]
    labels[i] = row
    return labels


#: id -> (labels, pred_probs, exception, words the message must contain, cleanlab's behaviour)
CASES = {
    "probs_above_1": (LABELS, _probs(2, 1, 1.5), ValueError, ["pred_probs", "[0, 1]", "[2, 1]", "1.5"], "raises"),
    "probs_negative": (LABELS, _probs(2, 1, -0.1), ValueError, ["pred_probs", "[0, 1]", "-0.1"], "raises"),
    "probs_nan": (LABELS, _probs(3, 0, np.nan), ValueError, ["pred_probs", "[3, 0]", "nan"], "accepts"),
    "probs_int": (LABELS, (PROBS > 0.5).astype(int), TypeError, ["pred_probs", "dtype int64"], "raises"),
    "probs_1d": (LABELS, PROBS[:, 0], ValueError, ["pred_probs", "2-D"], "raises"),
    "label_out_of_range": (_labels(4, [1, 3]), PROBS, ValueError, ["labels", "0..2", "labels[4]", "[1, 3]"], "accepts"),
    "negative_label": (_labels(1, [-1]), PROBS, ValueError, ["labels", "0..2", "labels[1]"], "accepts"),
    "float_label": (_labels(5, [2.0]), PROBS, TypeError, ["labels", "integer", "labels[5]"], "accepts"),
    "string_label": (_labels(5, ["b"]), PROBS, TypeError, ["labels", "integer"], "accepts"),
    "row_not_a_list": (_labels(0, 0), PROBS, TypeError, ["labels[0]", "list of class ids"], "raises"),
    "too_few_rows": (LABELS[:-1], PROBS, ValueError, ["labels", "same length", "7", "8"], "raises"),
    "single_label_array": (np.array([0, 1, 2, 0, 1, 2, 0, 1]), PROBS, TypeError, ["labels[0]", "list"], "raises"),
    "indicator_wrong_shape": (np.zeros((8, 2), int), PROBS, ValueError, ["labels", "(8, 3)", "(8, 2)"], "raises"),
    "indicator_not_0_1": (np.full((8, 3), 2), PROBS, ValueError, ["labels", "0 or 1", "[0, 0]"], "raises"),
    "indicator_float": (np.zeros((8, 3)), PROBS, TypeError, ["labels", "indicator", "float64"], "raises"),
}


def _cleanlab_raises(labels, probs) -> bool:
    from cleanlab.multilabel_classification.filter import find_label_issues

    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            find_label_issues(labels, probs, n_jobs=1)
    except Exception:
        return True
    return False


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_bad_data_is_refused_with_a_clear_message(case):
    labels, probs, error, words, cleanlab = CASES[case]
    assert _cleanlab_raises(labels, probs) == (cleanlab == "raises"), f"cleanlab no longer {cleanlab} this input"
    for fn in (ml.find_label_issues, ml.find_multilabel_issues_per_class, ml.get_label_quality_scores):
        with pytest.raises(error) as info:
            fn(labels, probs)
        for word in words:
            assert word in str(info.value), f"{fn.__name__}: {word!r} not in {info.value}"


OPTION_CASES = {
    "filter_unknown": ({"filter_by": "prune"}, ValueError, "filter_by"),
    "frac_noise_zero": ({"frac_noise": 0.0}, ValueError, "frac_noise"),
    "min_examples_negative": ({"min_examples_per_class": -1}, ValueError, "min_examples_per_class"),
    "removals_wrong_length": ({"num_to_remove_per_class": [1, 1]}, ValueError, "num_to_remove_per_class"),
    "removals_negative": ({"num_to_remove_per_class": [1, -1, 0]}, ValueError, "num_to_remove_per_class"),
    "removals_above_examples_without_class": (
        {"num_to_remove_per_class": [0, 6, 0]},
        ValueError,
        r"num_to_remove_per_class\[1\] = 6 exceeds 4",
    ),
    "removals_with_low_filter": (
        {"num_to_remove_per_class": [1, 1, 1], "filter_by": "low_self_confidence"},
        ValueError,
        "num_to_remove_per_class",
    ),
    "joint_k_by_k": ({"confident_joint": np.ones((3, 3))}, ValueError, r"confident_joint.*\(3, 2, 2\)"),
    "joint_negative": ({"confident_joint": -np.ones((3, 2, 2))}, ValueError, "confident_joint"),
    "joint_with_confident_learning": (
        {"confident_joint": np.ones((3, 2, 2)), "filter_by": "confident_learning"},
        ValueError,
        "confident_joint",
    ),
}


@pytest.mark.parametrize("case", list(OPTION_CASES), ids=list(OPTION_CASES))
def test_bad_filter_options_are_refused(case):
    options, error, words = OPTION_CASES[case]
    for fn in (ml.find_label_issues, ml.find_multilabel_issues_per_class):
        with pytest.raises(error, match=words):
            fn(LABELS, PROBS, **options)


SCORE_CASES = {
    "method_unknown": ({"method": "margin"}, ValueError, "method"),
    "adjust_string": ({"adjust_pred_probs": "yes"}, TypeError, "adjust_pred_probs"),
    "adjust_with_entropy": ({"adjust_pred_probs": True, "method": "confidence_weighted_entropy"}, ValueError, "adjust"),
    "aggregator_not_a_dict": ({"aggregator_kwargs": "softmin"}, TypeError, "aggregator_kwargs"),
    "aggregator_without_method": ({"aggregator_kwargs": {"alpha": 0.5}}, ValueError, "'method'"),
    "aggregator_unknown": ({"aggregator_kwargs": {"method": "mean"}}, ValueError, r"aggregator_kwargs\['method'\]"),
    "alpha_above_1": (
        {"aggregator_kwargs": {"method": "exponential_moving_average", "alpha": 1.5}},
        ValueError,
        "alpha",
    ),
    "temperature_zero": ({"aggregator_kwargs": {"method": "softmin", "temperature": 0}}, ValueError, "temperature"),
    "unknown_aggregator_option": (
        {"aggregator_kwargs": {"method": "softmin", "alpha": 0.5}},
        ValueError,
        "accepts only 'temperature'",
    ),
    "callable_wrong_shape": ({"aggregator_kwargs": {"method": lambda s, axis: s}}, ValueError, "one score per example"),
}


@pytest.mark.parametrize("case", list(SCORE_CASES), ids=list(SCORE_CASES))
def test_bad_score_options_are_refused(case):
    options, error, words = SCORE_CASES[case]
    with pytest.raises(error, match=words):
        ml.get_label_quality_scores(LABELS, PROBS, **options)


def test_default_aggregator_is_read_only_and_cleanlabs():
    assert dict(ml.DEFAULT_AGGREGATOR) == {"method": "exponential_moving_average", "alpha": 0.8}
    with pytest.raises(TypeError):
        ml.DEFAULT_AGGREGATOR["alpha"] = 0.5  # type: ignore[index]
    assert np.array_equal(
        ml.get_label_quality_scores(LABELS, PROBS), ml.get_label_quality_scores(LABELS, PROBS, aggregator_kwargs={})
    )
