"""Public API for flagging and ranking label issues."""

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from . import _count, _filter, _rank
from . import _validation as v
from ._estimation import _thresholds, off_diagonal_count, prepare
from ._select import smallest

#: The seven filters of cleanlab 2.9.0, same names, same masks.
CLEANLAB_FILTER_METHODS = (
    "prune_by_noise_rate",
    "prune_by_class",
    "both",
    "confident_learning",
    "predicted_neq_given",
    "low_self_confidence",
    "low_normalized_margin",
)
#: Our recommended setting (docs/recommended-setting.md): flag an example
#: only when both confident-learning criteria agree (``both``: lowest
#: self-confidence within its class AND largest margin towards the class it
#: is estimated to come from), and rank by ``confidence_then_margin``
#: (self-confidence, ties broken by the normalized margin).
RECOMMENDED_FILTER = "both"
RECOMMENDED_RANK_BY = "confidence_then_margin"
FILTER_METHODS = CLEANLAB_FILTER_METHODS + ("recommended",)
#: Filters that use the calibrated confident joint (cleanlab's prune methods).
PRUNE_METHODS = _filter.PRUNE_METHODS


def default_rank_by(filter_by: str) -> str:
    """The ranking that goes with a filter.

    Parameters
    ----------
    filter_by : str
        One of ``FILTER_METHODS`` (not validated here).

    Returns
    -------
    str
        ``RECOMMENDED_RANK_BY`` for ``"recommended"``, cleanlab's ``"self_confidence"`` otherwise.
    """
    return RECOMMENDED_RANK_BY if filter_by == "recommended" else "self_confidence"


def find_label_issues(
    labels: ArrayLike,
    pred_probs: ArrayLike,
    *,
    filter_by: str = "prune_by_noise_rate",
    frac_noise: float = 1.0,
    num_to_remove_per_class: ArrayLike | None = None,
    min_examples_per_class: int = 1,
    confident_joint: ArrayLike | None = None,
) -> np.ndarray:
    """Boolean mask of the examples whose given label is likely wrong.

    Parameters
    ----------
    labels : array_like of int, shape (n,)
    pred_probs : array_like of float, shape (n, K)
        Out-of-sample predicted probabilities.
    filter_by : str, default "prune_by_noise_rate"
        One of ``FILTER_METHODS`` (see ``_filter`` for the rules);
        ``"recommended"`` is ``RECOMMENDED_FILTER``.
    frac_noise : float in (0, 1], default 1.0
        Flag only this fraction of the estimated off-diagonal counts
        (prune methods only; ignored with a warning otherwise, as in cleanlab).
    num_to_remove_per_class : array_like of int, shape (K,), optional
        Exact number of candidates to select per given class (prune methods
        only; applied before the near-argmax rule). With
        ``"prune_by_class"`` a request above ``n_k`` selects the whole class,
        as in cleanlab; the other prune methods, whose exact counts are ours
        (docs/differences-from-cleanlab.md), reject it with a ValueError.
    min_examples_per_class : int, default 1
        Keep at least this many examples per class; classes with at most
        this many examples are not pruned.
    confident_joint : array_like, shape (K, K), optional
        Used as the prune matrix source instead of the calibrated ``C``
        (prune methods only; not recalibrated).

    Returns
    -------
    ndarray of bool, shape (n,)
    """
    labels, pred_probs = v.check_labels_and_pred_probs(labels, pred_probs, check_rows=False)
    k = pred_probs.shape[1]
    options = check_filter_options(
        k,
        lambda: np.bincount(labels, minlength=k),
        filter_by,
        frac_noise,
        num_to_remove_per_class,
        min_examples_per_class,
        confident_joint,
    )
    return _find(labels, pred_probs, *options)


def check_filter_options(
    k: int,
    class_sizes: Callable[[], np.ndarray],
    filter_by: Any,
    frac_noise: Any,
    num_to_remove_per_class: Any,
    min_examples_per_class: Any,
    confident_joint: Any,
) -> tuple[str, float, np.ndarray | None, int, np.ndarray | None]:
    """Validate the options of :func:`find_label_issues` (shared with the batched engine).

    ``class_sizes()`` gives ``n_k`` (called only when ``num_to_remove_per_class``
    needs checking against it). Warns (attributed to the caller of the public
    function) when ``frac_noise`` is ignored.

    Returns
    -------
    (filter_by, frac_noise, to_remove, min_examples_per_class, confident_joint)
        ``filter_by`` with ``"recommended"`` resolved; ``to_remove`` int64 (K,) or None.
    """
    v.check_choice(filter_by, "filter_by", FILTER_METHODS)
    if filter_by == "recommended":
        filter_by = RECOMMENDED_FILTER
    frac_noise = v.check_fraction(frac_noise, "frac_noise")
    min_examples_per_class = v.check_count(min_examples_per_class, "min_examples_per_class")
    prune = filter_by in _filter.PRUNE_METHODS
    to_remove = None
    if num_to_remove_per_class is not None:
        if not prune:
            raise ValueError(
                f"num_to_remove_per_class is only supported with filter_by in "
                f"{list(_filter.PRUNE_METHODS)}, got filter_by={filter_by!r}"
            )
        sizes = None if filter_by == "prune_by_class" else class_sizes()
        to_remove = v.check_counts_per_class(num_to_remove_per_class, "num_to_remove_per_class", k, sizes)
    if not prune and frac_noise != 1.0:
        warnings.warn(
            f"frac_noise={frac_noise} only affects filter_by in {list(_filter.PRUNE_METHODS)}; "
            f"it is ignored with filter_by={filter_by!r}",
            stacklevel=3,
        )
    if confident_joint is not None:
        if not prune:
            raise ValueError(
                f"confident_joint is only used by filter_by in {list(_filter.PRUNE_METHODS)}, "
                f"got filter_by={filter_by!r}"
            )
        confident_joint = v.check_confident_joint(confident_joint, k)
    return filter_by, frac_noise, to_remove, min_examples_per_class, confident_joint


