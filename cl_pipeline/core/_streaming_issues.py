"""Passes 4 and 5 of the batched engine: the flagged rows, ranked, then per-batch output.

Notation and the overall contract: ``_streaming``. Pass 4 needs, fixed
before it starts, an :class:`IssuePlan` (:func:`plan_label_issues`: the
filter, the thresholds, the prune matrix ``M`` from the confident joint and
the per-selection counts ``m``). Its state keeps, per selection, the ``m``
candidates with the smallest ``(key, global row)`` (``_select``), so that
memory is about twice the selected rows whatever ``n``:

- ``prune_by_class``: group ``k``, key ``p[i, k]``, ``m = n_k - M[k, k]``
  (or the requested count);
- ``prune_by_noise_rate``: group ``(k, j)``, key ``p[i, k] - p[i, j]``
  (the margin's negation, exact in floating point), ``m = M[j, k]``; the
  union over ``j``;
- ``both``: the intersection of the two;
- ``num_to_remove_per_class`` with the noise-rate filters: a top-up group
  ``k`` keeps the ``2 r_k`` smallest ``p[i, k] - max_{j in cols} p[i, j]``;
  after the merge, the first ``r_k - |chosen_k|`` not already chosen are
  added (they are always among those ``2 r_k``, since at most ``r_k`` are
  chosen);
- ``low_*``: one group, key = the score, ``m`` = the ``off_diagonal`` count;
- ``confident_learning`` / ``predicted_neq_given``: every flagged row.

Each kept entry carries the near-argmax flag (prune filters unflag those
rows at the end) and its ``rank_by`` score, so the flagged rows are ranked
as soon as pass 4 is merged; pass 5 (:meth:`LabelIssues.score_batch`) then
writes quality scores, flags and ranks one batch at a time.
"""

import warnings
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from . import _count, _filter, _issues, _rank
from . import _validation as v
from ._select import GroupedSmallest
from ._streaming import ConfidentJointCounts, RowCoverage, _same_config, check_batch, check_same_dtype

#: Columns carried with every selected entry.
PAYLOAD = {"keep": np.bool_, "score": np.float64}
#: Rows offered to the selections at a time: small enough that the cuts tighten
#: after the first few chunks (and temporaries stay in cache), large enough to
#: amortise the per-chunk Python work.
OFFER_ROWS = 16384


@dataclass(frozen=True)
class IssuePlan:
    """What pass 4 needs (small, picklable; build with :func:`plan_label_issues`).

    Attributes
    ----------
    filter_by : str
        Resolved (``"recommended"`` is replaced by ``RECOMMENDED_FILTER``).
    thresholds : ndarray, shape (K,)
    label_counts : ndarray of int64, shape (K,)
    num_label_issues : int
        ``m`` of the ``low_*`` filters.
    class_need : ndarray of int64, shape (K,)
        ``prune_by_class`` selection size per class (0 where nothing is selected).
    pair_need : ndarray of int64, shape (K, K)
        ``[k, j]``: ``prune_by_noise_rate`` selection size among class ``k``
        towards ``j`` (``M[j, k]``; 0 on the diagonal and for unpruned classes).
    topup_total : ndarray of int64, shape (K,)
        Exact candidate count per class for ``num_to_remove_per_class`` with
        the noise-rate filters; zeros otherwise.
    topup_cols : ndarray of bool, shape (K, K)
        ``[k, j]``: the top-up margin of class ``k`` is taken towards ``j``.
    rank_by : str
    adjust_pred_probs : bool
    """

    filter_by: str
    thresholds: np.ndarray
    label_counts: np.ndarray
    num_label_issues: int
    class_need: np.ndarray
    pair_need: np.ndarray
    topup_total: np.ndarray
    topup_cols: np.ndarray
    rank_by: str
    adjust_pred_probs: bool

    @property
    def num_classes(self) -> int:
        return self.label_counts.shape[0]

    @property
    def n(self) -> int:
        return int(self.label_counts.sum())

    def capacities(self) -> dict[str, np.ndarray]:
        """Selection name -> ``m`` per group, for the selections this filter uses."""
        f = self.filter_by
        caps = {}
        if f in ("prune_by_class", "both"):
            caps["class"] = self.class_need
        if f in ("prune_by_noise_rate", "both"):
            caps["pair"] = self.pair_need.ravel()
            if self.topup_total.any():
                caps["topup"] = np.minimum(2 * self.topup_total, self.label_counts)
        if f.startswith("low_"):
            caps["low"] = np.array([min(self.num_label_issues, self.n)])
        return caps


