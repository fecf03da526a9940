"""``cl_pipeline.core.multiannotator`` against cleanlab 2.9.0's ``multiannotator``.

The oracle is cleanlab with two documented corrections (docs/differences-from-cleanlab.md,
"Multiple annotators"), applied by :func:`reference`:

- ``value_counts`` counts each class at its own position (cleanlab packs the counts of
  an example's classes to the left when labels are floats, as they are with NaN), which
  changes the ``agreement`` posterior and the temperature of ``calibrate_probs`` and
  ActiveLab; a test below shows the reference's numbers without the correction;
- a majority-vote tie left after the three tie-breaks goes to the lowest class id
  (cleanlab: ``np.random.choice``); the patched ``choice`` records that it was used.

With those, every output is compared for exact equality (bit for bit): our arithmetic
repeats the reference's operations in the same order.

Inputs (:class:`Spec`) deliberately include annotators who labeled one or two examples,
examples with a single annotation, classes no annotator used, examples labeled by nobody
but one annotator, majority-vote ties (two annotators disagreeing) and probabilities on a
coarse grid, which ties the vote's ``pred_probs`` tie-break and the posterior's argmax.
"""

import contextlib
import warnings
from dataclasses import dataclass
from unittest import mock

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from cl_pipeline.core import multiannotator as ma

from ._kit import event, examples

# --------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Spec:
    """A seeded multi-annotator dataset (printable, rebuilt by :func:`build`)."""

    seed: int
    n: int
    m: int
    K: int
    unused: int = 0  # classes (the highest ids) that no annotator gives
    density: float = 0.5  # probability that an annotator labels an example
    few: int = 0  # annotators with only one or two labels
    single_frac: float = 0.0  # examples reduced to one annotation
    quantize: int = 0  # pred_probs on a 1/q grid (ties); 0 = continuous
    mirror: bool = False  # append a copy with classes 0 and 1 swapped: equal class frequencies (vote ties)
    dtype: str = "float64"


def build(spec: Spec) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(spec.seed)
    n, m, k = spec.n, spec.m, spec.K
    used = max(1, k - spec.unused)
    truth = rng.integers(0, used, n)
    accuracy = rng.uniform(0.2, 0.95, m)
    labels = np.where(rng.random((n, m)) < accuracy, truth[:, None], rng.integers(0, used, (n, m))).astype(float)
    labels[rng.random((n, m)) >= spec.density] = np.nan
    for j in range(m - spec.few, m):  # the "few" annotators
        labels[:, j] = np.nan
        rows = rng.choice(n, size=int(rng.integers(1, 3)), replace=False)
        labels[rows, j] = rng.integers(0, used, rows.size)
    single = rng.random(n) < spec.single_frac
    for i in np.flatnonzero(single):
        keep = np.flatnonzero(~np.isnan(labels[i]))
        if keep.size > 1:
            labels[i, np.setdiff1d(keep, rng.choice(keep))] = np.nan
    _fill_gaps(labels, rng, used, truth)
    probs = _probs(spec, rng, truth)
    if spec.mirror:
        swap = np.arange(k)
        swap[[0, 1]] = [1, 0]
        labels = np.concatenate([labels, np.where(np.isnan(labels), np.nan, swap[np.nan_to_num(labels).astype(int)])])
        probs = np.concatenate([probs, probs[:, swap]])
    return labels, probs


def _fill_gaps(labels: np.ndarray, rng: np.random.Generator, used: int, truth: np.ndarray) -> None:
    """Every example and annotator gets a label; at least one example gets two."""
    n, m = labels.shape
    for i in np.flatnonzero(np.isnan(labels).all(axis=1)):
        labels[i, rng.integers(0, m)] = truth[i]
    for j in np.flatnonzero(np.isnan(labels).all(axis=0)):
        labels[rng.integers(0, n), j] = rng.integers(0, used)
    if ((~np.isnan(labels)).sum(axis=1) < 2).all():
        row = labels[0]
        free = np.flatnonzero(np.isnan(row))
        row[free[0]] = truth[0]


def _probs(spec: Spec, rng: np.random.Generator, truth: np.ndarray) -> np.ndarray:
    n, k = spec.n, spec.K
    p = rng.dirichlet(np.full(k, 0.7), n)
    p[np.arange(n), truth] += rng.uniform(0, 2, n)
    p /= p.sum(axis=1, keepdims=True)
    if spec.quantize:
        q = spec.quantize
        counts = np.floor(p * q)
        short = q - counts.sum(axis=1).astype(int)
        for i in range(n):
            counts[i, rng.choice(k, size=short[i], replace=False)] += 1
        p = counts / q
    return p.astype(spec.dtype)


