"""Input validation at the public boundary of ``cl_pipeline.core``.

Spec (input rules): ``pred_probs`` 2-D, finite, non-negative, at least 2 columns,
rows summing to 1 within a tolerance (published arrays are off by up to ~2e-5,
so 1e-4 must be accepted); ``labels`` 1-D integers in ``0..K-1``, same length;
at least one example. Each violation: ValueError (TypeError for a wrong type)
whose message names the argument. Validation must not rely on ``assert``.
"""

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from cl_pipeline import core

K = 3
N = 6
REPO = Path(__file__).resolve().parents[2]


def good():
    p = np.array([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8]] * 2)
    labels = np.array([0, 1, 2, 0, 1, 2])
    return labels, p


# Every public function that takes (labels, pred_probs), called with defaults.
PUBLIC = {
    "find_label_issues": lambda l, p: core.find_label_issues(l, p),
    "compute_confident_joint": lambda l, p: core.compute_confident_joint(l, p),
    "get_label_quality_scores": lambda l, p: core.get_label_quality_scores(l, p),
    "get_confident_thresholds": lambda l, p: core.get_confident_thresholds(l, p),
    "num_label_issues": lambda l, p: core.num_label_issues(l, p),
    "estimate_joint": lambda l, p: core.estimate_joint(l, p),
    "estimate_py_and_noise_matrices": lambda l, p: core.estimate_py_and_noise_matrices_from_probabilities(l, p),
    "order_label_issues": lambda l, p: core.order_label_issues(np.array([], dtype=np.int64), l, p),
    "rank_classes_by_label_quality": lambda l, p: core.rank_classes_by_label_quality(l, p),
    "find_overlapping_classes": lambda l, p: core.find_overlapping_classes(l, p),
    "overall_label_health_score": lambda l, p: core.overall_label_health_score(l, p),
    "health_summary": lambda l, p: core.health_summary(l, p),
}


def _with(p=None, labels=None):
    gl, gp = good()
    return (gl if labels is None else labels), (gp if p is None else p)


def _set(arr, idx, val):
    arr = np.array(arr, copy=True)
    arr[idx] = val
    return arr


def _obj_with_none():
    p = good()[1].astype(object)
    p[0, 0] = None
    return p


# name -> (labels, pred_probs, argument(s) the message must name)
BAD_INPUTS = {
    "pred_probs_nan": (*_with(p=_set(good()[1], (0, 0), np.nan)), ("pred_probs",)),
    "pred_probs_inf": (*_with(p=_set(good()[1], (0, 0), np.inf)), ("pred_probs",)),
    "pred_probs_minus_inf": (*_with(p=_set(good()[1], (0, 1), -np.inf)), ("pred_probs",)),
    "pred_probs_negative_entry_row_sums_to_1": (
        *_with(p=np.vstack([[1.2, -0.3, 0.1], good()[1][1:]])),
        ("pred_probs",),
    ),
    "pred_probs_1d": (*_with(p=np.full(N, 1.0)), ("pred_probs",)),
    "pred_probs_3d": (*_with(p=good()[1][:, :, None]), ("pred_probs",)),
    "pred_probs_one_column": (np.zeros(N, dtype=np.int64), np.ones((N, 1)), ("pred_probs",)),
    "pred_probs_rows_sum_to_0.9": (*_with(p=good()[1] * 0.9), ("pred_probs",)),
    "pred_probs_one_row_sums_to_1.1": (*_with(p=np.vstack([[0.9, 0.1, 0.1], good()[1][1:]])), ("pred_probs",)),
    "pred_probs_row_off_by_1e-3": (*_with(p=np.vstack([[0.801, 0.1, 0.1], good()[1][1:]])), ("pred_probs",)),
    "pred_probs_strings": (*_with(p=good()[1].astype(str)), ("pred_probs",)),
    "pred_probs_object_with_none": (*_with(p=_obj_with_none()), ("pred_probs",)),
    "pred_probs_bool": (*_with(p=np.eye(K, dtype=bool)[good()[0]]), ("pred_probs",)),
    "pred_probs_complex": (*_with(p=good()[1].astype(complex)), ("pred_probs",)),
    "pred_probs_none": (good()[0], None, ("pred_probs",)),
    "labels_minus_1": (*_with(labels=np.array([-1, 1, 2, 0, 1, 2])), ("labels",)),
    "labels_equal_K": (*_with(labels=np.array([0, 1, 2, 0, 1, K])), ("labels",)),
    "labels_fractional": (*_with(labels=np.array([0, 1.5, 2, 0, 1, 2])), ("labels",)),
    "labels_strings": (*_with(labels=np.array(["a", "b", "c", "a", "b", "c"])), ("labels",)),
    "labels_complex": (*_with(labels=np.array([0, 1, 2, 0, 1, 2], dtype=complex)), ("labels",)),
    "labels_2d": (*_with(labels=good()[0][:, None]), ("labels",)),
    "labels_none": (None, good()[1], ("labels",)),
    "length_mismatch_labels_shorter": (good()[0][:-1], good()[1], ("labels", "pred_probs")),
    "length_mismatch_pred_probs_shorter": (good()[0], good()[1][:-1], ("labels", "pred_probs")),
    "empty": (np.array([], dtype=np.int64), np.zeros((0, K)), ("labels", "pred_probs")),
}


