"""``confidence_weighted_entropy`` against cleanlab 2.9.0, and where we deliberately differ.

With ``x = H(p_i) / log K / max(p[i, y], 1e-6)`` both compute ``log(1 + x) / x``
when ``x >= 1e-6``; below that the reference divides by ``1e-6`` instead of ``x``
(score ~ ``x * 1e6``, near 0: "most suspicious"), while we take the limit
(score -> 1; spec "Label quality scores", docs/differences-from-cleanlab.md).

Precision: for float64 inputs the two agree to ~5e-15 relative, plus
``1.1e-16 / x`` from the reference's rounding of ``1 + x`` (we use ``log1p``); for float32 inputs the reference's entropy terms come from
scipy's ``xlogy`` in float32, which differs from numpy's ``p * log(p)`` in the
last bit for ~10% of entries, so scores agree to ~2e-7 relative. The tolerances
below are 1e-12 and 1e-6: a planted change of the formula (say ``x ** 1.05``)
moves scores by percents.
"""

import warnings

import numpy as np
import pytest
from hypothesis import given, settings

from cl_pipeline import core

from ._kit import cases, describe_case, event, examples, oracle, record

METHOD = "confidence_weighted_entropy"
RTOL = {np.dtype(np.float32): 1e-6, np.dtype(np.float64): 1e-12}
#: Rows with x at least this far above the reference's floor (1e-6): both sides use log(1 + x) / x.
AGREE_FROM = 1.1e-6
#: Rows with x below this: ours is the limit (>= 1 - x / 2), the reference's ~ x * 1e6 <= 0.9.
LIMIT_BELOW = 0.9e-6


def entropy_x(labels, pred_probs):
    """``x`` computed independently in float64 (0 log 0 = 0)."""
    p = np.asarray(pred_probs, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log(p), 0.0)
    entropy = -terms.sum(axis=1) / np.log(p.shape[1])
    own = p[np.arange(p.shape[0]), labels]
    return entropy / np.maximum(own, 1e-6)