def plan_label_issues(
    joint: ConfidentJointCounts,
    thresholds: ArrayLike,
    *,
    filter_by: str = "prune_by_noise_rate",
    frac_noise: float = 1.0,
    num_to_remove_per_class: ArrayLike | None = None,
    min_examples_per_class: int = 1,
    confident_joint: ArrayLike | None = None,
    rank_by: str = "self_confidence",
    adjust_pred_probs: bool = False,
) -> IssuePlan:
    """The plan of pass 4 (options as in :func:`find_label_issues` and :func:`order_label_issues`).

    Parameters
    ----------
    joint : ConfidentJointCounts
        Result of pass 3 (computed with ``thresholds`` and the default argmax rule).
    thresholds : array_like of float, shape (K,)
        Result of pass 2.
    filter_by, frac_noise, num_to_remove_per_class, min_examples_per_class, confident_joint
        As in :func:`find_label_issues`.
    rank_by : str, default "self_confidence"
        Score that ranks the flagged rows and that pass 5 writes (``SCORE_METHODS``).
    adjust_pred_probs : bool, default False
        Score adjusted probabilities (not with ``"confidence_weighted_entropy"``).

    Returns
    -------
    IssuePlan
    """
    if not isinstance(joint, ConfidentJointCounts):
        raise TypeError(f"joint must be a ConfidentJointCounts (the result of pass 3), got {type(joint)}")
    k = joint.label_counts.shape[0]
    thresholds = v.check_thresholds(thresholds, k)
    filter_by, frac_noise, to_remove, min_ex, supplied = _issues.check_filter_options(
        k,
        lambda: joint.label_counts,
        filter_by,
        frac_noise,
        num_to_remove_per_class,
        min_examples_per_class,
        confident_joint,
    )
    v.check_choice(rank_by, "rank_by", _rank.SCORE_METHODS)
    adjust = v.check_flag(adjust_pred_probs, "adjust_pred_probs")
    if adjust and rank_by == "confidence_weighted_entropy":
        raise ValueError("adjust_pred_probs=True is not supported with rank_by='confidence_weighted_entropy'")
    sizes = _selection_sizes(
        filter_by, joint.calibrated if supplied is None else supplied, joint.label_counts, to_remove, min_ex, frac_noise
    )
    return IssuePlan(
        filter_by, thresholds, joint.label_counts.copy(), int(joint.num_label_issues), *sizes, rank_by, adjust
    )


def _selection_sizes(filter_by, source_joint, counts, to_remove, min_examples, frac_noise) -> tuple:
    """``(class_need, pair_need, topup_total, topup_cols)`` of :class:`IssuePlan`, as ``_filter.prune_mask`` sizes them."""
    k = counts.shape[0]
    class_need = np.zeros(k, np.int64)
    pair_need = np.zeros((k, k), np.int64)
    topup_total = np.zeros(k, np.int64)
    topup_cols = np.zeros((k, k), bool)
    if filter_by not in _filter.PRUNE_METHODS:
        return class_need, pair_need, topup_total, topup_cols
    prune = _filter.prune_matrix(source_joint, min_examples, frac_noise)
    pruned = _pruned_classes(counts, min_examples)
    if filter_by in ("prune_by_class", "both"):
        num = to_remove if to_remove is not None else counts - np.diagonal(prune)
        class_need = np.where(pruned, np.clip(num, 0, counts), 0)
    if filter_by in ("prune_by_noise_rate", "both"):
        source = prune if to_remove is None else _filter.split_removals(prune, to_remove)
        pair_need = np.clip(source.T, 0, counts[:, None])
        np.fill_diagonal(pair_need, 0)
        pair_need[~pruned] = 0
        if to_remove is not None:
            topup_total = np.where(pruned, np.minimum(to_remove, counts), 0)
            topup_cols = pair_need > 0
            none = ~topup_cols.any(axis=1)
            topup_cols[none] = ~np.eye(k, dtype=bool)[none]
    return class_need, pair_need, topup_total, topup_cols


def _pruned_classes(counts: np.ndarray, min_examples: int) -> np.ndarray:
    """Classes large enough to prune, shape (K,) bool; warns about the others, as the in-memory filter does."""
    floor = max(min_examples, 1)
    skipped = [int(k) for k in np.flatnonzero((counts > 1) & (counts <= floor))]
    if skipped:
        warnings.warn(
            f"classes {skipped} have <= min_examples_per_class={min_examples} "
            "examples; no label issues are flagged in them",
            stacklevel=4,
        )
    return counts > floor


