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

Ties at a cut: among rows with equal keys the lower row index is selected
first (``_select``); rows of a class are visited in increasing row order, so
a position within the class orders like the global row index.

Invariants (tested): masks do not depend on class ids (permuting classes
leaves the mask unchanged) and follow row permutations; perfectly confident,
correctly labelled data has no issues.
"""

import warnings

import numpy as np

from . import _count
from ._count import ClassIndex, ConfidentPass
from ._parallel import map_ordered
from ._select import smallest

PRUNE_METHODS = ("prune_by_noise_rate", "prune_by_class", "both")
#: Upper bound on ``p[i, j] - p[i, y]`` for any row kept by the near-argmax
#: rule (1e-6 plus rounding of the bump, in float32 or float64).
KEPT_MARGIN_BOUND = 1.5e-6


def prune_matrix(confident_joint: np.ndarray, min_examples_per_class: int, frac_noise: float) -> np.ndarray:
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
    total). A column without off-diagonal mass gets no split; its removals
    are chosen by :func:`_top_up` (largest margin towards any other class).
    """
    off = prune.astype(np.float64)
    np.fill_diagonal(off, 0.0)
    mass = off.sum(axis=0)
    share = np.divide(off, mass, out=np.zeros_like(off), where=mass > 0) * to_remove
    split = _count.round_rows_preserving_totals(share.T).T
    np.fill_diagonal(split, 0)
    return split


def by_class(own: np.ndarray, num_to_flag: int) -> np.ndarray:
    """``prune_by_class`` inside one class: the lowest ``p[:, k]``, shape (n_k,) bool."""
    chosen = np.zeros(own.shape[0], dtype=bool)
    chosen[smallest(own, num_to_flag)] = True
    return chosen


def by_noise_rate(
    pred_probs: np.ndarray, rows: np.ndarray, own: np.ndarray, keep: np.ndarray, k: int, need: np.ndarray
) -> np.ndarray:
    """``prune_by_noise_rate`` inside class ``k``, shape (n_k,) bool.

    For every ``j`` with ``need[j] > 0`` the ``need[j]`` rows with the largest
    margin ``p[:, j] - p[:, k]`` are chosen. Rows kept by the near-argmax rule
    have every margin <= ``KEPT_MARGIN_BOUND``; so whenever the (m+1)-th
    largest margin among the *other* rows exceeds it, the top m (and any tie
    at the cut) lie among those other rows, usually a small fraction of the
    class, and only they are read. Other columns read the whole class column.

    Parameters
    ----------
    pred_probs : ndarray, shape (n, K)
    rows : ndarray of int, shape (n_k,)
        Rows of class ``k``, ascending.
    own, keep : ndarray, shape (n_k,)
        ``p[rows, k]`` and the near-argmax mask of those rows.
    need : ndarray of int, shape (K,)
        ``M[:, k]``; ``need[k]`` is ignored.
    """
    chosen = np.zeros(rows.shape[0], dtype=bool)
    cols = np.flatnonzero(need > 0)
    cols = cols[cols != k]
    if cols.size == 0:
        return chosen
    m = need[cols]
    if (m >= rows.shape[0]).any():
        chosen[:] = True
        return chosen
    others = np.flatnonzero(~keep)
    exact = _select_among_others(pred_probs, rows[others], own[others], cols, m)
    done = np.zeros(cols.shape[0], dtype=bool)
    if exact is not None:
        done, picked = exact
        chosen[others[picked]] = True
    for c in np.flatnonzero(~done):
        margin_neg = own - pred_probs[rows, cols[c]]
        chosen[smallest(margin_neg, int(m[c]))] = True
    return chosen


def _select_among_others(pred_probs, rows, own, cols, m):
    """Columns whose cut lies above every kept row's margin, solved on ``rows``.

    Only values are partitioned (cheaper than ``argpartition``): per column
    ``w`` = m-th and ``v`` = (m+1)-th smallest key. When ``v < -bound`` and
    ``w < v`` the chosen rows are exactly those with key <= ``w``.

    Returns ``None`` when there are no such rows, else ``(done, picked)``:
    ``done`` (a,) bool marks the columns solved, ``picked`` (s,) bool the
    chosen rows among ``rows``.
    """
    s = rows.shape[0]
    if s == 0:
        return None
    block_t = np.take(pred_probs, rows, axis=0).T[cols]
    keys = np.subtract(own[None, :], block_t, out=block_t)
    depth = min(int(m.max()) + 1, s)
    head = np.partition(keys, depth - 1, axis=1)[:, :depth] if depth < s else keys
    head = np.sort(head, axis=1)
    known = m < depth
    span = np.arange(cols.size)
    v = head[span, np.minimum(m, depth - 1)]
    w = head[span, np.minimum(m, depth) - 1]
    done = known & (v < -KEPT_MARGIN_BOUND) & (w < v)
    w = np.where(done, w, -np.inf)
    picked = (keys <= w[:, None].astype(keys.dtype)).any(axis=0)
    return done, picked


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
    counts = index.counts
    split = split_removals(prune, to_remove) if to_remove is not None else None
    own_by_class = cpass.self_confidence[index.order]
    keep_by_class = cpass.keep[index.order]
    floor = max(min_examples_per_class, 1)
    pruned = [k for k in range(prune.shape[0]) if counts[k] > floor]
    skipped = [k for k in range(prune.shape[0]) if 1 < counts[k] <= floor]

    def one_class(k: int) -> np.ndarray:
        span = slice(index.bounds[k], index.bounds[k + 1])
        rows, own, keep = index.order[span], own_by_class[span], keep_by_class[span]
        if filter_by in ("prune_by_class", "both"):
            num = int(to_remove[k]) if to_remove is not None else int(counts[k]) - int(prune[k, k])
            chosen = by_class(own, num)
            if filter_by == "both":
                chosen &= _by_noise_rate_or_split(pred_probs, rows, own, keep, k, prune, split, to_remove)
            return chosen
        return _by_noise_rate_or_split(pred_probs, rows, own, keep, k, prune, split, to_remove)

    chosen_by_class = np.zeros(pred_probs.shape[0], dtype=bool)
    for k, chosen in zip(pruned, map_ordered(one_class, pruned), strict=True):
        chosen_by_class[index.bounds[k] : index.bounds[k + 1]] = chosen
    mask = np.zeros(pred_probs.shape[0], dtype=bool)
    mask[index.order] = chosen_by_class
    if skipped:
        warnings.warn(
            f"classes {skipped} have <= min_examples_per_class={min_examples_per_class} "
            "examples; no label issues are flagged in them",
            stacklevel=4,  # prune_mask <- _issues._find <- find_label_issues <- the caller
        )
    return mask


def _by_noise_rate_or_split(pred_probs, rows, own, keep, k, prune, split, to_remove) -> np.ndarray:
    if split is None:
        return by_noise_rate(pred_probs, rows, own, keep, k, prune[:, k])
    need = split[:, k]
    chosen = by_noise_rate(pred_probs, rows, own, keep, k, need)
    _top_up(pred_probs[rows], k, chosen, np.flatnonzero(need > 0), min(int(to_remove[k]), rows.shape[0]))
    return chosen
