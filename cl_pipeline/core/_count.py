"""Counting: confident thresholds, the confident joint ``C`` and its calibration.

Notation (Northcutt, Jiang & Chuang, JAIR 2021, section 3):

- ``n`` examples, ``K`` classes, ``labels[i]`` = given (noisy) label ỹ,
  ``pred_probs[i, k]`` = out-of-sample p̂(ỹ = k; x_i), ``n_k`` = #{i: ỹ_i = k}.
- ``t_k`` (confident threshold) = mean of ``pred_probs[i, k]`` over ``ỹ_i = k``;
  absent classes get ``t_k = 2``; every ``t_k >= 2e-6``.
- ``C[i, j]`` = number of examples with given label ``i`` whose confidently
  guessed true label is ``j`` (rows = given, columns = true).
- Calibrated ``C̃``: row ``i`` rescaled to ``n_i``, then the whole matrix to
  ``n``, then rounded row by row preserving row totals.

Invariants (tested in ``tests/core/test_properties.py``):

- raw ``C``: integer, ``C[k, k] >= 1`` for every k, total <= n + K;
- calibrated ``C̃``: every entry >= 0, row ``k`` sums to ``n_k``, total ``n``;
- permuting class ids permutes ``C`` (``C'[π(i), π(j)] = C[i, j]``);
- confident, correctly labelled data gives a diagonal ``C``.

The work is shaped as per-batch steps plus reductions (``self_confidence`` and ``confident_pass``
visits ``pred_probs`` in row chunks of a few MB), so that streaming over data
larger than memory only needs a different driver.
"""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ._parallel import map_ordered

#: Lower bound on every confident threshold (2 * 1e-6).
THRESHOLD_FLOOR = 2e-6
#: Tolerance of the ``p >= t`` test and of the near-argmax rule.
FLOATING_POINT_COMPARISON = 1e-6
#: Threshold of a class absent from the labels: no probability can reach it.
ABSENT_CLASS_THRESHOLD = 2
#: Clip value that avoids division by zero.
TINY_VALUE = 1e-100
#: Bytes of ``pred_probs`` visited per chunk: big enough to amortise the
#: per-chunk Python overhead, small enough to stay in cache while several
#: vectorised steps read it.
CHUNK_BYTES = 4 << 20