@pytest.mark.parametrize("func", list(PUBLIC))
@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_rejected_naming_the_argument(case, func):
    labels, p, names = BAD_INPUTS[case]
    with pytest.raises((ValueError, TypeError)) as ei:
        PUBLIC[func](labels, p)
    msg = str(ei.value)
    assert any(name in msg for name in names), f"{func}/{case}: message does not name {names}: {msg!r}"


def _near_one(eps):
    labels, p = good()
    p = p.copy()
    p[0] *= 1 + eps
    p[1] *= 1 - eps
    return labels, p


def _diag_counts():
    return np.diag([2, 2, 2])


def _own(labels, p):
    return p[np.arange(labels.size), labels]


def _check_class_table(table):
    assert table.classes.tolist() == [0, 1, 2]
    np.testing.assert_array_equal(table.label_issues, 0)
    np.testing.assert_array_equal(table.inverse_label_issues, 0)
    np.testing.assert_allclose(table.label_quality, 1.0, rtol=0, atol=1e-12)


def _check_pairs(table):
    assert list(zip(table.class_a.tolist(), table.class_b.tolist(), strict=True)) == [(0, 1), (0, 2), (1, 2)]
    np.testing.assert_array_equal(table.num_overlapping_examples, 0)
    np.testing.assert_allclose(table.joint_probability, 0.0, rtol=0, atol=1e-12)


def _check_order(labels, p, out):
    assert out.dtype == np.int64 and out.shape == (0,)  # PUBLIC passes no issues
    ranked = core.order_label_issues(np.ones(labels.size, dtype=bool), labels, p)
    own = _own(labels, p)
    assert ranked.tolist() == sorted(range(labels.size), key=lambda i: (float(own[i]), i))


def _check_latent(labels, p, out):
    py, nm, inv, cj = out
    np.testing.assert_allclose(py, 1 / 3, rtol=0, atol=1e-12)
    np.testing.assert_allclose(nm, np.eye(K), rtol=0, atol=1e-12)
    np.testing.assert_allclose(inv, np.eye(K), rtol=0, atol=1e-12)
    np.testing.assert_array_equal(cj, _diag_counts())


def _check_health(labels, p, out):
    assert out.overall_label_health_score == 1.0
    np.testing.assert_allclose(out.joint, np.eye(K) / K, rtol=0, atol=1e-12)
    _check_class_table(out.classes)
    _check_pairs(out.overlapping)


