"""``num_to_remove_per_class`` with ``prune_by_noise_rate``: the top-up step, by hand.

The request ``r_k`` is split across the classes ``j`` with ``M[j, k] > 0`` (here
classes 1 and 2, 2 each); each takes its ``M[j, k]`` rows of largest margin
``p[:, j] - p[:, k]``. When those picks overlap, fewer than ``r_k`` rows are
chosen and ``_filter._top_up`` adds the rest by the largest margin towards
*those* classes (not towards every class: class 3 has no estimated mass),
ties by row index. Found by mutation testing (docs/mutation-testing.md): no
test reached a top-up that a different margin or tie order would change.
"""

import numpy as np
import pytest

from cl_pipeline import core

N0 = 30  # rows of class 0; classes 1..3 are absent from the labels

ROWS = {
    # p0,   p1,   p2,   p3
    0: [0.05, 0.45, 0.45, 0.05],  # A: top margin towards 1 and towards 2
    1: [0.06, 0.44, 0.44, 0.06],  # B: second towards both: the two picks overlap
    2: [0.01, 0.10, 0.10, 0.79],  # C: largest margin towards 3 (no mass there), lowest p0
    3: [0.10, 0.35, 0.20, 0.35],  # D: best of the rest towards {1, 2} (0.25)
}
TIED = [4, 9, 13, 17, 21, 26]  # E: identical rows, margin 0.10 towards {1, 2}
TIE_ROW = [0.20, 0.30, 0.30, 0.20]
FILLER = [0.30, 0.25, 0.25, 0.20]  # the given label is the argmax: never flagged


def problem():
    probs = np.array([ROWS.get(i, TIE_ROW if i in TIED else FILLER) for i in range(N0)])
    labels = np.zeros(N0, dtype=np.int64)
    joint = np.array([[N0 - 4, 2, 2, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    return labels, probs, joint


@pytest.mark.parametrize(
    "request_0,expected",
    [
        (4, [0, 1, 3, 4]),  # A, B (both picks), then D, then the lowest-index E
        (7, [0, 1, 3, 4, 9, 13, 17]),  # D, then E's by index
        (2, [0, 1]),  # 1 towards each class: both pick A, the top-up adds B
    ],
    ids=["top_up_2", "top_up_5_ties_by_index", "top_up_1"],
)
def test_top_up_by_margin_towards_the_estimated_classes_ties_by_index(request_0, expected):
    labels, probs, joint = problem()
    for layout in ("C", "F"):
        p = np.asfortranarray(probs) if layout == "F" else probs
        mask = core.find_label_issues(
            labels,
            p,
            filter_by="prune_by_noise_rate",
            confident_joint=joint,
            num_to_remove_per_class=[request_0, 0, 0, 0],
        )
        assert np.flatnonzero(mask).tolist() == expected


def test_both_intersects_the_topped_up_pick_with_prune_by_class():
    """``both``: prune_by_class takes the r lowest p0 (C, A, B, D), intersected with the above."""
    labels, probs, joint = problem()
    mask = core.find_label_issues(
        labels, probs, filter_by="both", confident_joint=joint, num_to_remove_per_class=[4, 0, 0, 0]
    )
    assert np.flatnonzero(mask).tolist() == [0, 1, 3]
