"""Input validation for the public boundary of :mod:`cl_pipeline.core`.

Every public function calls these helpers exactly once, before any work, and
then hands trusted arrays to private helpers that never re-check. Errors are
``TypeError`` (wrong kind of object or dtype) or ``ValueError`` (right kind,
bad value); each message names the argument and shows the offending value.

Rules (from the confident-learning spec):

- ``pred_probs``: 2-D, float32 or float64, at least one row and two columns,
  finite, non-negative, every row summing to 1 within ``ROW_SUM_TOLERANCE``.
- ``labels``: 1-D, integer dtype (Python ints accepted), values in
  ``0..K-1``, same length as ``pred_probs``.
- boolean flags (``calibrate``, ``adjust_pred_probs``, ...): a Python or
  numpy bool, nothing else (``"no"`` would otherwise be truthy).
"""

from collections.abc import Sequence
from typing import Any

import numpy as np

#: Rows of ``pred_probs`` may sum to 1 within this tolerance. Published
#: out-of-sample arrays (MNIST, IMDB) are off by up to ~2e-5.
ROW_SUM_TOLERANCE = 1e-4

#: Bytes per chunk for validation passes: keeps temporaries a few MB.
_CHUNK_BYTES = 4 << 20


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def check_pred_probs(pred_probs: Any, name: str = "pred_probs", *, check_rows: bool = True) -> np.ndarray:
    """Return ``pred_probs`` as a validated 2-D float array (no copy if possible).

    Parameters
    ----------
    pred_probs : array_like, shape (n, K)
        Out-of-sample predicted probabilities.
    name : str
        Argument name used in error messages.
    check_rows : bool
        Also check the values row by row. Pass False only when the caller
        streams every row through :func:`check_probability_block`.

    Returns
    -------
    numpy.ndarray, shape (n, K), dtype float32 or float64, C-contiguous
    """
    if isinstance(pred_probs, (str, bytes)) or pred_probs is None:
        raise TypeError(f"{name} must be a 2-D array of probabilities, got {_describe(pred_probs)}")
    arr = np.asarray(pred_probs)
    if arr.dtype.kind not in "f" or arr.dtype not in (np.float32, np.float64):
        raise TypeError(f"{name} must have dtype float32 or float64, got dtype {arr.dtype} ({_describe(pred_probs)})")
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D with shape (n, K), got shape {arr.shape}")
    n, k = arr.shape
    if n < 1:
        raise ValueError(f"{name} must have at least one row, got shape {arr.shape}")
    if k < 2:
        raise ValueError(f"{name} must have at least 2 columns (classes), got shape {arr.shape}")
    arr = np.ascontiguousarray(arr)
    if check_rows:
        check_probability_rows(arr, name)
    return arr


