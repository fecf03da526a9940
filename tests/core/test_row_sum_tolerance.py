"""The row-sum tolerance of ``pred_probs``, pinned at its boundary.

``_validation.ROW_SUM_TOLERANCE`` is 1e-4: a row whose sum (in the input dtype) is
off 1 by at most that is accepted (the spec: published arrays are off by up to
2e-5), anything further is a ValueError naming ``pred_probs``, the row and its
sum. Pinned on both sides: 0.99e-4 off is accepted, 1.01e-4 off is rejected,
above and below 1, float32 and float64, for every public function, in the first
chunk and in a later one (with tiny chunks on several threads).
"""

import numpy as np
import pytest

from cl_pipeline.core import _validation

from ._chunking import chunked_core
from .test_validation import PUBLIC

N, K = 50, 3


def rows_off_by(offset, dtype, bad_row):
    """Rows (0.8, 0.1, 0.1) rotated by label, with row ``bad_row``'s first entry moved by ``offset``."""
    labels = np.arange(N) % K
    probs = np.full((N, K), 0.1)
    probs[np.arange(N), labels] = 0.8
    probs[bad_row, 0] += offset
    probs = probs.astype(dtype)
    off = float(probs[bad_row].sum(dtype=dtype)) - 1.0  # what the check sees: the sum in the input dtype
    return labels, probs, off


def test_the_tolerance_is_1e4():
    assert _validation.ROW_SUM_TOLERANCE == 1e-4


SIDES = {"above_1": 1.0, "below_1": -1.0}


@pytest.mark.parametrize("where", ["first_row", "row_38_in_a_later_chunk"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("side", list(SIDES))
@pytest.mark.parametrize("func", list(PUBLIC))
def test_rows_off_by_0_99e4_are_accepted_and_1_01e4_rejected(func, side, dtype, where):
    bad_row = 0 if where == "first_row" else 38
    with chunked_core(7, 3):
        labels, inside, off_in = rows_off_by(SIDES[side] * 0.99e-4, dtype, bad_row)
        assert 0.98e-4 < abs(off_in) < 1e-4, off_in
        PUBLIC[func](labels, inside)  # accepted (the outputs are checked in test_validation)
        labels, outside, off_out = rows_off_by(SIDES[side] * 1.01e-4, dtype, bad_row)
        assert 1e-4 < abs(off_out) < 1.02e-4, off_out
        with pytest.raises(ValueError, match=rf"pred_probs rows must sum to 1 \(within 0\.0001\); row {bad_row} sums"):
            PUBLIC[func](labels, outside)


def _exact_rule(probs: np.ndarray) -> np.ndarray:
    """The rule, written out: a non-finite or negative entry, or a float64 row sum off 1 by more than 1e-4."""
    finite = np.array([all(np.isfinite(v) for v in row) for row in probs.tolist()], dtype=bool)
    negative = np.array([any(v < 0 for v in row) for row in probs.tolist()], dtype=bool)
    off = np.abs(probs.sum(axis=1, dtype=np.float64) - 1.0) > _validation.ROW_SUM_TOLERANCE
    return ~finite | negative | (finite & off)


EDITS = {
    "none": lambda p, r: None,
    "nan": lambda p, r: p.__setitem__((r, 0), np.nan),
    "inf": lambda p, r: p.__setitem__((r, 1), np.inf),
    "negative": lambda p, r: p.__setitem__((r, 0), -p[r, 0]),
    "off_by_0.6e-4": lambda p, r: p.__setitem__((r, 0), p[r, 0] + 0.6e-4),
    "off_by_1.01e-4": lambda p, r: p.__setitem__((r, 0), p[r, 0] - 1.01e-4),
    "off_by_0.99e-4": lambda p, r: p.__setitem__((r, 0), p[r, 0] + 0.99e-4),
}


@pytest.mark.parametrize("edit", list(EDITS), ids=list(EDITS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("seed", range(3), ids=lambda s: f"seed{s}")
def test_invalid_probability_rows_is_the_exact_rule(edit, dtype, seed):
    """The fast all-valid path gives the mask of the rule, at the tolerance's edge too."""
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.ones(4), 300).astype(dtype)
    rows = rng.choice(300, 5, replace=False)
    for r in rows:
        EDITS[edit](probs, r)
    mask = _validation.invalid_probability_rows(probs)
    np.testing.assert_array_equal(mask, _exact_rule(probs))
    if edit in ("nan", "inf", "negative", "off_by_1.01e-4"):
        assert mask[rows].all()
