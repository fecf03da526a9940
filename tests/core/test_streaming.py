"""The batched engine (``cl_pipeline.core._streaming``) equals the in-memory engine.

Every pass runs through the state API the way workers would: the batches are
dealt in random order to several states, some states are pickled and
unpickled, and the states are merged in a random tree. The results must equal
``get_confident_thresholds`` (bit for bit, same dtype), ``compute_confident_joint``,
``num_label_issues``, ``find_label_issues``, ``order_label_issues`` and
``get_label_quality_scores``, for every filter and score, float32 and float64,
batch sizes from 1 row to the whole set, classes absent from batches.

Inputs come from ``_kit.cases()`` (the parity tests' generator: ties, duplicates,
one-hot and uniform rows, absent classes...). A failing example prints as
``build_case(CaseSpec(...))`` plus the split and merge seed.
"""

import pickle
import warnings
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cl_pipeline import core
from cl_pipeline.core import _pairwise, _select

from ._kit import CaseSpec, build_case, cases, examples, oracle_thresholds

SCORE_METHODS = core.SCORE_METHODS

# The kit's generator places rows on cleanlab's decision boundaries (CaseSpec.boundary_frac), which
# imports cleanlab; doing that once here keeps the import (which touches the `random` module) out of
# hypothesis' data generation.
oracle_thresholds(np.array([0, 1]), np.eye(2))


# --------------------------------------------------------------------------------------
# driving the passes like workers would
# --------------------------------------------------------------------------------------


def split_rows(n: int, kind: str, rng: np.random.Generator) -> list[int]:
    """Batch starts (then n) for a split of ``n`` rows."""
    if kind == "whole":
        return [0, n]
    if kind.startswith("size_"):
        return list(range(0, n, int(kind[5:]))) + [n]
    cuts = rng.choice(np.arange(1, n), size=min(n - 1, int(rng.integers(1, 12))), replace=False) if n > 1 else []
    return [0, *sorted(int(c) for c in cuts), n]


@dataclass
class Run:
    """One way of running the passes: where batches start, how states are dealt and merged."""

    starts: list[int]
    seed: int
    workers: int

    def batches(self, labels, probs):
        return [(labels[a:b], probs[a:b], a) for a, b in zip(self.starts, self.starts[1:], strict=False)]

    def run_pass(self, make_state, labels, probs):
        """Deal the batches to ``workers`` states in random order, then merge them in a random tree."""
        rng = np.random.default_rng(self.seed)
        batches = self.batches(labels, probs)
        states = [make_state() for _ in range(self.workers)]
        for i in rng.permutation(len(batches)):
            lab, pp, offset = batches[i]
            states[rng.integers(self.workers)].update(lab, pp, offset=offset)
        states = [pickle.loads(pickle.dumps(s)) if rng.random() < 0.5 else s for s in states]
        while len(states) > 1:
            i, j = rng.choice(len(states), 2, replace=False)
            merged = states[i].merge(states[j])
            states = [s for t, s in enumerate(states) if t not in (i, j)] + [merged]
        return states[0].result()

    def everything(self, labels, probs, **options):
        """All passes; returns (thresholds, joint, issues, per-row output of pass 5)."""
        k = probs.shape[1]
        counts = self.run_pass(lambda: core.ClassCountsState(k), labels, probs)
        thresholds = self.run_pass(lambda: core.ThresholdsState(counts), labels, probs)
        joint = self.run_pass(lambda: core.ConfidentJointState(thresholds, class_counts=counts), labels, probs)
        plan = core.plan_label_issues(joint, thresholds, **options)
        issues = self.run_pass(lambda: core.IssueSelectionState(plan), labels, probs)
        rng = np.random.default_rng(self.seed + 1)
        parts = self.batches(labels, probs)
        outputs = {}
        for i in rng.permutation(len(parts)):  # pass 5 in any order, reassembled by offset
            lab, pp, offset = parts[i]
            outputs[offset] = issues.score_batch(lab, pp, offset=offset)
        out = [outputs[o] for o in sorted(outputs)]
        per_row = core.IssueBatch(*(np.concatenate([getattr(b, f) for b in out]) for f in core.IssueBatch._fields))
        return thresholds, joint, issues, per_row


