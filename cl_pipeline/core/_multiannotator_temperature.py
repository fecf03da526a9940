"""Temperature scaling of ``pred_probs`` towards the annotators' label distribution.

The temperature ``T`` minimises the mean soft cross-entropy between each
example's empirical label distribution (the fraction of its annotators giving
each class) and ``softmax(log p / T)``, normalised by ``log K``: first over the
grid ``COARSE``, then over a finer grid (``FINE_STEPS`` points) on each side of
the best coarse value; the first minimum wins. Probabilities are floored at
1e-30 before any logarithm. Same operations as cleanlab 2.9.0 (so the same
``T`` and bit-identical scaled probabilities), with the empirical distribution
computed once instead of in a per-example loop for every candidate ``T``.
"""

import numpy as np

COARSE = (0.1, 0.2, 0.5, 0.8, 1, 2, 3, 5, 8)
FINE_STEPS = 4
_FLOOR = 1e-30
_MIN_TEMPERATURE = 1e-6


def _softmax_rows(x: np.ndarray, temperature: float) -> np.ndarray:
    e = np.exp(x / max(temperature, _MIN_TEMPERATURE))
    return e / np.sum(e, axis=1, keepdims=True)


def _mean_soft_cross_entropy(empirical: np.ndarray, probs: np.ndarray) -> float:
    k = probs.shape[1]
    clipped = np.clip(probs, a_min=_FLOOR, a_max=None)
    return np.mean(-np.sum(empirical * np.log(clipped), axis=1) / np.log(k))


def best_temperature(counts: np.ndarray, num_annotations: np.ndarray, pred_probs: np.ndarray) -> np.float64:
    """The temperature that best fits the annotators (see module docstring).

    Returned as ``numpy.float64``, as the reference does: dividing float32 log
    probabilities by it promotes them to float64 (a Python float would not).
    """
    empirical = counts / num_annotations.reshape(-1, 1)
    logp = np.log(pred_probs, where=pred_probs > 0, out=np.full(pred_probs.shape, -np.inf))
    coarse = [_mean_soft_cross_entropy(empirical, _softmax_rows(logp, t)) for t in COARSE]
    best = int(np.argmin(coarse))
    fine = _fine_grid(best)
    losses = [_mean_soft_cross_entropy(empirical, _softmax_rows(logp, t)) for t in fine]
    return fine[int(np.argmin(losses))]


def _fine_grid(best: int) -> np.ndarray:
    parts = []
    if best != 0:
        parts.append(np.linspace(COARSE[best - 1], COARSE[best], FINE_STEPS, endpoint=False))
    if best != len(COARSE) - 1:
        parts.append(np.linspace(COARSE[best], COARSE[best + 1], FINE_STEPS + 1, endpoint=True))
    return np.concatenate(parts)


def scale(pred_probs: np.ndarray, temperature: float) -> np.ndarray:
    """``pred_probs`` floored at 1e-30, renormalised, then ``softmax(log p / T)`` renormalised."""
    p = np.clip(pred_probs, a_min=_FLOOR, a_max=None)
    p = p / np.sum(p, axis=1)[:, np.newaxis]
    scaled = _softmax_rows(np.log(p), temperature)
    return scaled / np.sum(scaled, axis=1)[:, np.newaxis]