# What every accepted input of the test below must give: the rows are (0.8, 0.1, 0.1) with
# the 0.8 on the label (at most 5e-5 off), so nothing is flagged, C is diagonal (2 per
# class), scores are p[i, y], thresholds the per-class means of those.
ACCEPTED_OUTPUT = {
    "find_label_issues": lambda l, p, out: (
        np.testing.assert_array_equal(out, np.zeros(N, dtype=bool)),
        assert_dtype(out, bool),
    ),
    "compute_confident_joint": lambda l, p, out: (
        np.testing.assert_array_equal(out, _diag_counts()),
        assert_kind(out, "i"),
    ),
    "get_label_quality_scores": lambda l, p, out: (
        np.testing.assert_array_equal(out, _own(l, p)),
        assert_dtype(out, p.dtype),
    ),
    "get_confident_thresholds": lambda l, p, out: (
        np.testing.assert_allclose(
            out, [_own(l, p)[l == c].astype(np.float64).mean() for c in range(K)], rtol=1e-6, atol=0
        ),
        assert_dtype(out, p.dtype),
    ),
    "num_label_issues": lambda l, p, out: (assert_kind(np.asarray(out), "i"), np.testing.assert_equal(out, 0)),
    "estimate_joint": lambda l, p, out: np.testing.assert_allclose(out, np.eye(K) / K, rtol=0, atol=1e-12),
    "estimate_py_and_noise_matrices": _check_latent,
    "order_label_issues": _check_order,
    "rank_classes_by_label_quality": lambda l, p, out: _check_class_table(out),
    "find_overlapping_classes": lambda l, p, out: _check_pairs(out),
    "overall_label_health_score": lambda l, p, out: np.testing.assert_equal(out, 1.0),
    "health_summary": _check_health,
}
assert set(ACCEPTED_OUTPUT) == set(PUBLIC)


def assert_dtype(arr, dtype):
    assert np.asarray(arr).dtype == dtype, f"dtype {np.asarray(arr).dtype}, expected {dtype}"


def assert_kind(arr, kind):
    assert np.asarray(arr).dtype.kind == kind, f"dtype {np.asarray(arr).dtype}, expected kind {kind!r}"


@pytest.mark.parametrize("func", list(PUBLIC))
@pytest.mark.parametrize(
    "case",
    ["rows_off_by_5e-5", "rows_off_by_2e-5_float32", "labels_int32", "float32", "rows_off_by_1e-6"],
)
def test_rows_within_1e4_of_one_and_other_valid_forms_are_accepted(case, func):
    if case.startswith("rows_off_by_5e-5"):
        labels, p = _near_one(5e-5)
    elif case == "rows_off_by_2e-5_float32":
        labels, p = _near_one(2e-5)
        p = p.astype(np.float32)
    elif case == "rows_off_by_1e-6":
        labels, p = _near_one(1e-6)
    elif case == "labels_int32":
        labels, p = good()
        labels = labels.astype(np.int32)
    else:
        labels, p = good()
        p = p.astype(np.float32)
    ACCEPTED_OUTPUT[func](labels, p, PUBLIC[func](labels, p))


def test_accepted_near_one_rows_give_the_same_answer_as_exact_rows():
    labels, p = good()
    _, q = _near_one(5e-5)
    np.testing.assert_array_equal(core.find_label_issues(labels, q), core.find_label_issues(labels, p))
    np.testing.assert_array_equal(core.compute_confident_joint(labels, q), core.compute_confident_joint(labels, p))


# ---- bad keyword values: (function call, argument the message must name)
def _cj(shape=(K, K)):
    return np.ones(shape, dtype=np.int64)


