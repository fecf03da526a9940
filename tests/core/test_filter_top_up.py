"""``prune_by_noise_rate`` details that only mutation testing showed untested.

1. ``num_to_remove_per_class``: the request ``r_k`` is split across the classes
   ``j`` with ``M[j, k] > 0`` (``_filter.split_removals``: in proportion, rounded
   preserving the total); each takes its rows of largest margin
   ``p[:, j] - p[:, k]``. When those picks overlap, fewer than ``r_k`` rows are
   chosen and ``_filter._top_up`` adds the rest by the largest margin towards
   *those* classes (not towards every class), ties by row index.
2. The fast path (``_filter._select_among_others``) solves a column on the rows
   the near-argmax rule does not protect only when its cut is below every
   protected row's margin.

Surviving mutants of each (docs/mutation-testing.md) changed which rows are
flagged without failing any test; each is killed here.
"""

import os

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from cl_pipeline import core
from cl_pipeline.core import _filter

from ._kit import oracle

N0 = 30  # rows of class 0; classes 1..3 are absent from the labels

ROWS = {
    # p0,   p1,   p2,   p3
    0: [0.05, 0.45, 0.45, 0.05],  # A: top margin towards 1 and towards 2
    1: [0.06, 0.44, 0.44, 0.06],  # B: second towards both: the two picks overlap
    2: [0.01, 0.10, 0.10, 0.79],  # C: largest margin towards 3 (no mass there), lowest p0
    3: [0.10, 0.35, 0.20, 0.35],  # D: best of the rest towards {1, 2} (0.25)
}
TIED = [4, 9, 13, 17, 21, 26]  # E: identical rows, margin 0.10 towards {1, 2}
TIE_ROW = [0.20, 0.30, 0.30, 0.20]
FILLER = [0.30, 0.25, 0.25, 0.20]  # the given label is the argmax: never flagged


