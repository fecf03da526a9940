"""Invariants of the core, stated in the module docstrings of ``cl_pipeline.core``.

These do not use the reference: they check the mathematics directly on
hypothesis-generated, continuous (tie-free) inputs.
"""

import warnings

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import cl_pipeline.core as core
from cl_pipeline.core import _count


@st.composite
def noisy_problem(draw, max_k: int = 8, max_n: int = 400):
    """Continuous probabilities (float64), labels with ~20% flips, all classes present."""
    seed = draw(st.integers(0, 2**32 - 1))
    k = draw(st.integers(2, max_k))
    n = draw(st.integers(max(4 * k, 20), max_n))
    rng = np.random.default_rng(seed)
    true = np.concatenate([np.arange(k), rng.integers(0, k, n - k)])
    alpha = np.full((n, k), 0.4)
    alpha[np.arange(n), true] += 2.0
    probs = rng.gamma(alpha)
    probs /= probs.sum(axis=1, keepdims=True)
    labels = true.copy()
    flip = rng.random(n) < 0.2
    labels[flip] = (true[flip] + rng.integers(1, k, flip.sum())) % k
    assume(np.bincount(labels, minlength=k).min() >= 1)
    return labels, probs


def _calibration_is_tie_free(labels, probs) -> bool:
    """Rounding is decided without ties: no value sits at .5 and, where a row
    needs d adjustments, the d-th and (d+1)-th residuals differ (otherwise
    which entry absorbs the rounding depends on column order)."""
    k = probs.shape[1]
    raw = core.compute_confident_joint(labels, probs, calibrate=False)
    counts = np.bincount(labels, minlength=k)
    scaled = raw / raw.sum(axis=1, keepdims=True) * counts[:, None]
    scaled = scaled / scaled.sum() * counts.sum()
    for row in scaled:
        residual = row - np.round(row)
        if np.any(np.abs(np.abs(residual) - 0.5) < 1e-9):
            return False
        d = int(np.round(np.round(row.sum()) - np.round(row).sum()))
        if d == 0:
            continue
        ordered = np.sort(residual)[::-1] if d > 0 else np.sort(residual)
        if abs(d) < k and abs(ordered[abs(d) - 1] - ordered[abs(d)]) < 1e-9:
            return False
    return True


@given(noisy_problem())
def test_calibrated_joint_rows_sum_to_class_counts(problem):
    labels, probs = problem
    c = core.compute_confident_joint(labels, probs)
    counts = np.bincount(labels, minlength=probs.shape[1])
    assert c.dtype.kind == "i"
    assert (c >= 0).all()
    np.testing.assert_array_equal(c.sum(axis=1), counts)
    assert c.sum() == labels.shape[0]


@given(noisy_problem())
def test_raw_joint_counts_each_confident_row_once(problem):
    labels, probs = problem
    raw = core.compute_confident_joint(labels, probs, calibrate=False)
    k = probs.shape[1]
    assert (np.diagonal(raw) >= 1).all()
    assert raw.sum() <= labels.shape[0] + k


@given(noisy_problem())
def test_joint_and_latent_estimates_are_distributions(problem):
    labels, probs = problem
    q = core.estimate_joint(labels, probs)
    assert q.sum() == pytest.approx(1.0, abs=1e-12)
    py, nm, inv, _ = core.estimate_py_and_noise_matrices_from_probabilities(labels, probs)
    assert py.sum() == pytest.approx(1.0, abs=1e-12)
    assert (py > 0).all()
    for matrix in (nm, inv):
        assert (matrix >= 0).all() and (matrix <= 1 + 1e-12).all()
        np.testing.assert_allclose(matrix.sum(axis=0), 1.0, atol=1e-12)


def _rows_tie_free(probs) -> bool:
    """No row holds two equal values: first-index tie breaking of argmax (confident
    guess, prediction, near-argmax rule) would then depend on the class order."""
    srt = np.sort(probs, axis=1)
    return bool((np.diff(srt, axis=1) > 0).all())


