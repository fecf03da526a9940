"""Where we deliberately differ from cleanlab 2.9.0 (docs/differences-from-cleanlab.md)."""

import json
import os
import warnings
from pathlib import Path

import numpy as np
import pytest

import cl_pipeline.core as core

LABEL_ERRORS = Path(os.environ["CL_LABEL_ERRORS_DIR"])  # set in tests/conftest.py


def _mnist():
    folder = LABEL_ERRORS / "mnist"
    if not folder.is_dir():
        pytest.fail(f"shared label-error data missing at {folder}")
    probs = np.load(folder / "pred_probs.npy")
    labels = np.load(folder / "labels.npy")
    confirmed = np.array(json.loads((folder / "confirmed.json").read_text())["indices"])
    return labels, probs, confirmed


def test_entropy_score_of_a_certain_correct_example_is_one_not_zero():
    probs = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.4, 0.35, 0.25]])
    labels = np.array([0, 1, 1])
    scores = core.get_label_quality_scores(labels, probs, method="confidence_weighted_entropy")
    assert scores[0] == pytest.approx(1.0)
    assert scores[1] == pytest.approx(1.0)
    assert scores[2] < scores[0]  # the uncertain example ranks as more suspicious


def test_entropy_ranking_on_mnist_puts_confirmed_errors_first():
    from cleanlab.rank import get_label_quality_scores as reference_scores

    labels, probs, confirmed = _mnist()
    ours = core.get_label_quality_scores(labels, probs, method="confidence_weighted_entropy")
    theirs = reference_scores(labels, probs, method="confidence_weighted_entropy")
    k = confirmed.size
    ours_at_k = np.isin(np.argsort(ours, kind="stable")[:k], confirmed).mean()
    theirs_at_k = np.isin(np.argsort(theirs, kind="stable")[:k], confirmed).mean()
    assert theirs_at_k == 0.0  # the reference's floor sends certain examples to the top
    assert ours_at_k > theirs_at_k
    assert _average_precision(ours, confirmed) > 2 * _average_precision(theirs, confirmed)
    # every example the floor affects (x < 1e-6) is certain and scores ~1 with us
    own = probs[np.arange(labels.size), labels]
    p = np.clip(probs, 1e-300, None)
    x = -(probs * np.log(p)).sum(axis=1) / np.log(probs.shape[1]) / np.maximum(own, 1e-6)
    affected = x < 1e-6
    assert affected.sum() == 2856  # the count the spec reports for MNIST
    assert (ours[affected] > 0.999).all()
    assert (theirs[affected] < ours[affected]).all()
    assert np.median(theirs[affected]) < 0.5  # the reference scores them ~ x * 1e6


def _average_precision(scores, positives):
    ranked = np.isin(np.argsort(scores, kind="stable"), positives)
    hits = np.cumsum(ranked)
    return float((hits[ranked] / (np.flatnonzero(ranked) + 1)).mean())


def _all_rows_disagree(rng, n=600, k=4):
    """Every given label is far from the argmax, so no row is kept by the near-argmax rule."""
    probs = rng.dirichlet(np.full(k, 0.7), size=n)
    labels = (probs.argmax(axis=1) + rng.integers(1, k, n)) % k
    gap = probs.max(axis=1) - probs[np.arange(n), labels]
    keep = gap > 1e-3
    return labels[keep], probs[keep]


@pytest.mark.parametrize("filter_by", ["prune_by_noise_rate", "prune_by_class", "both"])
def test_num_to_remove_per_class_is_exact(rng, filter_by):
    labels, probs = _all_rows_disagree(rng)
    k = probs.shape[1]
    counts = np.bincount(labels, minlength=k)
    request = np.minimum(counts - 2, [5, 17, 0, 40])
    mask = core.find_label_issues(labels, probs, filter_by=filter_by, num_to_remove_per_class=request)
    flagged = np.bincount(labels[mask], minlength=k)
    if filter_by == "both":  # intersection of two exact selections: at most the request
        assert (flagged <= request).all()
    else:
        np.testing.assert_array_equal(flagged, request)


def test_reference_num_to_remove_with_noise_rate_is_not_exact(rng):
    """Documents the upstream defect our exact version fixes."""
    from cleanlab.filter import find_label_issues as reference

    labels, probs = _all_rows_disagree(rng)
    k = probs.shape[1]
    counts = np.bincount(labels, minlength=k)
    request = np.minimum(counts - 2, [5, 17, 0, 40])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = reference(
            labels, probs, filter_by="prune_by_noise_rate", num_to_remove_per_class=list(request), n_jobs=1
        )
    assert not np.array_equal(np.bincount(labels[theirs], minlength=k), request)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_paper_argmax_rule_picks_the_most_probable_confident_class(dtype):
    thresholds = np.array([0.5, 0.3, 0.33])
    probs = np.array(
        [
            [0.36, 0.30, 0.34],  # 1 and 2 confident; argmax 0 is not confident
            [0.10, 0.60, 0.30],  # only 1 confident
            [0.20, 0.20, 0.60],  # only 2 confident
            [0.60, 0.35, 0.05],  # 0 and 1 confident; argmax 0 is confident
        ],
        dtype=dtype,
    )
    labels = np.array([1, 1, 2, 0])
    ref = core.compute_confident_joint(labels, probs, thresholds=thresholds, calibrate=False)
    paper = core.compute_confident_joint(labels, probs, thresholds=thresholds, calibrate=False, argmax_rule="paper")
    assert ref[1, 0] == 1 and ref[1, 2] == 0  # reference: argmax over all classes -> 0
    assert paper[1, 0] == 0 and paper[1, 2] == 1  # paper: most probable confident class -> 2
    np.testing.assert_array_equal(np.delete(ref, 1, axis=0), np.delete(paper, 1, axis=0))


@pytest.mark.parametrize("filter_by", ["prune_by_noise_rate", "both"])
def test_request_above_class_size_is_rejected_where_our_counts_are_exact(rng, filter_by):
    """cleanlab accepts ``num_to_remove_per_class[k] > n_k`` for every prune filter; for
    these two our contract is an exact count, which cannot be met: ValueError naming the
    argument, the class and n_k. (``prune_by_class`` keeps cleanlab's "whole class".)"""
    from cleanlab.filter import find_label_issues as reference

    labels, probs = _all_rows_disagree(rng)
    counts = np.bincount(labels, minlength=probs.shape[1])
    request = [int(counts[0]) + 1, 1, 1, 1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = reference(labels, probs, filter_by=filter_by, num_to_remove_per_class=request, n_jobs=1)
    assert theirs.dtype == bool  # accepted upstream
    with pytest.raises(ValueError, match=rf"num_to_remove_per_class\[0\] = {request[0]} exceeds n_0 = {counts[0]}"):
        core.find_label_issues(labels, probs, filter_by=filter_by, num_to_remove_per_class=request)


def test_overall_health_score_rejects_the_confident_joint_cleanlab_ignores(rng):
    from cleanlab.dataset import overall_label_health_score as reference

    labels, probs = _all_rows_disagree(rng)
    joint = core.compute_confident_joint(labels, probs, calibrate=False)
    other = np.full_like(joint, 7)  # any joint: cleanlab's score does not change
    with pytest.warns(UserWarning, match="ignored"):
        theirs = reference(labels, probs, confident_joint=other, verbose=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert theirs == reference(labels, probs, verbose=False)
    with pytest.raises(ValueError, match="confident_joint"):
        core.overall_label_health_score(labels, probs, confident_joint=other)
    assert core.overall_label_health_score(labels, probs) == pytest.approx(theirs, abs=1e-12)
