"""Monitoring new rows against a reference audit: flags from the reference's thresholds, and a
two-proportion test of the flagged fraction (issue 11 E).

A date's audit becomes the *reference* (``[monitor] reference_date``); the rows of a later
date are scored in one pass over their record batches (:func:`score_batches`), each batch
with out-of-sample probabilities (the reference's retrained model on the rows' features,
or the probabilities the source supplies; see :mod:`cl_pipeline.audit.monitor_stage`).

**The rule that flags a new row** (``filter_by = "confident_learning"``, the default) is the
membership rule of the confident joint (spec, "Confident joint" and the
``confident_learning`` filter), with the *reference's* per-class thresholds ``t_k``
instead of thresholds of the new rows:

1. ``cut_k = t_k - 1e-6``; class ``k`` is confident for row ``i`` when ``p[i, k] >= cut_k``;
2. no confident class: the row is not in the joint and is not flagged;
3. its confident true class is the confident class when there is one, the row's argmax
   when there are several (cleanlab's rule);
4. the row is flagged when that class differs from its given label, unless the given
   label becomes the row's argmax once 1e-6 is added to its probability (the near-argmax
   rule of the filter).

``filter_by = "predicted_neq_given"`` flags a row whose argmax differs from its given
label (with the same near-argmax exception). Both rules look at one row and the
reference's thresholds only, so a row's flag does not depend on the other new rows or on
the batch size. The other filters select a number of rows fixed by a data set's own joint,
so they cannot measure the noise of new rows. The rule is the core's
(``core.ConfidentJointState``, ``core.plan_label_issues``), applied here to one batch at a time.

**The new rows' estimated noise rate** is the flagged fraction; it is compared with the same
statistic on the reference (:func:`compare`, a pooled two-proportion z-test).
"""

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from cl_pipeline import core

__all__ = [
    "ALTERNATIVES",
    "MONITOR_FILTERS",
    "FlagTally",
    "MonitorResult",
    "ProportionTest",
    "compare",
    "flag_rows",
    "monitor_schema",
    "score_batches",
    "two_proportion_ztest",
]

#: Row-local filters that can flag new rows against a reference (see the module docstring).
MONITOR_FILTERS = ("confident_learning", "predicted_neq_given")
#: Alternatives of the z-test: the new rows noisier (``greater``), or different either way.
ALTERNATIVES = ("greater", "two-sided")


@dataclass(frozen=True)
class ProportionTest:
    """A pooled two-proportion z-test.

    Attributes
    ----------
    z : float
        ``(p_new - p_ref) / se`` with ``se = sqrt(p (1 - p) (1/n_new + 1/n_ref))``, ``p`` pooled;
        0 when ``se`` is 0 (both proportions 0, or both 1).
    p_value : float
        ``P(Z >= z)`` (``greater``) or ``P(|Z| >= |z|)`` (``two-sided``), Z standard normal.
    pooled : float
        ``(x_new + x_ref) / (n_new + n_ref)``.
    """

    z: float
    p_value: float
    pooled: float


def _count(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return int(value)


def two_proportion_ztest(
    x_new: int, n_new: int, x_ref: int, n_ref: int, alternative: str = "greater"
) -> ProportionTest:
    """Pooled two-proportion z-test of ``x_new / n_new`` against ``x_ref / n_ref``.

    Parameters
    ----------
    x_new, n_new : int
        Flagged rows and rows of the new data (``0 <= x_new <= n_new``, ``n_new >= 1``).
    x_ref, n_ref : int
        The same of the reference.
    alternative : {"greater", "two-sided"}
        ``greater``: H1 is ``p_new > p_ref``.

    Returns
    -------
    ProportionTest
        The p-value is from the standard normal (``math.erfc``).

    Raises
    ------
    TypeError, ValueError
        A count that is not an integer, below its minimum, ``x > n``, or an unknown alternative.
    """
    counts = {"x_new": x_new, "n_new": n_new, "x_ref": x_ref, "n_ref": n_ref}
    x1, n1, x2, n2 = (_count(v, k, 1 if k.startswith("n") else 0) for k, v in counts.items())
    for x, n, which in ((x1, n1, "new"), (x2, n2, "ref")):
        if x > n:
            raise ValueError(f"x_{which} = {x} is larger than n_{which} = {n}")
    if alternative not in ALTERNATIVES:
        raise ValueError(f"alternative must be one of {ALTERNATIVES}, got {alternative!r}")
    pooled = (x1 + x2) / (n1 + n2)
    se = math.sqrt(pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2))
    z = 0.0 if se == 0.0 else (x1 / n1 - x2 / n2) / se
    if alternative == "greater":
        p_value = 0.5 * math.erfc(z / math.sqrt(2.0))
    else:
        p_value = math.erfc(abs(z) / math.sqrt(2.0))
    return ProportionTest(z, p_value, pooled)


@dataclass(frozen=True)
class MonitorResult:
    """The new rows' flagged fraction against the reference's, and the test.

    Attributes
    ----------
    n_new, flagged_new, n_reference, flagged_reference : int
    new_rate, reference_rate : float
        The flagged fractions (estimated noise rates).
    test : ProportionTest
    alpha : float
    alternative : str
    """

    n_new: int
    flagged_new: int
    n_reference: int
    flagged_reference: int
    test: ProportionTest
    alpha: float
    alternative: str

    @property
    def new_rate(self) -> float:
        return self.flagged_new / self.n_new

    @property
    def reference_rate(self) -> float:
        return self.flagged_reference / self.n_reference

    @property
    def significant(self) -> bool:
        """Whether the test rejects "same noise rate" at level ``alpha`` (the check then fires)."""
        return self.test.p_value < self.alpha


