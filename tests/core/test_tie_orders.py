"""The documented tie orders of the rankings (the reference leaves them to numpy's sort).

- ``order_label_issues``: "sorted by label quality ascending; ties by index",
  whether the issues come as a mask or as indices in any order;
- ``rank_classes_by_label_quality`` (and ``health_summary().classes``): label
  quality ascending, "stable: ties by class id";
- ``find_overlapping_classes`` (and ``health_summary().overlapping``): joint
  probability descending, "stable": ties in the order the pairs are enumerated,
  by ``class_a`` then ``class_b`` (``i < j`` pairs, or every ordered pair when
  asymmetric).

The inputs are built so that most keys tie (quantized probabilities, circulant
confident joints), and each expectation is computed here with Python's sort on
``(key, tie-break)`` tuples. A reversed or input-order tie order fails.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cl_pipeline import core

from ._kit import examples

# --------------------------------------------------------------------------------------
# order_label_issues
# --------------------------------------------------------------------------------------


@st.composite
def tied_problem(draw):
    """Probabilities on a 1/4 grid: few distinct scores, so most issues tie with others."""
    seed = draw(st.integers(0, 2**32 - 1))
    k = draw(st.sampled_from([2, 3, 5]))
    n = draw(st.sampled_from([20, 60, 200]))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    rng = np.random.default_rng(seed)
    cells = rng.multinomial(4, np.full(k, 1.0 / k), size=n)  # rows of quarters summing to 1
    labels = rng.integers(0, k, n)
    issues = np.flatnonzero(rng.random(n) < 0.5)
    return labels, (cells / 4).astype(dtype), issues, rng.permutation(issues)


def expected_order(issues, scores):
    return sorted((int(i) for i in issues), key=lambda i: (float(scores[i]), i))


@pytest.mark.parametrize("rank_by", core.SCORE_METHODS)
@settings(max_examples=examples(20))
@given(problem=tied_problem())
def test_order_label_issues_breaks_ties_by_index_however_issues_are_given(problem, rank_by):
    labels, probs, issues, shuffled = problem
    scores = core.get_label_quality_scores(labels, probs, method=rank_by)
    expected = expected_order(issues, scores)
    mask = np.zeros(labels.shape[0], dtype=bool)
    mask[issues] = True
    given_as = {
        "mask": mask,
        "sorted_indices": issues,
        "shuffled_indices": shuffled,
        "reversed_indices": issues[::-1].copy(),
    }
    for what, issues_arg in given_as.items():
        got = core.order_label_issues(issues_arg, labels, probs, rank_by=rank_by)
        assert got.dtype == np.int64
        assert got.tolist() == expected, f"issues as {what}: order differs from (score, index)"


@pytest.mark.parametrize("given_as", ["mask", "indices_descending"])
def test_order_label_issues_all_tied_keeps_index_order(given_as):
    """Every issue has the same score: the output is the indices ascending."""
    n = 40
    probs = np.tile([0.25, 0.75], (n, 1))
    labels = np.zeros(n, dtype=np.int64)
    flagged = np.arange(3, n, 3)
    issues = np.isin(np.arange(n), flagged) if given_as == "mask" else flagged[::-1].copy()
    for rank_by in core.SCORE_METHODS:
        got = core.order_label_issues(issues, labels, probs, rank_by=rank_by)
        np.testing.assert_array_equal(got, flagged, err_msg=rank_by)


# --------------------------------------------------------------------------------------
# rank_classes_by_label_quality, find_overlapping_classes, health_summary
# --------------------------------------------------------------------------------------


def circulant_joint(k, per_class, shifts):
    """A confident joint whose rows already sum to ``per_class`` (so calibration keeps it):
    diagonal ``per_class - sum(shifts.values())``, ``C[i, (i + s) % k] = shifts[s]``."""
    c = np.zeros((k, k), dtype=np.int64)
    rows = np.arange(k)
    for s, count in shifts.items():
        c[rows, (rows + s) % k] += count
    c[rows, rows] += per_class - sum(shifts.values())
    return c


def grouped_joint(k, per_class):
    """Three quality levels by ``class % 3``: ties within each level, distinct across them."""
    c = np.zeros((k, k), dtype=np.int64)
    for i in range(k):
        off = (i % 3) + 1  # 1, 2 or 3 off-diagonal examples
        c[i, (i + 1) % k] = off
        c[i, i] = per_class - off
    return c


JOINTS = {
    "K40_all_classes_tied": (40, lambda k, m: circulant_joint(k, m, {1: 2})),
    "K40_two_neighbours_tied": (40, lambda k, m: circulant_joint(k, m, {1: 1, 3: 1})),
    "K30_three_levels": (30, grouped_joint),
    "K4_all_tied": (4, lambda k, m: circulant_joint(k, m, {1: 3})),
}
PER_CLASS = 10


def _inputs(name):
    k, make = JOINTS[name]
    cj = make(k, PER_CLASS)
    labels = np.repeat(np.arange(k), PER_CLASS)
    probs = np.full((labels.size, k), 1.0 / k)  # unused by the tables when C is supplied
    joint = cj / cj.sum()
    return labels, probs, cj, joint


def expected_class_table(joint, n):
    rows, cols, diag = joint.sum(axis=1), joint.sum(axis=0), np.diagonal(joint)
    quality = 1 - (rows - diag) / np.maximum(rows, 1e-6)
    order = sorted(range(joint.shape[0]), key=lambda c: (float(quality[c]), c))
    return order, quality, np.round(n * (rows - diag)).astype(np.int64), np.round(n * (cols - diag)).astype(np.int64)


def expected_pairs(joint, asymmetric):
    k = joint.shape[0]
    if asymmetric:
        pairs = [(i, j, float(joint[i, j])) for i in range(k) for j in range(k) if i != j]
    else:
        pairs = [(i, j, float(joint[i, j] + joint[j, i])) for i in range(k) for j in range(i + 1, k)]
    return sorted(pairs, key=lambda t: (-t[2], t[0], t[1]))


def check_class_table(table, joint, n):
    order, quality, issues, inverse = expected_class_table(joint, n)
    assert table.classes.tolist() == order, "classes not in (quality, class id) order"
    np.testing.assert_allclose(table.label_quality, quality[order], rtol=0, atol=1e-15)
    np.testing.assert_array_equal(table.label_issues, issues[order])
    np.testing.assert_array_equal(table.inverse_label_issues, inverse[order])


def check_pairs(table, joint, n, asymmetric):
    expected = expected_pairs(joint, asymmetric)
    got = list(zip(table.class_a.tolist(), table.class_b.tolist(), strict=True))
    assert got == [(a, b) for a, b, _ in expected], "pairs not in (-probability, class_a, class_b) order"
    np.testing.assert_allclose(table.joint_probability, [v for _, _, v in expected], rtol=0, atol=1e-15)
    np.testing.assert_array_equal(table.num_overlapping_examples, np.round(n * table.joint_probability))


@pytest.mark.parametrize("name", sorted(JOINTS))
def test_rank_classes_ties_by_class_id(name):
    labels, probs, cj, joint = _inputs(name)
    table = core.rank_classes_by_label_quality(labels, probs, confident_joint=cj)
    check_class_table(table, joint, labels.size)
    if name.endswith("all_tied"):
        assert table.classes.tolist() == list(range(cj.shape[0]))


@pytest.mark.parametrize("asymmetric", [False, True], ids=["pairs_i_lt_j", "ordered_pairs"])
@pytest.mark.parametrize("name", sorted(JOINTS))
def test_overlapping_classes_ties_in_pair_order(name, asymmetric):
    labels, probs, cj, joint = _inputs(name)
    table = core.find_overlapping_classes(labels, probs, confident_joint=cj, asymmetric=asymmetric)
    check_pairs(table, joint, labels.size, asymmetric)


@pytest.mark.parametrize("name", sorted(JOINTS))
def test_health_summary_tables_use_the_same_tie_orders(name):
    labels, probs, cj, joint = _inputs(name)
    summary = core.health_summary(labels, probs, confident_joint=cj)
    np.testing.assert_allclose(summary.joint, joint, rtol=0, atol=1e-15)
    check_class_table(summary.classes, joint, labels.size)
    check_pairs(summary.overlapping, joint, labels.size, asymmetric=False)


def test_tie_orders_from_probabilities():
    """Without a supplied joint: every class has the same confusion pattern (class k's examples
    look like k + 1 one time in five), so every class quality and every neighbour pair ties."""
    k, per_class = 12, 20
    labels = np.repeat(np.arange(k), per_class)
    guess = labels.copy()
    guess[np.arange(labels.size) % 5 == 0] = (labels[np.arange(labels.size) % 5 == 0] + 1) % k
    probs = np.full((labels.size, k), 0.02 / (k - 1))
    probs[np.arange(labels.size), guess] = 0.98
    joint = core.estimate_joint(labels, probs)
    assert np.unique(np.diagonal(joint)).size == 1, "the construction must tie every class"
    check_class_table(core.rank_classes_by_label_quality(labels, probs), joint, labels.size)
    for asymmetric in (False, True):
        check_pairs(core.find_overlapping_classes(labels, probs, asymmetric=asymmetric), joint, labels.size, asymmetric)
