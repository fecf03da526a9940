"""Multi-label label quality: one binary score per class, aggregated per example.

Per class ``k`` the one-vs-rest problem (``_multilabel_input.binary_problem``) is
scored by the single-label engine (``_rank``), so ``self_confidence`` is
``p_k`` if the example has class ``k`` and ``1 - p_k`` otherwise; with
``adjust_pred_probs`` the binary problem's own confident thresholds are
subtracted first.

Aggregators over an example's K class scores ``s``:

- ``exponential_moving_average`` (``alpha``, default ``2 / (K + 1)`` when None):
  sort ``s`` in decreasing order, ``e = s_(1)``, then ``e = alpha * s_(t) + (1 - alpha) * e``
  for ``t = 2..K``: the worst classes weigh most;
- ``softmin`` (``temperature``, default 0.1): ``sum_k s_k softmax((1 - s) / temperature)_k``;
- a callable ``f(scores, axis=1, **kwargs)`` returning shape (n,).

Same arithmetic as cleanlab 2.9.0's aggregators, so aggregated scores of equal
per-class scores are bit-identical.
"""

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

import numpy as np

from . import _rank
from . import _validation as v
from ._estimation import _thresholds
from ._multilabel_input import binary_problem

AGGREGATORS = ("exponential_moving_average", "softmin")
#: cleanlab's default ``aggregator_kwargs`` (read-only).
DEFAULT_AGGREGATOR: Mapping[str, Any] = MappingProxyType({"method": "exponential_moving_average", "alpha": 0.8})


def per_class_scores(y: np.ndarray, pred_probs: np.ndarray, method: str, adjust: bool) -> np.ndarray:
    """(n, K) float64: the binary label quality score of every (example, class)."""
    n, k = pred_probs.shape
    out = np.zeros((n, k))
    for c in range(k):
        labels, probs = binary_problem(y, pred_probs, c)
        thresholds = _thresholds(labels, probs) if adjust else None
        out[:, c] = _rank.quality_scores(labels, probs, method, thresholds, check_block=None)
    return out


def check_aggregator(aggregator_kwargs: Any) -> tuple[Callable[..., np.ndarray], dict[str, Any]]:
    """The aggregation function and its keyword arguments, validated."""
    if aggregator_kwargs is None or (isinstance(aggregator_kwargs, Mapping) and not aggregator_kwargs):
        aggregator_kwargs = DEFAULT_AGGREGATOR
    if not isinstance(aggregator_kwargs, Mapping):
        raise TypeError(
            f"aggregator_kwargs must be a dict such as {dict(DEFAULT_AGGREGATOR)}, got {v._describe(aggregator_kwargs)}"
        )
    kwargs = dict(aggregator_kwargs)
    if "method" not in kwargs:
        raise ValueError(f"aggregator_kwargs must name a 'method' ({list(AGGREGATORS)} or a callable), got {kwargs}")
    method = kwargs.pop("method")
    if callable(method):
        return method, kwargs
    v.check_choice(method, "aggregator_kwargs['method']", AGGREGATORS)
    if method == "exponential_moving_average":
        _only(kwargs, "alpha", method)
        alpha = kwargs.get("alpha")
        if alpha is not None:
            kwargs["alpha"] = v.check_fraction(alpha, "aggregator_kwargs['alpha']", low_open=False)
        return exponential_moving_average, kwargs
    _only(kwargs, "temperature", method)
    if "temperature" in kwargs:
        t = v.check_real(kwargs["temperature"], "aggregator_kwargs['temperature']")
        if t <= 0:
            raise ValueError(f"aggregator_kwargs['temperature'] must be > 0, got {t!r}")
    return softmin, kwargs


def _only(kwargs: dict[str, Any], allowed: str, method: str) -> None:
    extra = sorted(set(kwargs) - {allowed})
    if extra:
        raise ValueError(f"aggregator_kwargs for method {method!r} accepts only {allowed!r}, got {extra}")


def exponential_moving_average(scores: np.ndarray, *, alpha: float | None = None, axis: int = 1) -> np.ndarray:
    """EMA of each row's scores sorted in decreasing order (see module docstring); shape (n,)."""
    ordered = np.fliplr(np.sort(scores, axis=axis))
    if alpha is None:
        alpha = float(2 / (scores.shape[1] + 1))
    ema = ordered[:, 0]
    for t in range(1, ordered.shape[1]):
        ema = alpha * ordered[:, t] + (1 - alpha) * ema
    return ema


def softmin(scores: np.ndarray, *, temperature: float = 0.1, axis: int = 1) -> np.ndarray:
    """Softmin-weighted mean of each row's scores; shape (n,)."""
    x = (1 - scores) / max(temperature, 1e-6)
    x = x - np.max(x, axis=axis, keepdims=True)
    e = np.exp(x)
    return np.einsum("ij,ij->i", scores, e / np.sum(e, axis=axis, keepdims=True))


def aggregate(scores: np.ndarray, fn: Callable[..., np.ndarray], kwargs: dict[str, Any]) -> np.ndarray:
    """Apply a validated aggregator; a callable's output must have shape (n,)."""
    out = np.asarray(fn(scores, **{**kwargs, "axis": 1}))
    if out.shape != (scores.shape[0],):
        raise ValueError(
            f"aggregator_kwargs['method'] must return one score per example, shape ({scores.shape[0]},), got {out.shape}"
        )
    return out