BAD_KEYWORDS = {
    "find_label_issues-filter_by_nope": (lambda l, p: core.find_label_issues(l, p, filter_by="nope"), "filter_by"),
    "find_label_issues-frac_noise_1.5": (lambda l, p: core.find_label_issues(l, p, frac_noise=1.5), "frac_noise"),
    "find_label_issues-frac_noise_negative": (lambda l, p: core.find_label_issues(l, p, frac_noise=-0.5), "frac_noise"),
    "find_label_issues-min_examples_per_class_minus_1": (
        lambda l, p: core.find_label_issues(l, p, min_examples_per_class=-1),
        "min_examples_per_class",
    ),
    "find_label_issues-num_to_remove_per_class_wrong_length": (
        lambda l, p: core.find_label_issues(l, p, filter_by="prune_by_class", num_to_remove_per_class=[1, 1]),
        "num_to_remove_per_class",
    ),
    "find_label_issues-num_to_remove_per_class_negative": (
        lambda l, p: core.find_label_issues(l, p, filter_by="prune_by_class", num_to_remove_per_class=[-1, 0, 0]),
        "num_to_remove_per_class",
    ),
    "find_label_issues-confident_joint_wrong_shape": (
        lambda l, p: core.find_label_issues(l, p, confident_joint=_cj((2, 2))),
        "confident_joint",
    ),
    "find_label_issues-confident_joint_not_square": (
        lambda l, p: core.find_label_issues(l, p, confident_joint=_cj((K, K + 1))),
        "confident_joint",
    ),
    "compute_confident_joint-argmax_rule_nope": (
        lambda l, p: core.compute_confident_joint(l, p, argmax_rule="nope"),
        "argmax_rule",
    ),
    "compute_confident_joint-thresholds_wrong_length": (
        lambda l, p: core.compute_confident_joint(l, p, thresholds=np.full(K + 1, 0.5)),
        "thresholds",
    ),
    "get_label_quality_scores-method_nope": (lambda l, p: core.get_label_quality_scores(l, p, method="nope"), "method"),
    "get_label_quality_scores-adjust_with_entropy": (
        lambda l, p: core.get_label_quality_scores(l, p, method="confidence_weighted_entropy", adjust_pred_probs=True),
        "adjust_pred_probs",
    ),
    "order_label_issues-rank_by_nope": (
        lambda l, p: core.order_label_issues(np.array([0]), l, p, rank_by="nope"),
        "rank_by",
    ),
    "order_label_issues-index_out_of_range": (lambda l, p: core.order_label_issues(np.array([0, N]), l, p), "issues"),
    "order_label_issues-mask_wrong_length": (
        lambda l, p: core.order_label_issues(np.ones(N + 1, dtype=bool), l, p),
        "issues",
    ),
    "num_label_issues-estimation_method_nope": (
        lambda l, p: core.num_label_issues(l, p, estimation_method="nope"),
        "estimation_method",
    ),
    "num_label_issues-custom_without_confident_joint": (
        lambda l, p: core.num_label_issues(l, p, estimation_method="off_diagonal_custom"),
        "confident_joint",
    ),
    "num_label_issues-custom_confident_joint_wrong_shape": (
        lambda l, p: core.num_label_issues(l, p, estimation_method="off_diagonal_custom", confident_joint=_cj((2, 2))),
        "confident_joint",
    ),
    "estimate_joint-confident_joint_wrong_shape": (
        lambda l, p: core.estimate_joint(l, p, confident_joint=_cj((K + 1, K + 1))),
        "confident_joint",
    ),
    "calibrate_confident_joint-not_square": (
        lambda l, p: core.calibrate_confident_joint(_cj((K, K + 1)), l),
        "confident_joint",
    ),
    "calibrate_confident_joint-label_out_of_range": (
        lambda l, p: core.calibrate_confident_joint(_cj((2, 2)), l),
        ("labels", "confident_joint"),
    ),
    "calibrate_confident_joint-negative_count": (
        lambda l, p: core.calibrate_confident_joint(-_cj(), l),
        "confident_joint",
    ),
    "estimate_latent-py_method_nope": (lambda l, p: core.estimate_latent(_cj(), l, py_method="nope"), "py_method"),
    "estimate_latent-confident_joint_wrong_shape": (
        lambda l, p: core.estimate_latent(_cj((2, 2)), l),
        ("confident_joint", "labels"),
    ),
    "estimate_py_and_noise_matrices-py_method_nope": (
        lambda l, p: core.estimate_py_and_noise_matrices_from_probabilities(l, p, py_method="nope"),
        "py_method",
    ),
    "rank_classes_by_label_quality-confident_joint_wrong_shape": (
        lambda l, p: core.rank_classes_by_label_quality(l, p, confident_joint=_cj((2, 2))),
        "confident_joint",
    ),
    "overall_label_health_score-confident_joint_is_ignored": (
        lambda l, p: core.overall_label_health_score(l, p, confident_joint=_cj()),
        "confident_joint",
    ),
    # a request above n_k (= 2 here) cannot be met exactly by the two filters whose counts are ours
    "find_label_issues-num_to_remove_per_class_above_n_k_noise_rate": (
        lambda l, p: core.find_label_issues(l, p, num_to_remove_per_class=[3, 0, 0]),
        "num_to_remove_per_class",
    ),
    "find_label_issues-num_to_remove_per_class_above_n_k_both": (
        lambda l, p: core.find_label_issues(l, p, filter_by="both", num_to_remove_per_class=[0, 0, 5]),
        "num_to_remove_per_class",
    ),
}

