"""Exact confident learning over row batches: states that update, merge and finish.

Notation as in ``_count``: ``n`` rows, ``K`` classes, given labels ``y_i``,
probabilities ``p[i, k]``, class sizes ``n_k``. A *batch* is a contiguous
range of global rows ``[offset, offset + b)``, given as ``labels_batch``
(b,) and ``pred_probs_batch`` (b, K) with its ``offset``. The *position* of
row ``i`` in its class is ``#{i' < i : y_i' = y_i}``.

Every pass is a state with ``update(labels_batch, pred_probs_batch, *,
offset)``, ``merge(other)`` (in place, returns ``self``) and ``result()``.
States are small and picklable; a state is not shared between threads: give
each thread, process or machine its own and merge them. Batches may be
updated in any order and split in any way, with one constraint: a batch of
pass 2 must start where a batch of pass 1 started (the same batches, or
coarser ones), because pass 1 records the class counts at its batch starts
only. The passes in order:

1. :class:`ClassCountsState` (labels only) -> :class:`ClassCounts`: ``n_k``
   and, at every batch start, the rows of each class before it.
2. :class:`ThresholdsState` -> ``t`` (K,), bit-identical to
   :func:`get_confident_thresholds`: each class mean is numpy's pairwise
   summation tree over the class's values in row order, reproduced from the
   positions (``_pairwise``); a state keeps the completed subtrees of the
   rows it saw plus the raw values at the edges that do not yet fill a leaf.
   :class:`InOrderThresholdsState` does passes 1 and 2 in one sweep when
   ``n_k`` is known beforehand and the batches come in row order.
3. :class:`ConfidentJointState` -> :class:`ConfidentJointCounts`: the raw and
   calibrated confident joint (= :func:`compute_confident_joint`), ``n_k``
   and the ``off_diagonal`` issue count (= :func:`num_label_issues`).
4. :func:`plan_label_issues` (joint, thresholds and the options of
   :func:`find_label_issues` / :func:`order_label_issues`) -> :class:`IssuePlan`;
   :class:`IssueSelectionState` (``_streaming_issues``) -> :class:`LabelIssues`:
   the rows every ``filter_by`` flags, ranked (``mask()`` = the in-memory mask,
   ``indices`` = :func:`order_label_issues` of it).
5. :meth:`LabelIssues.score_batch` -> :class:`IssueBatch`: quality scores
   (= :func:`get_label_quality_scores`), flags and ranks of one batch at a time.

:func:`find_label_issues_batched` (``_batched``) runs passes 1-4 over an
iterable of batches and returns :class:`BatchedLabelIssues`;
:func:`score_batches` runs pass 5. Exported from ``cl_pipeline.core``:
``ClassCountsState``, ``ClassCounts``, ``ThresholdsState``,
``ConfidentJointState``, ``ConfidentJointCounts``, ``plan_label_issues``,
``IssuePlan``, ``IssueSelectionState``, ``LabelIssues``, ``IssueBatch``,
``find_label_issues_batched``, ``BatchedLabelIssues``, ``score_batches``.

Ties at a selection cut go to the lowest global row index (``_select``), in
this engine and the in-memory one alike; that rule is what lets per-batch
selections merge exactly.

Invariants (tested in ``tests/core/test_streaming.py``):

- results are a function of the rows alone: the same for any batch
  boundaries, update order, merge order and thread count, and equal to the
  in-memory engine (thresholds bit for bit, counts exactly, selections with
  the row-index tie rule of ``_select``);
- a row range given twice, or missing, is a ValueError at ``merge`` or
  ``result``, never a silently different answer;
- memory: ``ClassCounts`` holds ``K`` counts per batch; a thresholds state
  ``O(K * (depth + 2 * 128))`` values per contiguous row range it holds; the
  joint ``K * K`` counts; the selection about twice the selected rows.
"""

import bisect
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from . import _count, _pairwise
from . import _validation as v
from ._estimation import ARGMAX_RULES


@dataclass(frozen=True)
class Batch:
    """One validated batch: ``labels`` (b,), ``pred_probs`` (b, K) or None, global ``offset``."""

    labels: np.ndarray
    pred_probs: np.ndarray | None
    offset: int

    @property
    def stop(self) -> int:
        return self.offset + self.labels.shape[0]

    def check_rows(self) -> None:
        """Validate every probability row (errors name the global row)."""
        n, k = self.pred_probs.shape
        step = _count.chunk_rows(k, self.pred_probs.itemsize)
        for start in range(0, n, step):
            v.check_probability_block(self.pred_probs[start : start + step], self.offset + start, "pred_probs_batch")

    def check_block(self, block: np.ndarray, first_row: int) -> None:
        """``check_block`` hook of the chunked passes, rows numbered globally."""
        v.check_probability_block(block, self.offset + first_row, "pred_probs_batch")


