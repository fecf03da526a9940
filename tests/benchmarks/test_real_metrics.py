"""The real-label-error scorer, checked against hand-computed small cases."""

import math

import numpy as np
import pytest

from benchmarks import _real_metrics as _rm

average_precision, flag_scores, precision_at_k, ranking = (
    _rm.average_precision,
    _rm.flag_scores,
    _rm.precision_at_k,
    _rm.ranking,
)
average_precision_tied, precision_at_k_tied = _rm.average_precision_tied, _rm.precision_at_k_tied


def test_flag_scores_hand_computed():
    mask = np.array([1, 1, 1, 0, 1, 0, 0, 0], dtype=bool)  # flagged 0, 1, 2, 4
    reviewed = np.array([0, 1, 3, 4, 5])
    confirmed = np.array([1, 4, 5])
    s = flag_scores(mask, confirmed, reviewed)
    assert (s.flagged, s.confirmed_flagged, s.reviewed_flagged) == (4, 2, 3)
    assert s.precision_all == pytest.approx(2 / 4)
    assert s.precision_reviewed == pytest.approx(2 / 3)
    assert s.recall == pytest.approx(2 / 3)


def test_flag_scores_empty_mask_is_nan_not_zero():
    s = flag_scores(np.zeros(5, dtype=bool), np.array([1]), np.array([1, 2]))
    assert s.flagged == 0 and math.isnan(s.precision_all) and math.isnan(s.precision_reviewed)
    assert s.recall == 0.0


def test_ranking_lowest_first_ties_by_index():
    scores = np.array([0.5, 0.1, 0.5, 0.9, 0.1])
    np.testing.assert_array_equal(ranking(scores), [1, 4, 0, 2, 3])
    np.testing.assert_array_equal(ranking(scores, subset=np.array([3, 0, 2])), [0, 2, 3])


@pytest.mark.parametrize(
    "order, positives, expected",
    [
        ([7, 1, 2, 3], [7], 1.0),  # found first
        ([1, 7, 2, 3], [7], 0.5),  # found second
        ([7, 1, 8, 3], [7, 8], (1 / 1 + 2 / 3) / 2),
        ([1, 2, 3], [7, 8], 0.0),  # never found
        ([1, 7, 2], [7, 9], (1 / 2) / 2),  # one of two found
    ],
    ids=["first", "second", "two-positives", "none-found", "half-found"],
)
def test_average_precision_hand_computed(order, positives, expected):
    assert average_precision(np.array(order), np.array(positives)) == pytest.approx(expected)


def test_precision_at_k():
    order = np.array([5, 3, 9, 1])
    assert precision_at_k(order, np.array([3, 1]), 2) == pytest.approx(0.5)
    assert precision_at_k(order, np.array([3, 1]), 4) == pytest.approx(0.5)
    assert precision_at_k(order, np.array([5, 3]), 2) == pytest.approx(1.0)


@pytest.mark.parametrize(
    "scores, positives, subset, expected",
    [
        ([0.1, 0.2, 0.5, 0.9], [0], None, 1.0),  # no ties: lowest score is the error
        ([0.1, 0.1, 0.5, 0.9], [0], None, 0.5),  # tied with a clean example: one threshold, precision 1/2
        ([0.1, 0.1, 0.5, 0.9], [1], None, 0.5),  # the same whichever of the two is the error
        ([0.1, 0.1, 0.5, 0.9], [0, 2], None, (0.5 * 1 / 2) + (0.5 * 2 / 3)),
        ([0.9, 0.1, 0.1, 0.5], [0], None, 0.25),  # found last
        ([0.1, 0.1, 0.5, 0.9], [0, 3], [0, 3], 1.0),  # subset: the tie partner is not ranked
        ([0.1, 0.2], [5], None, 0.0),  # a positive that is never ranked
    ],
    ids=["no-tie", "tie-first", "tie-second", "tie-then-next", "last", "subset", "absent"],
)
def test_average_precision_tied_hand_computed(scores, positives, subset, expected):
    sub = None if subset is None else np.array(subset)
    assert average_precision_tied(np.array(scores), np.array(positives), sub) == pytest.approx(expected)


def test_average_precision_tied_equals_sklearn():
    from sklearn.metrics import average_precision_score

    rng = np.random.default_rng(20261128)
    for _ in range(100):
        n = int(rng.integers(2, 40))
        scores = rng.integers(0, 5, n) / 4.0  # many ties
        truth = rng.random(n) < 0.3
        if not truth.any():
            continue
        expected = average_precision_score(truth, -scores)
        assert average_precision_tied(scores, np.flatnonzero(truth)) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(
    "k, positives, expected",
    [
        (1, [0], 0.5),  # the first place is either of the two tied examples
        (2, [0], 0.5),
        (3, [0, 2], 2 / 3),
        (4, [3], 0.25),
        (10, [0], 0.1),  # k beyond n: the missing places count as misses
    ],
    ids=["k1-tie", "k2-whole-tie", "k3", "k4-last", "k-beyond-n"],
)
def test_precision_at_k_tied_hand_computed(k, positives, expected):
    scores = np.array([0.1, 0.1, 0.5, 0.9])
    assert precision_at_k_tied(scores, np.array(positives), k) == pytest.approx(expected)
