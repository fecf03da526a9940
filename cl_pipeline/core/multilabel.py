"""Label issues in multi-label data (each example has a set of classes, possibly empty).

Same names, arguments and defaults as ``cleanlab.multilabel_classification``
(2.9.0: ``filter.find_label_issues``, ``filter.find_multilabel_issues_per_class``,
``rank.get_label_quality_scores``, ``rank.get_label_quality_scores_per_class``).
Every function is the one-vs-rest reduction over the single-label engine of
:mod:`cl_pipeline.core`: class ``k`` is a binary problem (labels ``Y[:, k]``,
probabilities ``[1 - p_k, p_k]``), so each binary result is exactly what
``cl_pipeline.core.find_label_issues`` / ``get_label_quality_scores`` give
(including the tie rule of docs/differences-from-cleanlab.md).

Masks only (rank with :func:`get_label_quality_scores`). ``labels`` is a list of
per-example lists of class ids or an (n, K) 0/1 ``numpy`` array; ``pred_probs``
an (n, K) array of independent per-class probabilities in [0, 1].
Differences from cleanlab: docs/differences-from-cleanlab.md, "Multi-label data".
"""

from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from . import _validation as v
from ._issues import FILTER_METHODS, RECOMMENDED_FILTER, _find, check_filter_options
from ._multilabel_input import binary_problem, check_multilabel_pred_probs, check_multilabels
from ._multilabel_scores import (
    AGGREGATORS,
    DEFAULT_AGGREGATOR,
    aggregate,
    check_aggregator,
    per_class_scores,
)
from ._parallel import map_ordered
from ._select import smallest

#: cleanlab's three per-class scores (the single-label engine's others work too).
SCORE_METHODS = ("self_confidence", "normalized_margin", "confidence_weighted_entropy")

__all__ = [
    "AGGREGATORS",
    "DEFAULT_AGGREGATOR",
    "FILTER_METHODS",
    "SCORE_METHODS",
    "find_label_issues",
    "find_multilabel_issues_per_class",
    "get_label_quality_scores",
    "get_label_quality_scores_per_class",
]


def find_label_issues(
    labels: Any,
    pred_probs: ArrayLike,
    *,
    filter_by: str = "prune_by_noise_rate",
    frac_noise: float = 1.0,
    num_to_remove_per_class: ArrayLike | None = None,
    min_examples_per_class: int = 1,
    confident_joint: ArrayLike | None = None,
) -> np.ndarray:
    """Boolean mask of the examples with an issue in any class.

    Parameters
    ----------
    labels : list of lists of int, or ndarray of 0/1, shape (n, K)
    pred_probs : array_like of float, shape (n, K)
        Independent per-class probabilities in [0, 1].
    filter_by : str, default "prune_by_noise_rate"
        One of ``FILTER_METHODS`` (cleanlab's seven, and ``"recommended"`` =
        ``cl_pipeline.core.RECOMMENDED_FILTER``). The prune filters, ``confident_learning`` and
        ``predicted_neq_given`` flag an example when its one-vs-rest problem flags it
        for some class. ``low_self_confidence`` and ``low_normalized_margin`` flag the
        ``m`` examples with the lowest :func:`get_label_quality_scores` (defaults),
        ``m`` = the number flagged by ``confident_learning``; ties at the cut go to
        the lower row index.
    frac_noise, min_examples_per_class
        Passed to every class's binary problem (see ``cl_pipeline.core.find_label_issues``).
    num_to_remove_per_class : array_like of int, shape (K,), optional
        ``r_k``: class ``k``'s binary problem removes ``[r_k, 0]``, i.e. ``r_k``
        candidates among the examples *without* class ``k`` (cleanlab's convention).
    confident_joint : array_like, shape (K, 2, 2), optional
        One-vs-rest confident joints (prune filters only).

    Returns
    -------
    ndarray of bool, shape (n,)
    """
    if filter_by in ("low_self_confidence", "low_normalized_margin"):
        y, probs = _inputs(labels, pred_probs)
        _check_options(y, filter_by, frac_noise, num_to_remove_per_class, min_examples_per_class, confident_joint)
        m = int(_per_class(y, probs, "confident_learning", 1.0, None, 1, None).any(axis=1).sum())
        fn, kwargs = check_aggregator(DEFAULT_AGGREGATOR)
        scores = aggregate(per_class_scores(y, probs, "self_confidence", False), fn, kwargs)
        mask = np.zeros(y.shape[0], dtype=bool)
        mask[smallest(scores, m)] = True
        return mask
    issues = find_multilabel_issues_per_class(
        labels,
        pred_probs,
        filter_by=filter_by,
        frac_noise=frac_noise,
        num_to_remove_per_class=num_to_remove_per_class,
        min_examples_per_class=min_examples_per_class,
        confident_joint=confident_joint,
    )
    return issues.any(axis=1)


def find_multilabel_issues_per_class(
    labels: Any,
    pred_probs: ArrayLike,
    *,
    filter_by: str = "prune_by_noise_rate",
    frac_noise: float = 1.0,
    num_to_remove_per_class: ArrayLike | None = None,
    min_examples_per_class: int = 1,
    confident_joint: ArrayLike | None = None,
) -> np.ndarray:
    """Which (example, class) annotations look wrong: class ``k``'s one-vs-rest issues.

    Parameters
    ----------
    labels, pred_probs, filter_by, frac_noise, num_to_remove_per_class, min_examples_per_class, confident_joint
        As in :func:`find_label_issues`; here every filter, ``low_*`` included,
        runs on each class's binary problem.

    Returns
    -------
    ndarray of bool, shape (n, K)
        ``[i, k]`` True when example ``i``'s annotation of class ``k`` (present or
        absent) is likely wrong.
    """
    y, probs = _inputs(labels, pred_probs)
    options = _check_options(y, filter_by, frac_noise, num_to_remove_per_class, min_examples_per_class, confident_joint)
    return _per_class(y, probs, *options)


