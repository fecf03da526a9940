"""The probability stages over Arrow record batches: memory bounded by a batch, not by the snapshot.

``oof_pred_probs`` is stored in row order with the probabilities as one
fixed-size list column (``pred_probs``: K floats in the input dtype, never a
Python list). Every later stage reads it back batch by batch and feeds the
states of the exact batched engine of :mod:`cl_pipeline.core`, whose results do
not depend on the batch size: the tables are the same for any ``batch_rows``.
Passes over the stored probabilities: class counts, thresholds and the confident
joint (``confident_joint`` stage, stored), then the issue selection and the
per-batch scores (``label_issues`` stage, reusing the stored joint).

Columns of ``oof_pred_probs``: ``row`` (0..n-1), ``id``, ``given_index``,
``given_label``, ``fold`` (-1 when supplied), ``pred_probs`` and, when the
snapshot has known true labels, ``true_index`` (-1 where unknown).
"""

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from cl_pipeline import core
from cl_pipeline.audit.snapshot import Snapshot, encode_labels
from cl_pipeline.config import IssuesConfig
from cl_pipeline.storage import PartitionStore

__all__ = [
    "batch_rows",
    "confident_joint_pass",
    "label_issue_batches",
    "label_issues_schema",
    "oof_batches_from_arrays",
    "oof_batches_from_raw",
    "oof_schema",
    "probabilities",
]

#: Bytes of probabilities per batch (float64): a few MiB keeps every temporary in cache-sized pieces.
BATCH_BYTES = 1 << 23
#: Fewest rows per batch (tests lower it to split small tables into many batches).
MIN_BATCH_ROWS = 1024