@st.composite
def runs(draw, n: int, kinds=("whole", "size_1", "size_7", "size_64", "random_cuts")):
    kind = draw(st.sampled_from([k for k in kinds if k != "size_1" or n <= 300]))
    seed = draw(st.integers(0, 2**32 - 1))
    return Run(split_rows(n, kind, np.random.default_rng(seed)), seed, draw(st.sampled_from([1, 2, 3])))


def in_memory(labels, probs, *, rank_by="self_confidence", adjust_pred_probs=False, **options):
    mask = core.find_label_issues(labels, probs, **options)
    order = core.order_label_issues(mask, labels, probs, rank_by=rank_by, adjust_pred_probs=adjust_pred_probs)
    scores = core.get_label_quality_scores(labels, probs, method=rank_by, adjust_pred_probs=adjust_pred_probs)
    return mask, order, scores


def check_equal(labels, probs, run: Run, **options):
    """Every result of the batched engine equals the in-memory engine's."""
    with warnings.catch_warnings(record=True) as theirs:
        warnings.simplefilter("always")
        mask, order, scores = in_memory(labels, probs, **options)
    with warnings.catch_warnings(record=True) as ours:
        warnings.simplefilter("always")
        thresholds, joint, issues, per_row = run.everything(labels, probs, **options)
    assert sorted(str(w.message) for w in ours) == sorted(str(w.message) for w in theirs), "different warnings"
    expected_t = core.get_confident_thresholds(labels, probs)
    assert thresholds.dtype == expected_t.dtype
    np.testing.assert_array_equal(thresholds, expected_t, err_msg="thresholds differ")
    np.testing.assert_array_equal(joint.raw, core.compute_confident_joint(labels, probs, calibrate=False))
    np.testing.assert_array_equal(joint.calibrated, core.compute_confident_joint(labels, probs))
    assert joint.num_label_issues == core.num_label_issues(labels, probs)
    np.testing.assert_array_equal(issues.mask(), mask, err_msg=f"mask differs ({options})")
    np.testing.assert_array_equal(issues.indices, order, err_msg="ranking differs")
    assert per_row.quality_score.dtype == scores.dtype
    np.testing.assert_array_equal(per_row.quality_score, scores, err_msg="scores differ")
    np.testing.assert_array_equal(per_row.is_label_issue, mask)
    np.testing.assert_array_equal(per_row.rank[order], np.arange(order.shape[0]))
    assert (per_row.rank[~mask] == -1).all()


# --------------------------------------------------------------------------------------
# streaming == in memory (hypothesis)
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("filter_by", core.FILTER_METHODS)
@settings(max_examples=examples(12))
@given(data=st.data(), case=cases(max_n=1500))
def test_every_filter_equals_in_memory(data, case, filter_by):
    run = data.draw(runs(case.n), label="run")
    rank_by = data.draw(st.sampled_from(SCORE_METHODS), label="rank_by")
    adjust = rank_by != "confidence_weighted_entropy" and data.draw(st.booleans(), label="adjust_pred_probs")
    check_equal(case.labels, case.pred_probs, run, filter_by=filter_by, rank_by=rank_by, adjust_pred_probs=adjust)


@pytest.mark.parametrize("rank_by", SCORE_METHODS)
@pytest.mark.parametrize("adjust", [False, True], ids=["raw_probs", "adjust_pred_probs"])
@settings(max_examples=examples(6))
@given(data=st.data(), case=cases(max_n=1500))
def test_every_score_equals_in_memory(data, case, rank_by, adjust):
    if adjust and rank_by == "confidence_weighted_entropy":
        return  # not a valid combination (ValueError, tested below)
    run = data.draw(runs(case.n), label="run")
    check_equal(case.labels, case.pred_probs, run, rank_by=rank_by, adjust_pred_probs=adjust)


@pytest.mark.parametrize("filter_by", core.PRUNE_METHODS)
@settings(max_examples=examples(10))
@given(data=st.data(), case=cases(max_n=1500))
def test_prune_options_equal_in_memory(data, case, filter_by):
    """frac_noise, min_examples_per_class, num_to_remove_per_class and a supplied joint."""
    run = data.draw(runs(case.n), label="run")
    counts = np.bincount(case.labels, minlength=case.K)
    option = data.draw(st.sampled_from(["frac_noise", "min_examples", "num_to_remove", "supplied_joint"]))
    rng = np.random.default_rng(run.seed)
    if option == "frac_noise":
        options = {"frac_noise": data.draw(st.floats(0.01, 1.0))}
    elif option == "min_examples":
        options = {"min_examples_per_class": data.draw(st.integers(0, 30))}
    elif option == "num_to_remove":
        options = {
            "num_to_remove_per_class": [int(rng.integers(0, c + 1)) for c in counts],
            "min_examples_per_class": data.draw(st.sampled_from([0, 1, 5])),
        }
    else:
        options = {"confident_joint": rng.integers(0, 60, size=(case.K, case.K))}
    check_equal(case.labels, case.pred_probs, run, filter_by=filter_by, **options)