def chunk_rows(num_classes: int, itemsize: int = 4) -> int:
    """Rows per chunk so that a chunk holds about ``CHUNK_BYTES``."""
    return max(1, CHUNK_BYTES // (num_classes * itemsize))


@dataclass(frozen=True)
class ClassIndex:
    """Rows grouped by given label, each group in increasing row order.

    Attributes
    ----------
    order : ndarray, shape (n,)
        Stable argsort of ``labels``: rows of class k are
        ``order[bounds[k]:bounds[k + 1]]``, ascending.
    bounds : ndarray, shape (K + 1,)
    """

    order: np.ndarray
    bounds: np.ndarray

    @property
    def counts(self) -> np.ndarray:
        """``n_k`` for every class, shape (K,)."""
        return np.diff(self.bounds)


def class_index(labels: np.ndarray, num_classes: int) -> ClassIndex:
    """Group row indices by label (one stable integer sort)."""
    order = np.argsort(labels.astype(class_id_dtype(num_classes)), kind="stable")
    if order.shape[0] < np.iinfo(np.int32).max:
        order = order.astype(np.int32)
    counts = np.bincount(labels, minlength=num_classes)
    bounds = np.zeros(num_classes + 1, dtype=np.int64)
    np.cumsum(counts, out=bounds[1:])
    return ClassIndex(order=order, bounds=bounds)


def self_confidence(labels: np.ndarray, pred_probs: np.ndarray) -> np.ndarray:
    """``pred_probs[i, labels[i]]`` for every row, shape (n,), input dtype.

    One flat gather per chunk (one cache line per row, not the whole row).
    """
    n, k = pred_probs.shape
    flat = pred_probs.reshape(-1)
    out = np.empty(n, dtype=pred_probs.dtype)
    step = chunk_rows(k, pred_probs.itemsize)
    for start in range(0, n, step):
        stop = min(n, start + step)
        out[start:stop] = flat[np.arange(start * k, stop * k, k) + labels[start:stop]]
    return out


def confident_thresholds(self_conf: np.ndarray, index: ClassIndex, dtype: np.dtype) -> np.ndarray:
    """Per-class mean self-confidence ``t_k`` (spec: "Confident thresholds").

    Each mean is ``numpy.mean`` over the class's values in row order (pairwise
    summation in the input dtype), which is what bit-parity with the
    reference requires. When a class is absent its threshold is the integer
    2, which promotes the array to float64 exactly as the reference does.
    """
    num_classes = index.bounds.shape[0] - 1
    grouped = self_conf[index.order]
    means: list = []
    for k in range(num_classes):
        lo, hi = index.bounds[k], index.bounds[k + 1]
        means.append(grouped[lo:hi].mean() if hi > lo else None)
    return thresholds_from_means(means, dtype)


def thresholds_from_means(means: list, dtype: np.dtype) -> np.ndarray:
    """Thresholds from per-class means (``None`` for an absent class), shape (K,).

    An absent class gets the integer 2, which promotes the array to float64
    exactly as the reference does; then every threshold is floored.
    """
    thresholds = np.asarray([ABSENT_CLASS_THRESHOLD if m is None else m for m in means])
    if thresholds.dtype.kind != "f":
        thresholds = thresholds.astype(dtype)
    return np.maximum(thresholds, thresholds.dtype.type(THRESHOLD_FLOOR))


@dataclass(frozen=True)
class ConfidentPass:
    """Per-row results of one chunked pass over ``pred_probs``.

    Attributes
    ----------
    self_confidence : ndarray, shape (n,), input dtype
        ``pred_probs[i, labels[i]]``.
    guess : ndarray of int16/int32, shape (n,)
        Confidently guessed true label, ``-1`` when no class is confident
        (such rows are not counted in ``C``).
    predicted : ndarray of int16/int32, shape (n,)
        ``argmax_k pred_probs[i, k]`` (first index on ties).
    keep : ndarray of bool, shape (n,)
        Near-argmax rule: after adding 1e-6 to ``pred_probs[i, labels[i]]``
        the row's argmax is the given label, so the row is never flagged.
    """

    self_confidence: np.ndarray
    guess: np.ndarray
    predicted: np.ndarray
    keep: np.ndarray

    def off_diagonal(self, labels: np.ndarray) -> np.ndarray:
        """Rows counted in ``C`` off its diagonal, shape (n,) bool."""
        return (self.guess >= 0) & (self.guess != labels)


def class_id_dtype(num_classes: int) -> type:
    """Smallest signed integer type holding 0..K-1 and -1."""
    return np.int16 if num_classes < np.iinfo(np.int16).max else np.int32


def confident_pass(
    labels: np.ndarray,
    pred_probs: np.ndarray,
    own: np.ndarray,
    thresholds: np.ndarray,
    argmax_rule: str = "cleanlab",
    check_block: Callable[[np.ndarray, int], None] | None = None,
) -> ConfidentPass:
    """One chunked read: confident guesses, argmax and the near-argmax mask.

    ``check_block(block, first_row)`` (the boundary's row validation) runs on
    each chunk first, while it is in cache. A row whose argmax is confident
    is guessed as its argmax under both rules; only the other rows of the
    chunk have their confident classes counted: none gives -1, one gives
    that class, several give the argmax (reference) or the most probable
    confident class (paper).

    Parameters
    ----------
    labels : ndarray of int, shape (n,)
    pred_probs : ndarray of float, shape (n, K)
    own : ndarray, shape (n,)
        Self-confidence ``pred_probs[i, labels[i]]``.
    thresholds : ndarray of float, shape (K,)
    argmax_rule : {"cleanlab", "paper"}
    check_block : callable, optional
    """
    n, k = pred_probs.shape
    cut = thresholds - FLOATING_POINT_COMPARISON
    ids = class_id_dtype(k)
    guess = np.empty(n, dtype=ids)
    predicted = np.empty(n, dtype=ids)
    keep = np.empty(n, dtype=bool)
    step = chunk_rows(k, pred_probs.itemsize)

    def one_chunk(start: int) -> None:
        stop = min(n, start + step)
        block = pred_probs[start:stop]
        if check_block is not None:
            check_block(block, start)
        top = block.argmax(axis=1)
        top_value = block.reshape(-1)[np.arange(0, (stop - start) * k, k) + top]
        g = top.astype(ids)
        unsure = np.flatnonzero(top_value < cut[top])
        if unsure.size:
            g[unsure] = _guess_rows(block[unsure], cut, top[unsure], argmax_rule)
        guess[start:stop] = g
        predicted[start:stop] = top
        keep[start:stop] = near_argmax(labels[start:stop], own[start:stop], top, top_value)

    map_ordered(one_chunk, range(0, n, step))
    return ConfidentPass(self_confidence=own, guess=guess, predicted=predicted, keep=keep)


def _guess_rows(block: np.ndarray, cut: np.ndarray, top: np.ndarray, argmax_rule: str) -> np.ndarray:
    """Guesses for rows whose argmax is not confident."""
    confident = block >= cut
    count_type = np.uint8 if block.shape[1] < 255 else np.int32
    num_confident = confident.view(np.uint8).sum(axis=1, dtype=count_type)
    if argmax_rule == "paper":
        several = np.where(confident, block, -np.inf).argmax(axis=1)
    else:
        several = top
    guess = np.where(num_confident > 1, several, confident.argmax(axis=1))
    return np.where(num_confident == 0, -1, guess)


def near_argmax(labels: np.ndarray, own: np.ndarray, top: np.ndarray, top_value: np.ndarray) -> np.ndarray:
    """Rows whose argmax is the given label once 1e-6 is added to it.

    With ``b = p[i, y] + 1e-6`` (input dtype) and ``top`` the first argmax:
    the bumped row's first argmax is ``y`` iff ``top == y``, or ``b`` beats
    the maximum, or equals it and ``y`` comes first.
    """
    bumped = own + own.dtype.type(FLOATING_POINT_COMPARISON)
    return (top == labels) | (bumped > top_value) | ((bumped == top_value) & (top > labels))


def count_joint(labels: np.ndarray, guess: np.ndarray, num_classes: int) -> np.ndarray:
    """Raw confident joint from per-row guesses (a bincount reduction).

    Uncounted rows (guess -1) land in one extra bin that is dropped.

    Returns
    -------
    ndarray of int64, shape (K, K), Fortran-ordered like the reference's
    (the layout decides the summation order, hence rounding, of calibration).
    """
    return finish_joint(joint_cells(labels, guess, num_classes), num_classes)


def joint_cells(labels: np.ndarray, guess: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts of (given, guess) pairs before the diagonal floor, shape (K * K,) int64.

    Cell ``i * K + j`` counts rows with given label ``i`` and guess ``j``;
    uncounted rows (guess -1) are dropped. Integer counts: any batching and
    any summation order give the same result.
    """
    cells = num_classes * num_classes
    flat = labels.astype(np.int64) * num_classes + guess
    flat[guess < 0] = cells
    return np.bincount(flat, minlength=cells + 1)[:cells].astype(np.int64)


def finish_joint(cells: np.ndarray, num_classes: int) -> np.ndarray:
    """Raw ``C`` from :func:`joint_cells`: Fortran-ordered, diagonal raised to at least 1."""
    joint = np.asfortranarray(cells.reshape(num_classes, num_classes).copy())
    diagonal = np.einsum("ii->i", joint)
    np.maximum(diagonal, 1, out=diagonal)
    return joint


def calibrate(confident_joint: np.ndarray, label_counts: np.ndarray) -> np.ndarray:
    """Calibrate ``C``: rows to ``n_k``, total to ``n``, integer rows keeping totals.

    Parameters
    ----------
    confident_joint : ndarray, shape (K, K)
    label_counts : ndarray of int, shape (K,)

    Returns
    -------
    ndarray of int64, shape (K, K)
    """
    row_sums = confident_joint.sum(axis=1)
    scaled = confident_joint / np.maximum(row_sums, TINY_VALUE)[:, None] * label_counts[:, None]
    layout = "F" if _is_fortran(confident_joint) else "C"
    total = np.asarray(scaled, order=layout).sum()
    scaled = scaled / max(total, TINY_VALUE) * label_counts.sum()
    return round_rows_preserving_totals(scaled)


def _is_fortran(a: np.ndarray) -> bool:
    return bool(a.flags.f_contiguous and not a.flags.c_contiguous)


def round_rows_preserving_totals(matrix: np.ndarray) -> np.ndarray:
    """Round every row to integers whose sum is the row's rounded total.

    Round half to even; then, while the integer total is off by ``d``, add 1
    to the ``|d|`` entries with the largest rounding residual (or subtract 1
    from those with the smallest).

    Tie rule (data alone, never the CPU's sort kernel): the residuals are
    ranked by a *stable* ascending sort; the ``|d|`` first entries of that
    order lose 1 (among equal residuals the lower column first), the ``|d|``
    last gain 1 (among equal residuals the higher column first). That is the
    reference's own procedure run with a stable sort; with numpy's default
    sort its pick among tied residuals depends on the machine
    (``docs/differences-from-cleanlab.md``).

    Parameters
    ----------
    matrix : ndarray of float, shape (R, K)

    Returns
    -------
    ndarray of int64, shape (R, K)
    """
    out = np.empty(matrix.shape, dtype=np.int64)
    for r in range(matrix.shape[0]):
        out[r] = _round_preserving_sum(np.asarray(matrix[r], dtype=np.float64))
    return out


def _round_preserving_sum(values: np.ndarray) -> np.ndarray:
    ints = np.round(values)
    target = np.round(values.sum())
    current = np.round(ints.sum())
    while abs(current - target) > FLOATING_POINT_COMPARISON:
        gap = np.round(target - current)
        step = -1 if gap < 0 else 1
        count = min(int(abs(gap)), values.shape[0])
        ranked = np.argsort(values - ints, kind="stable")
        chosen = ranked[:count] if step < 0 else ranked[::-1][:count]
        ints[chosen] += step
        current = np.round(ints.sum())
    return ints.astype(np.int64)


def label_counts(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """``n_k`` for every class, shape (K,) int64."""
    return np.bincount(labels, minlength=num_classes).astype(np.int64)


def joint_from_calibrated(calibrated: np.ndarray) -> np.ndarray:
    """``Q = C̃ / sum(C̃)``, shape (K, K) float64."""
    return calibrated / max(float(calibrated.sum()), TINY_VALUE)
