"""``cl_pipeline.core.multilabel`` against cleanlab 2.9.0's ``multilabel_classification``.

Two checks per call:

1. **the reduction**: column ``k`` of our per-class result is exactly what the single-label
   engine (``cl_pipeline.core.find_label_issues`` / ``get_label_quality_scores``, itself
   parity-tested in ``test_parity.py``) returns on class ``k``'s one-vs-rest problem
   (labels ``Y[:, k]``, probabilities ``[1 - p_k, p_k]``);
2. **cleanlab**: each class's binary problem is described by the tie-aware kit
   (``_kit.expect_filter``): without a tie at any selection cut, our mask equals cleanlab's
   exactly; at a tied cut (cleanlab's pick depends on the CPU's sort kernel), ours is the
   lowest-row-index pick (docs/differences-from-cleanlab.md, "Ties at a selection cut")
   and a valid output of cleanlab's rule. Scores: within 1e-12 (bit-identical in practice
   for ``self_confidence`` and ``normalized_margin``).

Inputs include classes nobody has (all 0), quantized probabilities (ties), entries exactly
0 or 1, float32; classes everybody has (all 1) make cleanlab raise, so they are tested
apart (docs, "Multi-label data").
"""

import warnings
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cl_pipeline import core
from cl_pipeline.core import multilabel as ml

from ._kit import ALL_FILTERS, Selection, event, examples, expect_filter, oracle, reduce_mask


@dataclass(frozen=True)
class Spec:
    """A seeded multi-label dataset (printable, rebuilt by :func:`build`)."""

    seed: int
    n: int
    K: int
    never: int = 0  # classes no example has
    always: int = 0  # classes every example has
    noise: float = 0.1  # fraction of (example, class) annotations flipped
    quantize: int = 0  # probabilities on a 1/q grid (ties); 0 = continuous
    extreme_frac: float = 0.0  # fraction of entries set to exactly 0 or 1
    dtype: str = "float64"


def build(spec: Spec) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(spec.seed)
    n, k = spec.n, spec.K
    truth = (rng.random((n, k)) < rng.uniform(0.1, 0.6, k)).astype(np.int64)
    p = np.clip(truth * rng.uniform(0.3, 0.9, k) + rng.normal(0.1, 0.2, (n, k)), 0, 1)
    if spec.quantize:
        p = np.round(p * spec.quantize) / spec.quantize
    extreme = rng.random((n, k)) < spec.extreme_frac
    p[extreme] = truth[extreme]
    y = np.where(rng.random((n, k)) < spec.noise, 1 - truth, truth)
    y[0, 0] = 1  # class 0 has an example
    y[-1, (y == 1).all(axis=0)] = 0  # and no class has every example (unless asked below)
    y[:, k - spec.never - spec.always : k - spec.always] = 0
    y[:, k - spec.always :] = 1
    return y, p.astype(spec.dtype)


@st.composite
def specs(draw, max_n: int = 120, max_k: int = 6, always: bool = False, min_k: int = 1) -> Spec:
    k = draw(st.integers(min_k, max_k))
    return Spec(
        seed=draw(st.integers(0, 2**31 - 1)),
        n=draw(st.integers(3, max_n)),
        K=k,
        never=min(k - 1, draw(st.sampled_from([0, 0, 1, 2]))),
        always=draw(st.integers(1, 2)) if always else 0,
        noise=draw(st.sampled_from([0.0, 0.05, 0.2])),
        quantize=draw(st.sampled_from([0, 0, 2, 4, 10])),
        extreme_frac=draw(st.sampled_from([0.0, 0.0, 0.1])),
        dtype=draw(st.sampled_from(["float64", "float32"])),
    )


def as_lists(y: np.ndarray) -> list[list[int]]:
    return [np.flatnonzero(row).tolist() for row in y]


def binary(y, p, k):
    return y[:, k].copy(), np.column_stack((1 - p[:, k], p[:, k]))


def quiet(fn, *args, **kwargs):
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


# --------------------------------------------------------------------------------------
# find_multilabel_issues_per_class / find_label_issues
# --------------------------------------------------------------------------------------

PER_CLASS_FILTERS = ALL_FILTERS