def problem():
    probs = np.array([ROWS.get(i, TIE_ROW if i in TIED else FILLER) for i in range(N0)])
    labels = np.zeros(N0, dtype=np.int64)
    joint = np.array([[N0 - 4, 2, 2, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    return labels, probs, joint


@pytest.mark.parametrize(
    "request_0,expected",
    [
        (4, [0, 1, 3, 4]),  # A, B (both picks), then D, then the lowest-index E
        (7, [0, 1, 3, 4, 9, 13, 17]),  # D, then E's by index
        (2, [0, 1]),  # 1 towards each class: both pick A, the top-up adds B
    ],
    ids=["top_up_2", "top_up_5_ties_by_index", "top_up_1"],
)
def test_top_up_by_margin_towards_the_estimated_classes_ties_by_index(request_0, expected):
    labels, probs, joint = problem()
    for layout in ("C", "F"):
        p = np.asfortranarray(probs) if layout == "F" else probs
        mask = core.find_label_issues(
            labels,
            p,
            filter_by="prune_by_noise_rate",
            confident_joint=joint,
            num_to_remove_per_class=[request_0, 0, 0, 0],
        )
        assert np.flatnonzero(mask).tolist() == expected


def test_both_intersects_the_topped_up_pick_with_prune_by_class():
    """``both``: prune_by_class takes the r lowest p0 (C, A, B, D), intersected with the above."""
    labels, probs, joint = problem()
    mask = core.find_label_issues(
        labels, probs, filter_by="both", confident_joint=joint, num_to_remove_per_class=[4, 0, 0, 0]
    )
    assert np.flatnonzero(mask).tolist() == [0, 1, 3]


def test_fast_path_of_prune_by_noise_rate_defers_to_rows_the_near_argmax_rule_keeps():
    """``_filter._select_among_others`` solves a column on the unprotected rows alone only when
    the cut lies below every protected row's margin (-1.5e-6 in key terms). Here the largest
    margin towards class 1 belongs to a protected row (margin 0: its label ties the argmax),
    the unprotected rows trail it by 1e-6 and 1.2e-6: the pick is the protected row, which the
    near-argmax rule then unflags, so nothing is flagged (as in cleanlab)."""
    probs = np.array(
        [
            [0.45, 0.45, 0.10],  # protected (own ties the max), margin towards 1: 0
            [0.30, 0.30 - 1e-6, 0.40 + 1e-6],  # margin -1e-6
            [0.30, 0.30 - 1.2e-6, 0.40 + 1.2e-6],  # margin -1.2e-6
            [0.20, 0.10, 0.70],  # margin -0.1
        ]
    )
    labels = np.zeros(4, dtype=np.int64)
    joint = np.array([[3, 1, 0], [0, 1, 0], [0, 0, 1]])  # one example of class 0 is really class 1
    mask = core.find_label_issues(labels, probs, filter_by="prune_by_noise_rate", confident_joint=joint)
    assert not mask.any()
    ref = oracle("filter.find_label_issues", labels, probs, filter_by="prune_by_noise_rate", confident_joint=joint)
    np.testing.assert_array_equal(mask, ref)


@st.composite
def prune_and_request(draw):
    k = draw(st.integers(2, 6))
    prune = np.array(draw(st.lists(st.integers(0, 40), min_size=k * k, max_size=k * k))).reshape(k, k)
    if draw(st.booleans()):  # a column without off-diagonal mass
        col = draw(st.integers(0, k - 1))
        prune[:, col] = 0
        prune[col, col] = draw(st.integers(0, 40))
    request = np.array(draw(st.lists(st.integers(0, 60), min_size=k, max_size=k)))
    return prune, request


@given(prune_and_request())
@example((np.array([[3, 0], [1, 2]]), np.array([1, 0])))  # a column whose off-diagonal mass is exactly 1
def test_split_removals_shares_each_request_in_proportion_to_the_off_diagonal_mass(case):
    """``_filter.split_removals`` (docstring): column k's off-diagonal counts become r_k split across
    j != k in proportion to M[j, k], rounded preserving the total; no mass, no split."""
    prune, request = case
    split = _filter.split_removals(prune, request)
    assert split.dtype.kind == "i" and split.shape == prune.shape
    assert (np.diagonal(split) == 0).all() and (split >= 0).all()
    off = prune.astype(np.float64) - np.diag(np.diagonal(prune))
    mass = off.sum(axis=0)
    for k in range(prune.shape[0]):
        if mass[k] == 0:
            assert (split[:, k] == 0).all(), f"column {k} has no off-diagonal mass"
            continue
        assert split[:, k].sum() == request[k]
        np.testing.assert_array_less(np.abs(split[:, k] - request[k] * off[:, k] / mass[k]), 1.0 + 1e-9)


def test_prune_matrix_keeps_fractional_counts_until_the_end():
    """Raising the diagonal to ``min_examples_per_class`` leaves fractional off-diagonal counts
    (here 0.5 each); ``frac_noise`` then moves part of them to the diagonal, and only the sum is
    truncated: M[0, 0] = 4 + 4 x 0.25 = 5, so ``prune_by_class`` flags 20 - 5 = 15 rows, as
    cleanlab does (a mutant that zeroed counts below 1 early made it 16)."""
    n0 = 20
    probs = np.tile([0.02, 0.245, 0.245, 0.245, 0.245], (n0, 1))
    probs[:, 0] += np.linspace(0.0, 0.19, n0)  # distinct p0 below every rival: no ties, nothing protected
    probs[:, 1:] -= np.linspace(0.0, 0.19, n0)[:, None] / 4
    labels = np.zeros(n0, dtype=np.int64)
    joint = np.diag([2, 1, 1, 1, 1])
    joint[0, 1:] = 1  # M[:, 0] = [2, 1, 1, 1, 1]: raised to 4, the increase of 2 taken from 4 entries
    kw = dict(filter_by="prune_by_class", confident_joint=joint, frac_noise=0.5, min_examples_per_class=4)
    mask = core.find_label_issues(labels, probs, **kw)
    assert mask.sum() == 15 and np.flatnonzero(mask).tolist() == list(range(15))
    np.testing.assert_array_equal(mask, oracle("filter.find_label_issues", labels, probs, **kw))


@pytest.mark.parametrize("filter_by", ["prune_by_noise_rate", "prune_by_class", "both"])
def test_classes_too_small_to_prune_are_named_in_a_warning_at_the_callers_line(filter_by):
    """Classes with 2..min_examples_per_class examples are not pruned, and a warning names them
    (a singleton class, never prunable, is not named); it points at the caller's line."""
    counts = {0: 12, 1: 1, 2: 2, 3: 3, 4: 4}  # min_examples_per_class = 3: classes 2 and 3 skipped
    labels = np.concatenate([np.full(c, k) for k, c in counts.items()])
    probs = np.random.default_rng(3).dirichlet(np.ones(5), size=labels.size)
    with pytest.warns(UserWarning) as caught:
        core.find_label_issues(labels, probs, filter_by=filter_by, min_examples_per_class=3)
    assert len(caught) == 1
    assert str(caught[0].message) == (
        "classes [2, 3] have <= min_examples_per_class=3 examples; no label issues are flagged in them"
    )
    if "MUTANT_UNDER_TEST" not in os.environ:  # mutmut's trampolines add a frame (tools/mutation.py)
        assert caught[0].filename == __file__