@given(noisy_problem(), st.randoms(use_true_random=False))
def test_permuting_classes_permutes_c_and_q_and_keeps_the_mask(problem, random):
    """Every filter is invariant. Ties *across rows* (at a selection cut) are harmless:
    the selections sort the same values in the same row order whatever the class ids.
    Ties *within a row* and .5 ties of calibration are not, so they are excluded."""
    labels, probs = problem
    assume(_calibration_is_tie_free(labels, probs))
    assume(_rows_tie_free(probs))
    k = probs.shape[1]
    perm = np.array(random.sample(range(k), k))  # new id of old class i is perm[i]
    inverse = np.argsort(perm)
    labels_p, probs_p = perm[labels], probs[:, inverse]
    for calibrate in (False, True):
        c = core.compute_confident_joint(labels, probs, calibrate=calibrate)
        c_p = core.compute_confident_joint(labels_p, probs_p, calibrate=calibrate)
        np.testing.assert_array_equal(c_p[np.ix_(perm, perm)], c)
    q, q_p = core.estimate_joint(labels, probs), core.estimate_joint(labels_p, probs_p)
    np.testing.assert_allclose(q_p[np.ix_(perm, perm)], q, rtol=0, atol=1e-15)
    for filter_by in core.FILTER_METHODS:
        np.testing.assert_array_equal(
            core.find_label_issues(labels_p, probs_p, filter_by=filter_by),
            core.find_label_issues(labels, probs, filter_by=filter_by),
            err_msg=filter_by,
        )


@given(noisy_problem(), st.integers(0, 2**32 - 1))
def test_permuting_rows_permutes_the_mask(problem, seed):
    labels, probs = problem
    order = np.random.default_rng(seed).permutation(labels.shape[0])
    for filter_by in core.FILTER_METHODS:
        mask = core.find_label_issues(labels, probs, filter_by=filter_by)
        mask_p = core.find_label_issues(labels[order], probs[order], filter_by=filter_by)
        np.testing.assert_array_equal(mask_p, mask[order])


@given(st.integers(0, 2**32 - 1), st.integers(2, 12), st.integers(30, 500), st.sampled_from([np.float32, np.float64]))
def test_confident_correct_labels_give_diagonal_joint_and_no_issues(seed, k, n, dtype):
    rng = np.random.default_rng(seed)
    labels = np.concatenate([np.arange(k), rng.integers(0, k, n - k)])
    rest = rng.dirichlet(np.ones(k), size=n) * 0.05
    probs = rest.copy()
    probs[np.arange(n), labels] += 0.95 - rest[np.arange(n), labels]
    probs = (probs / probs.sum(axis=1, keepdims=True)).astype(dtype)
    for calibrate in (False, True):
        c = core.compute_confident_joint(labels, probs, calibrate=calibrate)
        assert np.count_nonzero(c - np.diag(np.diagonal(c))) == 0
    assert core.num_label_issues(labels, probs) == 0
    for filter_by in core.FILTER_METHODS:
        if filter_by.startswith("low_"):
            continue  # these flag the num_label_issues (= 0) lowest scores
        assert not core.find_label_issues(labels, probs, filter_by=filter_by).any(), filter_by
    assert core.overall_label_health_score(labels, probs) == 1.0


@pytest.mark.parametrize("k", [2, 5, 30], ids=lambda k: f"K={k}")
def test_absent_class_gets_threshold_two_and_zero_calibrated_row(rng, k):
    n = 50 * k
    labels = rng.integers(0, k - 1, n)  # class k-1 absent
    probs = rng.dirichlet(np.ones(k), size=n)
    thresholds = core.get_confident_thresholds(labels, probs)
    assert thresholds[k - 1] == 2.0
    assert (thresholds >= 2e-6).all()
    c = core.compute_confident_joint(labels, probs)
    assert (c[k - 1] == 0).all()
    assert c.sum() == n


def test_rounding_keeps_row_totals_and_is_half_to_even():
    matrix = np.array([[0.5, 1.5, 2.0], [0.3, 0.3, 0.4], [2.5, 0.25, 0.25]])
    out = _count.round_rows_preserving_totals(matrix)
    np.testing.assert_array_equal(out.sum(axis=1), np.round(matrix.sum(axis=1)))
    np.testing.assert_array_equal(out[0], [0, 2, 2])
    assert (np.abs(out - matrix) < 1.0 + 1e-12).all()