@pytest.mark.parametrize("filter_by", ["prune_by_noise_rate", "both", "low_self_confidence", "confident_learning"])
@settings(max_examples=examples(6))
@given(case=cases(max_n=200), seed=st.integers(0, 2**32 - 1))
def test_batches_of_one_row(case, seed, filter_by):
    check_equal(case.labels, case.pred_probs, Run(list(range(case.n + 1)), seed, 3), filter_by=filter_by)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("filter_by", ["prune_by_noise_rate", "prune_by_class", "low_normalized_margin"])
def test_rows_sorted_by_class_so_most_batches_miss_most_classes(rng, dtype, filter_by):
    case = build_case(CaseSpec(seed=int(rng.integers(2**31)), n=2000, K=7, dtype=dtype, noise=0.3, n_absent=1))
    order = np.argsort(case.labels, kind="stable")
    labels, probs = case.labels[order], case.pred_probs[order]
    bounds = np.flatnonzero(np.diff(labels)) + 1
    starts = sorted({0, *bounds.tolist(), *range(0, 2000, 300), 2000})  # batches within one class, some across two
    check_equal(labels, probs, Run(starts, int(rng.integers(2**31)), 3), filter_by=filter_by)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_driver_equals_in_memory_and_does_not_depend_on_batch_size(rng, dtype):
    case = build_case(CaseSpec(seed=int(rng.integers(2**31)), n=5000, K=10, dtype=dtype, noise=0.2, quantize=32))
    labels, probs = case.labels, case.pred_probs
    mask, order, scores = in_memory(labels, probs, filter_by="both", rank_by="confidence_then_margin")
    for size in (1000, 4999, 5000, 777):
        batches = [(labels[i : i + size], probs[i : i + size]) for i in range(0, 5000, size)]
        out = core.find_label_issues_batched(batches, filter_by="recommended", rank_by="confidence_then_margin")
        np.testing.assert_array_equal(out.thresholds, core.get_confident_thresholds(labels, probs))
        np.testing.assert_array_equal(out.issues.mask(), mask)
        np.testing.assert_array_equal(out.issues.indices, order)
        written = list(core.score_batches(out.issues, lambda b=batches: iter(b)))
        np.testing.assert_array_equal(np.concatenate([w.quality_score for w in written]), scores)
        np.testing.assert_array_equal(np.concatenate([w.is_label_issue for w in written]), mask)
    # pass 5 may batch the rows differently from the other passes
    parts = [out.issues.score_batch(labels[a:b], probs[a:b], offset=a) for a, b in ((0, 3), (3, 2500), (2500, 5000))]
    rank = np.concatenate([p.rank for p in parts])
    np.testing.assert_array_equal(rank[order], np.arange(order.shape[0]))
    np.testing.assert_array_equal(rank >= 0, mask)


def test_thread_count_does_not_change_results(monkeypatch, rng):
    case = build_case(CaseSpec(seed=int(rng.integers(2**31)), n=3000, K=6, dtype="float32", quantize=16))
    run = Run(split_rows(3000, "random_cuts", rng), int(rng.integers(2**31)), 2)
    results = []
    for threads in ("1", "3"):
        monkeypatch.setenv("CL_PIPELINE_NUM_THREADS", threads)
        thresholds, joint, issues, per_row = run.everything(case.labels, case.pred_probs, filter_by="both")
        results.append((thresholds, joint.calibrated, issues.indices, per_row.rank))
    for a, b in zip(*results, strict=True):
        np.testing.assert_array_equal(a, b)


# --------------------------------------------------------------------------------------
# thresholds: numpy's pairwise summation, bit for bit
# --------------------------------------------------------------------------------------