def _find(labels, pred_probs, filter_by, frac_noise, to_remove, min_examples, confident_joint) -> np.ndarray:
    k = pred_probs.shape[1]
    index, cpass = prepare(labels, pred_probs)
    if filter_by in ("low_self_confidence", "low_normalized_margin"):
        scores = _rank.quality_scores(labels, pred_probs, filter_by[4:], check_block=None)
        mask = np.zeros(labels.shape[0], dtype=bool)
        mask[smallest(scores, off_diagonal_count(labels, cpass))] = True
        return mask
    if filter_by == "confident_learning":
        mask = cpass.off_diagonal(labels)
    elif filter_by == "predicted_neq_given":
        mask = cpass.predicted != labels
    else:
        if confident_joint is None:
            raw = _count.count_joint(labels, cpass.guess, k)
            confident_joint = _count.calibrate(raw, index.counts.astype(np.int64))
        prune = _filter.prune_matrix(confident_joint, min_examples, frac_noise)
        mask = _filter.prune_mask(pred_probs, index, cpass, prune, filter_by, min_examples, to_remove)
    mask &= ~cpass.keep
    return mask


def get_label_quality_scores(
    labels: ArrayLike,
    pred_probs: ArrayLike,
    *,
    method: str = "self_confidence",
    adjust_pred_probs: bool = False,
) -> np.ndarray:
    """Per-example label quality in [0, 1]; lower = more likely mislabeled.

    Parameters
    ----------
    labels : array_like of int, shape (n,)
    pred_probs : array_like of float, shape (n, K)
    method : {"self_confidence", "normalized_margin", "confidence_weighted_entropy", "confidence_margin", "confidence_then_margin"}
    adjust_pred_probs : bool, default False
        Subtract per-class thresholds first (not with the entropy method).

    Returns
    -------
    ndarray of float, shape (n,)
    """
    labels, pred_probs = v.check_labels_and_pred_probs(labels, pred_probs, check_rows=False)
    return _scores(labels, pred_probs, method, adjust_pred_probs)


def _scores(labels, pred_probs, method, adjust_pred_probs, name: str = "method") -> np.ndarray:
    v.check_choice(method, name, _rank.SCORE_METHODS)
    adjust_pred_probs = v.check_flag(adjust_pred_probs, "adjust_pred_probs")
    if adjust_pred_probs and method == "confidence_weighted_entropy":
        raise ValueError(f"adjust_pred_probs=True is not supported with {name}='confidence_weighted_entropy'")
    if not adjust_pred_probs:
        return _rank.quality_scores(labels, pred_probs, method, check_block=v.check_probability_block)
    thresholds = _thresholds(labels, pred_probs)  # validates every row
    return _rank.quality_scores(labels, pred_probs, method, thresholds, check_block=None)


def order_label_issues(
    issues: ArrayLike,
    labels: ArrayLike,
    pred_probs: ArrayLike,
    *,
    rank_by: str = "self_confidence",
    adjust_pred_probs: bool = False,
) -> np.ndarray:
    """Indices of the flagged examples, most suspicious first.

    Parameters
    ----------
    issues : array_like, shape (n,) of bool, or (m,) of int
        A mask from :func:`find_label_issues` or row indices.
    labels : array_like of int, shape (n,)
    pred_probs : array_like of float, shape (n, K)
    rank_by : {"self_confidence", "normalized_margin", "confidence_weighted_entropy", "confidence_margin", "confidence_then_margin"}
    adjust_pred_probs : bool, default False

    Returns
    -------
    ndarray of int64, shape (m,)
        Sorted by label quality ascending; ties by index.
    """
    labels, pred_probs = v.check_labels_and_pred_probs(labels, pred_probs, check_rows=False)
    indices = _issue_indices(issues, labels.shape[0])
    scores = _scores(labels, pred_probs, rank_by, adjust_pred_probs, name="rank_by")
    return _rank.order_by_score(indices, scores).astype(np.int64)


def _issue_indices(issues: Any, n: int) -> np.ndarray:
    arr = np.asarray(issues)
    if arr.ndim != 1:
        raise ValueError(f"issues must be a 1-D mask or index array, got shape {arr.shape}")
    if arr.dtype == bool:
        if arr.shape[0] != n:
            raise ValueError(f"issues mask must have length n = {n}, got {arr.shape[0]}")
        return np.flatnonzero(arr)
    if arr.size == 0:
        return np.empty(0, dtype=np.int64)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"issues must be a boolean mask or integer indices, got dtype {arr.dtype}")
    if arr.min() < 0 or arr.max() >= n:
        raise ValueError(f"issues indices must be in 0..{n - 1}, got range [{arr.min()}, {arr.max()}]")
    if np.unique(arr).size != arr.size:
        raise ValueError("issues indices must be unique")
    return arr.astype(np.int64)