def check_batch(
    labels_batch: Any, pred_probs_batch: Any, offset: Any, num_classes: int, *, need_probs: bool = True
) -> Batch:
    """Validate one batch's structure (not its probability rows: see :meth:`Batch.check_rows`).

    An empty batch (length 0) is valid and changes nothing.
    """
    offset = v.check_count(offset, "offset")
    if pred_probs_batch is None:
        if need_probs:
            raise TypeError("pred_probs_batch is required by this pass, got None")
        probs = None
    else:
        probs = _batch_probs(pred_probs_batch, num_classes)
    arr = np.asarray(labels_batch)
    if arr.ndim == 1 and arr.shape[0] == 0 and arr.dtype.kind in "iuf":
        labels = np.empty(0, np.int64)
    else:
        labels = v.check_labels(labels_batch, num_classes, name="labels_batch")
    if probs is not None and probs.shape[0] != labels.shape[0]:
        raise ValueError(
            f"labels_batch and pred_probs_batch must have the same length, got {labels.shape[0]} and {probs.shape[0]}"
        )
    return Batch(labels, probs, offset)


def _batch_probs(pred_probs_batch: Any, num_classes: int) -> np.ndarray:
    arr = np.asarray(pred_probs_batch)
    if arr.ndim == 2 and arr.shape[0] == 0 and arr.dtype in (np.float32, np.float64):
        probs = arr
    else:
        probs = v.check_pred_probs(pred_probs_batch, "pred_probs_batch", check_rows=False)
    if probs.shape[1] != num_classes:
        raise ValueError(f"pred_probs_batch must have K = {num_classes} columns, got shape {probs.shape}")
    return probs


def check_num_classes(num_classes: Any) -> int:
    """``K``: an integer >= 2."""
    return v.check_count(num_classes, "num_classes", minimum=2)


def check_same_dtype(mine: np.dtype | None, theirs: np.dtype | None) -> np.dtype | None:
    """The common dtype of two parts of one pass; a TypeError when they differ."""
    if mine is not None and theirs is not None and mine != theirs:
        raise TypeError(f"pred_probs_batch must have one dtype across all batches, got {mine} and {theirs}")
    return mine if mine is not None else theirs


@dataclass
class RowCoverage:
    """Disjoint, coalesced ``[start, stop)`` row ranges seen by a state."""

    ranges: list[list[int]] = field(default_factory=list)

    def add(self, start: int, stop: int) -> None:
        """Record rows ``[start, stop)``; ValueError when some were already recorded."""
        if stop <= start:
            return
        at = bisect.bisect_left(self.ranges, start, key=lambda r: r[0])
        if (at > 0 and self.ranges[at - 1][1] > start) or (at < len(self.ranges) and self.ranges[at][0] < stop):
            raise ValueError(f"rows [{start}, {stop}) were given twice (a batch updated or merged twice?)")
        if at < len(self.ranges) and self.ranges[at][0] == stop:
            stop = self.ranges.pop(at)[1]
        if at > 0 and self.ranges[at - 1][1] == start:
            self.ranges[at - 1][1] = stop
        else:
            self.ranges.insert(at, [start, stop])

    def merge(self, other: "RowCoverage") -> None:
        for start, stop in other.ranges:
            self.add(start, stop)

    def require(self, n: int, what: str) -> None:
        """ValueError unless exactly rows ``[0, n)`` were seen."""
        if self.ranges != ([[0, n]] if n else []):
            raise ValueError(f"{what} must see every row 0..{n - 1} exactly once, got row ranges {self.ranges[:5]}")


# --------------------------------------------------------------------------------------
# pass 1: class counts and positions
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClassCounts:
    """``n_k`` and the class counts before every batch start of the first pass.

    Attributes
    ----------
    starts : ndarray of int64, shape (B + 1,)
        Batch starts of the first pass, then ``n``.
    before : ndarray of int64, shape (B + 1, K)
        ``before[b, k]`` = rows of class k in ``[0, starts[b])``.
    """

    starts: np.ndarray
    before: np.ndarray

    @property
    def counts(self) -> np.ndarray:
        """``n_k``, shape (K,) int64."""
        return self.before[-1]

    @property
    def n(self) -> int:
        return int(self.starts[-1])

    @property
    def num_classes(self) -> int:
        return self.before.shape[1]

    def positions_before(self, offset: int) -> np.ndarray:
        """Rows of each class before ``offset``, shape (K,); ``offset`` must be a first-pass batch start."""
        at = int(np.searchsorted(self.starts, offset))
        if at == self.starts.shape[0] or self.starts[at] != offset:
            raise ValueError(
                f"offset must be the start of a batch of the class-count pass (later passes must batch "
                f"the rows at the same starts, or coarser), got offset={offset}"
            )
        return self.before[at]


