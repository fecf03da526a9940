"""On the published MNIST and 20 Newsgroups test-set arrays, the core flags exactly
what cleanlab 2.9.0 flags (15 and 95 examples with the default filter).

Data: the folder named by env ``CL_LABEL_ERRORS_DIR`` (``tests/conftest.py`` points it
at the copy vendored in ``tests/data/label-errors`` unless it is already set), else
``../shared/data/label-errors`` next to the repository. A missing folder is a
failure, not a skip.
"""

import json
import os
from pathlib import Path

import numpy as np
import pytest

from cl_pipeline import core

from ._kit import ALL_FILTERS, expect_filter, oracle, record

DEFAULT_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "label-errors"
# dataset -> (examples flagged by the default filter, confirmed errors among them); README figures
EXPECTED = {"mnist": (15, 7), "20news": (95, 55)}


def data_dir() -> Path:
    env = os.environ.get("CL_LABEL_ERRORS_DIR")
    return Path(env) if env else DEFAULT_DIR


_CACHE: dict = {}


def load(name: str):
    if name not in _CACHE:
        d = data_dir() / name
        missing = [f for f in ("pred_probs.npy", "labels.npy", "confirmed.json") if not (d / f).is_file()]
        if missing:
            pytest.fail(
                f"label-errors data missing: {d} lacks {missing}. Put the shared data at {DEFAULT_DIR} "
                f"or point env CL_LABEL_ERRORS_DIR at a folder holding mnist/ and 20news/."
            )
        confirmed = json.loads((d / "confirmed.json").read_text())
        _CACHE[name] = (np.load(d / "labels.npy"), np.load(d / "pred_probs.npy"), confirmed)
    return _CACHE[name]


def _confirmed_indices(meta) -> set[int]:
    for key in ("confirmed_indices", "indices", "confirmed"):
        if isinstance(meta.get(key), list):
            return {int(i) for i in meta[key]}
    raise AssertionError(f"confirmed.json has no list of indices; keys: {sorted(meta)}")


@pytest.mark.parametrize("name", list(EXPECTED))
def test_default_filter_flags_exactly_what_cleanlab_flags(name):
    labels, p, meta = load(name)
    n_flagged, n_confirmed = EXPECTED[name]
    ref = oracle("filter.find_label_issues", labels, p)
    assert int(ref.sum()) == n_flagged, "the oracle itself no longer gives the published count"
    ours = np.asarray(core.find_label_issues(labels, p))
    assert ours.dtype == bool and ours.shape == labels.shape
    assert int(ours.sum()) == n_flagged, f"{name}: ours flags {int(ours.sum())}, cleanlab {n_flagged}"
    diff = np.flatnonzero(ours != ref)
    assert len(diff) == 0, f"{name}: masks differ at rows {diff[:20].tolist()}"
    confirmed = _confirmed_indices(meta)
    assert len(confirmed & set(np.flatnonzero(ours).tolist())) == n_confirmed


@pytest.mark.parametrize("filter_by", ALL_FILTERS)
@pytest.mark.parametrize("name", list(EXPECTED))
def test_every_filter_matches_cleanlab(name, filter_by):
    labels, p, _ = load(name)
    exp = expect_filter(labels, p, filter_by=filter_by)
    ref = oracle("filter.find_label_issues", labels, p, filter_by=filter_by)
    assert not exp.problems(ref), "TEST KIT BUG"
    ours = np.asarray(core.find_label_issues(labels, p, filter_by=filter_by))
    record(
        f"real data: find_label_issues[{filter_by}]",
        tied=exp.tied,
        **({"tied_mask_differs": not np.array_equal(ours, ref)} if exp.tied else {}),
    )
    if exp.tied:  # cleanlab's pick among tied rows depends on its sort kernel; ours on the row index
        problems = exp.problems(ours)
        assert not problems, f"{name}/{filter_by} (tie at a cut): not a valid pick: {problems}"
        diff = np.flatnonzero(ours != exp.index_rule_mask())
        assert len(diff) == 0, f"{name}/{filter_by} (tie at a cut): not the index rule's pick at {diff[:20].tolist()}"
        return
    diff = np.flatnonzero(ours != ref)
    assert len(diff) == 0, (
        f"{name}/{filter_by}: ours flags {int(ours.sum())}, cleanlab {int(ref.sum())}; differ at {diff[:20].tolist()}"
    )


@pytest.mark.parametrize("name", list(EXPECTED))
def test_thresholds_joint_counts_and_scores_match_cleanlab(name):
    labels, p, _ = load(name)
    np.testing.assert_array_equal(
        core.get_confident_thresholds(labels, p), oracle("count.get_confident_thresholds", labels, p)
    )
    for calibrate in (False, True):
        np.testing.assert_array_equal(
            core.compute_confident_joint(labels, p, calibrate=calibrate),
            oracle("count.compute_confident_joint", labels, p, calibrate=calibrate),
        )
    for method in ("off_diagonal", "off_diagonal_calibrated"):
        assert int(core.num_label_issues(labels, p, estimation_method=method)) == int(
            oracle("count.num_label_issues", labels, p, estimation_method=method)
        )
    for method in ("self_confidence", "normalized_margin"):
        for adjust in (False, True):  # bit-identical
            np.testing.assert_array_equal(
                core.get_label_quality_scores(labels, p, method=method, adjust_pred_probs=adjust),
                oracle("rank.get_label_quality_scores", labels, p, method=method, adjust_pred_probs=adjust),
                err_msg=f"{method} adjust={adjust}",
            )
    np.testing.assert_allclose(
        core.estimate_joint(labels, p), oracle("count.estimate_joint", labels, p), rtol=0, atol=1e-12
    )


@pytest.mark.parametrize("name", list(EXPECTED))
def test_ranking_of_default_issues_matches_cleanlab(name):
    labels, p, _ = load(name)
    mask = oracle("filter.find_label_issues", labels, p)
    for rank_by in ("self_confidence", "normalized_margin"):
        ref = oracle("rank.order_label_issues", mask, labels, p, rank_by=rank_by)
        scores = oracle("rank.get_label_quality_scores", labels, p, method=rank_by)
        ours = np.asarray(core.order_label_issues(mask, labels, p, rank_by=rank_by))
        assert sorted(ours.tolist()) == np.flatnonzero(mask).tolist()
        assert np.all(np.diff(scores[ours]) >= 0), f"{rank_by}: not ordered by score ascending"
        tied = len(np.unique(scores[mask])) < int(mask.sum())
        record(f"real data: order_label_issues[{rank_by}]", tied=tied)
        if not tied:  # otherwise the reference's order among equal scores is arbitrary
            np.testing.assert_array_equal(ours, ref)