def _inputs(labels: Any, pred_probs: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    probs = check_multilabel_pred_probs(pred_probs)
    return check_multilabels(labels, probs.shape[0], probs.shape[1]), probs


def _check_options(y, filter_by, frac_noise, num_to_remove_per_class, min_examples_per_class, confident_joint):
    v.check_choice(filter_by, "filter_by", FILTER_METHODS)
    if filter_by == "recommended":
        filter_by = RECOMMENDED_FILTER
    k = y.shape[1]
    to_remove = None
    if num_to_remove_per_class is not None:
        absent = y.shape[0] - y.sum(axis=0)
        check = None if filter_by == "prune_by_class" else absent
        to_remove = _check_removals(num_to_remove_per_class, k, check)
    joints = None
    if confident_joint is not None:
        joints = np.asarray(confident_joint)
        if joints.shape != (k, 2, 2):
            raise ValueError(f"confident_joint must have shape (K, 2, 2) = ({k}, 2, 2), got {joints.shape}")
    # the single-label rules (filter/option compatibility, ranges), once, on class 0's binary problem
    filter_by, frac_noise, _, min_examples, _ = check_filter_options(
        2,
        lambda: np.bincount(y[:, 0], minlength=2),
        filter_by,
        frac_noise,
        None if to_remove is None else [int(to_remove[0]), 0],
        min_examples_per_class,
        None if joints is None else joints[0],
    )
    if joints is not None:
        for c in range(1, k):
            v.check_confident_joint(joints[c], 2)
    return filter_by, frac_noise, to_remove, min_examples, joints


def _check_removals(value: Any, k: int, absent: np.ndarray | None) -> np.ndarray:
    arr = v.check_counts_per_class(value, "num_to_remove_per_class", k)
    if absent is not None and (arr > absent).any():
        c = int(np.flatnonzero(arr > absent)[0])
        raise ValueError(
            f"num_to_remove_per_class[{c}] = {int(arr[c])} exceeds {int(absent[c])}, the number of examples "
            f"without class {c} (where class {c}'s binary problem removes candidates)"
        )
    return arr


def _per_class(y, probs, filter_by, frac_noise, to_remove, min_examples, joints) -> np.ndarray:
    def one(c: int) -> np.ndarray:
        labels, binary = binary_problem(y, probs, c)
        remove = None if to_remove is None else np.array([to_remove[c], 0], dtype=np.int64)
        joint = None if joints is None else joints[c]
        return _find(labels, binary, filter_by, frac_noise, remove, min_examples, joint)

    return np.stack(map_ordered(one, range(y.shape[1])), axis=1)


def get_label_quality_scores(
    labels: Any,
    pred_probs: ArrayLike,
    *,
    method: str = "self_confidence",
    adjust_pred_probs: bool = False,
    aggregator_kwargs: Mapping[str, Any] = DEFAULT_AGGREGATOR,
) -> np.ndarray:
    """Label quality of each example in [0, 1]; lower = more likely some class is wrong.

    Parameters
    ----------
    labels, pred_probs
        As in :func:`find_label_issues`.
    method : {"self_confidence", "normalized_margin", "confidence_weighted_entropy"}
        Per-class binary score (see :func:`get_label_quality_scores_per_class`).
    adjust_pred_probs : bool, default False
        Subtract each binary problem's confident thresholds first (not with the entropy score).
    aggregator_kwargs : mapping, default ``{"method": "exponential_moving_average", "alpha": 0.8}``
        ``method``: ``"exponential_moving_average"`` (``alpha`` in [0, 1] or None),
        ``"softmin"`` (``temperature`` > 0) or a callable ``f(scores, axis=1, **kwargs)``;
        the other keys are its keyword arguments.

    Returns
    -------
    ndarray of float, shape (n,)
    """
    fn, kwargs = check_aggregator(aggregator_kwargs)
    return aggregate(
        get_label_quality_scores_per_class(labels, pred_probs, method=method, adjust_pred_probs=adjust_pred_probs),
        fn,
        kwargs,
    )


def get_label_quality_scores_per_class(
    labels: Any, pred_probs: ArrayLike, *, method: str = "self_confidence", adjust_pred_probs: bool = False
) -> np.ndarray:
    """Label quality of each (example, class) annotation: the binary score of class ``k``'s problem.

    Parameters
    ----------
    labels, pred_probs
        As in :func:`find_label_issues`.
    method : {"self_confidence", "normalized_margin", "confidence_weighted_entropy"}
    adjust_pred_probs : bool, default False

    Returns
    -------
    ndarray of float64, shape (n, K)
        ``self_confidence``: ``p_k`` where the example has class ``k``, ``1 - p_k`` where not.
    """
    y, probs = _inputs(labels, pred_probs)
    v.check_choice(method, "method", SCORE_METHODS)
    adjust = v.check_flag(adjust_pred_probs, "adjust_pred_probs")
    if adjust and method == "confidence_weighted_entropy":
        raise ValueError("adjust_pred_probs=True is not supported with method='confidence_weighted_entropy'")
    return per_class_scores(y, probs, method, adjust)