def check_probability_rows(arr: np.ndarray, name: str = "pred_probs") -> None:
    """Chunked pass over a structurally valid array: see :func:`check_probability_block`."""
    n, k = arr.shape
    step = max(1, _CHUNK_BYTES // (k * arr.itemsize))
    for start in range(0, n, step):
        check_probability_block(arr[start : start + step], start, name)


def check_probability_block(block: np.ndarray, first_row: int, name: str = "pred_probs") -> None:
    """Rows of one chunk: finite, non-negative, summing to 1 within tolerance.

    Two vectorised passes (row sums, minimum): a NaN or infinity anywhere in
    a row makes its sum non-finite. The slow diagnosis runs only to word the
    error. Chunked passes of the core call this on every chunk they read, so
    rows are validated once, while in cache.
    """
    sums = np.einsum("ij->i", block)
    if not (np.isfinite(sums).all() and np.abs(sums - 1.0).max() <= ROW_SUM_TOLERANCE and block.min() >= 0):
        _diagnose_rows(block, first_row, name)


def invalid_probability_rows(pred_probs: np.ndarray) -> np.ndarray:
    """Which rows are not probability vectors (the rule every row check applies).

    Parameters
    ----------
    pred_probs : numpy.ndarray, shape (n, K), float
        Structurally valid (2-D, float) probabilities.

    Returns
    -------
    numpy.ndarray of bool, shape (n,)
        True where a row has a non-finite or negative entry or does not sum to 1
        within ``ROW_SUM_TOLERANCE`` (summed in float64).
    """
    n = pred_probs.shape[0]
    if n and _clearly_valid(pred_probs):
        return np.zeros(n, dtype=bool)
    bad = ~np.isfinite(pred_probs).all(axis=1) | (pred_probs < 0).any(axis=1)
    return bad | (np.abs(pred_probs.sum(axis=1, dtype=np.float64) - 1.0) > ROW_SUM_TOLERANCE)


def _clearly_valid(pred_probs: np.ndarray) -> bool:
    """Whether every row is a probability vector with room to spare (the common case, in two fast passes).

    Row sums by ``einsum`` (in float64) may differ from ``sum(axis=1)`` in the last bits, so
    rows pass here only within half the tolerance; anything else gets the exact rule. A
    NaN or infinity makes its row's sum non-finite, and a NaN makes the minimum NaN.
    """
    sums = np.einsum("ij->i", pred_probs, dtype=np.float64)
    return bool(
        np.isfinite(sums).all() and np.abs(sums - 1.0).max() <= 0.5 * ROW_SUM_TOLERANCE and pred_probs.min() >= 0
    )


def _diagnose_rows(block: np.ndarray, offset: int, name: str) -> None:
    finite = np.isfinite(block).all(axis=1)
    if not finite.all():
        row = int(np.flatnonzero(~finite)[0])
        raise ValueError(f"{name} must be finite; row {offset + row} is {_describe(block[row].tolist())}")
    negative = (block < 0).any(axis=1)
    if negative.any():
        row = int(np.flatnonzero(negative)[0])
        raise ValueError(f"{name} must be non-negative; row {offset + row} is {_describe(block[row].tolist())}")
    sums = block.sum(axis=1, dtype=np.float64)
    row = int(np.argmax(np.abs(sums - 1.0)))
    raise ValueError(
        f"{name} rows must sum to 1 (within {ROW_SUM_TOLERANCE:g}); row {offset + row} sums to {float(sums[row])!r}"
    )


def check_labels(
    labels: Any, num_classes: int, name: str = "labels", k_source: str = "columns of pred_probs"
) -> np.ndarray:
    """Return ``labels`` as a validated 1-D integer array with values in 0..K-1.

    Parameters
    ----------
    labels : array_like of int, shape (n,)
    num_classes : int
        ``K``.
    name : str
        Argument name used in error messages.
    k_source : str
        Where ``K`` comes from, for the error message, e.g.
        ``"columns of pred_probs"`` or ``"rows of confident_joint"``.

    Returns
    -------
    numpy.ndarray, shape (n,), integer dtype
    """
    if isinstance(labels, (str, bytes)) or labels is None:
        raise TypeError(f"{name} must be a 1-D array of integer class ids, got {_describe(labels)}")
    arr = np.asarray(labels)
    if arr.dtype.kind not in "iu":
        raise TypeError(
            f"{name} must contain integer class ids 0..K-1, got dtype {arr.dtype} "
            f"({_describe(labels)}); encode string or float labels as integers first"
        )
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D with shape (n,), got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} must not be empty")
    low, high = int(arr.min()), int(arr.max())
    if low < 0 or high >= num_classes:
        bad = low if low < 0 else high
        raise ValueError(f"{name} must be in 0..{num_classes - 1} (K = {num_classes} {k_source}), found {bad}")
    return arr


def check_labels_and_pred_probs(
    labels: Any, pred_probs: Any, *, check_rows: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Validate the pair used by almost every public function.

    With ``check_rows=False`` only shapes, dtypes and labels are checked; the
    caller must then read every row through :func:`check_probability_block`.

    Returns
    -------
    labels : numpy.ndarray, shape (n,), integer
    pred_probs : numpy.ndarray, shape (n, K), float32 or float64
    """
    probs = check_pred_probs(pred_probs, check_rows=check_rows)
    labs = check_labels(labels, probs.shape[1])
    if labs.shape[0] != probs.shape[0]:
        raise ValueError(
            f"labels and pred_probs must have the same length, got len(labels) = "
            f"{labs.shape[0]} and pred_probs.shape = {probs.shape}"
        )
    return labs, probs


def check_choice(value: Any, name: str, choices: Sequence[str]) -> str:
    """Raise unless ``value`` is one of ``choices``."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {_describe(value)}")
    return value


def _square_matrix(value: Any, name: str, what: str, *, describe_dtype: bool = True) -> np.ndarray:
    """``value`` as a numeric (K, K) array with K >= 2 (layout preserved), else TypeError/ValueError."""
    if isinstance(value, (str, bytes)) or value is None:
        raise TypeError(f"{name} must be a (K, K) array of {what}, got {_describe(value)}")
    arr = np.asarray(value)
    if arr.dtype.kind not in "iuf":
        detail = f" ({_describe(value)})" if describe_dtype else ""
        raise TypeError(f"{name} must be numeric, got dtype {arr.dtype}{detail}")
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1] or arr.shape[0] < 2:
        raise ValueError(f"{name} must be a square (K, K) matrix with K >= 2, got shape {arr.shape}")
    return arr


def check_confident_joint(confident_joint: Any, num_classes: int | None = None) -> np.ndarray:
    """Validate a user-supplied confident joint: square, finite, non-negative counts.

    Returns
    -------
    numpy.ndarray, shape (K, K); memory layout preserved (it matters for
    floating-point parity of calibration).
    """
    name = "confident_joint"
    arr = _square_matrix(confident_joint, name, "counts", describe_dtype=False)
    if num_classes is not None and arr.shape[0] != num_classes:
        raise ValueError(f"{name} must have shape ({num_classes}, {num_classes}) to match pred_probs, got {arr.shape}")
    if not np.isfinite(arr).all() or (arr < 0).any():
        raise ValueError(f"{name} must be finite and non-negative, got {_describe(arr.tolist())}")
    return arr