class ClassCountsState:
    """Pass 1: per-batch class counts (labels only).

    Parameters
    ----------
    num_classes : int
        ``K`` (>= 2).
    """

    def __init__(self, num_classes: int):
        self.num_classes = check_num_classes(num_classes)
        self.parts: dict[int, tuple[int, np.ndarray]] = {}  # offset -> (length, counts)
        self.coverage = RowCoverage()

    def update(self, labels_batch: ArrayLike, pred_probs_batch: ArrayLike | None = None, *, offset: int) -> None:
        """Count one batch; ``pred_probs_batch`` is optional (only its shape is checked)."""
        batch = check_batch(labels_batch, pred_probs_batch, offset, self.num_classes, need_probs=False)
        if batch.labels.shape[0] == 0:
            return
        self.coverage.add(batch.offset, batch.stop)
        self.parts[batch.offset] = (batch.labels.shape[0], np.bincount(batch.labels, minlength=self.num_classes))

    def merge(self, other: "ClassCountsState") -> "ClassCountsState":
        """Add ``other``'s batches (in place; returns self)."""
        _same_config(self, other, "num_classes")
        self.coverage.merge(other.coverage)
        self.parts.update(other.parts)
        return self

    def result(self) -> ClassCounts:
        """The counts; ValueError unless the batches cover rows ``0..n-1`` exactly."""
        if not self.parts:
            raise ValueError("the class-count pass saw no rows")
        offsets = np.array(sorted(self.parts), dtype=np.int64)
        n = int(offsets[-1]) + self.parts[int(offsets[-1])][0]
        self.coverage.require(n, "the class-count pass")
        counts = np.stack([self.parts[int(o)][1] for o in offsets]).astype(np.int64)
        before = np.zeros((offsets.shape[0] + 1, self.num_classes), dtype=np.int64)
        np.cumsum(counts, axis=0, out=before[1:])
        return ClassCounts(starts=np.append(offsets, n), before=before)


def _same_config(a: Any, b: Any, *names: str) -> None:
    if type(a) is not type(b):
        raise TypeError(f"can only merge a {type(a).__name__} with another, got {type(b).__name__}")
    for name in names:
        x, y = getattr(a, name), getattr(b, name)
        arrays = isinstance(x, np.ndarray) or isinstance(y, np.ndarray)
        same = (x is None) == (y is None) and (np.array_equal(x, y) if arrays else x == y)
        if not same:
            raise ValueError(f"cannot merge states with different {name}: {x!r} and {y!r}")