def intended_score(x):
    """The spec's score with the limit at 0: ``log(1 + x) / x``, 1 at x = 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(x > 0, np.log1p(x) / np.where(x > 0, x, 1.0), 1.0)


def check_entropy_scores(labels, p):
    ours = np.asarray(core.get_label_quality_scores(labels, p, method=METHOD))
    ref = oracle("rank.get_label_quality_scores", labels.copy(), p.copy(), method=METHOD)
    assert ours.dtype == ref.dtype, f"dtype {ours.dtype} != cleanlab's {ref.dtype}"
    assert ours.shape == (labels.shape[0],)
    rtol = RTOL[p.dtype]
    x = entropy_x(labels, p)
    # everywhere: the spec's formula with its limit, computed here in float64
    np.testing.assert_allclose(ours, intended_score(x), rtol=rtol, atol=0, err_msg="not log(1 + x) / x")
    # where the reference's floor does not bite: the reference's numbers, up to the rounding of
    # its 1 + x (an absolute 1.1e-16 in log(1 + x), so a relative 1.1e-16 / x in the score)
    agree = x >= AGREE_FROM
    allowed = (rtol + 3e-16 / x[agree]) * np.abs(ref[agree])
    off = np.abs(ours[agree].astype(np.float64) - ref[agree]) > allowed
    assert not off.any(), (
        f"differs from cleanlab at rows {np.flatnonzero(agree)[off][:5].tolist()}: "
        f"ours {ours[agree][off][:5].tolist()}, cleanlab {ref[agree][off][:5].tolist()}"
    )
    # where it does: our documented limit, and the reference's ~0 below it
    limit = x < LIMIT_BELOW
    if limit.any():
        event("entropy: rows with x < 1e-6 (we differ from cleanlab by design)")
    assert (ours[limit] <= 1.0).all() and (ours[limit] >= 1.0 - 0.5 * x[limit] - 1e-7).all()
    np.testing.assert_array_equal(ours[x == 0], 1.0, err_msg="x = 0 must score exactly 1")
    assert (ref[limit] < ours[limit]).all(), "the reference should score these below us (its floor)"
    return ours, ref, x


@settings(max_examples=examples(60))
@given(case=cases())
def test_entropy_scores_match_cleanlab_where_it_is_not_floored(case):
    describe_case(case)
    check_entropy_scores(case.labels, case.pred_probs)


def _near_certain_rows(k, dtype, rng):
    """Rows whose given label holds 1 - d of the mass, d from 1e-13 to 0.7: x spans the
    reference's floor (x ~ d log(1/d) / log K), plus exactly one-hot rows (x = 0)."""
    d = np.concatenate([np.logspace(-13, np.log10(0.7), 120), [0.0, 0.0]])
    labels = rng.integers(0, k, d.size)
    rest = rng.dirichlet(np.ones(k - 1), size=d.size) * d[:, None]
    p = np.empty((d.size, k))
    for i, y in enumerate(labels):
        p[i] = np.insert(rest[i], y, 1.0 - d[i])
    return labels, p.astype(dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("k", [2, 3, 10, 50], ids=lambda k: f"K{k}")
def test_entropy_scores_across_the_floor(rng, k, dtype):
    labels, p = _near_certain_rows(k, dtype, rng)
    ours, ref, x = check_entropy_scores(labels, p)
    assert (x < LIMIT_BELOW).sum() >= 3 and (x >= AGREE_FROM).sum() >= 50, "the rows must span the floor"
    # the more mass off the given label, the more suspicious (scores fall as x grows)
    order = np.argsort(x, kind="stable")
    assert (np.diff(ours[order].astype(np.float64)) <= 1e-6).all()


@pytest.mark.parametrize("issues_as", ["mask", "indices"])
@settings(max_examples=examples(25))
@given(case=cases(dtypes=("float64",)))
def test_order_label_issues_by_entropy_matches_cleanlab(case, issues_as):
    """Same order as cleanlab when no flagged row is below the floor and no two flagged
    scores are within the two implementations' difference of each other."""
    labels, p = case.labels, case.pred_probs
    mask = oracle("filter.find_label_issues", labels, p)
    ref = oracle("rank.order_label_issues", mask, labels, p, rank_by=METHOD)
    issues = np.flatnonzero(mask) if issues_as == "indices" else mask
    ours = np.asarray(core.order_label_issues(issues, labels, p, rank_by=METHOD))
    assert sorted(ours.tolist()) == np.flatnonzero(mask).tolist()
    scores = intended_score(entropy_x(labels, p))[ours]
    assert (np.diff(scores) >= -1e-12).all(), "not in ascending score order"
    flagged = np.flatnonzero(mask)
    x = entropy_x(labels, p)[flagged]
    s = np.sort(intended_score(x))
    comparable = bool((x >= AGREE_FROM).all() and (np.diff(s) > 1e-9).all())
    record(f"order_label_issues[{METHOD}]", tied=not comparable)
    if comparable:
        np.testing.assert_array_equal(ours, ref, err_msg="order differs from cleanlab's")


@pytest.mark.parametrize(
    "method",
    [
        "confidence_weighted_entropy",
        "self_confidence",
        "normalized_margin",
        "confidence_margin",
        "confidence_then_margin",
    ],
)
def test_scores_of_one_hot_and_zero_rows_raise_no_floating_point_warning(method):
    """x = 0 (one-hot rows) is the 0/0 of log(1 + x) / x: handled, not warned about."""
    probs = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.5, 0.5, 0.0]])
    labels = np.array([0, 1, 0, 1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scores = core.get_label_quality_scores(labels, probs, method=method)
    assert np.isfinite(scores).all()
    if method == METHOD:
        np.testing.assert_array_equal(scores[:3], 1.0)