SIZES = list(range(1, 301)) + [383, 384, 385, 1000, 1023, 1024, 1025, 4097, 65543]


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_pairwise_sum_is_numpys_for_every_size(rng, dtype):
    for n in SIZES:
        values = rng.random(n).astype(dtype)
        total = _pairwise.subtree_sums(values, np.array([0]), np.array([n]))[0]
        assert total == np.add.reduce(values) and total.dtype == dtype, n


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("n_k", [1, 7, 8, 9, 15, 16, 17, 127, 128, 129, 136, 255, 256, 257, 300, 1000, 4097])
def test_threshold_is_numpys_mean_of_the_class_under_any_split(rng, dtype, n_k):
    """Class 0 has n_k rows interleaved with class 1; random batches dealt and merged at random."""
    n = n_k + int(rng.integers(1, 200))
    labels = np.ones(n, dtype=np.int64)
    labels[rng.choice(n, n_k, replace=False)] = 0
    probs = rng.dirichlet([0.5, 0.5], size=n).astype(dtype)
    for trial in range(4):
        run = Run(split_rows(n, "random_cuts", rng), int(rng.integers(2**31)), 1 + trial)
        counts = run.run_pass(lambda: core.ClassCountsState(2), labels, probs)
        t = run.run_pass(lambda: core.ThresholdsState(counts), labels, probs)
        own = probs[np.arange(n), labels]
        for k in (0, 1):
            mean = np.mean(own[labels == k])
            assert t[k] == max(mean, dtype(2e-6)) and t.dtype == dtype, (n_k, k)


@settings(max_examples=examples(30))
@given(case=cases(max_n=1500), seed=st.integers(0, 2**32 - 1), kind=st.sampled_from(["whole", "size_7", "random_cuts"]))
def test_thresholds_in_one_ordered_sweep_equal_the_in_memory_ones(case, seed, kind):
    """Passes 1 and 2 in one sweep (n_k known up front, batches in row order) give t bit for bit."""
    labels, probs = case.labels, case.pred_probs
    state = core.InOrderThresholdsState(np.bincount(labels, minlength=case.K))
    starts = split_rows(case.n, kind, np.random.default_rng(seed))
    for a, b in zip(starts, starts[1:], strict=False):
        state.update(labels[a:b], probs[a:b], offset=a)
    expected = core.get_confident_thresholds(labels, probs)
    result = state.result()
    assert result.dtype == expected.dtype
    np.testing.assert_array_equal(result, expected)


@pytest.mark.parametrize(
    ("feed", "message"),
    [
        pytest.param([(10, 20)], "row order: expected offset=0, got offset=10", id="skips-the-start"),
        pytest.param([(0, 10), (0, 10)], "expected offset=10, got offset=0", id="a-batch-twice"),
        pytest.param([(0, 10), (20, 40)], "expected offset=10, got offset=20", id="a-gap"),
        pytest.param([(0, 30)], "not class_totals", id="rows-missing"),
    ],
)
def test_the_ordered_sweep_refuses_rows_out_of_order_or_missing(rng, feed, message):
    labels = rng.integers(0, 3, 40)
    probs = rng.dirichlet(np.ones(3), 40)
    state = core.InOrderThresholdsState(np.bincount(labels, minlength=3))
    with pytest.raises(ValueError, match=message):
        for a, b in feed:
            state.update(labels[a:b], probs[a:b], offset=a)
        state.result()


@pytest.mark.parametrize(
    ("totals", "error"),
    [
        pytest.param([3.0, 4.0], TypeError, id="floats"),
        pytest.param([[3, 4]], TypeError, id="2-d"),
        pytest.param([5], ValueError, id="one-class"),
        pytest.param([5, -1], ValueError, id="negative"),
    ],
)
def test_the_ordered_sweep_checks_its_class_totals(totals, error):
    with pytest.raises(error, match="class_totals|num_classes"):
        core.InOrderThresholdsState(np.asarray(totals))


def test_wrong_class_totals_are_caught(rng):
    labels = rng.integers(0, 2, 50)
    probs = rng.dirichlet(np.ones(2), 50)
    counts = np.bincount(labels, minlength=2)
    too_few = core.InOrderThresholdsState(counts - [1, 0])  # more rows of class 0 than announced
    with pytest.raises(ValueError):
        too_few.update(labels, probs, offset=0)
        too_few.result()