def check_fraction(value: Any, name: str, *, low_open: bool = True) -> float:
    """A real number in (0, 1] (or [0, 1] when ``low_open`` is False)."""
    interval = "(0, 1]" if low_open else "[0, 1]"
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number in {interval}, got {_describe(value)}")
    v = float(value)
    ok = (0.0 < v <= 1.0) if low_open else (0.0 <= v <= 1.0)
    if not ok:
        raise ValueError(f"{name} must be in {interval}, got {value!r}")
    return v


def check_count(value: Any, name: str, *, minimum: int = 0) -> int:
    """A Python/numpy integer >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer >= {minimum}, got {_describe(value)}")
    if int(value) < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_counts_per_class(
    value: Any, name: str, num_classes: int, class_sizes: np.ndarray | None = None
) -> np.ndarray:
    """A length-K sequence of non-negative integers, at most ``class_sizes[k]`` each.

    Parameters
    ----------
    value : array_like of int, shape (K,)
    name : str
        Argument name used in error messages.
    num_classes : int
        ``K``.
    class_sizes : ndarray of int, shape (K,), optional
        ``n_k``; when given, ``value[k] > n_k`` is a ValueError naming the
        class and ``n_k``.

    Returns
    -------
    numpy.ndarray of int64, shape (K,)
    """
    arr = np.asarray(value)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{name} must be a sequence of K integers, got {_describe(value)}")
    if arr.shape != (num_classes,):
        raise ValueError(f"{name} must have length K = {num_classes}, got shape {arr.shape}")
    if (arr < 0).any():
        raise ValueError(f"{name} must be non-negative, got {_describe(arr.tolist())}")
    if class_sizes is not None and (arr > class_sizes).any():
        k = int(np.flatnonzero(arr > class_sizes)[0])
        raise ValueError(
            f"{name}[{k}] = {int(arr[k])} exceeds n_{k} = {int(class_sizes[k])}, the number of examples with label {k}"
        )
    return arr.astype(np.int64)


def check_flag(value: Any, name: str) -> bool:
    """A Python or numpy bool (not any truthy object), returned as ``bool``."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {_describe(value)}")
    return bool(value)


def check_thresholds(thresholds: Any, num_classes: int) -> np.ndarray:
    """Per-class thresholds: (K,) finite floats."""
    arr = np.asarray(thresholds)
    if arr.dtype.kind not in "iuf":
        raise TypeError(f"thresholds must be a (K,) array of numbers, got {_describe(thresholds)}")
    if arr.shape != (num_classes,):
        raise ValueError(f"thresholds must have shape ({num_classes},), got {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"thresholds must be finite, got {_describe(arr.tolist())}")
    return arr


def check_real(value: Any, name: str) -> float:
    """A finite real number (not a bool), returned as ``float``."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number, got {_describe(value)}")
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return float(value)


def check_seed(seed: Any, name: str = "seed") -> int | None:
    """``None`` or an integer >= 0 (the argument of ``numpy.random.default_rng``)."""
    if seed is None:
        return None
    return check_count(seed, name)


def check_noise_matrix(noise_matrix: Any, name: str = "noise_matrix", *, stochastic: bool = True) -> np.ndarray:
    """A (K, K) real matrix, K >= 2, finite, non-negative; columns summing to 1 if ``stochastic``.

    Returns
    -------
    numpy.ndarray of float64, shape (K, K)
    """
    arr = _square_matrix(noise_matrix, name, "probabilities").astype(np.float64)
    if not np.isfinite(arr).all() or (arr < 0).any():
        raise ValueError(f"{name} must be finite and non-negative, got {_describe(arr.tolist())}")
    sums = arr.sum(axis=0)
    if stochastic and not np.allclose(sums, 1.0, rtol=0, atol=1e-6):
        raise ValueError(f"{name} columns must sum to 1, got column sums {_describe(sums.tolist())}")
    return arr


def check_prior(py: Any, num_classes: int, name: str = "py") -> np.ndarray:
    """A probability vector of length K: finite, non-negative, summing to 1 (within 1e-6).

    Returns
    -------
    numpy.ndarray of float64, shape (K,)
    """
    if isinstance(py, (str, bytes)) or py is None:
        raise TypeError(f"{name} must be a (K,) array of probabilities, got {_describe(py)}")
    arr = np.asarray(py)
    if arr.dtype.kind not in "iuf":
        raise TypeError(f"{name} must be a (K,) array of probabilities, got {_describe(py)}")
    if arr.shape != (num_classes,):
        raise ValueError(f"{name} must have shape ({num_classes},), got {arr.shape}")
    arr = arr.astype(np.float64)
    if not np.isfinite(arr).all() or (arr < 0).any() or abs(arr.sum() - 1.0) > 1e-6:
        raise ValueError(f"{name} must be a probability vector (non-negative, sum 1), got {_describe(arr.tolist())}")
    return arr
