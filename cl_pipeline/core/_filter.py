"""Finding label issues: the prune matrix and the per-class selections.

Notation: ``M = C̃ᵀ`` is the *prune matrix*, ``M[j, k]`` = estimated number
of examples with given label ``k`` and true label ``j`` (column ``k`` = given
class ``k``). Before use, for every column ``k``: ``M[k, k]`` is raised to at
least ``min_examples_per_class``, the increase taken evenly from the column's
non-zero off-diagonals (floored at 0); off-diagonals are multiplied by
``frac_noise`` with the removed mass added to the diagonal; entries are
truncated to integers.

Selections inside given class ``k`` (only when ``n_k > min_examples_per_class``
and ``n_k > 1``):

- ``prune_by_class``: the ``n_k - M[k, k]`` rows with the smallest ``p[:, k]``;
- ``prune_by_noise_rate``: for each ``j != k``, the ``M[j, k]`` rows with the
  largest margin ``p[:, j] - p[:, k]``; their union;
- ``both``: the intersection of the two.

Every filter except ``low_*`` finally unflags rows whose given label is the
argmax once 1e-6 is added to it (the near-argmax rule).

Invariants (tested): masks do not depend on class ids (permuting classes
leaves the mask unchanged) and follow row permutations; perfectly confident,
correctly labelled data has no issues.
"""

from __future__ import annotations

import warnings

import numpy as np

from . import _count
from ._count import ClassIndex, ConfidentPass
from ._select import smallest, smallest_per_column

PRUNE_METHODS = ("prune_by_noise_rate", "prune_by_class", "both")


def prune_matrix(
    confident_joint: np.ndarray, min_examples_per_class: int, frac_noise: float
) -> np.ndarray:
    """``M`` (see module docstring), shape (K, K) int64, ``M[j, k]`` = (true j, given k)."""
    m = confident_joint.T
    diagonal = np.diagonal(m)
    raised = np.maximum(diagonal, min_examples_per_class)
    increase = raised - diagonal
    nonzero_off = np.maximum(np.count_nonzero(m, axis=0) - 1.0, 1.0)
    kept = m - increase / nonzero_off
    kept[kept < 0] = 0
    np.fill_diagonal(kept, raised)
    reduced = kept * frac_noise
    np.fill_diagonal(reduced, np.diagonal(kept))
    np.fill_diagonal(reduced, np.diagonal(kept) + np.sum(kept - reduced, axis=0))
    return reduced.astype(np.int64)


def split_removals(prune: np.ndarray, to_remove: np.ndarray) -> np.ndarray:
    """Prune matrix that removes exactly ``to_remove[k]`` rows from class ``k``.

    Column ``k``'s off-diagonal counts are replaced by ``to_remove[k]`` split
    across ``j != k`` in proportion to ``M[j, k]`` (rounded preserving the
    total); the diagonal becomes ``n_k - to_remove[k]`` implicitly through
    the class size. A column without off-diagonal mass gets its removals in
    a dedicated last row handled by :func:`_top_up`.
    """
    k = prune.shape[0]
    off = prune.astype(np.float64)
    np.fill_diagonal(off, 0.0)
    mass = off.sum(axis=0)
    share = np.divide(off, mass, out=np.zeros_like(off), where=mass > 0) * to_remove
    split = _count.round_rows_preserving_totals(share.T).T
    np.fill_diagonal(split, 0)
    return split


def class_blocks(pred_probs: np.ndarray, index: ClassIndex, k: int) -> np.ndarray:
    """Rows of class ``k`` as a contiguous (n_k, K) copy, in row order."""
    return np.take(pred_probs, index.rows(k), axis=0)


def by_class(block: np.ndarray, k: int, num_to_flag: int) -> np.ndarray:
    """``prune_by_class`` inside one class: the lowest ``p[:, k]``, shape (n_k,) bool."""
    chosen = np.zeros(block.shape[0], dtype=bool)
    chosen[smallest(np.ascontiguousarray(block[:, k]), num_to_flag)] = True
    return chosen


def by_noise_rate(block: np.ndarray, k: int, need: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """``prune_by_noise_rate`` inside one class, shape (n_k,) bool.

    Parameters
    ----------
    block : ndarray, shape (n_k, K)
        Rows of class ``k``.
    need : ndarray of int, shape (K,)
        ``M[:, k]`` with ``need[k]`` ignored.
    keep : ndarray of bool, shape (n_k,)
        Near-argmax rows of the class; the others bound the cuts tightly.
    """
    rows = block.shape[0]
    need = need.copy()
    need[k] = 0
    cols = np.flatnonzero(need > 0)
    if cols.size == 0:
        return np.zeros(rows, dtype=bool)
    if (need[cols] >= rows).any():
        return np.ones(rows, dtype=bool)
    neg = block[:, k : k + 1] - block[:, cols]
    return smallest_per_column(neg, need[cols], np.flatnonzero(~keep))


def _top_up(block: np.ndarray, k: int, chosen: np.ndarray, cols: np.ndarray, total: int) -> None:
    """Add rows by largest margin towards ``cols`` until ``total`` are chosen."""
    missing = total - int(chosen.sum())
    if missing <= 0:
        return
    towards = cols if cols.size else np.delete(np.arange(block.shape[1]), k)
    margin = block[:, towards].max(axis=1) - block[:, k]
    margin[chosen] = -np.inf
    order = np.argsort(-margin, kind="stable")[:missing]
    chosen[order] = True


def prune_mask(
    pred_probs: np.ndarray,
    index: ClassIndex,
    cpass: ConfidentPass,
    prune: np.ndarray,
    filter_by: str,
    min_examples_per_class: int,
    to_remove: np.ndarray | None,
) -> np.ndarray:
    """Mask of the prune filters over all rows, before the near-argmax rule."""
    num_classes = prune.shape[0]
    counts = index.counts
    split = split_removals(prune, to_remove) if to_remove is not None else None
    mask = np.zeros(pred_probs.shape[0], dtype=bool)
    skipped = []
    for k in range(num_classes):
        n_k = int(counts[k])
        if n_k <= max(min_examples_per_class, 1):
            if n_k > 0:
                skipped.append(k)
            continue
        rows = index.rows(k)
        block = class_blocks(pred_probs, index, k)
        chosen = _select_in_class(block, k, prune[:, k], cpass.keep[rows], filter_by, split, to_remove)
        mask[rows[chosen]] = True
    if skipped:
        warnings.warn(
            f"classes {skipped} have <= min_examples_per_class={min_examples_per_class} "
            "examples (or only one); no label issues are flagged in them",
            stacklevel=3,
        )
    return mask


def _select_in_class(block, k, column, keep, filter_by, split, to_remove) -> np.ndarray:
    n_k = block.shape[0]
    if filter_by in ("prune_by_class", "both"):
        num = int(to_remove[k]) if to_remove is not None else n_k - int(column[k])
        by_cls = by_class(block, k, num)
        if filter_by == "prune_by_class":
            return by_cls
    if split is not None:
        need = split[:, k]
        chosen = by_noise_rate(block, k, need, keep)
        _top_up(block, k, chosen, np.flatnonzero(need > 0), min(int(to_remove[k]), n_k))
    else:
        chosen = by_noise_rate(block, k, column, keep)
    return chosen & by_cls if filter_by == "both" else chosen