def test_piece_sets_hold_little_whatever_the_size(rng):
    """In-order updates keep one piece per class with fewer than 2 * 128 raw values."""
    n, k = 200_000, 5
    labels = rng.integers(0, k, n)
    probs = rng.dirichlet(np.ones(k), size=n).astype(np.float32)
    counts = core.ClassCountsState(k)
    for start in range(0, n, 30_011):
        counts.update(labels[start : start + 30_011], offset=start)
    state = core.ThresholdsState(counts.result())
    for start in range(0, n, 30_011):
        state.update(labels[start : start + 30_011], probs[start : start + 30_011], offset=start)
        for sums in state.sums:
            assert len(sums.pieces) == 1 and sums.pieces[0].raw_pos.shape[0] < 2 * _pairwise.LEAF
            assert len(sums.pieces[0].nodes) <= 2 * 20
    np.testing.assert_array_equal(state.result(), core.get_confident_thresholds(labels, probs))


# --------------------------------------------------------------------------------------
# the tie rule: among equal keys, the lowest row index is selected
# --------------------------------------------------------------------------------------


@settings(max_examples=examples(50))
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 300), m=st.integers(0, 320), levels=st.integers(1, 6))
def test_smallest_takes_the_lowest_positions_among_tied_keys(seed, n, m, levels):
    values = np.random.default_rng(seed).integers(0, levels, n).astype(np.float32)
    chosen = np.sort(_select.smallest(values, m))
    expected = np.sort(np.lexsort((np.arange(n), values))[: max(m, 0)])
    np.testing.assert_array_equal(chosen, expected)