def reference_or_crash(fn_path, y, p, filter_by, **options):
    """cleanlab's answer, or None where it raises: ``predicted_neq_given`` (and, per class, the
    ``low_*`` filters) validate each binary problem without allowing a single class, so a class
    nobody has crashes them (differences doc)."""
    fragile = filter_by == "predicted_neq_given" or (filter_by.startswith("low_") and "per_class" in fn_path)
    if fragile and (y.min(axis=0) == y.max(axis=0)).any():
        with pytest.raises(ValueError, match="at least 2 classes"):
            oracle(fn_path, as_lists(y), p, filter_by=filter_by, n_jobs=1, **options)
        event("cleanlab crashes: a class nobody has")
        return None
    return oracle(fn_path, as_lists(y), p, filter_by=filter_by, n_jobs=1, **options)


def check_per_class(y, p, filter_by, **options):
    got = quiet(ml.find_multilabel_issues_per_class, as_lists(y), p, filter_by=filter_by, **options)
    assert got.shape == y.shape and got.dtype == bool
    assert np.array_equal(got, quiet(ml.find_multilabel_issues_per_class, y, p, filter_by=filter_by, **options))
    ref = reference_or_crash(
        "multilabel_classification.filter.find_multilabel_issues_per_class", y, p, filter_by, **options
    )
    tied = False
    for k in range(y.shape[1]):
        labels, probs = binary(y, p, k)
        core_kwargs = dict(options)
        if "confident_joint" in options:
            core_kwargs["confident_joint"] = options["confident_joint"][k]
        if "num_to_remove_per_class" in options:
            core_kwargs["num_to_remove_per_class"] = [options["num_to_remove_per_class"][k], 0]
        assert np.array_equal(
            got[:, k], quiet(core.find_label_issues, labels, probs, filter_by=filter_by, **core_kwargs)
        )
        if ref is None:
            if filter_by == "predicted_neq_given":  # the definition: argmax != label, not within 1e-6 of it
                want = (np.argmax(probs, axis=1) != labels) & ~reduce_mask(labels, probs)
                assert np.array_equal(got[:, k], want)
            continue
        exp = expect_filter(labels, probs, filter_by=filter_by, **core_kwargs)
        tied |= exp.tied
        assert exp.problems(got[:, k]) == [], f"class {k}: {exp.problems(got[:, k])}"
        assert np.array_equal(got[:, k], exp.index_rule_mask()), f"class {k}: not the lowest-index pick"
        if not exp.tied:
            assert np.array_equal(got[:, k], ref[:, k]), f"class {k}: differs from cleanlab without a tie"
    event(f"{filter_by}: some class tied at a cut: {tied}")
    return got


@pytest.mark.parametrize("filter_by", PER_CLASS_FILTERS)
@settings(max_examples=examples(8))
@given(spec=specs())
def test_per_class_issues_match_cleanlab(spec, filter_by):
    y, p = build(spec)
    check_per_class(y, p, filter_by)


@pytest.mark.parametrize("filter_by", ["prune_by_noise_rate", "prune_by_class", "both"])
@settings(max_examples=examples(6))
@given(spec=specs(), frac_noise=st.sampled_from([0.3, 1.0]), min_ex=st.sampled_from([1, 5]))
def test_per_class_issues_with_frac_noise_and_min_examples(spec, filter_by, frac_noise, min_ex):
    y, p = build(spec)
    check_per_class(y, p, filter_by, frac_noise=frac_noise, min_examples_per_class=min_ex)


@pytest.mark.parametrize("filter_by", ["prune_by_noise_rate", "prune_by_class", "both"])
@settings(max_examples=examples(6))
@given(spec=specs())
def test_per_class_issues_with_supplied_confident_joint(spec, filter_by):
    y, p = build(spec)
    joint = oracle("count.compute_confident_joint", as_lists(y), p, multi_label=True)
    assert joint.shape == (spec.K, 2, 2)
    check_per_class(y, p, filter_by, confident_joint=joint)


@settings(max_examples=examples(10))
@given(spec=specs(), data=st.data())
def test_num_to_remove_per_class_is_removed_from_examples_without_the_class(spec, data):
    """cleanlab's convention ``[r_k, 0]``: r_k candidates among the examples *without* class k.
    ``prune_by_class`` is compared with cleanlab; the other filters' exact counts are ours
    (docs/differences-from-cleanlab.md section 2), checked through the reduction."""
    y, p = build(spec)
    absent = spec.n - y.sum(axis=0)
    remove = [data.draw(st.integers(0, int(a))) for a in absent]
    check_per_class(y, p, "prune_by_class", num_to_remove_per_class=remove)
    for filter_by in ("prune_by_noise_rate", "both"):
        got = ml.find_multilabel_issues_per_class(y, p, filter_by=filter_by, num_to_remove_per_class=remove)
        for k in range(spec.K):
            labels, probs = binary(y, p, k)
            want = quiet(
                core.find_label_issues, labels, probs, filter_by=filter_by, num_to_remove_per_class=[remove[k], 0]
            )
            assert np.array_equal(got[:, k], want)