def class_order(labels: np.ndarray, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of a batch grouped by class (stable) and the group bounds, shapes (b,), (K + 1,)."""
    order = np.argsort(labels.astype(_count.class_id_dtype(num_classes)), kind="stable")
    bounds = np.zeros(num_classes + 1, dtype=np.int64)
    np.cumsum(np.bincount(labels, minlength=num_classes), out=bounds[1:])
    return order, bounds


# --------------------------------------------------------------------------------------
# pass 2: thresholds
# --------------------------------------------------------------------------------------


class ThresholdsState:
    """Pass 2: per-class pairwise sums of the self-confidence, mergeable.

    Parameters
    ----------
    class_counts : ClassCounts
        The result of pass 1 (gives ``n_k`` and each row's position).
    """

    def __init__(self, class_counts: ClassCounts):
        if not isinstance(class_counts, ClassCounts):
            raise TypeError(f"class_counts must be a ClassCounts (the result of pass 1), got {type(class_counts)}")
        self.class_counts = class_counts
        self.dtype: np.dtype | None = None
        self.sums = [_pairwise.PieceSet(int(c)) for c in class_counts.counts]

    @property
    def num_classes(self) -> int:
        return self.class_counts.num_classes

    def update(self, labels_batch: ArrayLike, pred_probs_batch: ArrayLike, *, offset: int) -> None:
        """Add one batch (rows validated; its start must be a pass-1 batch start)."""
        batch = check_batch(labels_batch, pred_probs_batch, offset, self.num_classes)
        if batch.labels.shape[0] == 0:
            return
        batch.check_rows()
        if batch.stop > self.class_counts.n:
            raise ValueError(f"rows [{batch.offset}, {batch.stop}) exceed the n = {self.class_counts.n} rows of pass 1")
        self.dtype = check_same_dtype(self.dtype, batch.pred_probs.dtype)
        before = self.class_counts.positions_before(batch.offset)
        own = _count.self_confidence(batch.labels, batch.pred_probs)
        order, bounds = class_order(batch.labels, self.num_classes)
        grouped = own[order]
        sizes = np.diff(bounds)
        if (before + sizes > self.class_counts.counts).any():
            raise ValueError(f"labels_batch at offset={batch.offset} disagrees with the labels of pass 1")
        present = np.flatnonzero(sizes)
        runs = [(self.sums[k].n, int(before[k]), int(bounds[k]), int(sizes[k])) for k in present]
        for k, piece in zip(present, _pairwise.pieces_from_runs(grouped, runs), strict=True):
            self.sums[k].add(piece)

    def merge(self, other: "ThresholdsState") -> "ThresholdsState":
        """Add ``other``'s pieces (in place; returns self)."""
        _same_config(self, other, "num_classes")
        if not np.array_equal(self.class_counts.counts, other.class_counts.counts):
            raise ValueError("cannot merge thresholds states built on different class counts")
        self.dtype = check_same_dtype(self.dtype, other.dtype)
        for mine, theirs in zip(self.sums, other.sums, strict=True):
            for piece in theirs.pieces:
                mine.add(piece)
        return self

    def result(self) -> np.ndarray:
        """``t`` (K,), equal bit for bit to :func:`get_confident_thresholds` on all rows."""
        means: list = []
        for k, sums in enumerate(self.sums):
            if sums.n == 0:
                means.append(None)
                continue
            total = sums.total()
            if total is None:
                held = sum(p.hi - p.lo for p in sums.pieces)
                raise ValueError(f"the thresholds pass saw {held} of the {sums.n} rows of class {k}")
            means.append(total.dtype.type(total / np.intp(sums.n)))
        return _count.thresholds_from_means(means, self.dtype)


class InOrderThresholdsState:
    """Passes 1 and 2 in one sweep, for batches given in row order from row 0.

    When ``n_k`` is known before the rows are read (recorded when the labels were
    stored), the class counts before a batch are the counts of the batches already
    seen: a writer that sees the rows once, in order, gets ``t`` on the way instead of
    two more passes. The sums are those of :class:`ThresholdsState` (bit-identical to
    :func:`get_confident_thresholds`). Not mergeable: one state sees every row.

    Parameters
    ----------
    class_totals : array_like of int, shape (K,)
        ``n_k``; every class count of the rows must match it exactly.
    """

    def __init__(self, class_totals: ArrayLike):
        totals = np.asarray(class_totals)
        if totals.ndim != 1 or totals.dtype.kind not in "iu":
            raise TypeError(f"class_totals must be a 1-d array of integers, got {totals.dtype} of shape {totals.shape}")
        check_num_classes(totals.shape[0])
        if (totals < 0).any():
            raise ValueError(f"class_totals must be >= 0, got {totals.tolist()}")
        self.totals = totals.astype(np.int64)
        self.seen = np.zeros_like(self.totals)
        self.rows = 0
        self._state = ThresholdsState(self._counts_at(0))

    def _counts_at(self, offset: int) -> ClassCounts:
        """A pass-1 result whose only batch start is ``offset`` (with ``self.seen`` before it)."""
        n = int(self.totals.sum())
        return ClassCounts(starts=np.array([offset, n], dtype=np.int64), before=np.stack([self.seen, self.totals]))

    def update(self, labels_batch: ArrayLike, pred_probs_batch: ArrayLike, *, offset: int) -> None:
        """Add the next batch: ``offset`` must be the number of rows already given."""
        batch = check_batch(labels_batch, pred_probs_batch, offset, self._state.num_classes)
        if batch.offset != self.rows:
            raise ValueError(f"batches must come in row order: expected offset={self.rows}, got offset={batch.offset}")
        if batch.labels.shape[0] == 0:
            return
        self._state.class_counts = self._counts_at(batch.offset)
        self._state.update(batch.labels, batch.pred_probs, offset=batch.offset)
        self.seen += np.bincount(batch.labels, minlength=self.totals.shape[0])
        self.rows = batch.stop

    def result(self) -> np.ndarray:
        """``t`` (K,); ValueError unless the rows seen hold exactly ``class_totals``."""
        if not np.array_equal(self.seen, self.totals):
            raise ValueError(
                f"the rows hold class counts {self.seen.tolist()}, not class_totals {self.totals.tolist()}"
            )
        return self._state.result()


# --------------------------------------------------------------------------------------
# pass 3: confident joint
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConfidentJointCounts:
    """Result of pass 3.

    Attributes
    ----------
    raw : ndarray of int64, shape (K, K)
        = ``compute_confident_joint(calibrate=False)`` (Fortran order, diagonal >= 1).
    calibrated : ndarray of int64, shape (K, K)
        = ``compute_confident_joint()``.
    label_counts : ndarray of int64, shape (K,)
        ``n_k``.
    num_label_issues : int
        = ``num_label_issues(estimation_method="off_diagonal")``.
    """

    raw: np.ndarray
    calibrated: np.ndarray
    label_counts: np.ndarray
    num_label_issues: int

    @property
    def n(self) -> int:
        return int(self.label_counts.sum())


class ConfidentJointState:
    """Pass 3: counts of (given label, confident guess) and of off-diagonal issues.

    Parameters
    ----------
    thresholds : array_like of float, shape (K,)
        Usually the result of pass 2.
    argmax_rule : {"cleanlab", "paper"}, default "cleanlab"
    class_counts : ClassCounts, optional
        The result of pass 1: then :meth:`result` also checks that the rows
        ``0..n-1`` were all seen, with the same labels.
    """

    def __init__(
        self, thresholds: ArrayLike, *, argmax_rule: str = "cleanlab", class_counts: ClassCounts | None = None
    ):
        arr = np.asarray(thresholds)
        if arr.ndim != 1 or arr.shape[0] < 2:
            raise ValueError(f"thresholds must have shape (K,) with K >= 2, got shape {arr.shape}")
        self.thresholds = v.check_thresholds(arr, arr.shape[0])
        self.argmax_rule = v.check_choice(argmax_rule, "argmax_rule", ARGMAX_RULES)
        if class_counts is not None and not isinstance(class_counts, ClassCounts):
            raise TypeError(f"class_counts must be a ClassCounts (the result of pass 1), got {type(class_counts)}")
        if class_counts is not None and class_counts.num_classes != arr.shape[0]:
            raise ValueError(f"class_counts has K = {class_counts.num_classes}, thresholds have K = {arr.shape[0]}")
        self.expected_counts = None if class_counts is None else class_counts.counts
        k = self.num_classes
        self.cells = np.zeros(k * k, dtype=np.int64)
        self.label_counts = np.zeros(k, dtype=np.int64)
        self.issues = 0
        self.dtype: np.dtype | None = None
        self.coverage = RowCoverage()

    @property
    def num_classes(self) -> int:
        return self.thresholds.shape[0]

    def update(self, labels_batch: ArrayLike, pred_probs_batch: ArrayLike, *, offset: int) -> None:
        """Count one batch (rows validated)."""
        batch = check_batch(labels_batch, pred_probs_batch, offset, self.num_classes)
        if batch.labels.shape[0] == 0:
            return
        self.dtype = check_same_dtype(self.dtype, batch.pred_probs.dtype)
        labels, probs = batch.labels, batch.pred_probs
        own = _count.self_confidence(labels, probs)
        cpass = _count.confident_pass(labels, probs, own, self.thresholds, self.argmax_rule, batch.check_block)
        self.coverage.add(batch.offset, batch.stop)
        self.cells += _count.joint_cells(labels, cpass.guess, self.num_classes)
        self.label_counts += np.bincount(labels, minlength=self.num_classes)
        self.issues += int(np.count_nonzero(cpass.off_diagonal(labels) & ~cpass.keep))

    def merge(self, other: "ConfidentJointState") -> "ConfidentJointState":
        """Add ``other``'s counts (in place; returns self)."""
        _same_config(self, other, "thresholds", "argmax_rule", "expected_counts")
        self.dtype = check_same_dtype(self.dtype, other.dtype)
        self.coverage.merge(other.coverage)
        self.cells += other.cells
        self.label_counts += other.label_counts
        self.issues += other.issues
        return self

    def result(self) -> ConfidentJointCounts:
        """Raw and calibrated ``C``; ValueError unless rows ``0..n-1`` were each seen once."""
        expected = self.label_counts if self.expected_counts is None else self.expected_counts
        self.coverage.require(int(expected.sum()), "the confident-joint pass")
        if not np.array_equal(self.label_counts, expected):
            raise ValueError(
                f"the confident-joint pass counted classes {self.label_counts.tolist()}, pass 1 "
                f"{expected.tolist()}: the labels changed between passes"
            )
        if self.label_counts.sum() == 0:
            raise ValueError("the confident-joint pass saw no rows")
        raw = _count.finish_joint(self.cells, self.num_classes)
        calibrated = _count.calibrate(raw, self.label_counts.copy())
        return ConfidentJointCounts(raw, calibrated, self.label_counts.copy(), self.issues)