def batch_rows(k: int) -> int:
    """Rows per record batch for ``k`` classes (about ``BATCH_BYTES`` of float64 probabilities)."""
    return max(MIN_BATCH_ROWS, BATCH_BYTES // (8 * k))


def oof_schema(id_type: pa.DataType, k: int, dtype: np.dtype, with_truth: bool) -> pa.Schema:
    """The schema of ``oof_pred_probs`` (see the module docstring)."""
    fields = [
        pa.field("row", pa.int64()),
        pa.field("id", id_type),
        pa.field("given_index", pa.int64()),
        pa.field("given_label", pa.string()),
        pa.field("fold", pa.int64()),
        pa.field("pred_probs", pa.list_(pa.from_numpy_dtype(dtype), k)),
    ]
    if with_truth:
        fields.append(pa.field("true_index", pa.int64()))
    return pa.schema(fields)


def _names(classes: list[str], codes: np.ndarray) -> pa.Array:
    """The class names of ``codes`` as an Arrow string array (a C++ take, no Python strings)."""
    return pa.array(classes, pa.string()).take(pa.array(codes))


def _probs_array(probs: np.ndarray) -> pa.FixedSizeListArray:
    flat = np.ascontiguousarray(probs).reshape(-1)
    return pa.FixedSizeListArray.from_arrays(pa.array(flat), probs.shape[1])


def probabilities(column: pa.Array | pa.ChunkedArray, k: int) -> np.ndarray:
    """The (b, K) array of a ``pred_probs`` column of one batch (no copy for a single chunk)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    return column.flatten().to_numpy(zero_copy_only=False).reshape(-1, k)


def oof_batches_from_arrays(
    snapshot: Snapshot, probs: np.ndarray, fold: np.ndarray, schema: pa.Schema
) -> Iterator[pa.RecordBatch]:
    """``oof_pred_probs`` batches of an in-memory snapshot and its (n, K) probabilities."""
    n, k = probs.shape
    ids = pa.Array.from_pandas(snapshot.ids)
    step = batch_rows(k)
    for lo in range(0, n, step):
        hi = min(n, lo + step)
        labels = snapshot.labels[lo:hi]
        columns = [
            pa.array(np.arange(lo, hi, dtype=np.int64)),
            ids.slice(lo, hi - lo).cast(schema.field("id").type),
            pa.array(labels, pa.int64()),
            _names(snapshot.classes, labels),
            pa.array(fold[lo:hi], pa.int64()),
            _probs_array(probs[lo:hi]),
        ]
        if snapshot.true_labels is not None:
            columns.append(pa.array(snapshot.true_labels[lo:hi], pa.int64()))
        yield pa.RecordBatch.from_arrays(columns, schema=schema)


def oof_batches_from_raw(
    store: PartitionStore, date: str, meta: dict[str, Any], schema: pa.Schema
) -> Iterator[pa.RecordBatch]:
    """``oof_pred_probs`` batches read from the stored ``raw_labels`` whose probability columns were supplied.

    The stored rows were validated by ``raw_labels`` (and their hash is checked by
    ``input_valid``), so the batches are only reshaped: the probability columns of
    each batch become one fixed-size list in their own dtype.
    """
    classes, prob_columns, truth = list(meta["classes"]), list(meta["probability_columns"]), meta["true_label_column"]
    columns = [meta["id_column"], "label_index", *prob_columns] + ([truth] if truth else [])
    dtype = schema.field("pred_probs").type.value_type.to_pandas_dtype()
    offset = 0
    for batch in store.iter_batches("raw_labels", date, columns, batch_rows(len(classes))):
        b = batch.num_rows
        labels = batch.column("label_index").to_numpy(zero_copy_only=False).astype(np.int64)
        block = np.column_stack([batch.column(c).to_numpy(zero_copy_only=False) for c in prob_columns])
        arrays = [
            pa.array(np.arange(offset, offset + b, dtype=np.int64)),
            batch.column(meta["id_column"]).cast(schema.field("id").type),
            pa.array(labels),
            _names(classes, labels),
            pa.array(np.full(b, -1, dtype=np.int64)),
            _probs_array(block.astype(dtype, copy=False)),
        ]
        if truth:
            arrays.append(pa.array(_true_index(batch.column(truth).to_pandas(), classes)))
        yield pa.RecordBatch.from_arrays(arrays, schema=schema)
        offset += b


def _true_index(values: Any, classes: list[str]) -> np.ndarray:
    """Codes of known true labels, -1 where unknown (null) or not a class."""
    out = np.full(len(values), -1, dtype=np.int64)
    known = values.notna().to_numpy()
    if known.any():
        out[known] = encode_labels(values[known], classes)
    return out


def _reader(store: PartitionStore, date: str, k: int) -> Callable[[], Iterator[tuple[np.ndarray, np.ndarray]]]:
    """A fresh iterator of ``(labels, pred_probs)`` batches of the stored ``oof_pred_probs`` per call."""

    def read() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for batch in store.iter_batches("oof_pred_probs", date, ["given_index", "pred_probs"], batch_rows(k)):
            labels = batch.column(0).to_numpy(zero_copy_only=False)
            yield labels, probabilities(batch.column(1), k)

    return read


def _run(state: Any, read: Callable[[], Iterator[tuple[np.ndarray, np.ndarray]]], labels_only: bool = False) -> Any:
    """``state.update`` on every batch of one pass, in row order; returns the state."""
    offset = 0
    for labels, probs in read():
        state.update(labels, None if labels_only else probs, offset=offset)
        offset += labels.shape[0]
    return state


def confident_joint_pass(store: PartitionStore, date: str, k: int) -> tuple[np.ndarray, core.ConfidentJointCounts]:
    """Thresholds and the confident joint of the stored probabilities (three passes over the batches).

    Returns
    -------
    thresholds : ndarray, shape (K,)
        ``core.get_confident_thresholds`` (bit-identical, in the probabilities' dtype).
    joint : ConfidentJointCounts
        Raw and calibrated ``C``, ``n_k`` and ``num_label_issues``.
    """
    read = _reader(store, date, k)
    class_counts = _run(core.ClassCountsState(k), read, labels_only=True).result()
    thresholds = _run(core.ThresholdsState(class_counts), read).result()
    joint = _run(core.ConfidentJointState(thresholds, class_counts=class_counts), read).result()
    return thresholds, joint


def label_issues_schema(id_type: pa.DataType, with_truth: bool) -> pa.Schema:
    """The schema of ``label_issues`` (one row per example, in row order)."""
    fields = [
        pa.field("row", pa.int64()),
        pa.field("id", id_type),
        pa.field("given_label", pa.string()),
        pa.field("suggested_label", pa.string()),
        pa.field("label_quality", pa.float64()),
        pa.field("is_label_issue", pa.bool_()),
        pa.field("rank", pa.int64()),
        pa.field("given_index", pa.int64()),
        pa.field("suggested_index", pa.int64()),
    ]
    if with_truth:
        fields.append(pa.field("true_label", pa.string()))
    return pa.schema(fields)


def label_issue_batches(
    store: PartitionStore,
    date: str,
    classes: list[str],
    issues: IssuesConfig,
    thresholds: np.ndarray,
    joint: core.ConfidentJointCounts,
    schema: pa.Schema,
    info: dict,
) -> Iterator[pa.RecordBatch]:
    """``label_issues`` batches in row order; ``info`` gets the counts (and precision/recall) at the end.

    ``thresholds`` and ``joint`` are those of :func:`confident_joint_pass` (as stored by the
    ``confident_joint`` stage), so two passes remain: the selection and the per-batch scores.

    Flags are ``core.find_label_issues`` with the configured filter, ``label_quality`` the
    ``issues.rank_by`` score, ``rank`` 1, 2, ... over the flagged rows (most suspicious
    first, ties by row) and null for the others.
    """
    k = len(classes)
    plan = core.plan_label_issues(
        joint,
        thresholds,
        filter_by=issues.filter_by,
        min_examples_per_class=issues.min_examples_per_class,
        rank_by=issues.rank_by,
    )
    found = _run(core.IssueSelectionState(plan), _reader(store, date, k)).result()
    with_truth = "true_label" in schema.names
    columns = ["row", "id", "given_index", "pred_probs"] + (["true_index"] if with_truth else [])
    tally = np.zeros(3, dtype=np.int64)  # flagged, true errors, flagged true errors
    offset = 0
    for batch in store.iter_batches("oof_pred_probs", date, columns, batch_rows(k)):
        labels = batch.column("given_index").to_numpy(zero_copy_only=False)
        probs = probabilities(batch.column("pred_probs"), k)
        scored = found.score_batch(labels, probs, offset=offset)
        suggested = probs.argmax(axis=1)
        rank = pa.array(scored.rank + 1, mask=~scored.is_label_issue)
        arrays = [
            batch.column("row"),
            batch.column("id"),
            _names(classes, labels),
            _names(classes, suggested),
            pa.array(np.asarray(scored.quality_score, dtype=np.float64)),
            pa.array(scored.is_label_issue),
            rank,
            pa.array(labels, pa.int64()),
            pa.array(suggested.astype(np.int64)),
        ]
        tally[0] += int(scored.is_label_issue.sum())
        if with_truth:
            truth = batch.column("true_index").to_numpy(zero_copy_only=False)
            known, errors = truth >= 0, (truth >= 0) & (truth != labels)
            arrays.append(
                pc.if_else(pa.array(known), _names(classes, np.maximum(truth, 0)), pa.scalar(None, pa.string()))
            )
            tally[1:] += [int(errors.sum()), int((errors & scored.is_label_issue).sum())]
        yield pa.RecordBatch.from_arrays(arrays, schema=schema)
        offset += labels.shape[0]
    info.update(num_issues=int(tally[0]), n=offset)
    if with_truth:
        flagged, errors, hits = (int(x) for x in tally)
        info.update(
            true_errors=errors, true_positives=hits, precision=hits / max(flagged, 1), recall=hits / max(errors, 1)
        )
