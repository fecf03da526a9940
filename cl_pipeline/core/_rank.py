"""Label quality scores (lower = more suspicious) and ranking of issues.

For row ``i`` with given label ``y = labels[i]`` and probabilities ``p_i``:

- ``self_confidence`` = ``p[i, y]``;
- ``normalized_margin`` = ``(p[i, y] - max_{k != y} p[i, k] + 1) / 2``;
- ``confidence_margin`` = mean of the two above: low only when the given
  label has little probability *and* a rival class is ahead of it (ours);
- ``confidence_then_margin`` = ``(self_confidence + 1e-6 normalized_margin)
  / (1 + 1e-6)``: ranks by self-confidence, and where self-confidences are
  equal (or closer than 1e-6, the resolution the spec gives a probability in
  its near-argmax and threshold rules) by the margin (ours; the ranking of
  the recommended setting, docs/recommended-setting.md);
- ``confidence_weighted_entropy``: ``x = H(p_i) / log K / max(p[i, y], 1e-6)``
  (``0 log 0 = 0``), score ``log(1 + x) / x``, which tends to 1 as ``x -> 0``
  (the reference floors ``x`` at 1e-6 in the denominator, sending the most
  confident examples to ~0, i.e. *most* suspicious; see
  ``docs/differences-from-cleanlab.md``).
- ``adjust_pred_probs``: before scoring, ``p[:, k] -= t_k``, every entry
  ``+= max(t)``, rows renormalised (not for the entropy score).

All scores are computed in row chunks, in the input dtype, except
``confidence_then_margin``, which is float64 (its tie-break step is 1e-6 x the
margin, below float32 resolution for most probabilities).
"""

from collections.abc import Callable

import numpy as np

from . import _count

SCORE_METHODS = (
    "self_confidence",
    "normalized_margin",
    "confidence_weighted_entropy",
    "confidence_margin",
    "confidence_then_margin",
)
_SCORE_FLOOR = 1e-6
#: Weight of the margin in ``confidence_then_margin``: it only breaks (near-)ties.
TIE_BREAK_WEIGHT = 1e-6


def quality_scores(
    labels: np.ndarray,
    pred_probs: np.ndarray,
    method: str,
    thresholds: np.ndarray | None = None,
    check_block: Callable[[np.ndarray, int], None] | None = None,
) -> np.ndarray:
    """Scores for every row, shape (n,); ``thresholds`` set means adjusted probabilities.

    ``check_block(block, first_row)`` validates each chunk before it is scored.
    """
    n, k = pred_probs.shape
    out = None
    step = _count.chunk_rows(k, pred_probs.itemsize)
    for start in range(0, n, step):
        block, y = pred_probs[start : start + step], labels[start : start + step]
        if check_block is not None:
            check_block(block, start)
        if thresholds is not None:
            block = adjust(block, thresholds)
        scores = _score_block(block, y, method)
        if out is None:
            out = np.empty(n, dtype=scores.dtype)
        out[start : start + step] = scores
    return out


def adjust(block: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Subtract class thresholds, add their max, renormalise rows."""
    adjusted = block - thresholds
    adjusted += thresholds.max()
    adjusted /= adjusted.sum(axis=1, keepdims=True)
    return adjusted


def _score_block(block: np.ndarray, y: np.ndarray, method: str) -> np.ndarray:
    rows = np.arange(block.shape[0])
    own = block[rows, y]
    if method == "self_confidence":
        return own
    if method in ("normalized_margin", "confidence_margin", "confidence_then_margin"):
        others = block.copy()
        others[rows, y] = -np.inf
        margin = (own - others.max(axis=1) + 1) / 2
        if method == "normalized_margin":
            return margin
        if method == "confidence_margin":
            return (own + margin) / 2
        # float64 whatever the input: a float32 score near 0.5 could not hold a 1e-6 step
        return (own.astype(np.float64) + TIE_BREAK_WEIGHT * margin) / (1 + TIE_BREAK_WEIGHT)
    return _confidence_weighted_entropy(block, own)


def _confidence_weighted_entropy(block: np.ndarray, own: np.ndarray) -> np.ndarray:
    positive = block > 0
    logs = np.log(np.where(positive, block, 1.0))
    entropy = -np.sum(np.where(positive, block * logs, 0.0), axis=1)
    x = entropy / np.log(block.shape[1]) / np.maximum(own, _SCORE_FLOOR)
    with np.errstate(divide="ignore", invalid="ignore"):
        score = np.where(x > 0, np.log1p(x) / x, 1.0)
    return score


def order_by_score(indices: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """``indices`` sorted by ``scores[indices]`` ascending; ties by index.

    ``indices`` may come in any order (ties must not follow the caller's order).
    """
    indices = np.sort(indices)
    ranked = np.argsort(scores[indices], kind="stable")
    return indices[ranked]