# Boolean flags: only a Python or numpy bool (``"no"`` is truthy). Each is a TypeError.
BAD_FLAGS = {
    "compute_confident_joint-calibrate_no": (
        lambda l, p: core.compute_confident_joint(l, p, calibrate="no"),
        "calibrate",
    ),
    "compute_confident_joint-calibrate_0": (lambda l, p: core.compute_confident_joint(l, p, calibrate=0), "calibrate"),
    "estimate_py_and_noise_matrices-calibrate_none": (
        lambda l, p: core.estimate_py_and_noise_matrices_from_probabilities(l, p, calibrate=None),
        "calibrate",
    ),
    "estimate_py_and_noise_matrices-converge_x": (
        lambda l, p: core.estimate_py_and_noise_matrices_from_probabilities(l, p, converge_latent_estimates="x"),
        "converge_latent_estimates",
    ),
    "estimate_latent-converge_x": (
        lambda l, p: core.estimate_latent(_cj(), l, converge_latent_estimates="x"),
        "converge_latent_estimates",
    ),
    "get_label_quality_scores-adjust_yes": (
        lambda l, p: core.get_label_quality_scores(l, p, adjust_pred_probs="yes"),
        "adjust_pred_probs",
    ),
    "get_label_quality_scores-adjust_array": (
        lambda l, p: core.get_label_quality_scores(l, p, adjust_pred_probs=np.array([True])),
        "adjust_pred_probs",
    ),
    "order_label_issues-adjust_1": (
        lambda l, p: core.order_label_issues(np.array([0]), l, p, adjust_pred_probs=1),
        "adjust_pred_probs",
    ),
    "find_overlapping_classes-asymmetric_yes": (
        lambda l, p: core.find_overlapping_classes(l, p, asymmetric="yes"),
        "asymmetric",
    ),
    "generate_noise_matrix_from_trace-valid_noise_matrix_no": (
        lambda l, p: core.generate_noise_matrix_from_trace(3, 2.0, valid_noise_matrix="no"),
        "valid_noise_matrix",
    ),
}

