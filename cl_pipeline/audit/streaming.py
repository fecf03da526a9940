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

import functools
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from cl_pipeline import core
from cl_pipeline.audit.compute import (
    LOCAL,
    Engine,
    RowSlice,
    read_ahead,
    read_rows,
    read_slice,
    row_slices,
    staging_dir,
    write_part,
)
from cl_pipeline.audit.parquet_snapshot import label_codes
from cl_pipeline.audit.snapshot import Snapshot
from cl_pipeline.config import IssuesConfig
from cl_pipeline.storage import PartitionStore
from cl_pipeline.storage.parquet import open_parquet

__all__ = [
    "batch_rows",
    "confident_joint_pass",
    "oof_batch_from_raw",
    "tallied",
    "stored_thresholds",
    "thresholds_metadata",
    "label_issue_batches",
    "label_issues_schema",
    "oof_batches_from_arrays",
    "oof_batches_from_raw",
    "oof_schema",
    "probabilities",
    "pruned_batches",
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


def oof_batch_from_raw(batch: pa.RecordBatch, offset: int, meta: dict[str, Any], schema: pa.Schema) -> pa.RecordBatch:
    """The ``oof_pred_probs`` batch of rows ``[offset, offset + b)`` of a ``raw_labels`` with supplied
    probability columns: the columns become one fixed-size list in their dtype, a true label its code."""
    classes, prob_columns, truth = list(meta["classes"]), list(meta["probability_columns"]), meta["true_label_column"]
    dtype = schema.field("pred_probs").type.value_type.to_pandas_dtype()
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
        arrays.append(pa.array(label_codes(batch.column(truth), truth, classes)))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _oof_slice(part: RowSlice, shared: tuple[dict[str, Any], pa.Schema]) -> Iterator[pa.RecordBatch]:
    """The ``oof_pred_probs`` batches of one slice of ``raw_labels`` with supplied probability columns."""
    meta, schema = shared
    truth = meta["true_label_column"]
    columns = [meta["id_column"], "label_index", *meta["probability_columns"]] + ([truth] if truth else [])
    offset = part.offset
    for batch in read_slice(part, columns, batch_rows(len(meta["classes"]))):
        yield oof_batch_from_raw(batch, offset, meta, schema)
        offset += batch.num_rows


def tallied(
    batches: Iterator[pa.RecordBatch], class_totals: np.ndarray, tally: list[int], info: dict[str, Any]
) -> Iterator[pa.RecordBatch]:
    """Pass ``oof_pred_probs`` batches on, counting rows whose argmax is the given label
    (``tally = [hits, rows]``), and, after the last one, put the confident thresholds into
    ``info`` (passes 1 and 2 of the batched engine in this one sweep, so ``confident_joint``
    reads the rows once; see :func:`thresholds_metadata`)."""
    k, rows = class_totals.shape[0], 0
    sweep = core.InOrderThresholdsState(class_totals)
    for batch in batches:
        probs = probabilities(batch.column("pred_probs"), k)
        labels = batch.column("given_index").to_numpy(zero_copy_only=False)
        tally[0] += int((probs.argmax(axis=1) == labels).sum())
        sweep.update(labels, probs, offset=rows)
        rows += batch.num_rows
        yield batch
    tally[1] = rows
    info.update(thresholds_metadata(sweep.result()))


def _oof_slice_in_memory(part: RowSlice, shared: tuple[dict[str, Any], pa.Schema]) -> list[pa.RecordBatch]:
    return list(_oof_slice(part, shared))


def oof_batches_from_raw(
    store: PartitionStore, date: str, meta: dict[str, Any], schema: pa.Schema, engine: Engine = LOCAL
) -> Iterator[pa.RecordBatch]:
    """``oof_pred_probs`` batches read from the stored ``raw_labels`` whose probability columns were supplied.

    The stored rows were validated by ``raw_labels`` (and their hash is checked by
    ``input_valid``), so the batches are only reshaped: the probability columns of
    each batch become one fixed-size list in their own dtype; a true-label column
    becomes its codes (-1 where unknown). A threaded local ``engine`` reshapes the
    next slices while this one is written; otherwise (and on Dask, whose workers would
    only send the rows back) it streams one batch at a time.
    """
    threads = 1 if engine.distributed else engine.threads
    slices = row_slices(store.path("raw_labels", date), engine.slice_rows if threads > 1 else None)
    if threads == 1:
        for part in slices:
            yield from _oof_slice(part, (meta, schema))
    else:
        for batches in engine.imap(_oof_slice_in_memory, slices, shared=(meta, schema)):
            yield from batches


def _merged(states: list[Any]) -> Any:
    """The states of the slices of one pass merged in slice order (the result does not depend on the order)."""
    return functools.reduce(lambda a, b: a.merge(b), states)


def _pass_task(part: RowSlice, shared: tuple[Callable[[], Any], int, bool, bool]) -> Any:
    """One pass of the batched engine over one slice of ``oof_pred_probs``: a fresh state updated batch by batch.

    ``shared`` is ``(make_state, K, labels_only, ahead)``; with ``ahead`` a thread decodes the
    next batches while this one is worked on. Runs in this process or on a Dask worker.
    """
    make_state, k, labels_only, ahead = shared
    state, offset = make_state(), part.offset
    columns = ["given_index"] if labels_only else ["given_index", "pred_probs"]
    batches = read_slice(part, columns, batch_rows(k))
    for batch in read_ahead(batches) if ahead else batches:
        labels = batch.column(0).to_numpy(zero_copy_only=False)
        state.update(labels, None if labels_only else probabilities(batch.column(1), k), offset=offset)
        offset += batch.num_rows
    return state


def _run_pass(engine: Engine, slices: list[RowSlice], make_state: Callable[[], Any], k: int, name: str) -> Any:
    """One pass over every slice (tasks of ``engine``), merged.

    A single slice in this process (the local selection pass) reads ahead in a thread:
    the second core decodes while the first selects.
    """
    labels_only = name == "class-counts"
    ahead = not engine.distributed and len(slices) == 1 and not labels_only
    return _merged(engine.map(_pass_task, slices, shared=(make_state, k, labels_only, ahead), name=name))


def thresholds_metadata(thresholds: np.ndarray) -> dict[str, Any]:
    """The confident thresholds as ``oof_pred_probs`` records them in its file (exact: JSON floats
    hold every float32 and float64 value), read back by :func:`stored_thresholds`."""
    return {"confident_thresholds": [float(t) for t in thresholds], "thresholds_dtype": str(thresholds.dtype)}


def stored_thresholds(meta: dict[str, Any], k: int) -> np.ndarray | None:
    """The thresholds recorded by :func:`thresholds_metadata`, or None (a file written before they were)."""
    values, dtype = meta.get("confident_thresholds"), meta.get("thresholds_dtype")
    if values is None or dtype not in ("float32", "float64") or len(values) != k:
        return None
    return np.asarray(values, dtype=np.float64).astype(dtype)


def confident_joint_pass(
    store: PartitionStore, date: str, k: int, engine: Engine = LOCAL
) -> tuple[np.ndarray, core.ConfidentJointCounts]:
    """Thresholds and the confident joint of the stored probabilities.

    The thresholds are those ``oof_pred_probs`` recorded while it was written (passes 1 and 2
    of the batched engine in its one sweep, :class:`cl_pipeline.core.InOrderThresholdsState`),
    so one pass remains; a file without them gets the three passes. Each pass is one task per
    slice of ``oof_pred_probs`` on ``engine`` (one slice locally), merged in slice order: the
    result is the same for every engine and slicing.

    Returns
    -------
    thresholds : ndarray, shape (K,)
        ``core.get_confident_thresholds`` (bit-identical, in the probabilities' dtype).
    joint : ConfidentJointCounts
        Raw and calibrated ``C``, ``n_k`` and ``num_label_issues``.
    """
    slices = row_slices(store.path("oof_pred_probs", date), engine.slice_rows)
    thresholds = stored_thresholds(store.metadata("oof_pred_probs", date), k)
    class_counts = None
    if thresholds is None:
        make_counts = functools.partial(core.ClassCountsState, k)
        class_counts = _run_pass(engine, slices, make_counts, k, "class-counts").result()
        thresholds = _run_pass(engine, slices, functools.partial(core.ThresholdsState, class_counts), k, "thresholds")
        thresholds = thresholds.result()
    make = functools.partial(core.ConfidentJointState, thresholds, class_counts=class_counts)
    joint = _run_pass(engine, slices, make, k, "confident-joint").result()
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


def _scored(
    batch: pa.RecordBatch, offset: int, found: core.LabelIssues, classes: list[str], schema: pa.Schema
) -> tuple[pa.RecordBatch, np.ndarray]:
    """The ``label_issues`` rows of one ``oof_pred_probs`` batch, and its tally (flagged, true errors, flagged errors)."""
    k = len(classes)
    labels = batch.column("given_index").to_numpy(zero_copy_only=False)
    probs = probabilities(batch.column("pred_probs"), k)
    scored = found.score_batch(labels, probs, offset=offset)
    suggested = probs.argmax(axis=1)
    arrays = [
        batch.column("row"),
        batch.column("id"),
        _names(classes, labels),
        _names(classes, suggested),
        pa.array(np.asarray(scored.quality_score, dtype=np.float64)),
        pa.array(scored.is_label_issue),
        pa.array(scored.rank + 1, mask=~scored.is_label_issue),
        pa.array(labels, pa.int64()),
        pa.array(suggested.astype(np.int64)),
    ]
    tally = np.array([int(scored.is_label_issue.sum()), 0, 0], dtype=np.int64)
    if "true_label" in schema.names:
        truth = batch.column("true_index").to_numpy(zero_copy_only=False)
        known, errors = truth >= 0, (truth >= 0) & (truth != labels)
        arrays.append(pc.if_else(pa.array(known), _names(classes, np.maximum(truth, 0)), pa.scalar(None, pa.string())))
        tally[1:] = [int(errors.sum()), int((errors & scored.is_label_issue).sum())]
    return pa.RecordBatch.from_arrays(arrays, schema=schema), tally


def _scored_slice(
    part: RowSlice, found: core.LabelIssues, classes: list[str], schema: pa.Schema, tally: np.ndarray
) -> Iterator[pa.RecordBatch]:
    """The ``label_issues`` batches of one slice of ``oof_pred_probs``; adds to ``tally``."""
    columns = ["row", "id", "given_index", "pred_probs"] + (["true_index"] if "true_label" in schema.names else [])
    offset = part.offset
    for batch in read_slice(part, columns, batch_rows(len(classes))):
        out, counts = _scored(batch, offset, found, classes, schema)
        tally += counts
        offset += batch.num_rows
        yield out


def _write_scored_part(part: RowSlice, shared: tuple) -> np.ndarray:
    """Worker task: score one slice and write its ``label_issues`` rows to the staging folder; returns its tally."""
    found, classes, schema, staging = shared
    tally = np.zeros(3, dtype=np.int64)
    write_part(_part_path(staging, part.index), schema, _scored_slice(part, found, classes, schema, tally))
    return tally


def _scored_in_memory(part: RowSlice, shared: tuple) -> tuple[list[pa.RecordBatch], np.ndarray]:
    """Thread task: the ``label_issues`` batches of one slice, held in memory, and its tally."""
    found, classes, schema = shared
    tally = np.zeros(3, dtype=np.int64)
    return list(_scored_slice(part, found, classes, schema, tally)), tally


def _part_path(staging: str | Path, index: int) -> Path:
    return Path(staging) / f"part-{index:06d}.parquet"


def _committed_parts(staging: Path, count: int) -> Iterator[pa.RecordBatch]:
    """The batches of the parts ``0..count-1`` in order, then the staging folder is removed."""
    try:
        for index in range(count):
            yield from open_parquet(_part_path(staging, index)).iter_batches(batch_size=1 << 16)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def label_issue_batches(
    store: PartitionStore,
    date: str,
    classes: list[str],
    issues: IssuesConfig,
    thresholds: np.ndarray,
    joint: core.ConfidentJointCounts,
    schema: pa.Schema,
    info: dict,
    engine: Engine = LOCAL,
) -> Iterator[pa.RecordBatch]:
    """``label_issues`` batches in row order; ``info`` gets the counts (and precision/recall) at the end.

    ``thresholds`` and ``joint`` are those of :func:`confident_joint_pass` (as stored by the
    ``confident_joint`` stage), so two passes remain: the selection (one task per slice,
    merged) and the per-batch scores. On a distributed engine the workers score their
    slices and write them to a staging folder; the batches yielded are those parts, in
    order, for the run to commit into the table atomically.

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
    path = store.path("oof_pred_probs", date)
    slices = row_slices(path, engine.slice_rows)
    # A selection state per slice keeps every candidate that could be selected overall, so slicing
    # costs merges (at 10M rows, 10 slices doubled the stage's CPU): locally it is one pass in one slice.
    chosen = slices if engine.distributed else row_slices(path, None)
    found = _run_pass(engine, chosen, functools.partial(core.IssueSelectionState, plan), k, "issue-selection").result()
    tally = np.zeros(3, dtype=np.int64)  # flagged, true errors, flagged true errors
    if engine.distributed:
        staging = staging_dir(store.root, "label_issues")
        shared = (found, classes, schema, str(staging))
        tally = sum(engine.map(_write_scored_part, slices, shared=shared, name="label-issues"), tally)
        yield from _committed_parts(staging, len(slices))
    elif engine.threads == 1:
        for part in slices:
            yield from _scored_slice(part, found, classes, schema, tally)
    else:  # threads score the next slices while this one is written
        for batches, counts in engine.imap(_scored_in_memory, slices, shared=(found, classes, schema)):
            tally += counts
            yield from batches
    info.update(num_issues=int(tally[0]), n=sum(part.rows for part in slices))
    if "true_label" in schema.names:
        flagged, errors, hits = (int(x) for x in tally)
        info.update(
            true_errors=errors, true_positives=hits, precision=hits / max(flagged, 1), recall=hits / max(errors, 1)
        )


def _flags(path: str, lo: int, hi: int) -> np.ndarray:
    """``is_label_issue`` of rows ``[lo, hi)`` of the ``label_issues`` file ``path`` (written in row order)."""
    column = read_rows(path, ["is_label_issue"], lo, hi).column(0)
    return column.to_numpy() if column.num_chunks else np.zeros(0, dtype=bool)


def _kept_slice(part: RowSlice, issues_path: str) -> Iterator[pa.RecordBatch]:
    """The rows of one slice of ``raw_labels`` that ``label_issues`` did not flag."""
    flagged = _flags(issues_path, part.offset, part.offset + part.rows)
    offset = 0
    for batch in read_slice(part, None, 65536):
        keep = ~flagged[offset : offset + batch.num_rows]
        offset += batch.num_rows
        yield batch.filter(pa.array(keep))


def _kept_in_memory(part: RowSlice, issues_path: str) -> list[pa.RecordBatch]:
    """Thread task: the kept rows of one slice of ``raw_labels``, held in memory."""
    return list(_kept_slice(part, issues_path))


def _write_kept_part(part: RowSlice, shared: tuple[str, pa.Schema, str]) -> int:
    """Worker task: write the kept rows of one slice of ``raw_labels`` to the staging folder."""
    issues_path, schema, staging = shared
    batches = (b.cast(schema) for b in _kept_slice(part, issues_path))
    return write_part(_part_path(staging, part.index), schema, batches)


def pruned_batches(
    store: PartitionStore, date: str, schema: pa.Schema, info: dict, engine: Engine = LOCAL
) -> Iterator[pa.RecordBatch]:
    """The rows of ``raw_labels`` that ``label_issues`` did not flag, in row order; ``info['removed']`` at the end.

    On a distributed engine each worker filters a slice of ``raw_labels`` and writes it
    to a staging folder; the batches yielded are those parts, in order.
    """
    slices = row_slices(store.path("raw_labels", date), engine.slice_rows)
    issues_path = str(store.path("label_issues", date))
    kept = 0
    if engine.distributed:
        staging = staging_dir(store.root, "pruned_dataset")
        kept = sum(engine.map(_write_kept_part, slices, shared=(issues_path, schema, str(staging)), name="pruned"))
        yield from _committed_parts(staging, len(slices))
    else:
        per_slice = (
            (_kept_slice(part, issues_path) for part in slices)  # streaming, one batch at a time
            if engine.threads == 1
            else engine.imap(_kept_in_memory, slices, shared=issues_path)  # threads filter the next slices
        )
        for batches in per_slice:
            for batch in batches:
                kept += batch.num_rows
                yield batch.cast(schema)
    info["removed"] = sum(part.rows for part in slices) - kept
