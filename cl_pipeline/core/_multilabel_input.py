"""Validation of multi-label inputs and the one-vs-rest reduction.

Multi-label data: each example has a *set* of classes (possibly empty).

- ``labels``: a sequence (list, tuple, 1-D object array) of per-example
  sequences of class ids, e.g. ``[[0, 2], [], [1]]`` (repeats allowed, order
  ignored); or a 2-D ``numpy.ndarray`` of shape (n, K), bool or integer, 0/1
  (an indicator matrix). A Python list of lists is always read as class ids,
  never as an indicator matrix.
- ``pred_probs``: (n, K) float32/float64, finite, every entry in [0, 1]
  (classes are scored independently, rows need not sum to 1).

The reduction: class ``k`` becomes a binary problem with labels
``Y[:, k]`` (1 = the example has class k) and probabilities
``[1 - p[:, k], p[:, k]]``, on which the single-label engine runs unchanged.
"""

from collections.abc import Sequence
from itertools import chain
from typing import Any

import numpy as np

from . import _validation as v


def check_multilabel_pred_probs(pred_probs: Any, name: str = "pred_probs") -> np.ndarray:
    """(n, K) float32/float64, K >= 1, finite, in [0, 1]; C-contiguous."""
    if isinstance(pred_probs, (str, bytes)) or pred_probs is None:
        raise TypeError(f"{name} must be a 2-D array of per-class probabilities, got {v._describe(pred_probs)}")
    arr = np.asarray(pred_probs)
    if arr.dtype not in (np.float32, np.float64):
        raise TypeError(f"{name} must have dtype float32 or float64, got dtype {arr.dtype} ({v._describe(pred_probs)})")
    if arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"{name} must be 2-D with shape (n, K), n >= 1 and K >= 1, got shape {arr.shape}")
    bad = ~(np.isfinite(arr) & (arr >= 0) & (arr <= 1))
    if bad.any():
        i, k = np.argwhere(bad)[0]
        raise ValueError(
            f"{name} must hold probabilities in [0, 1] (one per class, rows need not sum to 1); "
            f"entry [{i}, {k}] is {arr[i, k]!r}"
        )
    return np.ascontiguousarray(arr)


def check_multilabels(labels: Any, n: int, num_classes: int) -> np.ndarray:
    """Indicator matrix (n, K) of int64 0/1 from either accepted form of ``labels``."""
    if isinstance(labels, np.ndarray) and labels.ndim == 2:
        return _from_indicator(labels, n, num_classes)
    if isinstance(labels, (str, bytes)) or not isinstance(labels, (Sequence, np.ndarray)):
        raise TypeError(
            f"labels must be a list of per-example lists of class ids or an (n, K) 0/1 array, got {v._describe(labels)}"
        )
    if len(labels) != n:
        raise ValueError(f"labels and pred_probs must have the same length, got {len(labels)} and {n} rows")
    return _from_lists(labels, num_classes)


def _from_indicator(labels: np.ndarray, n: int, num_classes: int) -> np.ndarray:
    if labels.dtype.kind not in "biu":
        raise TypeError(
            f"labels as a 2-D array must be a bool or integer 0/1 indicator matrix, got dtype {labels.dtype}"
        )
    if labels.shape != (n, num_classes):
        raise ValueError(
            f"labels as an indicator matrix must have the shape of pred_probs {(n, num_classes)}, got {labels.shape}"
        )
    bad = (labels != 0) & (labels != 1)
    if bad.any():
        i, k = np.argwhere(bad)[0]
        raise ValueError(f"labels as an indicator matrix must be 0 or 1; entry [{i}, {k}] is {labels[i, k]!r}")
    return labels.astype(np.int64)


def _from_lists(labels: Any, num_classes: int) -> np.ndarray:
    for i, row in enumerate(labels):
        if isinstance(row, (str, bytes)) or not isinstance(row, (list, tuple, range, np.ndarray, Sequence)):
            raise TypeError(f"labels[{i}] must be a list of class ids, got {v._describe(row)}")
        if isinstance(row, np.ndarray) and row.ndim != 1:
            raise TypeError(f"labels[{i}] must be a 1-D list of class ids, got an array of shape {row.shape}")
    lengths = np.fromiter((len(row) for row in labels), dtype=np.intp, count=len(labels))
    flat = np.asarray(list(chain.from_iterable(labels)))
    if flat.ndim != 1 or (flat.size and (flat.dtype.kind not in "iu" or flat.dtype == bool)):
        row = int(np.searchsorted(np.cumsum(lengths), _first_non_int(labels), side="right"))
        raise TypeError(f"labels must contain integer class ids; labels[{row}] is {v._describe(labels[row])}")
    flat = flat.astype(np.int64)
    if flat.size and (flat.min() < 0 or flat.max() >= num_classes):
        pos = int(np.flatnonzero((flat < 0) | (flat >= num_classes))[0])
        row = int(np.searchsorted(np.cumsum(lengths), pos, side="right"))
        raise ValueError(
            f"labels must hold class ids in 0..{num_classes - 1} (K = {num_classes} columns of pred_probs); "
            f"labels[{row}] is {v._describe(list(labels[row]))}"
        )
    out = np.zeros((len(labels), num_classes), dtype=np.int64)
    out[np.repeat(np.arange(len(labels)), lengths), flat] = 1
    return out


def _first_non_int(labels: Any) -> int:
    """Position (in the flattened labels) of the first entry that is not an integer."""
    for pos, value in enumerate(chain.from_iterable(labels)):
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
            return pos
    return 0


def binary_problem(y: np.ndarray, pred_probs: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels (n,) int64 and probabilities (n, 2) ``[1 - p_k, p_k]`` of class ``k``'s one-vs-rest problem."""
    p = pred_probs[:, k]
    probs = np.empty((p.shape[0], 2), dtype=pred_probs.dtype)
    np.subtract(1, p, out=probs[:, 0])
    probs[:, 1] = p
    return np.ascontiguousarray(y[:, k]), probs