# The noise generators: (call, argument the message must name); labels/pred_probs are unused.
_NM = np.array([[0.8, 0.1, 0.0], [0.1, 0.8, 0.2], [0.1, 0.1, 0.8]])
BAD_NOISE_INPUTS = {
    "trace-K_1": (lambda: core.generate_noise_matrix_from_trace(1, 1.0), "K"),
    "trace-K_float": (lambda: core.generate_noise_matrix_from_trace(2.5, 2.0), "K"),
    "trace-K_string": (lambda: core.generate_noise_matrix_from_trace("3", 2.0), "K"),
    "trace-trace_0": (lambda: core.generate_noise_matrix_from_trace(3, 0.0, valid_noise_matrix=False), "trace"),
    "trace-trace_above_K": (lambda: core.generate_noise_matrix_from_trace(3, 3.5), "trace"),
    "trace-trace_nan": (lambda: core.generate_noise_matrix_from_trace(3, float("nan")), "trace"),
    "trace-trace_string": (lambda: core.generate_noise_matrix_from_trace(3, "2"), "trace"),
    "trace-trace_1_valid": (lambda: core.generate_noise_matrix_from_trace(3, 1.0), "trace"),
    "trace-frac_zero_1.5": (
        lambda: core.generate_noise_matrix_from_trace(3, 2.0, frac_zero_noise_rates=1.5),
        "frac_zero_noise_rates",
    ),
    "trace-frac_zero_string": (
        lambda: core.generate_noise_matrix_from_trace(3, 2.0, frac_zero_noise_rates="0"),
        "frac_zero_noise_rates",
    ),
    "trace-py_wrong_length": (lambda: core.generate_noise_matrix_from_trace(3, 2.0, py=[0.5, 0.5]), "py"),
    "trace-py_negative": (lambda: core.generate_noise_matrix_from_trace(3, 2.0, py=[1.2, -0.1, -0.1]), "py"),
    "trace-py_sums_to_2": (lambda: core.generate_noise_matrix_from_trace(3, 2.0, py=[1.0, 0.5, 0.5]), "py"),
    "trace-py_string": (lambda: core.generate_noise_matrix_from_trace(3, 2.0, py="uniform"), "py"),
    "trace-seed_negative": (lambda: core.generate_noise_matrix_from_trace(3, 2.0, seed=-1), "seed"),
    "trace-seed_float": (lambda: core.generate_noise_matrix_from_trace(3, 2.0, seed=1.5), "seed"),
    "noisy-noise_matrix_not_square": (lambda: core.generate_noisy_labels([0, 1], _NM[:, :2]), "noise_matrix"),
    "noisy-noise_matrix_1x1": (lambda: core.generate_noisy_labels([0, 0], np.ones((1, 1))), "noise_matrix"),
    "noisy-noise_matrix_columns_not_1": (lambda: core.generate_noisy_labels([0, 1], _NM * 0.5), "noise_matrix"),
    "noisy-noise_matrix_negative": (
        lambda: core.generate_noisy_labels([0, 1], [[1.2, 0.0], [-0.2, 1.0]]),
        "noise_matrix",
    ),
    "noisy-noise_matrix_nan": (lambda: core.generate_noisy_labels([0, 1], [[np.nan, 0.0], [1.0, 1.0]]), "noise_matrix"),
    "noisy-noise_matrix_strings": (lambda: core.generate_noisy_labels([0, 1], _NM.astype(str)), "noise_matrix"),
    "noisy-noise_matrix_none": (lambda: core.generate_noisy_labels([0, 1], None), "noise_matrix"),
    "noisy-true_labels_equal_K": (lambda: core.generate_noisy_labels([0, 3], _NM), "true_labels"),
    "noisy-true_labels_negative": (lambda: core.generate_noisy_labels([0, -1], _NM), "true_labels"),
    "noisy-true_labels_float": (lambda: core.generate_noisy_labels([0.0, 1.5], _NM), "true_labels"),
    "noisy-true_labels_2d": (lambda: core.generate_noisy_labels([[0, 1]], _NM), "true_labels"),
    "noisy-true_labels_empty": (lambda: core.generate_noisy_labels(np.array([], dtype=int), _NM), "true_labels"),
    "noisy-seed_negative": (lambda: core.generate_noisy_labels([0, 1], _NM, seed=-3), "seed"),
    "noisy-seed_string": (lambda: core.generate_noisy_labels([0, 1], _NM, seed="7"), "seed"),
    "is_valid-py_wrong_length": (lambda: core.noise_matrix_is_valid(_NM, [0.5, 0.5]), "py"),
    "is_valid-noise_matrix_not_square": (lambda: core.noise_matrix_is_valid(_NM[:2], [0.5, 0.5]), "noise_matrix"),
}


@pytest.mark.parametrize("case", list(BAD_KEYWORDS) + list(BAD_FLAGS))
def test_bad_keyword_value_is_rejected_naming_the_argument(case):
    call, names = BAD_KEYWORDS[case] if case in BAD_KEYWORDS else BAD_FLAGS[case]
    names = (names,) if isinstance(names, str) else names
    labels, p = good()
    with pytest.raises((ValueError, TypeError)) as ei:
        call(labels, p)
    assert any(n in str(ei.value) for n in names), f"{case}: message does not name {names}: {str(ei.value)!r}"


@pytest.mark.parametrize("case", list(BAD_FLAGS))
def test_non_bool_flag_is_a_type_error(case):
    call, name = BAD_FLAGS[case]
    with pytest.raises(TypeError, match=name):
        call(*good())


@pytest.mark.parametrize("flag", [True, False, np.True_, np.False_], ids=["True", "False", "np.True_", "np.False_"])
def test_bool_and_numpy_bool_flags_are_accepted(flag):
    labels, p = good()
    core.compute_confident_joint(labels, p, calibrate=flag)
    core.estimate_py_and_noise_matrices_from_probabilities(labels, p, calibrate=flag, converge_latent_estimates=flag)
    core.estimate_latent(_cj(), labels, converge_latent_estimates=flag)
    core.get_label_quality_scores(labels, p, adjust_pred_probs=flag)
    core.order_label_issues(np.array([0]), labels, p, adjust_pred_probs=flag)
    core.find_overlapping_classes(labels, p, asymmetric=flag)
    core.generate_noise_matrix_from_trace(3, 2.0, valid_noise_matrix=flag, seed=0)
    # a numpy bool gives the same result as the Python bool
    np.testing.assert_array_equal(
        core.compute_confident_joint(labels, p, calibrate=flag),
        core.compute_confident_joint(labels, p, calibrate=bool(flag)),
    )


