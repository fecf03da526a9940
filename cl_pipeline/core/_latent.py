"""Latent estimates from a confident joint: priors and noise matrices.

Notation: ``C`` (K, K) confident joint, rows = given label ỹ, columns = true
label y*; ``ps[k] = n_k / n`` the prior of given labels.

- ``noise_matrix[i, j] = P(ỹ = i | y* = j) = C[i, j] / sum_i C[i, j]``
  (columns sum to 1).
- ``inverse_noise_matrix[j, i] = P(y* = j | ỹ = i) = C[i, j] / sum_j C[i, j]``
  (columns sum to 1).
- ``py[k] = P(y* = k)`` by ``py_method``: ``cnt`` (default)
  ``inv[k, k] / nm[k, k] * ps[k]``; ``eqn`` ``inverse(nm) @ ps``;
  ``marginal`` column sums of ``C`` / total; ``marginal_ps`` ``inv @ ps``;
  then clipped to [1e-6, 1] and renormalised to sum 1.

Both matrices have their off-diagonal entries clipped to [0, 0.9999] (the
diagonal kept) and columns renormalised to sum to 1. Optional convergence
alternates ``inv <- f(py, nm)`` and ``py <- f(nm, inv)`` 5 times, then
``nm <- f(inv, py)``, three times over; ``py`` is then clipped to [1e-5, 1].

Invariants (tested): columns of both matrices sum to 1, entries lie in
[0, 1], ``py`` sums to 1; a diagonal ``C`` gives identity matrices.
"""

import numpy as np

from ._count import TINY_VALUE

PY_METHODS = ("cnt", "eqn", "marginal", "marginal_ps")
#: ``py`` is clipped to at least this value.
PY_FLOOR = 1e-6
#: After convergence, ``py`` is clipped to at least this value.
CONVERGED_PY_FLOOR = 1e-5
#: Off-diagonal noise rates are clipped to at most this value.
MAX_NOISE_RATE = 0.9999


def clip_noise_rates(matrix: np.ndarray) -> np.ndarray:
    """Clip off-diagonals to [0, 0.9999], keep the diagonal, columns sum to 1."""
    diagonal = np.diagonal(matrix).copy()
    clipped = np.clip(matrix, 0, MAX_NOISE_RATE)
    np.fill_diagonal(clipped, diagonal)
    return clipped / np.maximum(clipped.sum(axis=0), TINY_VALUE)


def clip_and_renormalise(values: np.ndarray, low: float) -> np.ndarray:
    """Clip a distribution to [low, 1] and rescale it to sum to 1."""
    clipped = np.clip(values, low, 1.0)
    return clipped * 1.0 / max(clipped.sum(), TINY_VALUE)


def prior_of_true_labels(
    ps: np.ndarray,
    noise_matrix: np.ndarray,
    inverse_noise_matrix: np.ndarray,
    py_method: str,
    true_label_counts: np.ndarray | None = None,
) -> np.ndarray:
    """``py`` by one of ``PY_METHODS`` (see module docstring), shape (K,)."""
    if py_method == "cnt":
        py = np.diagonal(inverse_noise_matrix) / np.maximum(np.diagonal(noise_matrix), TINY_VALUE) * ps
    elif py_method == "eqn":
        py = _invert(noise_matrix).dot(ps)
    elif py_method == "marginal":
        py = true_label_counts / max(float(true_label_counts.sum()), TINY_VALUE)
    else:
        py = np.dot(inverse_noise_matrix, ps)
    return clip_and_renormalise(py, PY_FLOOR)


def _invert(noise_matrix: np.ndarray) -> np.ndarray:
    try:
        return np.linalg.inv(noise_matrix)
    except np.linalg.LinAlgError as exc:
        raise ValueError(
            "py_method='eqn' needs an invertible noise matrix, but the estimated "
            "noise matrix is singular; use py_method='cnt'"
        ) from exc


def inverse_from_noise(py: np.ndarray, noise_matrix: np.ndarray, ps: np.ndarray) -> np.ndarray:
    """``inv[j, i] = nm[i, j] py[j] / ps[i]``, clipped."""
    joint = noise_matrix * py
    return clip_noise_rates(joint.T / np.maximum(ps, TINY_VALUE))


def noise_from_inverse(ps: np.ndarray, inverse_noise_matrix: np.ndarray, py: np.ndarray) -> np.ndarray:
    """``nm[i, j] = inv[j, i] ps[i] / py[j]``, clipped."""
    joint = (inverse_noise_matrix * ps).T
    return clip_noise_rates(joint / np.maximum(py, TINY_VALUE))


def converge(
    ps: np.ndarray,
    py: np.ndarray,
    noise_matrix: np.ndarray,
    inverse_noise_matrix: np.ndarray,
    outer: int = 3,
    inner: int = 5,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Alternate the latent estimates until they agree algebraically.

    Returns
    -------
    py : ndarray, shape (K,)
    noise_matrix, inverse_noise_matrix : ndarray, shape (K, K)
    """
    for _ in range(outer):
        for _ in range(inner):
            inverse_noise_matrix = inverse_from_noise(py, noise_matrix, ps)
            py = prior_of_true_labels(ps, noise_matrix, inverse_noise_matrix, "cnt")
        noise_matrix = noise_from_inverse(ps, inverse_noise_matrix, py)
    return py, noise_matrix, inverse_noise_matrix


def latent_estimates(
    confident_joint: np.ndarray,
    label_counts: np.ndarray,
    num_examples: int,
    py_method: str,
    converge_latent_estimates: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(py, noise_matrix, inverse_noise_matrix)`` from ``C`` (trusted inputs)."""
    ps = label_counts / float(num_examples)
    given_counts = confident_joint.sum(axis=1).astype(float)
    true_counts = confident_joint.sum(axis=0).astype(float)
    noise_matrix = confident_joint / np.maximum(true_counts, TINY_VALUE)
    inverse_noise_matrix = confident_joint.T / np.maximum(given_counts, TINY_VALUE)
    py = prior_of_true_labels(ps, noise_matrix, inverse_noise_matrix, py_method, true_counts)
    noise_matrix = clip_noise_rates(noise_matrix)
    inverse_noise_matrix = clip_noise_rates(inverse_noise_matrix)
    if converge_latent_estimates:
        py, noise_matrix, inverse_noise_matrix = converge(ps, py, noise_matrix, inverse_noise_matrix)
        py = clip_and_renormalise(py, CONVERGED_PY_FLOOR)
        noise_matrix = clip_noise_rates(noise_matrix)
        inverse_noise_matrix = clip_noise_rates(inverse_noise_matrix)
    return py, noise_matrix, inverse_noise_matrix
