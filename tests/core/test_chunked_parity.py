"""Parity with cleanlab 2.9.0 on the core's multi-chunk, multi-thread path.

Every hypothesis input of ``test_parity.py`` fits in one 4 MiB chunk, so there
the chunked passes (self-confidence, the confident pass, scores, validation) and
the threads over chunks run a single chunk. Here the same checks (imported from
``test_parity``) run with tiny chunks (``_chunking.chunked_core``: a fixed number
of rows per chunk, 3 threads), and one case of 200,000 rows runs against
cleanlab at the core's own chunk size (four 4 MiB chunks, 3 threads).

A planted bug that rotated the confident guesses of every chunk after the first
passed the whole suite before these tests; it fails them now (see the commit).
"""

import threading

import numpy as np
import pytest
from hypothesis import given, settings

from cl_pipeline import core
from cl_pipeline.core import _count, _validation

from ._chunking import chunked_core
from ._kit import ALL_FILTERS, cases, describe_case, examples
from .test_parity import (
    check_confident_joint,
    check_find,
    check_health,
    check_num_label_issues,
    check_order,
    check_py_and_noise,
    check_scores,
    check_thresholds,
)

# (rows per chunk, threads): a prime (chunk edges fall anywhere), a power of two
CHUNKINGS = [(7, 3), (64, 2)]


@pytest.fixture(scope="module", params=CHUNKINGS, ids=[f"{r}_rows_{t}_threads" for r, t in CHUNKINGS])
def chunking(request):
    """Module-scoped (hypothesis re-runs the test body, not the fixture)."""
    rows, threads = request.param
    with chunked_core(rows, threads):
        yield rows, threads


def test_the_patch_really_splits_the_work_into_chunks_on_threads(chunking, monkeypatch):
    """The validation hook sees one call per chunk, covering every row once; the first two chunks
    wait for each other (a barrier), so they must run at the same time on two threads."""
    rows, threads = chunking
    seen = []
    original = _validation.check_probability_block
    both_first_chunks = threading.Barrier(2, timeout=10)

    def spy(block, first_row, name="pred_probs"):
        seen.append((first_row, block.shape[0], threading.current_thread().name))
        if first_row in (0, rows):
            both_first_chunks.wait()  # BrokenBarrierError if the chunks run one after the other
        return original(block, first_row, name)

    monkeypatch.setattr(_validation, "check_probability_block", spy)
    n = 600
    labels = np.arange(n) % 4
    probs = np.random.default_rng(0).dirichlet(np.ones(4), size=n)
    core.compute_confident_joint(labels, probs)
    starts = sorted(s for s, _, _ in seen)
    assert starts == list(range(0, n, rows)), "chunks must tile the rows in steps of the patched size"
    assert sum(size for _, size, _ in seen) == n
    assert len({name for _, _, name in seen}) >= 2, "the chunks all ran on one thread"


@settings(max_examples=examples(25))
@given(case=cases(max_n=1500))
def test_thresholds_and_confident_joint(chunking, case):
    describe_case(case)
    check_thresholds(case.labels, case.pred_probs)
    for calibrate in (False, True):
        check_confident_joint(case.labels, case.pred_probs, calibrate)
    for method in ("off_diagonal", "off_diagonal_calibrated"):
        check_num_label_issues(case.labels, case.pred_probs, method)


@pytest.mark.parametrize("filter_by", ALL_FILTERS)
@settings(max_examples=examples(8))
@given(case=cases(max_n=1500))
def test_find_label_issues(chunking, case, filter_by):
    check_find(case.labels, case.pred_probs, filter_by, 1.0, 1, category=f"chunked: find_label_issues[{filter_by}]")


@settings(max_examples=examples(12))
@given(case=cases(max_n=1500))
def test_scores_order_and_latent(chunking, case):
    labels, p = case.labels, case.pred_probs
    for method in ("self_confidence", "normalized_margin"):
        for adjust in (False, True):
            check_scores(labels, p, method, adjust)
        check_order(labels, p, method, as_indices=False)
    check_py_and_noise(labels, p, "cnt", True, True)


@settings(max_examples=examples(8))
@given(case=cases(max_n=1000))
def test_health_tables(chunking, case):
    check_health(case.labels, case.pred_probs, supplied_raw=False)


@settings(max_examples=examples(10))
@given(case=cases(max_n=1500))
def test_paper_argmax_rule_does_not_depend_on_chunking(chunking, case):
    """No oracle for the paper's rule: the chunked joint must equal the one-chunk joint."""
    labels, p = case.labels, case.pred_probs
    chunked = core.compute_confident_joint(labels, p, calibrate=False, argmax_rule="paper")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_count, "chunk_rows", lambda num_classes, itemsize=4: p.shape[0])
        whole = core.compute_confident_joint(labels, p, calibrate=False, argmax_rule="paper")
    np.testing.assert_array_equal(chunked, whole)


# --------------------------------------------------------------------------------------
# 200,000 rows against cleanlab
# --------------------------------------------------------------------------------------

N_LARGE, K_LARGE = 200_000, 10


@pytest.fixture(scope="module")
def large_case():
    """The benchmark's distribution: rows ~ Dirichlet(0.05 + 3 onehot(true)), 20% of labels
    flipped; float64, so 16 MB: four chunks at the core's own 4 MiB size."""
    rng = np.random.default_rng(20_000_0)
    true = rng.integers(0, K_LARGE, size=N_LARGE)
    alpha = np.full((N_LARGE, K_LARGE), 0.05)
    alpha[np.arange(N_LARGE), true] += 3.0
    g = rng.standard_gamma(alpha)
    p = g / g.sum(axis=1, keepdims=True)
    labels = true.copy()
    flip = rng.random(N_LARGE) < 0.2
    labels[flip] = (true[flip] + rng.integers(1, K_LARGE, size=flip.sum())) % K_LARGE
    return labels, p


def test_200k_rows_full_parity(large_case, monkeypatch):
    """At the core's own chunk size (no patch), on 3 threads."""
    labels, p = large_case
    assert _count.chunk_rows(K_LARGE, p.itemsize) * 3 < N_LARGE, "the case must span several chunks"
    monkeypatch.setenv("CL_PIPELINE_NUM_THREADS", "3")
    check_thresholds(labels, p)
    for calibrate in (False, True):
        check_confident_joint(labels, p, calibrate)
    check_num_label_issues(labels, p, "off_diagonal")
    for filter_by in ALL_FILTERS:
        check_find(labels, p, filter_by, 1.0, 1, category=f"200k rows: find_label_issues[{filter_by}]")
    check_scores(labels, p, "normalized_margin", False)