@pytest.mark.parametrize(
    "filter_by", ["prune_by_noise_rate", "prune_by_class", "both", "confident_learning", "predicted_neq_given"]
)
@settings(max_examples=examples(6))
@given(spec=specs())
def test_find_label_issues_is_any_class(spec, filter_by):
    y, p = build(spec)
    per_class = quiet(ml.find_multilabel_issues_per_class, y, p, filter_by=filter_by)
    got = quiet(ml.find_label_issues, as_lists(y), p, filter_by=filter_by)
    assert np.array_equal(got, per_class.any(axis=1))
    ref = reference_or_crash("multilabel_classification.filter.find_label_issues", y, p, filter_by)
    if ref is not None and not any(expect_filter(*binary(y, p, k), filter_by=filter_by).tied for k in range(spec.K)):
        assert np.array_equal(got, ref)


@pytest.mark.parametrize("filter_by", ["low_self_confidence", "low_normalized_margin"])
@settings(max_examples=examples(12))
@given(spec=specs(min_k=2))
def test_low_filters_take_the_lowest_aggregated_scores(spec, filter_by):
    """Both ``low_*`` filters flag the ``m`` examples with the lowest default score (cleanlab uses the
    default ``self_confidence`` score for both), ``m`` = examples flagged by ``confident_learning``."""
    y, p = build(spec)
    got = quiet(ml.find_label_issues, y, p, filter_by=filter_by)
    m = int(quiet(ml.find_label_issues, y, p, filter_by="confident_learning").sum())
    scores = ml.get_label_quality_scores(y, p)
    cut = Selection(spec.n, np.arange(spec.n), scores, m)
    assert np.array_equal(got, cut.pick), "not the m lowest scores with ties to the lower row"
    ref = oracle("multilabel_classification.filter.find_label_issues", as_lists(y), p, filter_by=filter_by, n_jobs=1)
    event(f"tied at the cut: {cut.tied}")
    if cut.tied:
        assert ref.sum() == got.sum() and not (cut.sure & ~ref).any() and not (ref & ~cut.poss).any()
    else:
        assert np.array_equal(got, ref)


# --------------------------------------------------------------------------------------
# Scores
# --------------------------------------------------------------------------------------

AGGREGATORS = {
    "default": None,
    "ema_alpha_none": {"method": "exponential_moving_average", "alpha": None},
    "ema_alpha_0.3": {"method": "exponential_moving_average", "alpha": 0.3},
    "softmin": {"method": "softmin"},
    "softmin_t0.5": {"method": "softmin", "temperature": 0.5},
    "callable_min": {"method": np.min},
}


@pytest.mark.parametrize("aggregator", list(AGGREGATORS), ids=list(AGGREGATORS))
@pytest.mark.parametrize(
    "method,adjust",
    [("self_confidence", False), ("self_confidence", True), ("normalized_margin", False), ("normalized_margin", True)],
    ids=["self_confidence", "self_confidence_adjusted", "normalized_margin", "normalized_margin_adjusted"],
)
@settings(max_examples=examples(4))
@given(spec=specs(min_k=2))
def test_label_quality_scores_match_cleanlab(spec, method, adjust, aggregator):
    y, p = build(spec)
    kwargs = {} if AGGREGATORS[aggregator] is None else {"aggregator_kwargs": AGGREGATORS[aggregator]}
    got = ml.get_label_quality_scores(as_lists(y), p, method=method, adjust_pred_probs=adjust, **kwargs)
    ref = oracle(
        "multilabel_classification.rank.get_label_quality_scores",
        as_lists(y),
        p,
        method=method,
        adjust_pred_probs=adjust,
        **kwargs,
    )
    assert got.shape == (spec.n,) and got.dtype == np.float64
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12)
    per_class = ml.get_label_quality_scores_per_class(y, p, method=method, adjust_pred_probs=adjust)
    for k in range(spec.K):
        want = core.get_label_quality_scores(*binary(y, p, k), method=method, adjust_pred_probs=adjust)
        assert np.array_equal(per_class[:, k], want)