@st.composite
def specs(draw, max_n: int = 60, max_m: int = 8, max_k: int = 6) -> Spec:
    k = draw(st.integers(2, max_k))
    return Spec(
        seed=draw(st.integers(0, 2**31 - 1)),
        n=draw(st.integers(2, max_n)),
        m=draw(st.integers(2, max_m)),
        K=k,
        unused=draw(st.integers(0, k - 1)),
        density=draw(st.sampled_from([0.15, 0.4, 0.7, 1.0])),
        few=draw(st.integers(0, 2)),
        single_frac=draw(st.sampled_from([0.0, 0.3, 0.8])),
        quantize=draw(st.sampled_from([0, 0, 2, 3, 4])),
        mirror=draw(st.booleans()),
        dtype=draw(st.sampled_from(["float64", "float64", "float32"])),
    )


# --------------------------------------------------------------------------------------
# The oracle
# --------------------------------------------------------------------------------------


def _counts_at_class_positions(x, *, num_classes=None, multi_label=False):
    return np.bincount(np.asarray(x).astype(np.int64), minlength=num_classes)


class ReferenceCrash(Exception):
    """The reference's last tie-break got no candidate (``np.random.choice([])`` raises)."""


class _LowestChoice:
    """Stands in for ``np.random.choice`` in the reference's last tie-break."""

    def __init__(self):
        self.used = 0

    def __call__(self, candidates):
        self.used += 1
        if len(candidates) == 0:
            raise ReferenceCrash("no example has a unique majority: the third tie-break has no data")
        return int(np.min(candidates))


def call_reference(fn, *args, **kwargs):
    """The reference's result; inputs where it crashes are not parity inputs (see test_all_votes_tied...)."""
    try:
        return fn(*args, **kwargs)
    except ReferenceCrash:
        event("reference crashes: no untied example")
        assume(False)


@contextlib.contextmanager
def reference(*, fix_counts: bool = True):
    """cleanlab.multiannotator with the two corrections of the module docstring."""
    import cleanlab.internal.multiannotator_utils as utils
    import cleanlab.multiannotator as cma

    choice = _LowestChoice()
    with contextlib.ExitStack() as stack:
        if fix_counts:
            stack.enter_context(mock.patch.object(cma, "value_counts", _counts_at_class_positions))
            stack.enter_context(mock.patch.object(utils, "value_counts", _counts_at_class_positions))
        stack.enter_context(mock.patch("numpy.random.choice", choice))
        stack.enter_context(warnings.catch_warnings())
        warnings.simplefilter("ignore")
        stack.enter_context(np.errstate(all="ignore"))
        stack.enter_context(mock.patch("builtins.print"))
        yield cma, choice