@given(st.integers(0, 2**32 - 1), st.integers(2, 10), st.floats(0.0, 0.8))
def test_generated_noise_matrix_has_trace_and_sparsity(seed, k, sparsity):
    trace = k * 0.7
    nm = core.generate_noise_matrix_from_trace(k, trace, frac_zero_noise_rates=sparsity, seed=seed)
    np.testing.assert_allclose(nm.sum(axis=0), 1.0, atol=1e-9)
    assert np.trace(nm) == pytest.approx(trace, abs=1e-9)
    assert core.noise_matrix_is_valid(nm, np.full(k, 1 / k))
    again = core.generate_noise_matrix_from_trace(k, trace, frac_zero_noise_rates=sparsity, seed=seed)
    np.testing.assert_array_equal(nm, again)


@given(st.integers(0, 2**32 - 1), st.integers(2, 6))
def test_noisy_labels_flip_exact_counts(seed, k):
    rng = np.random.default_rng(seed)
    true = rng.integers(0, k, 2000)
    nm = core.generate_noise_matrix_from_trace(k, k * 0.75, seed=seed)
    noisy = core.generate_noisy_labels(true, nm, seed=seed)
    for j in range(k):
        n_j = int((true == j).sum())
        for i in range(k):
            if i != j:
                assert int(((true == j) & (noisy == i)).sum()) == int(np.floor(nm[i, j] * n_j + 1e-9))
    np.testing.assert_array_equal(noisy, core.generate_noisy_labels(true, nm, seed=seed))


@given(noisy_problem())
def test_recommended_setting_is_both_ranked_by_confidence_then_margin(problem):
    labels, probs = problem
    # docs/recommended-setting.md: "recommended" = "both" = prune_by_class AND prune_by_noise_rate,
    # checked against the two documented rules, not against the constant the code reads
    assert core.RECOMMENDED_FILTER == "both"
    by_class = core.find_label_issues(labels, probs, filter_by="prune_by_class")
    by_noise_rate = core.find_label_issues(labels, probs, filter_by="prune_by_noise_rate")
    np.testing.assert_array_equal(
        core.find_label_issues(labels, probs, filter_by="recommended"), by_class & by_noise_rate
    )
    assert core.RECOMMENDED_RANK_BY == "confidence_then_margin"
    sc = core.get_label_quality_scores(labels, probs)
    nm = core.get_label_quality_scores(labels, probs, method="normalized_margin")
    cm = core.get_label_quality_scores(labels, probs, method="confidence_margin")
    ctm = core.get_label_quality_scores(labels, probs, method=core.RECOMMENDED_RANK_BY)
    np.testing.assert_allclose(cm, (sc + nm) / 2, rtol=0, atol=1e-15)
    tol = 4 * np.finfo(np.float64).eps
    sc64, nm64 = sc.astype(np.float64), nm.astype(np.float64)
    np.testing.assert_allclose(ctm, (sc64 + 1e-6 * nm64) / (1 + 1e-6), rtol=0, atol=tol)
    assert ctm.dtype == np.float64 and (ctm >= 0).all() and (ctm <= 1 + tol).all()
    # self-confidence decides wherever it differs by more than the tie-break can move
    i, j = np.triu_indices(min(labels.size, 60), 1)
    clear = np.abs(sc64[i] - sc64[j]) > 2e-6 + 10 * tol
    assert (np.sign(ctm[i] - ctm[j])[clear] == np.sign(sc64[i] - sc64[j])[clear]).all()
    assert ((cm >= 0) & (cm <= 1)).all()
    # and the margin breaks exact ties of self-confidence: the inputs above are continuous (no
    # ties), so tie them: every row's given label gets one of three values, the rest of its mass
    # keeps its proportions (so the margins differ)
    n, k = probs.shape
    rows = np.arange(n)
    own = np.array([0.2, 0.45, 0.7])[rows % 3]
    rest = probs.copy()
    rest[rows, labels] = 0.0
    tied_probs = rest / rest.sum(axis=1, keepdims=True) * (1 - own)[:, None]
    tied_probs[rows, labels] = own
    sc_t = core.get_label_quality_scores(labels, tied_probs)
    nm_t = core.get_label_quality_scores(labels, tied_probs, method="normalized_margin")
    ctm_t = core.get_label_quality_scores(labels, tied_probs, method=core.RECOMMENDED_RANK_BY)
    i, j = np.triu_indices(n, 1)
    assert (sc_t[i] == sc_t[j]).sum() >= n, "the construction must give many exact ties of self-confidence"
    tied = (sc_t[i] == sc_t[j]) & (np.abs(nm_t[i] - nm_t[j]) > 1e-9)
    assert tied.any() or k == 2, "with K >= 3 some tied rows must differ in margin"  # K = 2: margin = 2 p_y - 1
    assert (np.sign(ctm_t[i] - ctm_t[j])[tied] == np.sign(nm_t[i] - nm_t[j])[tied]).all()