@pytest.mark.parametrize("case", list(BAD_NOISE_INPUTS))
def test_bad_noise_generation_input_is_rejected_naming_the_argument(case):
    call, name = BAD_NOISE_INPUTS[case]
    with pytest.raises((ValueError, TypeError)) as ei:
        call()
    assert name in str(ei.value), f"{case}: message does not name {name}: {str(ei.value)!r}"


def test_good_noise_generation_inputs_are_accepted():
    nm = core.generate_noise_matrix_from_trace(
        np.int64(3), np.float32(2.0), py=np.array([0.2, 0.3, 0.5]), frac_zero_noise_rates=0, seed=np.uint32(5)
    )
    assert core.noise_matrix_is_valid(nm, [0.2, 0.3, 0.5])
    assert core.generate_noisy_labels(np.array([0, 1, 2], dtype=np.int32), nm, seed=0).shape == (3,)
    # a matrix whose columns do not sum to 1 is invalid, not an error
    assert core.noise_matrix_is_valid(_NM * 0.5, [1 / 3] * 3) is False


# K is not always the number of columns of pred_probs: the message says where it comes from.
K_SOURCES = {
    "estimate_latent": (lambda: core.estimate_latent(_cj((2, 2)), np.array([0, 1, 2])), "rows of confident_joint"),
    "calibrate_confident_joint": (
        lambda: core.calibrate_confident_joint(_cj((2, 2)), np.array([0, 2])),
        "rows of confident_joint",
    ),
    "generate_noisy_labels": (lambda: core.generate_noisy_labels(np.array([0, 3]), _NM), "rows of noise_matrix"),
    "find_label_issues": (
        lambda: core.find_label_issues(np.array([0, 1, 2]), np.eye(3)[:, :2]),
        "columns of pred_probs",
    ),
}


@pytest.mark.parametrize("func", list(K_SOURCES))
def test_label_range_error_names_where_k_comes_from(func):
    call, source = K_SOURCES[func]
    with pytest.raises(ValueError) as ei:
        call()
    msg = str(ei.value)
    assert source in msg, msg
    if "pred_probs" not in source:
        assert "pred_probs" not in msg, f"{func}: K does not come from pred_probs here: {msg!r}"


def test_num_to_remove_above_class_size_names_the_class_and_its_size():
    labels, p = good()  # n_k = 2 for every class
    for filter_by in ("prune_by_noise_rate", "both"):
        with pytest.raises(ValueError, match=r"num_to_remove_per_class\[1\] = 3 exceeds n_1 = 2"):
            core.find_label_issues(labels, p, filter_by=filter_by, num_to_remove_per_class=[2, 3, 0])
    # prune_by_class keeps cleanlab's behaviour (the whole class); see test_parity
    mask = core.find_label_issues(labels, p, filter_by="prune_by_class", num_to_remove_per_class=[2, 3, 0])
    assert mask.dtype == bool


def test_validation_does_not_rely_on_assert():
    """Under ``python -O`` (asserts stripped) bad inputs are still rejected."""
    code = textwrap.dedent(
        """
        import numpy as np
        from cl_pipeline import core
        p = np.array([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8]] * 2)
        l = np.array([0, 1, 2, 0, 1, 2])
        bad = [
            (l, p * 0.9), (np.array([0, 1, 2, 0, 1, 3]), p), (l[:-1], p),
            (l, np.where(np.eye(3, dtype=bool)[l], np.nan, p)), (np.array([-1, 1, 2, 0, 1, 2]), p),
        ]
        for fn in (core.find_label_issues, core.compute_confident_joint, core.get_label_quality_scores):
            for labels, probs in bad:
                try:
                    fn(labels, probs)
                except (ValueError, TypeError):
                    continue
                raise SystemExit(f"{fn.__name__} accepted a bad input under python -O")
        try:
            core.find_label_issues(l, p, filter_by="nope")
        except (ValueError, TypeError):
            pass
        else:
            raise SystemExit("filter_by='nope' accepted under python -O")
        print("ok")
        """
    )
    r = subprocess.run(
        [sys.executable, "-O", "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**__import__("os").environ, "PYTHONPATH": str(REPO)},
        timeout=120,
    )
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stdout + r.stderr