@settings(max_examples=examples(10))
@given(spec=specs(min_k=2))
def test_confidence_weighted_entropy_scores(spec):
    """Per class: the single-label engine's score (which fixes cleanlab's floor, differences section 1).
    Aggregated: cleanlab's where every class's x = H / log 2 / p_y is large enough for the two
    formulas to agree (x >= 1e-4: the reference's log(1 + x) costs 1.1e-16 / x)."""
    y, p = build(spec)
    got = ml.get_label_quality_scores(y, p, method="confidence_weighted_entropy")
    per_class = ml.get_label_quality_scores_per_class(y, p, method="confidence_weighted_entropy")
    xs = []
    for k in range(spec.K):
        labels, probs = binary(y, p, k)
        assert np.array_equal(
            per_class[:, k], core.get_label_quality_scores(labels, probs, method="confidence_weighted_entropy")
        )
        q = probs.astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            h = -np.where(q > 0, q * np.log(q), 0.0).sum(axis=1) / np.log(2)
        xs.append(h / np.maximum(q[np.arange(spec.n), labels], 1e-6))
    ref = oracle(
        "multilabel_classification.rank.get_label_quality_scores", as_lists(y), p, method="confidence_weighted_entropy"
    )
    comparable = (np.stack(xs, axis=1) >= 1e-4).all(axis=1)
    event(f"rows comparable with cleanlab: {comparable.mean():.0%}" if comparable.any() else "none comparable")
    rtol = 1e-6 if spec.dtype == "float32" else 1e-10
    np.testing.assert_allclose(got[comparable], ref[comparable], rtol=rtol, atol=0)


# --------------------------------------------------------------------------------------
# Where we differ on purpose (docs/differences-from-cleanlab.md, "Multi-label data")
# --------------------------------------------------------------------------------------


@settings(max_examples=examples(8))
@given(spec=specs(always=True))
def test_a_class_every_example_has_is_handled(spec):
    """cleanlab raises "Labels must contain at least 2 classes" for a class on every example; we
    run its binary problem like any other (it equals the single-label engine on it)."""
    y, p = build(spec)
    with pytest.raises(ValueError, match="at least 2 classes"):
        oracle("multilabel_classification.filter.find_label_issues", as_lists(y), p, n_jobs=1)
    got = ml.find_multilabel_issues_per_class(y, p)
    for k in range(spec.K):
        assert np.array_equal(got[:, k], quiet(core.find_label_issues, *binary(y, p, k)))
    assert np.array_equal(ml.find_label_issues(y, p), got.any(axis=1))


def test_indicator_matrix_and_lists_give_the_same_answer(rng):
    y, p = build(Spec(seed=5, n=80, K=4, noise=0.2))
    lists = [list(reversed(row)) + row[:1] for row in as_lists(y)]  # order and repeats do not matter
    assert np.array_equal(ml.find_label_issues(lists, p), ml.find_label_issues(y, p))
    assert np.array_equal(ml.find_label_issues(y.astype(bool), p), ml.find_label_issues(y, p))
    assert np.array_equal(ml.get_label_quality_scores(lists, p), ml.get_label_quality_scores(y, p))


def test_one_class_is_binary_classification():
    """K = 1: cleanlab's multi-label scorer refuses it ("Labels must be in multi-label format");
    we score and filter it as the binary problem it is."""
    y, p = build(Spec(seed=11, n=60, K=1, noise=0.2))
    with pytest.raises(ValueError, match="multi-label format"):
        oracle("multilabel_classification.rank.get_label_quality_scores", as_lists(y), p)
    labels, probs = binary(y, p, 0)
    assert np.array_equal(ml.get_label_quality_scores(y, p), core.get_label_quality_scores(labels, probs))
    assert np.array_equal(ml.find_label_issues(y, p), quiet(core.find_label_issues, labels, probs))


def test_low_filter_tie_at_the_cut_goes_to_the_lower_rows():
    """A dataset whose aggregated scores tie at the ``low_*`` cut: cleanlab's unstable argsort picks
    some of the tied rows (here 2 rows differ on the test machine), ours the lowest row indices."""
    y, p = build(Spec(seed=1, n=40, K=3, noise=0.2, quantize=4))
    m = int(quiet(ml.find_label_issues, y, p, filter_by="confident_learning").sum())
    cut = Selection(40, np.arange(40), ml.get_label_quality_scores(y, p), m)
    assert cut.tied and cut.slack >= 1
    got = ml.find_label_issues(y, p, filter_by="low_self_confidence")
    assert np.array_equal(got, cut.pick)
    ref = oracle(
        "multilabel_classification.filter.find_label_issues", as_lists(y), p, filter_by="low_self_confidence", n_jobs=1
    )
    assert ref.sum() == got.sum() == m and not (cut.sure & ~ref).any() and not (ref & ~cut.poss).any()