@pytest.mark.parametrize("filter_by", ["prune_by_noise_rate", "both", "confident_learning"])
def test_threads_do_not_change_results(monkeypatch, rng, filter_by):
    n, k = 40_000, 12  # several chunks and classes, so the threaded paths run
    labels = rng.integers(0, k, n)
    probs = rng.dirichlet(np.full(k, 0.3), size=n).astype(np.float32)
    results = []
    for threads in ("1", "2", "3"):
        monkeypatch.setenv("CL_PIPELINE_NUM_THREADS", threads)
        results.append(
            (
                core.find_label_issues(labels, probs, filter_by=filter_by),
                core.compute_confident_joint(labels, probs),
            )
        )
    for mask, joint in results[1:]:
        np.testing.assert_array_equal(mask, results[0][0])
        np.testing.assert_array_equal(joint, results[0][1])


def test_bad_thread_setting_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("CL_PIPELINE_NUM_THREADS", "zero")
    with pytest.raises(ValueError, match="CL_PIPELINE_NUM_THREADS"):
        core.find_label_issues(np.array([0, 1]), np.array([[0.9, 0.1], [0.2, 0.8]]))


def test_first_bad_chunk_in_row_order_is_reported_with_threads(monkeypatch):
    monkeypatch.setenv("CL_PIPELINE_NUM_THREADS", "4")
    n, k = 300_000, 8  # > 4 chunks
    probs = np.full((n, k), 1 / k)
    probs[200_000, 0] = np.nan
    probs[250_000, 1] = -1.0
    with pytest.raises(ValueError, match="row 200000"):
        core.compute_confident_joint(np.zeros(n, dtype=int), probs)


# ---- num_to_remove_per_class (docs/differences-from-cleanlab.md, section 2)
#
# Contract (``_filter.prune_mask`` / ``split_removals`` / ``_top_up``): a class k with
# n_k > max(min_examples_per_class, 1) gets exactly r_k candidates (any r_k in 0..n_k;
# a larger r_k is a ValueError for these two filters), whatever frac_noise; other
# classes get none. The near-argmax rule then unflags protected candidates. ``both``
# intersects the two exact selections.


def _protected(labels, probs):
    """Rows the near-argmax rule never flags (given label = argmax once 1e-6 is added)."""
    bumped = probs.copy()
    bumped[np.arange(labels.size), labels] += 1e-6
    return bumped.argmax(axis=1) == labels


@st.composite
def removal_request(draw, problem_strategy):
    labels, probs = draw(problem_strategy)
    k = probs.shape[1]
    counts = np.bincount(labels, minlength=k)
    fractions = draw(st.lists(st.floats(0.0, 1.0), min_size=k, max_size=k))
    request = np.floor(np.array(fractions) * counts).astype(np.int64)
    min_ex = draw(st.sampled_from([0, 1, 2, 5, 10]))
    frac_noise = draw(st.sampled_from([1.0, 0.5, 0.1]))
    return labels, probs, request, min_ex, frac_noise


@st.composite
def disagreeing_problem(draw, max_k: int = 7, max_n: int = 400):
    """Every given label trails the row's argmax by more than 1e-3: no row is protected
    by the near-argmax rule, so the flagged counts are the candidate counts."""
    seed = draw(st.integers(0, 2**32 - 1))
    k = draw(st.integers(2, max_k))
    n = draw(st.integers(4 * k, max_n))
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.full(k, draw(st.sampled_from([0.3, 0.7, 2.0]))), size=n)
    labels = (probs.argmax(axis=1) + rng.integers(1, k, n)) % k
    far = probs.max(axis=1) - probs[np.arange(n), labels] > 1e-3
    assume(far.sum() >= 2 * k)
    return labels[far], probs[far]