class IssueSelectionState:
    """Pass 4: the bounded selections of the plan's filter, mergeable.

    Parameters
    ----------
    plan : IssuePlan
    """

    def __init__(self, plan: IssuePlan):
        if not isinstance(plan, IssuePlan):
            raise TypeError(f"plan must be an IssuePlan (from plan_label_issues), got {type(plan)}")
        self.plan = plan
        self.selections: dict[str, GroupedSmallest] | None = None  # keys in the input dtype: made by the 1st batch
        self.direct: list[tuple[np.ndarray, np.ndarray]] = []  # (rows, rank scores) flagged outright
        self.dtype: np.dtype | None = None
        self.coverage = RowCoverage()

    def _selections(self, dtype: np.dtype) -> dict[str, GroupedSmallest]:
        if self.selections is None:
            self.selections = {
                name: GroupedSmallest(cap, dtype, PAYLOAD) for name, cap in self.plan.capacities().items()
            }
        return self.selections

    def update(self, labels_batch: ArrayLike, pred_probs_batch: ArrayLike, *, offset: int) -> None:
        """Offer one batch's candidates (rows validated)."""
        plan = self.plan
        batch = check_batch(labels_batch, pred_probs_batch, offset, plan.num_classes)
        if batch.labels.shape[0] == 0:
            return
        if batch.stop > plan.n:
            raise ValueError(f"rows [{batch.offset}, {batch.stop}) exceed the n = {plan.n} rows of the plan")
        self.dtype = check_same_dtype(self.dtype, batch.pred_probs.dtype)
        labels, probs = batch.labels, batch.pred_probs
        own = _count.self_confidence(labels, probs)
        cpass = _count.confident_pass(labels, probs, own, plan.thresholds, "cleanlab", batch.check_block)
        self.coverage.add(batch.offset, batch.stop)
        selections = self._selections(probs.dtype)
        direct = self._flagged_outright(labels, cpass)
        if direct.size:
            self.direct.append((batch.offset + direct, self._rank_scores(labels[direct], probs[direct])))
        step = min(_count.chunk_rows(plan.num_classes, probs.itemsize), OFFER_ROWS)
        for start in range(0, labels.shape[0] if selections else 0, step):
            part = slice(start, start + step)
            self._offer(
                labels[part], probs[part], own[part], cpass.keep[part], cpass.predicted[part], batch.offset + start
            )

    def _offer(self, labels, probs, own, keep, top, offset) -> None:
        """Offer the candidates of one chunk to every selection (rank scores computed once per row)."""
        offers = self._candidates(labels, probs, own, top, offset)
        used = np.zeros(labels.shape[0], dtype=bool)
        for _, _, _, at in offers:
            used[at] = True
        local = np.flatnonzero(used)
        scores = self._rank_scores(labels[local], probs[local])
        for name, group, key, at in offers:
            where = np.searchsorted(local, at)
            self.selections[name].offer(group, key, offset + at, keep=keep[at], score=scores[where])

    def _candidates(self, labels, probs, own, top, offset) -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]:
        """``(selection, group, key, local row)`` of the entries each selection admits."""
        plan, k = self.plan, self.plan.num_classes
        out = []
        if "class" in self.selections:
            at = np.flatnonzero(plan.class_need[labels] > 0)
            out.append(("class", labels[at], own[at], at))
        if "pair" in self.selections:
            pair = self.selections["pair"]
            at = self._pair_rows(labels, probs, own, top)
            lab = labels[at]
            keys = own[at, None] - probs[at]
            cut_key, cut_row = pair.cut_key.reshape(k, k)[lab], pair.cut_row.reshape(k, k)[lab]
            rows = (offset + at)[:, None]
            i, j = np.nonzero((keys < cut_key) | ((keys == cut_key) & (rows < cut_row)))
            out.append(("pair", lab[i].astype(np.int64) * k + j, keys[i, j], at[i]))
        if "topup" in self.selections:
            at = np.flatnonzero(plan.topup_total[labels] > 0)
            towards = np.where(plan.topup_cols[labels[at]], probs[at], -np.inf).max(axis=1)
            out.append(("topup", labels[at], own[at] - towards, at))
        if "low" in self.selections:
            scores = _rank.quality_scores(labels, probs, plan.filter_by[4:], check_block=None)
            at = np.arange(labels.shape[0])
            out.append(("low", np.zeros(at.shape[0], dtype=np.int64), scores, at))
        admitted = []
        for name, group, key, at in out:
            ok = self.selections[name].admits(group, key, offset + at)
            admitted.append((name, group[ok], key[ok], at[ok]))
        return admitted

    def _pair_rows(self, labels: np.ndarray, probs: np.ndarray, own: np.ndarray, top: np.ndarray) -> np.ndarray:
        """Local rows that some pair selection may admit.

        A row of class ``k`` has every key ``p[i, k] - p[i, j] >= p[i, k] -
        max_{j != k} p[i, j]``; when that bound exceeds the largest cut of
        the class's pairs, no pair admits the row. ``top`` (the first argmax)
        gives the bound cheaply: ``p[i, top] - ...`` when ``top != k``, and
        ``>= 0`` otherwise (the second largest entry is read only when the
        class's largest cut is not negative).
        """
        k = self.plan.num_classes
        need = self.plan.pair_need > 0
        cuts = np.where(need, self.selections["pair"].cut_key.reshape(k, k), -np.inf).max(axis=1)
        at = np.flatnonzero(need.any(axis=1)[labels])
        cut = cuts[labels[at]]
        if np.isinf(cut).all():
            return at
        rows = np.arange(labels.shape[0])
        other = top[at] != labels[at]
        bound = np.where(other, own[at] - probs[at, top[at]], 0)
        ok = np.where(other, bound <= cut, cut >= 0)
        second = np.flatnonzero(~other & ok)
        if second.size:
            rival = probs[at[second]]
            rival[rows[: second.size], labels[at[second]]] = -np.inf
            ok[second] = own[at[second]] - rival.max(axis=1) <= cut[second]
        return at[ok]

    def _flagged_outright(self, labels: np.ndarray, cpass: _count.ConfidentPass) -> np.ndarray:
        """Local rows flagged by ``confident_learning`` / ``predicted_neq_given``."""
        if self.plan.filter_by == "confident_learning":
            return np.flatnonzero(cpass.off_diagonal(labels) & ~cpass.keep)
        if self.plan.filter_by == "predicted_neq_given":
            return np.flatnonzero((cpass.predicted != labels) & ~cpass.keep)
        return np.empty(0, np.intp)

    def _rank_scores(self, labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
        """``rank_by`` scores of some rows, as float64 (exact for float32 scores)."""
        if labels.shape[0] == 0:
            return np.empty(0, np.float64)
        thresholds = self.plan.thresholds if self.plan.adjust_pred_probs else None
        return _rank.quality_scores(labels, probs, self.plan.rank_by, thresholds, check_block=None).astype(np.float64)

    def merge(self, other: "IssueSelectionState") -> "IssueSelectionState":
        """Fold ``other``'s candidates in (in place; returns self)."""
        _same_config(self, other)
        if other.plan is not self.plan and not _same_plan(self.plan, other.plan):
            raise ValueError("cannot merge selection states built on different plans")
        self.dtype = check_same_dtype(self.dtype, other.dtype)
        self.coverage.merge(other.coverage)
        if other.selections is not None:
            for name, selection in self._selections(other.dtype).items():
                selection.merge(other.selections[name])
        self.direct.extend(other.direct)
        return self

    def result(self) -> "LabelIssues":
        """The flagged rows, ranked; ValueError unless rows ``0..n-1`` were each seen once."""
        plan = self.plan
        self.coverage.require(plan.n, "the selection pass")
        if plan.filter_by in ("confident_learning", "predicted_neq_given"):
            rows = np.concatenate([d[0] for d in self.direct] + [np.empty(0, np.int64)])
            scores = np.concatenate([d[1] for d in self.direct] + [np.empty(0, np.float64)])
        elif plan.filter_by.startswith("low_"):
            low = self._selections(self.dtype).get("low").selected()
            rows, scores = low["row"], low["score"]
        else:
            self._selections(self.dtype)
            rows, keep, scores = self._pruned()
            rows, scores = rows[~keep], scores[~keep]
        return LabelIssues.build(plan, rows, scores)

    def _pruned(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Candidates of the prune filters (rows unique), before the near-argmax rule."""
        by_pair = None
        if "pair" in self.selections:
            by_pair = _unique_rows(self.selections["pair"].selected())
            if "topup" in self.selections:
                by_pair = self._topped_up(by_pair)
        if "class" not in self.selections:
            return by_pair["row"], by_pair["keep"], by_pair["score"]
        by_class = self.selections["class"].selected()
        if by_pair is not None:
            both = np.isin(by_class["row"], by_pair["row"])
            by_class = {name: col[both] for name, col in by_class.items()}
        return by_class["row"], by_class["keep"], by_class["score"]

    def _topped_up(self, chosen: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Add, per class, the best top-up entries not already chosen until ``topup_total`` are chosen."""
        k = self.plan.num_classes
        top = self.selections["topup"].selected(ordered=True)
        have = np.bincount(chosen["group"] // k, minlength=k)
        missing = np.maximum(self.plan.topup_total - have, 0)
        free = np.flatnonzero(~np.isin(top["row"], chosen["row"]))
        group = top["group"][free]
        rank = np.arange(free.shape[0]) - np.searchsorted(group, group, side="left")
        add = free[rank < missing[group]]
        return {name: np.concatenate([chosen[name], top[name][add]]) for name in ("row", "keep", "score")}


def _unique_rows(entries: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """One entry per row (a row chosen towards several classes keeps its first entry)."""
    _, first = np.unique(entries["row"], return_index=True)
    return {name: col[first] for name, col in entries.items()}


def _same_plan(a: IssuePlan, b: IssuePlan) -> bool:
    return all(
        np.array_equal(getattr(a, f), getattr(b, f))
        if isinstance(getattr(a, f), np.ndarray)
        else getattr(a, f) == getattr(b, f)
        for f in IssuePlan.__dataclass_fields__
    )


class IssueBatch(NamedTuple):
    """Pass-5 output for one batch (all shape (b,)).

    ``quality_score``: the ``rank_by`` score (lower = more suspicious);
    ``is_label_issue``: flagged by the filter; ``rank``: 0 for the most
    suspicious flagged row of the whole data set, 1 for the next, ...; -1 when
    not flagged.
    """

    quality_score: np.ndarray
    is_label_issue: np.ndarray
    rank: np.ndarray


@dataclass(frozen=True)
class LabelIssues:
    """Result of pass 4: the flagged rows, most suspicious first.

    Attributes
    ----------
    plan : IssuePlan
    indices : ndarray of int64, shape (m,)
        Flagged rows by ``rank_by`` score ascending, ties by row:
        ``order_label_issues(find_label_issues(...), rank_by=..., adjust_pred_probs=...)``.
    scores : ndarray of float64, shape (m,)
        Their ``rank_by`` scores (exact float64 copies).
    sorted_rows, rank_of_sorted : ndarray of int64, shape (m,)
        The flagged rows ascending, and the rank of each.
    """

    plan: IssuePlan
    indices: np.ndarray
    scores: np.ndarray
    sorted_rows: np.ndarray
    rank_of_sorted: np.ndarray

    @classmethod
    def build(cls, plan: IssuePlan, rows: np.ndarray, scores: np.ndarray) -> "LabelIssues":
        ranked = np.lexsort((rows, scores))
        indices = rows[ranked].astype(np.int64)
        by_row = np.argsort(indices, kind="stable")
        return cls(plan, indices, scores[ranked], indices[by_row], by_row.astype(np.int64))

    @property
    def n(self) -> int:
        return self.plan.n

    def mask(self) -> np.ndarray:
        """= ``find_label_issues(...)``, shape (n,) bool."""
        out = np.zeros(self.n, dtype=bool)
        out[self.indices] = True
        return out

    def score_batch(self, labels_batch: ArrayLike, pred_probs_batch: ArrayLike, *, offset: int) -> IssueBatch:
        """Pass 5 for one batch: quality scores (= ``get_label_quality_scores`` with ``rank_by``), flags, ranks."""
        plan = self.plan
        batch = check_batch(labels_batch, pred_probs_batch, offset, plan.num_classes)
        if batch.stop > plan.n:
            raise ValueError(f"rows [{batch.offset}, {batch.stop}) exceed the n = {plan.n} rows of the plan")
        b = batch.labels.shape[0]
        if b == 0:
            dtype = np.float64 if plan.rank_by == "confidence_then_margin" else batch.pred_probs.dtype
            return IssueBatch(np.empty(0, dtype), np.zeros(0, bool), np.empty(0, np.int64))
        thresholds = plan.thresholds if plan.adjust_pred_probs else None
        quality = _rank.quality_scores(batch.labels, batch.pred_probs, plan.rank_by, thresholds, batch.check_block)
        lo, hi = np.searchsorted(self.sorted_rows, [batch.offset, batch.stop])
        local = self.sorted_rows[lo:hi] - batch.offset
        flags = np.zeros(b, dtype=bool)
        flags[local] = True
        rank = np.full(b, -1, dtype=np.int64)
        rank[local] = self.rank_of_sorted[lo:hi]
        return IssueBatch(quality, flags, rank)