@settings(max_examples=examples(40))
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 3000),
    groups=st.integers(1, 6),
    levels=st.integers(1, 8),
    parts=st.integers(1, 5),
)
def test_grouped_smallest_equals_a_full_sort_under_any_offer_and_merge_order(seed, n, groups, levels, parts):
    rng = np.random.default_rng(seed)
    group = rng.integers(0, groups, n)
    key = rng.integers(0, levels, n).astype(np.float64)
    row = rng.permutation(10 * n)[:n]
    capacity = rng.integers(0, n // groups + 3, groups)
    states = [_select.GroupedSmallest(capacity, np.float64, {"tag": np.int64}) for _ in range(parts)]
    for chunk in np.array_split(rng.permutation(n), 2 * parts):
        states[rng.integers(parts)].offer(group[chunk], key[chunk], row[chunk], tag=row[chunk] * 2)
    while len(states) > 1:
        states = [states[0].merge(states[-1])] + states[1:-1]
    got = states[0].selected(ordered=True)
    order = np.lexsort((row, key, group))
    rank = np.arange(n) - np.searchsorted(group[order], group[order])
    expected = order[rank < capacity[group[order]]]
    np.testing.assert_array_equal(got["row"], row[expected])
    np.testing.assert_array_equal(got["tag"], 2 * row[expected])


@settings(max_examples=examples(25))
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 2000), groups=st.integers(1, 5), buffer=st.integers(1, 40))
def test_grouped_smallest_with_frequent_compactions(seed, n, groups, buffer):
    """Compactions every few entries (a tiny ``MIN_BUFFER``) select the same entries as a full sort."""
    rng = np.random.default_rng(seed)
    group, key = rng.integers(0, groups, n), rng.integers(0, 5, n).astype(np.float32)
    row = rng.permutation(3 * n)[:n]
    capacity = rng.integers(0, n // groups + 3, groups)
    state = _select.GroupedSmallest(capacity, np.float32, {"tag": np.int64})
    state.MIN_BUFFER = buffer  # the instance's threshold: compact as soon as `buffer` entries wait
    for chunk in np.array_split(np.arange(n), max(1, n // 7)):
        state.offer(group[chunk], key[chunk], row[chunk], tag=row[chunk] + 1)
        assert state.pending_size <= max(int(capacity.sum()) // 2, buffer)
    got = state.selected(ordered=True)
    order = np.lexsort((row, key, group))
    rank = np.arange(n) - np.searchsorted(group[order], group[order])
    expected = order[rank < capacity[group[order]]]
    np.testing.assert_array_equal(got["row"], row[expected])
    np.testing.assert_array_equal(got["tag"], row[expected] + 1)


def tied_case(n=60):
    """Class 0 (rows 0..n-1): p[:, 0] = 0.25 on every third row, 0.4 (tied) elsewhere; class 1 confident."""
    p0 = np.where(np.arange(n) % 3 == 0, 0.25, 0.4)
    probs = np.concatenate([np.stack([p0, 1 - p0], axis=1), np.tile([[0.1, 0.9]], (n, 1))])
    return np.repeat([0, 1], n), probs


def batched_mask(labels, probs, size=7, **kw):
    batches = [(labels[i : i + size], probs[i : i + size]) for i in range(0, labels.shape[0], size)]
    return core.find_label_issues_batched(batches, **kw).issues.mask()


@pytest.mark.parametrize("engine", ["in_memory", "batched"])
@pytest.mark.parametrize("filter_by", ["prune_by_class", "prune_by_noise_rate", "both"])
def test_ties_at_the_cut_go_to_the_lowest_rows(engine, filter_by):
    """26 to remove from class 0: the 20 rows at 0.25 (margin 0.5), then the 6 lowest of the 40 tied
    rows at 0.4 (margin 0.2); no row is protected by the near-argmax rule."""
    labels, probs = tied_case()
    low = np.arange(0, 60, 3)
    tied = np.setdiff1d(np.arange(60), low)
    kw = {"filter_by": filter_by, "num_to_remove_per_class": [26, 0]}
    mask = core.find_label_issues(labels, probs, **kw) if engine == "in_memory" else batched_mask(labels, probs, **kw)
    np.testing.assert_array_equal(np.flatnonzero(mask), np.sort(np.r_[low, tied[:6]]))


@pytest.mark.parametrize("engine", ["in_memory", "batched"])
@pytest.mark.parametrize("filter_by", ["low_self_confidence", "low_normalized_margin"])
def test_low_filters_break_ties_at_the_cut_by_row(engine, filter_by):
    """Quantized probabilities: the cut of m = num_label_issues falls inside a group of equal scores."""
    case = build_case(CaseSpec(seed=5, n=900, K=4, quantize=8, noise=0.3))
    labels, probs = case.labels, case.pred_probs
    scores = core.get_label_quality_scores(labels, probs, method=filter_by[4:])
    m = core.num_label_issues(labels, probs)
    ranked = np.lexsort((np.arange(labels.shape[0]), scores))
    assert scores[ranked[m - 1]] == scores[ranked[m]], "the case must tie at the cut"
    kw = {"filter_by": filter_by}
    mask = core.find_label_issues(labels, probs, **kw) if engine == "in_memory" else batched_mask(labels, probs, **kw)
    np.testing.assert_array_equal(np.flatnonzero(mask), np.sort(ranked[:m]))


def test_tie_rule_picks_lowest_rows_in_noise_rate_cut():
    """A pair cut inside a group of equal margins takes the lowest rows of the group."""
    n = 40
    probs = np.tile([[0.3, 0.7]], (n, 1))  # class 0 rows, all with margin 0.4 towards class 1
    probs[::4] = [0.2, 0.8]  # rows 0, 4, ...: margin 0.6
    labels = np.zeros(n, dtype=np.int64)
    labels = np.r_[labels, np.ones(n, dtype=np.int64)]
    probs = np.r_[probs, np.tile([[0.1, 0.9]], (n, 1))]
    cj = np.array([[5, 15], [0, 40]])  # M[1, 0] = 15 of class 0 towards class 1
    big = np.arange(0, n, 4)  # 10 rows with the larger margin
    tied = np.setdiff1d(np.arange(n), big)
    expected = np.sort(np.r_[big, tied[:5]])
    np.testing.assert_array_equal(np.flatnonzero(core.find_label_issues(labels, probs, confident_joint=cj)), expected)
    batches = [(labels[i : i + 9], probs[i : i + 9]) for i in range(0, 2 * n, 9)]
    out = core.find_label_issues_batched(batches, confident_joint=cj)
    np.testing.assert_array_equal(np.flatnonzero(out.issues.mask()), expected)


# --------------------------------------------------------------------------------------
# memory stays bounded by the selection
# --------------------------------------------------------------------------------------


def test_selection_holds_about_one_and_a_half_times_the_selected_rows(rng):
    n, k = 300_000, 8
    true = rng.integers(0, k, n)
    alpha = np.full((n, k), 0.05)
    alpha[np.arange(n), true] += 3.0
    gamma = rng.standard_gamma(alpha)
    probs = (gamma / gamma.sum(axis=1, keepdims=True)).astype(np.float32)
    flip = rng.random(n) < 0.1
    case_labels = np.where(flip, (true + rng.integers(1, k, n)) % k, true)
    batches = [(case_labels[i : i + 20_000], probs[i : i + 20_000]) for i in range(0, n, 20_000)]
    out = core.find_label_issues_batched(batches)
    state = core.IssueSelectionState(out.issues.plan)
    capacity = int(out.issues.plan.pair_need.sum())
    for i, (lab, pp) in enumerate(batches):
        state.update(lab, pp, offset=20_000 * i)
        pair = state.selections["pair"]
        held = pair.columns["row"].shape[0] + pair.pending_size
        floor = _select.GroupedSmallest.MIN_BUFFER
        assert held <= capacity + max(capacity // 2, floor) + 20_000 * (k - 1)
    np.testing.assert_array_equal(state.result().indices, out.issues.indices)
    assert capacity < n // 5  # the bound is meaningful


# --------------------------------------------------------------------------------------
# errors at the boundary
# --------------------------------------------------------------------------------------


def small():
    case = build_case(CaseSpec(seed=3, n=100, K=3, dtype="float32"))
    return case.labels, case.pred_probs


def test_a_batch_given_twice_or_missing_is_an_error():
    labels, probs = small()
    state = core.ClassCountsState(3)
    state.update(labels[:50], offset=0)
    with pytest.raises(ValueError, match="given twice"):
        state.update(labels[40:60], offset=40)
    state.update(labels[60:], offset=60)
    with pytest.raises(ValueError, match="every row"):  # rows 50..59 missing (pass 1 defines n)
        state.result()
    state.update(labels[50:60], offset=50)
    counts = state.result()
    joint = core.ConfidentJointState(core.get_confident_thresholds(labels, probs), class_counts=counts)
    joint.update(labels[:50], probs[:50], offset=0)
    with pytest.raises(ValueError, match="every row 0..99"):
        joint.result()
    other = core.ConfidentJointState(core.get_confident_thresholds(labels, probs), class_counts=counts)
    other.update(labels[:50], probs[:50], offset=0)
    with pytest.raises(ValueError, match="given twice"):
        joint.merge(other)
    thresholds = core.ThresholdsState(counts)
    with pytest.raises(ValueError, match="offset must be the start of a batch"):
        thresholds.update(labels[10:50], probs[10:50], offset=10)
    thresholds.update(labels[:50], probs[:50], offset=0)
    with pytest.raises(ValueError, match="saw .* of the .* rows of class"):
        thresholds.result()


def test_bad_batches_are_clear_errors():
    labels, probs = small()
    state = core.ConfidentJointState(core.get_confident_thresholds(labels, probs))
    bad = probs[:50].copy()
    bad[7, 1] = np.nan
    with pytest.raises(ValueError, match="row 57"):
        state.update(labels[:50], bad, offset=50)
    with pytest.raises(TypeError, match="pred_probs_batch must have dtype"):
        state.update(labels[:50], probs[:50].astype(np.float16), offset=0)
    state.update(labels[:50], probs[:50], offset=0)
    with pytest.raises(TypeError, match="one dtype across all batches"):
        state.update(labels[50:], probs[50:].astype(np.float64), offset=50)
    with pytest.raises(ValueError, match="K = 3 columns"):
        state.update(labels[50:], np.full((50, 4), 0.25), offset=50)
    with pytest.raises(ValueError, match="labels_batch must be in 0..2"):
        state.update(labels[50:] + 3, probs[50:], offset=50)
    with pytest.raises(ValueError, match="offset must be an integer >= 0"):
        state.update(labels[50:], probs[50:], offset=-1)
    with pytest.raises(TypeError, match="a callable returning a fresh iterable"):
        core.find_label_issues_batched(iter([(labels, probs)]))
    with pytest.raises(ValueError, match="filter_by must be one of"):
        core.find_label_issues_batched([(labels, probs)], filter_by="nope")
    with pytest.raises(ValueError, match="adjust_pred_probs=True is not supported"):
        core.find_label_issues_batched([(labels, probs)], rank_by="confidence_weighted_entropy", adjust_pred_probs=True)
    with pytest.raises(ValueError, match="num_classes must be an integer >= 2"):
        core.ClassCountsState(1)


def test_empty_batches_change_nothing():
    labels, probs = small()
    batches = [
        (labels[:0], probs[:0]),
        (labels[:60], probs[:60]),
        (labels[60:60], probs[60:60]),
        (labels[60:], probs[60:]),
    ]
    out = core.find_label_issues_batched(batches)
    np.testing.assert_array_equal(out.issues.mask(), core.find_label_issues(labels, probs))
    assert [b.rank.shape[0] for b in core.score_batches(out.issues, batches)] == [0, 60, 0, 40]