def _flag_all(labels, probs, request, min_ex, frac_noise):
    kw = {"num_to_remove_per_class": request, "min_examples_per_class": min_ex, "frac_noise": frac_noise}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # classes too small to prune
        return {
            f: core.find_label_issues(labels, probs, filter_by=f, **kw)
            for f in ("prune_by_class", "prune_by_noise_rate", "both")
        }


@given(removal_request(disagreeing_problem()))
def test_num_to_remove_flags_exactly_the_request_per_class(case):
    labels, probs, request, min_ex, frac_noise = case
    k = probs.shape[1]
    counts = np.bincount(labels, minlength=k)
    eligible = counts > max(min_ex, 1)
    masks = _flag_all(labels, probs, request, min_ex, frac_noise)
    expected = np.where(eligible, request, 0)
    for filter_by in ("prune_by_class", "prune_by_noise_rate"):
        flagged = np.bincount(labels[masks[filter_by]], minlength=k)
        np.testing.assert_array_equal(flagged, expected, err_msg=filter_by)
    both = masks["both"]
    np.testing.assert_array_equal(both, masks["prune_by_class"] & masks["prune_by_noise_rate"])
    assert (np.bincount(labels[both], minlength=k) <= expected).all()


@given(removal_request(noisy_problem()))
def test_num_to_remove_bounds_with_protected_rows(case):
    """Any data: per eligible class, r_k - (protected rows of k) <= flagged <= r_k;
    no protected row and no row of an ineligible class is flagged; ``both`` is the
    intersection of the other two masks."""
    labels, probs, request, min_ex, frac_noise = case
    k = probs.shape[1]
    counts = np.bincount(labels, minlength=k)
    eligible = counts > max(min_ex, 1)
    protected = _protected(labels, probs)
    protected_k = np.bincount(labels[protected], minlength=k)
    masks = _flag_all(labels, probs, request, min_ex, frac_noise)
    for filter_by in ("prune_by_class", "prune_by_noise_rate"):
        mask = masks[filter_by]
        flagged = np.bincount(labels[mask], minlength=k)
        assert not (mask & protected).any(), filter_by
        assert (flagged[~eligible] == 0).all(), filter_by
        assert (flagged <= request).all(), filter_by
        assert (flagged[eligible] >= request[eligible] - protected_k[eligible]).all(), filter_by
    np.testing.assert_array_equal(masks["both"], masks["prune_by_class"] & masks["prune_by_noise_rate"])


@given(removal_request(disagreeing_problem()))
def test_num_to_remove_the_whole_class_flags_the_whole_class(case):
    labels, probs, _, min_ex, frac_noise = case
    counts = np.bincount(labels, minlength=probs.shape[1])
    eligible = counts > max(min_ex, 1)
    masks = _flag_all(labels, probs, counts, min_ex, frac_noise)
    for filter_by, mask in masks.items():
        np.testing.assert_array_equal(mask, eligible[labels], err_msg=filter_by)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_confidence_then_margin_orders_by_confidence_then_by_margin(dtype):
    probs = np.array(
        [
            [0.5, 0.5, 0.0],  # self-confidence 0.5, margin 0.50
            [0.5, 0.3, 0.2],  # 0.5, margin 0.60
            [0.5, 0.1, 0.4],  # 0.5, margin 0.55
            [0.0, 1.0, 0.0],  # 0.0, margin 0.00
            [0.0, 0.5, 0.5],  # 0.0, margin 0.25
            [0.6, 0.0, 0.4],  # 0.6: after every 0.5 whatever the margins
        ],
        dtype=dtype,
    )
    labels = np.zeros(6, dtype=np.int64)
    scores = core.get_label_quality_scores(labels, probs, method="confidence_then_margin")
    np.testing.assert_array_equal(np.argsort(scores, kind="stable"), [3, 4, 0, 2, 1, 5])
    ranked = core.order_label_issues(np.ones(6, bool), labels, probs, rank_by="confidence_then_margin")
    np.testing.assert_array_equal(ranked, [3, 4, 0, 2, 1, 5])
    plain = core.get_label_quality_scores(labels, probs)  # cleanlab's default keeps the ties
    assert plain[0] == plain[1] == plain[2] and plain[3] == plain[4]
