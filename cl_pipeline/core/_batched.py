"""Driver of the batched engine: every pass of ``_streaming`` over an iterable of batches.

``batches`` is a zero-argument callable returning a fresh iterable of
``(labels_batch, pred_probs_batch)`` pairs in row order (each pass calls it
once; the first pass uses only the labels), or a sequence of such pairs
(a list or tuple, iterated once per pass). The global offset of a batch is
the number of rows before it. Any batch sizes give the same result; it
equals the in-memory engine's.
"""

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from ._streaming import (
    ClassCounts,
    ClassCountsState,
    ConfidentJointCounts,
    ConfidentJointState,
    ThresholdsState,
    check_num_classes,
)
from ._streaming_issues import IssueBatch, IssueSelectionState, LabelIssues, plan_label_issues

Batches = Callable[[], Iterable[tuple[ArrayLike, ArrayLike]]] | Sequence[tuple[ArrayLike, ArrayLike]]


@dataclass(frozen=True)
class BatchedLabelIssues:
    """Everything the passes computed.

    Attributes
    ----------
    class_counts : ClassCounts
    thresholds : ndarray, shape (K,)
        = ``get_confident_thresholds(labels, pred_probs)``.
    confident_joint : ConfidentJointCounts
        Raw and calibrated ``C``, ``n_k``, ``num_label_issues``.
    issues : LabelIssues
        The flagged rows, ranked; ``issues.mask()`` = ``find_label_issues(...)``.
    """

    class_counts: ClassCounts
    thresholds: np.ndarray
    confident_joint: ConfidentJointCounts
    issues: LabelIssues


def find_label_issues_batched(
    batches: Batches,
    *,
    num_classes: int | None = None,
    filter_by: str = "prune_by_noise_rate",
    frac_noise: float = 1.0,
    num_to_remove_per_class: ArrayLike | None = None,
    min_examples_per_class: int = 1,
    confident_joint: ArrayLike | None = None,
    rank_by: str = "self_confidence",
    adjust_pred_probs: bool = False,
) -> BatchedLabelIssues:
    """Exact :func:`find_label_issues` (and ranking) in four passes over row batches.

    Parameters
    ----------
    batches : callable or sequence
        See the module docstring.
    num_classes : int, optional
        ``K``; default: the number of columns of the first batch's probabilities.
    filter_by, frac_noise, num_to_remove_per_class, min_examples_per_class, confident_joint
        As in :func:`find_label_issues`.
    rank_by, adjust_pred_probs
        As in :func:`order_label_issues`; also the score of :func:`score_batches`.

    Returns
    -------
    BatchedLabelIssues
    """
    read = _reader(batches)
    k = check_num_classes(num_classes) if num_classes is not None else None
    counts_state = None
    for labels, probs, offset in _with_offsets(read()):
        if counts_state is None:
            k = k if k is not None else _columns(probs)
            counts_state = ClassCountsState(k)
        counts_state.update(labels, None, offset=offset)
    if counts_state is None:
        raise ValueError("batches yielded no batch")
    class_counts = counts_state.result()
    thresholds = run_pass(ThresholdsState(class_counts), read()).result()
    joint = run_pass(ConfidentJointState(thresholds, class_counts=class_counts), read()).result()
    plan = plan_label_issues(
        joint,
        thresholds,
        filter_by=filter_by,
        frac_noise=frac_noise,
        num_to_remove_per_class=num_to_remove_per_class,
        min_examples_per_class=min_examples_per_class,
        confident_joint=confident_joint,
        rank_by=rank_by,
        adjust_pred_probs=adjust_pred_probs,
    )
    issues = run_pass(IssueSelectionState(plan), read()).result()
    return BatchedLabelIssues(class_counts, thresholds, joint, issues)


def score_batches(issues: LabelIssues, batches: Batches) -> Iterator[IssueBatch]:
    """Pass 5: quality scores, flags and ranks, one :class:`IssueBatch` per batch, in order."""
    if not isinstance(issues, LabelIssues):
        raise TypeError(f"issues must be a LabelIssues, got {type(issues)}")
    for labels, probs, offset in _with_offsets(_reader(batches)()):
        yield issues.score_batch(labels, probs, offset=offset)


def run_pass(state: Any, batches: Iterable[tuple[ArrayLike, ArrayLike]]) -> Any:
    """``state.update`` on every batch in order (offsets by position); returns the state."""
    for labels, probs, offset in _with_offsets(batches):
        state.update(labels, probs, offset=offset)
    return state


def _reader(batches: Any) -> Callable[[], Iterable[tuple[ArrayLike, ArrayLike]]]:
    if callable(batches):
        return batches
    if isinstance(batches, (list, tuple)):
        return lambda: batches
    raise TypeError(
        "batches must be a callable returning a fresh iterable of (labels_batch, pred_probs_batch) pairs, "
        f"or a list/tuple of them (every pass reads the batches again), got {type(batches).__name__}"
    )


def _with_offsets(batches: Iterable[Any]) -> Iterator[tuple[Any, Any, int]]:
    offset = 0
    for item in batches:
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            raise TypeError(f"each batch must be a (labels_batch, pred_probs_batch) pair, got {type(item).__name__}")
        labels, probs = item
        yield labels, probs, offset
        offset += len(labels)


def _columns(probs: Any) -> int:
    shape = np.shape(probs)
    if len(shape) != 2:
        raise ValueError(f"pred_probs_batch must be 2-D with shape (b, K), got shape {shape}")
    return check_num_classes(shape[1])