def compare(
    flagged_new: int, n_new: int, flagged_reference: int, n_reference: int, alpha: float, alternative: str = "greater"
) -> MonitorResult:
    """Test the new rows' flagged fraction against the reference's (:func:`two_proportion_ztest`).

    Raises
    ------
    ValueError
        ``alpha`` outside (0, 1), or a bad count (see :func:`two_proportion_ztest`).
    """
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be a number in (0, 1), got {alpha!r}")
    test = two_proportion_ztest(flagged_new, n_new, flagged_reference, n_reference, alternative)
    return MonitorResult(
        int(n_new), int(flagged_new), int(n_reference), int(flagged_reference), test, float(alpha), alternative
    )


def flag_rows(
    labels: np.ndarray, pred_probs: np.ndarray, thresholds: np.ndarray, filter_by: str = "confident_learning"
) -> np.ndarray:
    """Which rows the reference's ``thresholds`` flag (the rule of the module docstring).

    Parameters
    ----------
    labels : ndarray of int, shape (b,)
        Given labels ``0..K-1`` (the reference's class codes).
    pred_probs : ndarray of float, shape (b, K)
        Out-of-sample probabilities (rows sum to 1).
    thresholds : ndarray of float, shape (K,)
        The reference's confident thresholds.
    filter_by : {"confident_learning", "predicted_neq_given"}

    Returns
    -------
    ndarray of bool, shape (b,)

    Raises
    ------
    ValueError, TypeError
        An unknown filter, or labels/probabilities/thresholds the core refuses (it names them).
    """
    if filter_by not in MONITOR_FILTERS:
        raise ValueError(f"filter_by must be one of {MONITOR_FILTERS}, got {filter_by!r}")
    labels, pred_probs, thresholds = np.asarray(labels), np.asarray(pred_probs), np.asarray(thresholds)
    if pred_probs.ndim != 2 or labels.shape != pred_probs.shape[:1]:
        raise ValueError(
            f"pred_probs must have shape (b, K) with b = labels.size, got {pred_probs.shape}, {labels.shape}"
        )
    if thresholds.shape != pred_probs.shape[1:]:
        raise ValueError(f"thresholds must have shape ({pred_probs.shape[1]},) (one per class), got {thresholds.shape}")
    if labels.size == 0:
        return np.zeros(0, dtype=bool)
    batch_joint = core.ConfidentJointState(thresholds)  # this batch's joint under the reference's thresholds
    batch_joint.update(labels, pred_probs, offset=0)
    plan = core.plan_label_issues(batch_joint.result(), thresholds, filter_by=filter_by)
    selection = core.IssueSelectionState(plan)
    selection.update(labels, pred_probs, offset=0)
    return selection.result().mask()


def monitor_schema(id_type: pa.DataType) -> pa.Schema:
    """The schema of ``monitor_scores``: one row per new row, in row order."""
    return pa.schema(
        [
            pa.field("row", pa.int64()),
            pa.field("id", id_type),
            pa.field("given_label", pa.string()),
            pa.field("suggested_label", pa.string()),
            pa.field("self_confidence", pa.float64()),
            pa.field("is_flagged", pa.bool_()),
        ]
    )


@dataclass
class FlagTally:
    """Rows and flagged rows seen by a scoring pass (filled while the batches are produced)."""

    rows: int = 0
    flagged: int = 0


def score_batches(
    batches: Iterable[pa.RecordBatch],
    labels_of: Callable[[pa.RecordBatch], np.ndarray],
    probs_of: Callable[[pa.RecordBatch], np.ndarray],
    thresholds: np.ndarray,
    classes: list[str],
    schema: pa.Schema,
    tally: FlagTally,
    filter_by: str = "confident_learning",
    id_column: str = "id",
) -> Iterator[pa.RecordBatch]:
    """Score record batches of new rows in one pass; ``tally`` counts rows and flags.

    Parameters
    ----------
    batches : iterable of pyarrow.RecordBatch
        The new rows in row order (each holding ``id_column`` and what ``labels_of`` and
        ``probs_of`` read).
    labels_of, probs_of : callable
        A batch's given labels (reference class codes, shape (b,)) and its out-of-sample
        probabilities (shape (b, K), reference class order).
    thresholds : ndarray, shape (K,)
    classes : list of str
        The reference's class names (K).
    schema : pyarrow.Schema
        :func:`monitor_schema` of the id type.
    tally : FlagTally
    filter_by : {"confident_learning", "predicted_neq_given"}
    id_column : str

    Yields
    ------
    pyarrow.RecordBatch
        ``row, id, given_label, suggested_label, self_confidence, is_flagged`` per batch.
    """
    names = pa.array(classes, pa.string())
    for batch in batches:
        labels = np.asarray(labels_of(batch), dtype=np.int64)
        probs = probs_of(batch)
        flagged = flag_rows(labels, probs, thresholds, filter_by)
        b = labels.size
        own = probs[np.arange(b), labels] if b else np.zeros(0)
        yield pa.RecordBatch.from_arrays(
            [
                pa.array(np.arange(tally.rows, tally.rows + b, dtype=np.int64)),
                batch.column(id_column).cast(schema.field("id").type),
                names.take(pa.array(labels)),
                names.take(pa.array(probs.argmax(axis=1) if b else np.zeros(0, np.int64))),
                pa.array(np.asarray(own, dtype=np.float64)),
                pa.array(flagged, pa.bool_()),
            ],
            schema=schema,
        )
        tally.rows += b
        tally.flagged += int(flagged.sum())
