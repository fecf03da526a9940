"""Synthetic label noise: noise matrices with a given trace, and noisy labels.

A noise matrix ``T`` (K, K) is column-stochastic: ``T[i, j] = P(ỹ = i | y* = j)``.
Its trace ``sum_k T[k, k]`` sets the noise level: the average noise rate is
``1 - trace / K``. ``frac_zero_noise_rates`` is the fraction of the K(K-1)
off-diagonal entries forced to zero (sparsity, as in the paper's grid).

A noise matrix is *valid* (learnable, paper eq. 2) when for every class ``k``
``P(ỹ = k, y* = k) > P(ỹ = k) P(y* = k)``: the diagonal dominates.

Randomness comes only from ``numpy.random.default_rng(seed)``; no global RNG.
"""

import numpy as np

from . import _validation as v

_MAX_TRIES = 10_000


def noise_matrix_is_valid(noise_matrix: np.ndarray, py: np.ndarray) -> bool:
    """Whether the noise matrix is learnable (paper eq. 2) under the prior ``py``.

    With ``joint = noise_matrix * py`` (``P(given = i, true = j)``) and
    ``ps = joint.sum(axis=1)`` (``P(given = i)``): valid when ``joint`` sums
    to 1 (within 1e-6) and ``joint[k, k] > ps[k] * py[k]`` for every class.

    Parameters
    ----------
    noise_matrix : array_like, shape (K, K)
        ``P(given = i | true = j)``: finite, non-negative (columns that do
        not sum to 1 make the matrix invalid, not an error).
    py : array_like, shape (K,)
        Prior of the true labels: non-negative, summing to 1.

    Returns
    -------
    bool

    Raises
    ------
    TypeError, ValueError
        If ``noise_matrix`` or ``py`` is not of the shape and kind above.
    """
    noise_matrix = v.check_noise_matrix(noise_matrix, stochastic=False)
    py = v.check_prior(py, noise_matrix.shape[0])
    return _is_valid(noise_matrix, py)


def _is_valid(noise_matrix: np.ndarray, py: np.ndarray) -> bool:
    joint = noise_matrix * py
    ps = joint.sum(axis=1)
    if abs(joint.sum() - 1.0) > 1e-6:
        return False
    return bool(np.all(np.diagonal(joint) > ps * py))


def _diagonal_with_sum(rng: np.random.Generator, k: int, trace: float) -> np.ndarray:
    """K values in [0, 1] summing to ``trace`` (Dirichlet, excess redistributed)."""
    values = rng.dirichlet(np.ones(k)) * trace
    for _ in range(100):
        excess = np.clip(values - 1.0, 0.0, None).sum()
        if excess <= 1e-12:
            break
        values = np.minimum(values, 1.0)
        room = 1.0 - values
        values = values + excess * room / room.sum()
    return np.minimum(values, 1.0)


def _zeros_per_column(rng: np.random.Generator, k: int, total: int, noisy: np.ndarray) -> np.ndarray:
    """Spread ``total`` forced zeros over noisy columns, at most K-2 per column."""
    zeros = np.zeros(k, dtype=int)
    slots = np.repeat(np.flatnonzero(noisy), k - 2)
    if slots.size and total > 0:
        picked = rng.choice(slots.size, size=min(total, slots.size), replace=False)
        np.add.at(zeros, slots[picked], 1)
    return zeros


def draw_noise_matrix(rng: np.random.Generator, k: int, trace: float, frac_zero_noise_rates: float) -> np.ndarray:
    """One random column-stochastic matrix with the given trace (trusted inputs)."""
    diagonal = _diagonal_with_sum(rng, k, trace)
    matrix = np.diag(diagonal)
    noisy = diagonal < 1.0
    total_zeros = int(k * (k - 1) * frac_zero_noise_rates) - int((~noisy).sum()) * (k - 1)
    zeros = _zeros_per_column(rng, k, max(total_zeros, 0), noisy)
    for j in np.flatnonzero(noisy):
        others = np.delete(np.arange(k), j)
        rows = rng.choice(others, size=k - 1 - zeros[j], replace=False)
        matrix[rows, j] = rng.dirichlet(np.ones(rows.size)) * (1.0 - diagonal[j])
    return matrix


