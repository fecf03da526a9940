"""Parity of ``cl_pipeline.core`` with cleanlab 2.9.0, the oracle.

Inputs come from ``_kit.cases()``: n from K to 3000, K from 2 to 50, float32 and
float64, Dirichlet rows of several concentrations, optionally quantized to a
1/q grid (exact ties across rows), one-hot rows, rows with two exactly equal
entries, uniform rows (no confident class), duplicated rows, classes absent
from the labels, classes with one example, rows summing to slightly below 1.
A failing example prints as ``build_case(CaseSpec(...))``: paste it to reproduce.

Exactness: thresholds and label quality scores are bit-identical, confident
joints identical, matrices within 1e-12, masks identical whenever no selection
cut is tied. The reference's selection filters take ``argsort(key)[:m]`` with
an unstable sort, so when the m-th and (m+1)-th key values are equal *among the
eligible rows* which tied rows it picks is up to numpy's sort kernel (it varies
with the CPU). We break those ties by the row index instead (the lowest indices
among tied keys are selected, ``cl_pipeline.core._select``), so at a tied cut
the test asserts (1) that our mask is a valid pick of the reference's rule:
every row strictly inside the cut flagged, nothing beyond the cut value, and a
count consistent with a pick of exactly m (``_kit.FilterExpectation.problems``),
and (2) that it is exactly the pick of the index rule, computed independently by
the kit (``FilterExpectation.index_rule_mask``). How often ties happen, and how
often cleanlab's pick then differs from ours, is printed at the end of the run
and written to ``.pytest_cache/cl_core_tie_stats.json``.

Calibration rounds rows of the scaled confident joint to integers, adding or
removing 1 at the entries with the largest or smallest rounding residual; the
reference ranks the residuals with numpy's default (CPU-dependent) sort, so its
pick among tied residuals varies by machine. Our rule is a stable sort
(``_count.round_rows_preserving_totals``), and the oracle runs the reference's
own rounding code with a stable sort too (``_kit._NumpyWithArgsortTies``): every
check involving a calibrated joint is then exact. How often a rounding cut is
tied, and how often cleanlab as installed then differs, is tallied like the
selection ties.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cl_pipeline import core

from ._kit import (
    ALL_FILTERS,
    build_case,
    cases,
    corner_cases,
    describe_case,
    event,
    examples,
    expect_filter,
    note,
    oracle,
    oracle_thresholds,
    record,
    reduce_mask,
    reference_tie_order,
)

ATOL = 1e-12
PY_METHODS = ("cnt", "eqn", "marginal", "marginal_ps")


# --------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------


class Frozen:
    """Snapshot of the inputs: the core must not modify its arguments."""

    def __init__(self, *arrays):
        self.arrays = arrays
        self.copies = [np.array(a, copy=True) for a in arrays]

    def check(self, what):
        for a, c in zip(self.arrays, self.copies, strict=True):
            assert np.array_equal(a, c), f"{what} modified its input in place"


def assert_same_mask(ours, ref, what):
    ours = np.asarray(ours)
    assert ours.dtype == bool, f"{what}: expected a bool mask, got {ours.dtype}"
    assert ours.shape == ref.shape, f"{what}: shape {ours.shape} != {ref.shape}"
    if not np.array_equal(ours, ref):
        d = np.flatnonzero(ours != ref)
        pytest.fail(
            f"{what}: {len(d)} rows differ (ours flags {int(ours.sum())}, cleanlab {int(ref.sum())});"
            f" first rows {d[:10].tolist()} ours={ours[d[:10]].astype(int).tolist()}"
        )


def assert_valid_index_rule_pick(ours, exp, what):
    """At a tied cut: a valid pick of the reference's rule, and exactly the index rule's pick."""
    problems = exp.problems(ours)
    assert not problems, f"{what} (tie at a cut): not a valid pick: " + "; ".join(problems)
    expected = exp.index_rule_mask()
    d = np.flatnonzero(ours != expected)
    assert len(d) == 0, (
        f"{what} (tie at a cut): a valid pick, but not the index tie rule's at rows {d[:10].tolist()} "
        f"ours={ours[d[:10]].astype(int).tolist()}"
    )


def assert_close(ours, ref, what, atol=ATOL):
    ours = np.asarray(ours)
    ref = np.asarray(ref)
    assert ours.shape == ref.shape, f"{what}: shape {ours.shape} != {ref.shape}"
    np.testing.assert_allclose(ours, ref, rtol=0, atol=atol, err_msg=what)


def random_counts(case, salt):
    """A user-supplied confident joint that no probabilities produced: random counts, one
    all-zero row and one all-zero column."""
    rng = np.random.default_rng(case.spec.seed ^ salt)
    cj = rng.integers(0, 60, size=(case.K, case.K))
    cj[rng.integers(case.K)] = 0
    cj[:, rng.integers(case.K)] = 0
    return cj


def _plain(spec):
    """Continuous Dirichlet rows, nothing injected: the closest to real model outputs."""
    return not (spec.quantize or spec.onehot_frac or spec.tie_frac or spec.dup_frac or spec.uniform_frac)


def all_classes_present(labels, K):
    return np.bincount(labels, minlength=K).min() > 0


# --------------------------------------------------------------------------------------
# the checks (used by the hypothesis tests and by the fixed corner cases)
# --------------------------------------------------------------------------------------


def check_thresholds(labels, p):
    K = p.shape[1]
    ref = oracle_thresholds(labels.copy(), p.copy())
    fz = Frozen(labels, p)
    ours = np.asarray(core.get_confident_thresholds(labels, p))
    fz.check("get_confident_thresholds")
    assert ours.shape == (K,)
    # bit-identical values (a float32 mean upcast to float64 is exact, so this is fair
    # whichever float width the two sides return)
    np.testing.assert_array_equal(ours, ref, err_msg="confident thresholds differ")
    if all_classes_present(labels, K):
        # the reference returns the input dtype when every class is present
        assert ours.dtype == ref.dtype == p.dtype
    else:
        event("thresholds: class absent (reference dtype is float64)")


def check_confident_joint(labels, p, calibrate, thresholds=None):
    K = p.shape[1]
    kw = dict(calibrate=calibrate, thresholds=None if thresholds is None else thresholds.copy())
    ref = oracle("count.compute_confident_joint", labels.copy(), p.copy(), **kw)
    if calibrate:  # how often the rounding cut is tied, and whether cleanlab as installed then differs
        with reference_tie_order("reversed"):
            other_order = oracle("count.compute_confident_joint", labels.copy(), p.copy(), **kw)
        with reference_tie_order("installed"):
            installed = oracle("count.compute_confident_joint", labels.copy(), p.copy(), **kw)
        record(
            "calibration rounding (compute_confident_joint)",
            tied=not np.array_equal(ref, other_order),
            installed_cleanlab_differs=not np.array_equal(ref, installed),
        )
    fz = Frozen(labels, p)
    ours = core.compute_confident_joint(labels, p, calibrate=calibrate, thresholds=thresholds)
    fz.check("compute_confident_joint")
    ours = np.asarray(ours)
    assert ours.shape == (K, K)
    assert np.issubdtype(ours.dtype, np.integer), f"confident joint dtype {ours.dtype}"
    np.testing.assert_array_equal(ours, ref, err_msg=f"confident joint (calibrate={calibrate}) differs")


def check_calibrate(labels, cj):
    ref = oracle("count.calibrate_confident_joint", cj.copy(order="K"), labels.copy())
    ours = np.asarray(core.calibrate_confident_joint(cj, labels))
    assert np.issubdtype(ours.dtype, np.integer)
    np.testing.assert_array_equal(ours, ref, err_msg="calibrated confident joint differs")


def check_estimate_joint(labels, p, supplied_raw, cj=None):
    if cj is None and supplied_raw:
        cj = oracle("count.compute_confident_joint", labels, p, calibrate=False)
    ref = oracle(
        "count.estimate_joint", labels.copy(), p.copy(), confident_joint=None if cj is None else cj.copy(order="K")
    )
    ours = core.estimate_joint(labels, p, confident_joint=cj)
    assert_close(ours, ref, "estimate_joint")
    assert abs(float(np.sum(ours)) - 1.0) < 1e-9


def check_estimate_latent(labels, p, py_method, converge, cj=None):
    if cj is None:
        cj = oracle("count.compute_confident_joint", labels, p)
    try:
        ref = oracle(
            "count.estimate_latent",
            cj.copy(order="K"),
            labels.copy(),
            py_method=py_method,
            converge_latent_estimates=converge,
        )
    except np.linalg.LinAlgError:
        event("estimate_latent: reference raises LinAlgError (singular noise matrix)")
        with pytest.raises(ValueError):  # LinAlgError is a ValueError
            core.estimate_latent(cj, labels, py_method=py_method, converge_latent_estimates=converge)
        return
    ours = core.estimate_latent(cj, labels, py_method=py_method, converge_latent_estimates=converge)
    assert len(ours) == 3
    for name, a, b in zip(("py", "noise_matrix", "inverse_noise_matrix"), ours, ref, strict=True):
        assert_close(a, b, f"estimate_latent({py_method=}, {converge=}) {name}")


def check_py_and_noise(labels, p, py_method, converge, calibrate):
    kw = dict(py_method=py_method, converge_latent_estimates=converge, calibrate=calibrate)
    try:
        ref = oracle("count.estimate_py_and_noise_matrices_from_probabilities", labels.copy(), p.copy(), **kw)
    except np.linalg.LinAlgError:
        event("estimate_py_and_noise: reference raises LinAlgError")
        with pytest.raises(ValueError):
            core.estimate_py_and_noise_matrices_from_probabilities(labels, p, **kw)
        return
    fz = Frozen(labels, p)
    ours = core.estimate_py_and_noise_matrices_from_probabilities(labels, p, **kw)
    fz.check("estimate_py_and_noise_matrices_from_probabilities")
    assert len(ours) == 4
    for name, a, b in zip(("py", "noise_matrix", "inverse_noise_matrix"), ours[:3], ref[:3], strict=True):
        assert_close(a, b, f"estimate_py_and_noise_matrices_from_probabilities({kw}) {name}")
    np.testing.assert_array_equal(ours[3], ref[3], err_msg=f"confident joint ({kw})")


def check_num_label_issues(labels, p, method, cj=None):
    ref = int(
        oracle(
            "count.num_label_issues",
            labels.copy(),
            p.copy(),
            estimation_method=method,
            confident_joint=None if cj is None else cj.copy(order="K"),
        )
    )
    ours = core.num_label_issues(labels, p, estimation_method=method, confident_joint=cj)
    assert isinstance(ours, (int, np.integer)), f"num_label_issues returned {type(ours)}"
    assert int(ours) == ref, f"num_label_issues({method}): ours {ours}, cleanlab {ref}"


def check_find(labels, p, filter_by, frac_noise, min_ex, *, cj=None, ntr=None, category=None, also=None):
    kw = dict(filter_by=filter_by, frac_noise=frac_noise, min_examples_per_class=min_ex, num_to_remove_per_class=ntr)
    exp = expect_filter(labels, p, confident_joint=cj, **kw)
    ref = oracle(
        "filter.find_label_issues",
        labels.copy(),
        p.copy(),
        confident_joint=None if cj is None else cj.copy(order="K"),
        **kw,
    )
    # the kit's model of the reference must accept the reference itself
    kit_problems = exp.problems(ref)
    assert not kit_problems, f"TEST KIT BUG: its model rejects cleanlab's own mask: {kit_problems}"
    if exp.exact_mask is not None:
        assert np.array_equal(exp.exact_mask, ref), "TEST KIT BUG: its exact mask differs from cleanlab's"
    if exp.notes:  # the reference does not remove what was requested (num_to_remove_per_class)
        event("num_to_remove_per_class: reference does not remove the requested counts")
        note(f"reference departs from the request: {exp.notes}")
        exp = expect_filter(labels, p, confident_joint=cj, use_requested_counts=True, **kw)
        ref = None

    fz = Frozen(labels, p)
    ours = core.find_label_issues(labels, p, confident_joint=cj, **kw)
    fz.check("find_label_issues")
    ours = np.asarray(ours)
    what = f"find_label_issues({kw}{', confident_joint=<raw C>' if cj is not None else ''})"
    assert ours.dtype == bool and ours.shape == (len(labels),), f"{what}: got {ours.dtype} {ours.shape}"
    category = category or f"find_label_issues[{filter_by}]"
    if ref is None:
        record(category, reference_departs_from_request=True)
        assert_valid_index_rule_pick(ours, exp, f"{what} (requested counts)")
        return
    if also:  # a second tally, e.g. for inputs without injected ties
        record(also, tied=exp.tied)
    if not exp.tied:
        record(category, tied=False)
        assert_same_mask(ours, ref, what)
        return
    event(f"tie at a selection cut: {filter_by}")
    record(
        category,
        tied=True,
        tied_mask_differs=not np.array_equal(ours, ref),
        tied_count_differs=int(ours.sum()) != int(ref.sum()),
    )
    assert_valid_index_rule_pick(ours, exp, what)


def check_scores(labels, p, method, adjust):
    ref = oracle("rank.get_label_quality_scores", labels.copy(), p.copy(), method=method, adjust_pred_probs=adjust)
    fz = Frozen(labels, p)
    ours = np.asarray(core.get_label_quality_scores(labels, p, method=method, adjust_pred_probs=adjust))
    fz.check("get_label_quality_scores")
    assert ours.dtype == ref.dtype, f"scores dtype {ours.dtype} != {ref.dtype}"
    what = f"get_label_quality_scores({method=}, {adjust=})"
    np.testing.assert_array_equal(ours, ref, err_msg=f"{what}: not bit-identical")


def check_order(labels, p, rank_by, as_indices):
    mask = oracle("filter.find_label_issues", labels, p)
    ref = oracle("rank.order_label_issues", mask, labels, p, rank_by=rank_by)
    scores = oracle("rank.get_label_quality_scores", labels, p, method=rank_by)
    issues = np.flatnonzero(mask) if as_indices else mask
    ours = np.asarray(core.order_label_issues(issues, labels, p, rank_by=rank_by))
    assert np.issubdtype(ours.dtype, np.integer)
    assert sorted(ours.tolist()) == np.flatnonzero(mask).tolist(), "order_label_issues: not a permutation of the issues"
    s = scores[ours]
    assert np.all(np.diff(s) >= 0), "order_label_issues: not ordered by score ascending"
    tied = len(np.unique(scores[mask])) < int(mask.sum())
    record(f"order_label_issues[{rank_by}]", tied=tied)
    if not tied:
        np.testing.assert_array_equal(ours, ref, err_msg="order_label_issues differs")


def compare_class_table(ours, ref_df, K):
    classes = np.asarray(ours.classes)
    assert sorted(classes.tolist()) == list(range(K)), "rank_classes: classes are not a permutation of 0..K-1"
    order = np.argsort(classes)
    by = ref_df.set_index("Class Index").sort_index()
    np.testing.assert_array_equal(
        np.asarray(ours.label_issues)[order], by["Label Issues"].to_numpy(), err_msg="label_issues"
    )
    np.testing.assert_array_equal(
        np.asarray(ours.inverse_label_issues)[order],
        by["Inverse Label Issues"].to_numpy(),
        err_msg="inverse_label_issues",
    )
    for field_, col in (
        ("label_noise", "Label Noise"),
        ("inverse_label_noise", "Inverse Label Noise"),
        ("label_quality", "Label Quality Score"),
    ):
        assert_close(np.asarray(getattr(ours, field_))[order], by[col].to_numpy(), field_)
    q = np.asarray(ours.label_quality)
    assert np.all(np.diff(q) >= 0), "rank_classes: not sorted by label_quality ascending"
    refq = ref_df["Label Quality Score"].to_numpy()
    tied = len(np.unique(refq)) < K
    record("rank_classes_by_label_quality order", tied=tied)
    if not tied:
        np.testing.assert_array_equal(classes, ref_df["Class Index"].to_numpy(), err_msg="class order")


def compare_overlap_table(ours, ref_df, K):
    a, b = np.asarray(ours.class_a), np.asarray(ours.class_b)
    num, jp = np.asarray(ours.num_overlapping_examples), np.asarray(ours.joint_probability)
    assert len(a) == len(b) == len(num) == len(jp) == K * (K - 1) // 2, "one row per unordered class pair"
    ref = {
        (int(x), int(y)): (int(c), float(j))
        for x, y, c, j in zip(
            ref_df["Class Index A"].to_numpy(),
            ref_df["Class Index B"].to_numpy(),
            ref_df["Num Overlapping Examples"].to_numpy(),
            ref_df["Joint Probability"].to_numpy(),
            strict=True,
        )
    }
    got = {(int(x), int(y)): (int(c), float(j)) for x, y, c, j in zip(a, b, num, jp, strict=True)}
    assert set(got) == set(ref), "find_overlapping_classes: different class pairs"
    for pair, (c, j) in ref.items():
        assert got[pair][0] == c, f"pair {pair}: num_overlapping_examples {got[pair][0]} != {c}"
        assert abs(got[pair][1] - j) <= ATOL, f"pair {pair}: joint_probability {got[pair][1]} != {j}"
    assert np.all(np.diff(jp) <= 0), "find_overlapping_classes: not sorted descending"
    refjp = ref_df["Joint Probability"].to_numpy()
    tied = len(np.unique(refjp)) < len(refjp)
    record("find_overlapping_classes order", tied=tied)
    if not tied:
        np.testing.assert_array_equal(a, ref_df["Class Index A"].to_numpy())
        np.testing.assert_array_equal(b, ref_df["Class Index B"].to_numpy())


def check_health(labels, p, supplied_raw):
    K = p.shape[1]
    cj = oracle("count.compute_confident_joint", labels, p, calibrate=False) if supplied_raw else None
    kw = dict(confident_joint=None if cj is None else cj.copy(order="K"))
    compare_class_table(
        core.rank_classes_by_label_quality(labels, p, confident_joint=cj),
        oracle("dataset.rank_classes_by_label_quality", labels, p, **kw),
        K,
    )
    compare_overlap_table(
        core.find_overlapping_classes(labels, p, confident_joint=cj),
        oracle("dataset.find_overlapping_classes", labels, p, **kw),
        K,
    )
    ref_score = float(oracle("dataset.overall_label_health_score", labels, p, **kw))
    if cj is not None:  # cleanlab ignores a supplied joint here (with a warning); we reject it
        with pytest.raises(ValueError, match="confident_joint"):
            core.overall_label_health_score(labels, p, confident_joint=cj)
    ours_score = core.overall_label_health_score(labels, p)
    assert abs(float(ours_score) - ref_score) <= ATOL, f"overall_label_health_score {ours_score} != {ref_score}"
    ref = oracle("dataset.health_summary", labels, p, **kw)
    hs = core.health_summary(labels, p, confident_joint=cj)
    assert abs(float(hs.overall_label_health_score) - float(ref["overall_label_health_score"])) <= ATOL
    assert_close(hs.joint, ref["joint"], "health_summary joint")
    compare_class_table(hs.classes, ref["classes_by_label_quality"], K)
    compare_overlap_table(hs.overlapping, ref["overlapping_classes"], K)


# --------------------------------------------------------------------------------------
# hypothesis-driven parity tests
# --------------------------------------------------------------------------------------


@settings(max_examples=examples(60))
@given(case=cases())
def test_confident_thresholds_bit_identical(case):
    describe_case(case)
    check_thresholds(case.labels, case.pred_probs)


@pytest.mark.parametrize("calibrate", [False, True], ids=["raw", "calibrated"])
@settings(max_examples=examples(40))
@given(case=cases())
def test_confident_joint_identical(case, calibrate):
    describe_case(case)
    check_confident_joint(case.labels, case.pred_probs, calibrate)


@pytest.mark.parametrize("thresholds_from", ["random_float64", "other_labels_input_dtype"])
@settings(max_examples=examples(25))
@given(case=cases())
def test_confident_joint_with_given_thresholds(case, thresholds_from):
    rng = np.random.default_rng(case.spec.seed ^ 0x5EED)
    labels, p = case.labels, case.pred_probs
    if thresholds_from == "random_float64":
        t = rng.uniform(0.0, 1.0, size=case.K)
    else:
        t = oracle_thresholds(rng.permutation(labels), p)
        t = t.astype(p.dtype)
    for calibrate in (False, True):
        check_confident_joint(labels, p, calibrate, thresholds=t)


@pytest.mark.parametrize("layout", ["fortran", "c_order"])
@pytest.mark.parametrize("source", ["reference_raw_joint", "random_counts"])
@settings(max_examples=examples(25))
@given(case=cases())
def test_calibrate_confident_joint_identical(case, source, layout):
    labels, p = case.labels, case.pred_probs
    if source == "reference_raw_joint":
        cj = oracle("count.compute_confident_joint", labels, p, calibrate=False)
    else:
        cj = random_counts(case, 0xC0FFEE)
    cj = np.asfortranarray(cj) if layout == "fortran" else np.ascontiguousarray(cj)
    check_calibrate(labels, cj)


@pytest.mark.parametrize("confident_joint", ["none", "supplied_raw", "supplied_random_counts"])
@settings(max_examples=examples(30))
@given(case=cases())
def test_estimate_joint_identical(case, confident_joint):
    cj = random_counts(case, 0xA11CE) if confident_joint == "supplied_random_counts" else None
    check_estimate_joint(case.labels, case.pred_probs, supplied_raw=confident_joint == "supplied_raw", cj=cj)


@pytest.mark.parametrize("source", ["reference_joint", "random_counts"])
@pytest.mark.parametrize("converge", [False, True], ids=["no_converge", "converge"])
@pytest.mark.parametrize("py_method", PY_METHODS)
@settings(max_examples=examples(15))
@given(case=cases())
def test_estimate_latent_within_1e12(case, py_method, converge, source):
    cj = random_counts(case, 0x1A7E) if source == "random_counts" else None
    check_estimate_latent(case.labels, case.pred_probs, py_method, converge, cj=cj)


@pytest.mark.parametrize("py_method", PY_METHODS)
@settings(max_examples=examples(15))
@given(case=cases())
def test_estimate_py_and_noise_matrices_within_1e12(case, py_method):
    for converge in (True, False):
        for calibrate in (True, False):
            check_py_and_noise(case.labels, case.pred_probs, py_method, converge, calibrate)


@pytest.mark.parametrize(
    "method", ["off_diagonal", "off_diagonal_calibrated", "off_diagonal_custom", "off_diagonal_custom-random_counts"]
)
@settings(max_examples=examples(30))
@given(case=cases())
def test_num_label_issues_identical(case, method):
    labels, p = case.labels, case.pred_probs
    cj = None
    if method == "off_diagonal_custom":
        cj = oracle("count.compute_confident_joint", labels, p, calibrate=False)
    elif method.endswith("random_counts"):
        method, cj = "off_diagonal_custom", random_counts(case, 0x5CA1E)
    check_num_label_issues(labels, p, method, cj)


@pytest.mark.parametrize("min_ex", [1, 10], ids=lambda v: f"min_examples{v}")
@pytest.mark.parametrize("frac_noise", [1.0, 0.5], ids=lambda v: f"frac_noise{v}")
@pytest.mark.parametrize("filter_by", ALL_FILTERS)
@settings(max_examples=examples(14))
@given(case=cases())
def test_find_label_issues_masks(case, filter_by, frac_noise, min_ex):
    describe_case(case)
    check_find(
        case.labels,
        case.pred_probs,
        filter_by,
        frac_noise,
        min_ex,
        also=f"find_label_issues[{filter_by}] (no injected ties)" if _plain(case.spec) else None,
    )


@pytest.mark.parametrize("filter_by", ["prune_by_noise_rate", "prune_by_class", "both"])
@settings(max_examples=examples(20))
@given(case=cases(max_n=1500), frac_noise=st.floats(0.01, 1.0), min_ex=st.integers(0, 12))
def test_find_label_issues_any_frac_noise_and_min_examples(case, filter_by, frac_noise, min_ex):
    """Beyond the grid {1, 0.5} x {1, 10}: any frac_noise in (0, 1], any min_examples_per_class >= 0."""
    check_find(
        case.labels,
        case.pred_probs,
        filter_by,
        frac_noise,
        min_ex,
        category=f"find_label_issues[{filter_by}, any frac_noise/min_examples]",
    )


@pytest.mark.parametrize("source", ["raw_joint", "random_counts"])
@pytest.mark.parametrize("filter_by", ["prune_by_noise_rate", "prune_by_class", "both"])
@settings(max_examples=examples(15))
@given(case=cases())
def test_find_label_issues_with_supplied_confident_joint(case, filter_by, source):
    labels, p = case.labels, case.pred_probs
    if source == "raw_joint":  # used as given, not recalibrated
        cj = oracle("count.compute_confident_joint", labels, p, calibrate=False)
    else:
        cj = random_counts(case, 0xF11E)
    check_find(labels, p, filter_by, 1.0, 1, cj=cj, category=f"find_label_issues[{filter_by}, supplied C]")


@pytest.mark.parametrize("min_ex", [1, 10], ids=lambda v: f"min_examples{v}")
@settings(max_examples=examples(25))
@given(case=cases())
def test_find_label_issues_num_to_remove_per_class_prune_by_class(case, min_ex):
    labels, p = case.labels, case.pred_probs
    rng = np.random.default_rng(case.spec.seed ^ 0xBEEF)
    counts = np.bincount(labels, minlength=case.K)
    over = rng.random() < 0.25  # sometimes ask for more than a class holds (cleanlab: the whole class)
    ntr = [int(rng.integers(0, c + (3 if over else 1))) for c in counts]
    if over:
        event("num_to_remove_per_class: some requests may exceed n_k")
    check_find(
        labels,
        p,
        "prune_by_class",
        1.0,
        min_ex,
        ntr=ntr,
        category="find_label_issues[prune_by_class, num_to_remove_per_class]",
    )


@pytest.mark.parametrize("min_ex", [0, 1, 5])
def test_prune_by_class_request_above_class_size_flags_the_whole_class_like_cleanlab(rng, min_ex):
    """cleanlab accepts ``num_to_remove_per_class[k] > n_k`` for ``prune_by_class`` and
    flags every example of class k (then the near-argmax rule); we keep that parity."""
    n, K = 300, 4
    p = rng.dirichlet(np.full(K, 0.5), size=n)
    labels = rng.integers(0, K, n)
    labels[:3] = 3  # class 3: exactly 3 examples
    labels[3:] = np.where(labels[3:] == 3, 0, labels[3:])
    counts = np.bincount(labels, minlength=K)
    ntr = [int(counts[0]) + 7, 2, 0, 50]
    ref = oracle(
        "filter.find_label_issues",
        labels,
        p,
        filter_by="prune_by_class",
        num_to_remove_per_class=ntr,
        min_examples_per_class=min_ex,
    )
    ours = core.find_label_issues(
        labels, p, filter_by="prune_by_class", num_to_remove_per_class=ntr, min_examples_per_class=min_ex
    )
    assert_same_mask(ours, ref, "prune_by_class with requests above n_k")
    whole = np.isin(labels, [0, 3] if counts[3] > max(min_ex, 1) else [0])
    np.testing.assert_array_equal(ours[whole], ~reduce_mask(labels, p)[whole])


@pytest.mark.parametrize("adjust", [False, True], ids=["raw_probs", "adjust_pred_probs"])
@pytest.mark.parametrize("method", ["self_confidence", "normalized_margin"])
@settings(max_examples=examples(30))
@given(case=cases())
def test_label_quality_scores(case, method, adjust):
    check_scores(case.labels, case.pred_probs, method, adjust)


@pytest.mark.parametrize("issues_as", ["mask", "indices"])
@pytest.mark.parametrize("rank_by", ["self_confidence", "normalized_margin"])
@settings(max_examples=examples(20))
@given(case=cases())
def test_order_label_issues(case, rank_by, issues_as):
    check_order(case.labels, case.pred_probs, rank_by, issues_as == "indices")


@pytest.mark.parametrize("confident_joint", ["none", "supplied_raw"])
@settings(max_examples=examples(20))
@given(case=cases(max_n=1500))
def test_health_tables(case, confident_joint):
    check_health(case.labels, case.pred_probs, supplied_raw=confident_joint == "supplied_raw")


# --------------------------------------------------------------------------------------
# fixed corner cases: the whole battery, each as float64 and float32
# --------------------------------------------------------------------------------------

CORNERS = corner_cases()


def corner_battery(labels, p):
    """(description, thunk) for every check of the battery."""
    raw = oracle("count.compute_confident_joint", labels, p, calibrate=False)
    counts = np.bincount(labels, minlength=p.shape[1])
    yield "thresholds", lambda: check_thresholds(labels, p)
    for calibrate in (False, True):
        yield f"confident_joint(calibrate={calibrate})", lambda c=calibrate: check_confident_joint(labels, p, c)
    yield "calibrate_confident_joint", lambda: check_calibrate(labels, raw)
    for supplied in (False, True):
        yield f"estimate_joint(supplied={supplied})", lambda s=supplied: check_estimate_joint(labels, p, s)
        yield f"health(supplied={supplied})", lambda s=supplied: check_health(labels, p, s)
    for py_method in PY_METHODS:
        for converge in (False, True):
            yield (
                f"estimate_latent({py_method}, converge={converge})",
                lambda m=py_method, c=converge: check_estimate_latent(labels, p, m, c),
            )
            yield (
                f"estimate_py_and_noise({py_method}, converge={converge})",
                lambda m=py_method, c=converge: check_py_and_noise(labels, p, m, c, True),
            )
    for method in ("off_diagonal", "off_diagonal_calibrated"):
        yield f"num_label_issues({method})", lambda m=method: check_num_label_issues(labels, p, m)
    yield "num_label_issues(off_diagonal_custom)", lambda: check_num_label_issues(labels, p, "off_diagonal_custom", raw)
    for filter_by in ALL_FILTERS:
        for frac_noise in (1.0, 0.5):
            for min_ex in (1, 10):
                yield (
                    f"find_label_issues({filter_by}, frac_noise={frac_noise}, min_examples={min_ex})",
                    lambda f=filter_by, fn=frac_noise, m=min_ex: check_find(
                        labels, p, f, fn, m, category="corner cases"
                    ),
                )
    yield (
        "find_label_issues(prune_by_class, num_to_remove_per_class=n_k // 2)",
        lambda: check_find(
            labels, p, "prune_by_class", 1.0, 1, ntr=[int(c // 2) for c in counts], category="corner cases"
        ),
    )
    for method in ("self_confidence", "normalized_margin"):
        for adjust in (False, True):
            yield f"scores({method}, adjust={adjust})", lambda m=method, a=adjust: check_scores(labels, p, m, a)
        yield f"order_label_issues({method})", lambda m=method: check_order(labels, p, m, False)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", sorted(CORNERS))
def test_corner_case_full_battery(name, dtype):
    """Every check on each hand-written corner case; all failures are listed, not just the first."""
    labels, p = CORNERS[name]
    p = p.astype(dtype)
    failures = []
    for what, run in corner_battery(labels, p):
        try:
            run()
        except (AssertionError, pytest.fail.Exception, Exception) as e:  # noqa: BLE001 - listed below
            first = str(e).strip().splitlines()[0] if str(e).strip() else ""
            failures.append(f"{what}: {type(e).__name__}: {first}")
    assert not failures, f"{len(failures)} checks fail on corner case {name} ({dtype}):\n" + "\n".join(failures)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("n,K", [(10000, 10), (5000, 100)], ids=["n10000_K10", "n5000_K100"])
def test_benchmark_like_data_full_parity(rng, n, K, dtype):
    """The benchmark's distribution (true labels uniform; rows ~ Dirichlet(0.05 + 3*onehot(true));
    20% of labels flipped to another class), larger than the hypothesis inputs."""
    true = rng.integers(0, K, size=n)
    alpha = np.full((n, K), 0.05)
    alpha[np.arange(n), true] += 3.0
    g = rng.standard_gamma(alpha)
    p = (g / g.sum(axis=1, keepdims=True)).astype(dtype)
    labels = true.copy()
    flip = rng.random(n) < 0.2
    labels[flip] = (true[flip] + rng.integers(1, K, size=flip.sum())) % K
    check_thresholds(labels, p)
    for calibrate in (False, True):
        check_confident_joint(labels, p, calibrate)
    check_py_and_noise(labels, p, "cnt", True, True)
    for method in ("off_diagonal", "off_diagonal_calibrated"):
        check_num_label_issues(labels, p, method)
    for filter_by in ALL_FILTERS:
        check_find(labels, p, filter_by, 1.0, 1, category=f"benchmark-like data: find_label_issues[{filter_by}]")
    for method in ("self_confidence", "normalized_margin"):
        for adjust in (False, True):
            check_scores(labels, p, method, adjust)
    check_health(labels, p, False)


def test_generator_reproduces_and_covers_special_rows():
    """The input generator is deterministic and really produces what the docstring claims."""
    from ._kit import CaseSpec

    spec = CaseSpec(
        seed=1,
        n=400,
        K=8,
        dtype="float32",
        quantize=8,
        onehot_frac=0.05,
        tie_frac=0.05,
        dup_frac=0.05,
        uniform_frac=0.05,
        n_absent=1,
        n_singletons=1,
    )
    a, b = build_case(spec), build_case(spec)
    assert np.array_equal(a.pred_probs, b.pred_probs) and np.array_equal(a.labels, b.labels)
    p, labels = a.pred_probs, a.labels
    counts = np.bincount(labels, minlength=8)
    assert (counts == 0).sum() == 1 and (counts == 1).sum() == 1
    assert (p.max(axis=1) == 1).any(), "one-hot rows"
    assert np.all(np.abs(p.astype(np.float64).sum(axis=1) - 1) <= 1e-6)
    t = oracle_thresholds(labels, p)
    assert not (p >= t - 1e-6).any(axis=1).all(), "rows with no confident class"
    srt = np.sort(p, axis=1)
    assert (srt[:, -1] == srt[:, -2]).any(), "rows with an exact tie"
    assert len(np.unique(p, axis=0)) < len(p), "duplicated rows"
    spec = CaseSpec(seed=2, n=300, K=6, dtype="float32", conc=1.0, strength=2.0, noise=0.3, boundary_frac=0.3)
    c = build_case(spec)
    t = oracle_thresholds(c.labels, c.pred_probs)
    at = c.pred_probs == (t - 1e-6).astype(np.float32)
    assert at.sum() >= 10, "entries exactly at the confidence boundary"
    bumped = c.pred_probs[np.arange(300), c.labels] + np.float32(1e-6)
    assert (c.pred_probs == bumped[:, None]).sum() >= 10, "entries exactly at the near-argmax boundary"
