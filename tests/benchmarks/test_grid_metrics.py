"""The noise-grid metrics against hand-computed small cases."""

import math

import numpy as np
import pytest

from benchmarks import _grid_metrics as gm


def test_detection_scores_hand_case():
    # flips at 0, 1, 2; flagged 1, 2, 3, 4 -> tp 2, precision 2/4, recall 2/3
    flipped = np.array([1, 1, 1, 0, 0, 0], bool)
    flagged = np.array([0, 1, 1, 1, 1, 0], bool)
    p, r, f1 = gm.detection_scores(flagged, flipped)
    assert p == 0.5 and r == pytest.approx(2 / 3)
    assert f1 == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))  # = 4/7
    assert f1 == pytest.approx(4 / 7)


def test_detection_scores_edges():
    none = np.zeros(4, bool)
    some = np.array([1, 0, 0, 0], bool)
    p, r, f1 = gm.detection_scores(none, some)
    assert math.isnan(p) and r == 0.0 and math.isnan(f1)
    p, r, f1 = gm.detection_scores(some, none)
    assert p == 0.0 and math.isnan(r) and math.isnan(f1)
    p, r, f1 = gm.detection_scores(some, ~some)  # disjoint: p = r = 0 -> f1 0
    assert (p, r, f1) == (0.0, 0.0, 0.0)
    assert gm.detection_scores(some, some) == (1.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="flagged"):
        gm.detection_scores(some, some[:3])


def test_empirical_joint_and_noise_rate():
    true = np.array([0, 0, 0, 1, 1, 2, 2, 2])
    given = np.array([0, 1, 0, 1, 1, 2, 0, 2])
    joint = gm.empirical_joint(given, true, 3)
    expected = np.array([[2, 0, 1], [1, 2, 0], [0, 0, 2]]) / 8  # rows given, cols true
    np.testing.assert_array_equal(joint, expected)
    assert gm.noise_rate(joint) == pytest.approx(2 / 8)
    assert gm.noise_rate(joint * 8) == pytest.approx(0.25)  # counts work too
    with pytest.raises(ValueError):
        gm.empirical_joint(given[:3], true, 3)


def test_joint_rmse_hand_case():
    a = np.array([[0.5, 0.0], [0.0, 0.5]])
    b = np.array([[0.4, 0.1], [0.0, 0.5]])
    # squared errors 0.01, 0.01, 0, 0 -> mean 0.005
    assert gm.joint_rmse(a, b) == pytest.approx(math.sqrt(0.005))
    assert gm.joint_rmse(a, a) == 0.0
    with pytest.raises(ValueError, match="shapes differ"):
        gm.joint_rmse(a, np.eye(3))


def test_not_worse_within_noise():
    assert gm.not_worse_within_noise([0.9, 0.8, 0.7], [0.9, 0.8, 0.7])  # identical
    assert gm.not_worse_within_noise([0.95, 0.85], [0.9, 0.8])  # better
    # diffs -0.01, -0.01, -0.01: sd 0 -> any loss is outside noise
    assert not gm.not_worse_within_noise([0.89, 0.79, 0.69], [0.9, 0.8, 0.7])
    # diffs -0.02, +0.02, -0.03: mean -0.01, sd 0.02646, sem 0.01528 -> -0.01 >= -0.0306
    assert gm.not_worse_within_noise([0.88, 0.82, 0.67], [0.9, 0.8, 0.7])
    # diffs -0.10, -0.12, -0.11: mean -0.11, sem 0.00577 -> worse
    assert not gm.not_worse_within_noise([0.8, 0.68, 0.59], [0.9, 0.8, 0.7])


def test_replace_section():
    s, e = "<!-- g:start -->", "<!-- g:end -->"
    doc = f"# R\n\nA\n{s}\nold\n{e}\ntail\n"
    assert gm.replace_section(doc, s, e, "new\n") == f"# R\n\nA\n{s}\nnew\n{e}\ntail\n"
    assert gm.replace_section("# R\n", s, e, "x") == f"# R\n\n{s}\nx\n{e}\n"
    assert gm.replace_section("", s, e, "x") == f"{s}\nx\n{e}\n"