def draw_noisy_labels(rng: np.random.Generator, true_labels: np.ndarray, noise_matrix: np.ndarray) -> np.ndarray:
    """Flip exactly ``floor(T[i, j] * n_j)`` examples of true class ``j`` to ``i``."""
    labels = true_labels.copy()
    k = noise_matrix.shape[0]
    for j in range(k):
        members = np.flatnonzero(true_labels == j)
        flips = np.floor(noise_matrix[:, j] * members.size + 1e-9).astype(int)
        flips[j] = 0
        total = int(flips.sum())
        if total == 0 or total > members.size:
            continue
        chosen = rng.choice(members, size=total, replace=False)
        labels[chosen] = np.repeat(np.arange(k), flips)
    return labels


def generate_noise_matrix_from_trace(
    K: int,
    trace: float,
    *,
    py: np.ndarray | None = None,
    frac_zero_noise_rates: float = 0.0,
    valid_noise_matrix: bool = True,
    seed: int | None = None,
) -> np.ndarray:
    """A random noise matrix ``P(given = i | true = j)`` with the given trace.

    Parameters
    ----------
    K : int
        Number of classes (>= 2).
    trace : float
        Sum of the diagonal, in (1, K] when ``valid_noise_matrix``, else (0, K].
    py : array_like, shape (K,), optional
        Prior of true labels used by the validity test; uniform if omitted.
    frac_zero_noise_rates : float in [0, 1]
        Fraction of off-diagonal entries forced to zero.
    valid_noise_matrix : bool, default True
        Redraw until the matrix is valid (learnable).
    seed : int >= 0, optional
        Seed of ``numpy.random.default_rng``.

    Returns
    -------
    ndarray of float64, shape (K, K), columns summing to 1

    Raises
    ------
    TypeError, ValueError
        For an argument of the wrong kind or out of range (the message names
        it), or when no valid matrix is found in 10,000 draws.
    """
    K = v.check_count(K, "K", minimum=2)
    trace = v.check_real(trace, "trace")
    if not 0 < trace <= K:
        raise ValueError(f"trace must be in (0, K] = (0, {K}], got {trace!r}")
    valid_noise_matrix = v.check_flag(valid_noise_matrix, "valid_noise_matrix")
    if valid_noise_matrix and trace <= 1:
        raise ValueError(f"trace must be > 1 for a valid noise matrix, got {trace!r}")
    frac_zero_noise_rates = v.check_fraction(frac_zero_noise_rates, "frac_zero_noise_rates", low_open=False)
    prior = np.full(K, 1.0 / K) if py is None else v.check_prior(py, K)
    rng = np.random.default_rng(v.check_seed(seed))
    for _ in range(_MAX_TRIES):
        matrix = draw_noise_matrix(rng, K, trace, frac_zero_noise_rates)
        if not valid_noise_matrix or _is_valid(matrix, prior):
            return matrix
    raise ValueError(
        f"no valid noise matrix found in {_MAX_TRIES} draws for K={K}, trace={trace}, "
        f"frac_zero_noise_rates={frac_zero_noise_rates}; raise the trace"
    )


def generate_noisy_labels(true_labels: np.ndarray, noise_matrix: np.ndarray, *, seed: int | None = None) -> np.ndarray:
    """Noisy labels with exactly ``floor(noise_matrix[i, j] * n_j)`` flips j -> i.

    Parameters
    ----------
    true_labels : array_like of int, shape (n,)
    noise_matrix : array_like, shape (K, K)
        Column-stochastic ``P(given = i | true = j)``.
    seed : int >= 0, optional
        Seed of ``numpy.random.default_rng``.

    Returns
    -------
    ndarray of int64, shape (n,)

    Raises
    ------
    TypeError, ValueError
        For an argument of the wrong kind or value (the message names it):
        ``noise_matrix`` not square, negative, non-finite or with columns not
        summing to 1; ``true_labels`` outside ``0..K-1``; a bad ``seed``.
    """
    matrix = v.check_noise_matrix(noise_matrix)
    labels = v.check_labels(true_labels, matrix.shape[0], name="true_labels", k_source="rows of noise_matrix")
    seed = v.check_seed(seed)
    return draw_noisy_labels(np.random.default_rng(seed), labels.astype(np.int64), matrix)