def ours(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


PER_EXAMPLE = ("consensus_label", "consensus_quality_score", "annotator_agreement", "num_annotations")
PER_ANNOTATOR = ("annotator_quality", "agreement_with_consensus", "worst_class", "num_examples_labeled")


def assert_same(name, got, want):
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, f"{name}: shape {got.shape} != {want.shape}"
    if want.dtype.kind == "f":
        assert got.dtype == np.float64, f"{name}: dtype {got.dtype}"
    else:
        assert got.dtype == np.int64, f"{name}: dtype {got.dtype}"
    same = np.array_equal(got, want.astype(got.dtype), equal_nan=True)
    if not same and want.dtype.kind == "f":
        diff = np.nanmax(np.abs(got - want))
        raise AssertionError(f"{name}: differs from cleanlab by up to {diff:.3g}\nours {got}\nref  {want}")
    assert same, f"{name}: differs from cleanlab\nours {got}\nref  {want}"


def vote_tie_depth(labels, probs) -> int:
    """How far the majority vote's tie-breaks go on some example: 0 none, 1 pred_probs, 2 beyond."""
    k = probs.shape[1]
    counts = np.stack([(labels == c).sum(axis=1) for c in range(k)], axis=1)
    modes = counts == counts.max(axis=1, keepdims=True)
    if (modes.sum(axis=1) == 1).all():
        return 0
    masked = np.where(modes, probs, -1.0)
    best = masked == masked.max(axis=1, keepdims=True)
    return 2 if (best.sum(axis=1) > 1).any() else 1


def check_label_quality(labels, probs, **options):
    weights = options.get("quality_method", "crowdlab") == "crowdlab"
    with reference() as (cma, choice):
        ref = call_reference(
            cma.get_label_quality_multiannotator,
            labels.copy(),
            probs.copy(),
            verbose=False,
            return_weights=weights,
            **options,
        )
    event(f"random tie-break used: {choice.used > 0}")
    event(f"vote tie-break depth: {vote_tie_depth(labels, probs)}")
    got = ours(ma.get_label_quality_multiannotator, labels, probs, return_weights=weights, **options)
    table = ref["label_quality"]
    for name in PER_EXAMPLE:
        assert_same(name, getattr(got, name), table[name].to_numpy())
    if options.get("return_detailed_quality", True):
        assert_same("detailed_label_quality", got.detailed_label_quality, ref["detailed_label_quality"].to_numpy())
    else:
        assert got.detailed_label_quality is None
    stats = ref["annotator_stats"].sort_index()  # cleanlab sorts by quality; ours is in column order
    for name in PER_ANNOTATOR:
        assert_same(name, getattr(got, name), stats[name].to_numpy())
    if weights:
        assert got.model_weight == ref["model_weight"]
        assert_same("annotator_weight", got.annotator_weight, ref["annotator_weight"])
    return got


# --------------------------------------------------------------------------------------
# Parity
# --------------------------------------------------------------------------------------

OPTIONS = {
    "default": {},
    "majority_vote": {"consensus_method": "majority_vote"},
    "agreement": {"quality_method": "agreement"},
    "agreement_majority_vote": {"quality_method": "agreement", "consensus_method": "majority_vote"},
    "calibrated": {"calibrate_probs": True},
    "no_detailed": {"return_detailed_quality": False},
}


@pytest.mark.parametrize("options", list(OPTIONS.values()), ids=list(OPTIONS))
@settings(max_examples=examples(10))
@given(spec=specs())
def test_label_quality_matches_cleanlab(spec, options):
    labels, probs = build(spec)
    check_label_quality(labels, probs, **options)


@settings(max_examples=examples(25))
@given(spec=specs(max_n=40))
def test_majority_vote_matches_cleanlab(spec):
    labels, probs = build(spec)
    for pred_probs in (probs, None):
        with reference() as (cma, choice):
            want = call_reference(cma.get_majority_vote_label, labels.copy(), pred_probs, verbose=False)
        event(f"random tie-break used: {choice.used > 0}")
        got = ours(ma.get_majority_vote_label, labels, pred_probs)
        assert_same("majority vote", got, want)


@settings(max_examples=examples(15))
@given(spec=specs(), unlabeled=st.integers(0, 12))
def test_active_learning_scores_match_cleanlab(spec, unlabeled):
    labels, probs = build(spec)
    rng = np.random.default_rng(spec.seed)
    extra = rng.dirichlet(np.ones(spec.K), unlabeled).astype(probs.dtype) if unlabeled else None
    with reference() as (cma, _):
        want, want_u = call_reference(
            cma.get_active_learning_scores, labels.copy(), probs.copy(), None if extra is None else extra.copy()
        )
    got, got_u = ours(ma.get_active_learning_scores, labels, probs, extra)
    assert_same("scores", got, want)
    assert_same("scores_unlabeled", got_u, want_u)


@settings(max_examples=examples(10))
@given(spec=specs(max_n=40))
def test_active_learning_one_annotation_per_example_matches_cleanlab(spec):
    """Every example labeled once (ActiveLab's single-annotator path: no temperature, unit weights)."""
    labels, probs = build(spec)
    rng = np.random.default_rng(spec.seed)
    n = labels.shape[0]
    one = np.full(labels.shape, np.nan)
    one[np.arange(n), rng.integers(0, spec.m, n)] = rng.integers(0, spec.K, n)
    one = one[:, ~np.isnan(one).all(axis=0)]
    extra = rng.dirichlet(np.ones(spec.K), 5).astype(probs.dtype)
    with reference() as (cma, _):
        want, want_u = call_reference(cma.get_active_learning_scores, one.copy(), probs.copy(), extra.copy())
    got, got_u = ours(ma.get_active_learning_scores, one, probs, extra)
    assert_same("scores", got, want)
    assert_same("scores_unlabeled", got_u, want_u)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_active_learning_unlabeled_only_matches_cleanlab(rng, dtype):
    extra = rng.dirichlet(np.ones(4), 50).astype(dtype)
    with reference() as (cma, _):
        want = cma.get_active_learning_scores(None, None, extra.copy())
    got = ma.get_active_learning_scores(pred_probs_unlabeled=extra)
    assert got[0].shape == (0,)
    assert_same("scores_unlabeled", got[1], want[1])


# --------------------------------------------------------------------------------------
# Named corner cases (readable ids), same oracle
# --------------------------------------------------------------------------------------


def _corner_cases() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    nan = np.nan
    p = np.array([[0.7, 0.2, 0.1], [0.2, 0.5, 0.3], [0.1, 0.1, 0.8], [0.4, 0.4, 0.2], [1 / 3, 1 / 3, 1 / 3]])
    return {
        # rows 3 and 4: two annotators disagree; row 4's pred_probs tie too
        "vote_ties": (np.array([[0, 0, nan], [1, nan, 1], [2, 2, 2], [0, 1, nan], [nan, 0, 1]]), p),
        # the third annotator labeled only row 2; class 2 unused by anybody but it
        "annotator_with_one_label": (np.array([[0, 0, nan], [1, 1, nan], [nan, 1, 2], [0, 1, nan], [0, 0, nan]]), p),
        # class 2 never given; only rows 0 and 1 have two annotations
        "unused_class": (np.array([[0, 0, nan], [1, nan, 0], [nan, 1, nan], [nan, nan, 0], [1, nan, nan]]), p),
        # annotators never share an example with each other except the first two
        "no_overlap_third": (np.array([[0, 0, nan], [1, 1, nan], [nan, nan, 2], [nan, 2, nan], [0, nan, nan]]), p),
    }


CORNERS = _corner_cases()
#: every vote tied, equal pred_probs and class frequencies: no untied example for the third tie-break
ALL_TIED = (np.array([[0, 1], [1, 0], [0, 1], [1, 0]]), np.full((4, 3), 1 / 3))


@pytest.mark.parametrize("options", list(OPTIONS.values()), ids=list(OPTIONS))
@pytest.mark.parametrize("case", list(CORNERS), ids=list(CORNERS))
def test_corner_cases_match_cleanlab(case, options):
    labels, probs = CORNERS[case]
    check_label_quality(labels, probs, **options)


def test_all_votes_tied_goes_to_lowest_class():
    """No untied example: cleanlab's third tie-break has no data and it crashes; we pick the lowest class."""
    labels, probs = ALL_TIED
    import cleanlab.multiannotator as cma

    with warnings.catch_warnings(), pytest.raises(ValueError, match="cannot be empty"):
        warnings.simplefilter("ignore")
        cma.get_majority_vote_label(labels.copy(), probs.copy(), verbose=False)
    assert ma.get_majority_vote_label(labels, probs).tolist() == [0, 0, 0, 0]
    result = ours(ma.get_label_quality_multiannotator, labels, probs, consensus_method="majority_vote")
    assert result.consensus_label.tolist() == [0, 0, 0, 0]
    assert np.all(result.annotator_agreement == 0.5)


# --------------------------------------------------------------------------------------
# Where we differ on purpose (docs/differences-from-cleanlab.md, "Multiple annotators")
# --------------------------------------------------------------------------------------

NAN = np.nan
UNANIMOUS = (
    np.array([[2, 2, NAN], [0, 1, 1], [0, NAN, 0], [1, 1, NAN]]),
    np.array([[0.1, 0.2, 0.7], [0.2, 0.6, 0.2], [0.8, 0.1, 0.1], [0.3, 0.6, 0.1]]),
)


def test_agreement_method_counts_each_class_at_its_own_position():
    """cleanlab's per-example counts land in the wrong columns when labels are floats (NaN present):
    with ``quality_method="agreement"`` two annotators who both say 2 get consensus 0 and quality 0."""
    labels, probs = UNANIMOUS
    with reference(fix_counts=False) as (cma, _):
        ref = cma.get_label_quality_multiannotator(
            labels.copy(), probs.copy(), quality_method="agreement", verbose=False
        )
    assert ref["label_quality"]["consensus_label"].tolist()[0] == 0
    assert ref["detailed_label_quality"].to_numpy()[0, 0] == 0.0
    got = ours(ma.get_label_quality_multiannotator, labels, probs, quality_method="agreement")
    assert got.consensus_label.tolist() == [2, 1, 0, 1]
    assert got.detailed_label_quality[0, :2].tolist() == [1.0, 1.0]
    assert got.consensus_quality_score.tolist() == [1.0, 2 / 3, 1.0, 1.0]


def test_calibration_fits_the_annotators_label_distribution():
    """The temperature is fitted to each example's label distribution at the right classes: the
    corrected reference and ours agree, the uncorrected reference fits a shuffled distribution."""
    labels, probs = build(Spec(seed=3, n=60, m=4, K=4, density=0.7))
    with reference(fix_counts=False) as (cma, _):
        raw = cma.get_label_quality_multiannotator(labels.copy(), probs.copy(), calibrate_probs=True, verbose=False)
    got = check_label_quality(labels, probs, calibrate_probs=True)
    assert not np.array_equal(got.consensus_quality_score, raw["label_quality"]["consensus_quality_score"].to_numpy())
