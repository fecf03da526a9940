"""Curated versions: a date's snapshot with the review decisions applied, streamed in Arrow batches.

A decision (``review_decisions``) is keyed by example id and applies to the snapshot of
every date on or after the date it was made on, as long as the example's given label
is still the one the reviewer saw (``given_label``); a changed label voids it (the rule
of the review queue). Per id the latest decision among those made up to the date wins
(:func:`cl_pipeline.storage.versions.latest_decisions`). Applied: ``relabel`` sets the
label (and ``label_index``) to ``new_label``, ``drop`` removes the row, ``keep`` changes
nothing in the rows; an audit started from the curated version does not flag a kept
example again (:func:`review_label_issues`).

The curated rows get their own data version: the ``arrow-1`` streaming hash of
:class:`~cl_pipeline.audit.parquet_snapshot.StreamHash` over every stored column but
``partition`` and ``label_index``, the rule of a raw Parquet snapshot's version (and of
the ``input_valid`` check of such a ``raw_labels``). When no decision changes a row,
the curated version *is* the raw version (same hash) and the lineage says so.

Where the rows go:

- ``curated_dataset`` (:func:`curated_dataset`, every audit): the date's ``raw_labels``
  with the decisions applied; when ``raw_labels`` already holds a curated version (an
  audit started from it), the raw snapshot is read from the source again, and must
  still be the parent version ``raw_labels`` recorded.
- ``raw_labels`` itself when ``[audit] start_from = "curated"`` (:func:`curated_raw_labels`),
  so every later stage audits the curated rows unchanged.

Both record the lineage in their metadata, ``curation``: ``parent_version`` (the raw
version), ``parent_rows``, ``decisions_applied``, ``relabeled``, ``dropped``, ``kept``,
``decisions_hash`` (16 hex digits over the applied decisions' ids; which decisions),
``considered_hash`` (over every decision that was looked at), ``created_at`` and ``note``;
the warehouse view ``dataset_versions`` lists them (:mod:`cl_pipeline.storage.versions`).
"""

import datetime
import hashlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from cl_pipeline.audit import parquet_snapshot
from cl_pipeline.audit.preflight import Prevalidated, prevalidate
from cl_pipeline.audit.stages import StageResult
from cl_pipeline.config import AuditConfig, ConfigError
from cl_pipeline.storage import PartitionStore
from cl_pipeline.storage.versions import CURATED, latest_decisions

__all__ = [
    "CurationSource",
    "check_curated",
    "DecisionLookup",
    "curate_batches",
    "curated_dataset",
    "curated_raw_labels",
    "decision_lookup",
    "source_from_raw_labels",
    "source_from_snapshot",
]

log = logging.getLogger("cl_pipeline.progress")

#: Decision kinds as codes (``DecisionLookup.action``).
KEEP, RELABEL, DROP = 0, 1, 2
_ACTIONS = {"keep": KEEP, "relabel": RELABEL, "drop": DROP}
#: Rows per batch of an in-memory snapshot turned into Arrow.
BATCH_ROWS = 1 << 16
#: Columns of a stored table that are not the snapshot's own (not hashed, not exported).
PIPELINE_COLUMNS = ("partition", "label_index")


@dataclass(frozen=True)
class DecisionLookup:
    """The decisions that may apply to one date's snapshot, one per id, as arrays.

    Attributes
    ----------
    ids : pyarrow.StringArray, shape (m,)
    action : ndarray of int8, shape (m,)
        ``KEEP``, ``RELABEL`` or ``DROP``.
    given_code, new_code : ndarray of int64, shape (m,)
        The class codes of ``given_label`` and ``new_label`` (-1 when absent or not a class).
    table : pyarrow.Table
        The decisions themselves (``DECISION_SCHEMA`` columns), row ``i`` = code ``i``.
    considered_hash : str or None
        16 hex digits over every decision id considered (None when there is none).
    """

    ids: pa.Array
    action: np.ndarray
    given_code: np.ndarray
    new_code: np.ndarray
    table: pa.Table
    considered_hash: str | None

    @property
    def empty(self) -> bool:
        return len(self.ids) == 0

    def match(self, ids: pa.Array, given: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For rows with ``ids`` and given label codes ``given``: (position of their decision or -1, applies).

        A decision applies when it was made on the row's current given label.
        """
        keys = ids if pa.types.is_string(ids.type) else pc.cast(ids, pa.string())
        pos = pc.index_in(keys, value_set=self.ids).fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
        found = pos >= 0
        applies = np.zeros(pos.shape, dtype=bool)
        applies[found] = self.given_code[pos[found]] == given[found]
        return pos, applies


def _digest(ids: list[str]) -> str | None:
    return hashlib.sha256("\n".join(sorted(ids)).encode()).hexdigest()[:16] if ids else None


def decision_lookup(data_dir: Any, date: str, classes: list[str]) -> DecisionLookup:
    """The latest decision per id made on snapshots up to ``date``, coded in ``classes`` order."""
    table = latest_decisions(data_dir, date)
    index = {c: i for i, c in enumerate(classes)}
    given = [index.get(v, -1) for v in table.column("given_label").to_pylist()]
    new = [index.get(v, -1) if v is not None else -1 for v in table.column("new_label").to_pylist()]
    return DecisionLookup(
        ids=table.column("id").combine_chunks() if table.num_rows else pa.array([], pa.string()),
        action=np.asarray([_ACTIONS[d] for d in table.column("decision").to_pylist()], dtype=np.int8),
        given_code=np.asarray(given, dtype=np.int64),
        new_code=np.asarray(new, dtype=np.int64),
        table=table,
        considered_hash=_digest(table.column("decision_id").to_pylist()),
    )


@dataclass
class Tally:
    """What :func:`curate_batches` did so far."""

    rows_in: int = 0
    rows_out: int = 0
    counts: dict[int, int] = field(default_factory=lambda: {KEEP: 0, RELABEL: 0, DROP: 0})
    applied: set[int] = field(default_factory=set)
    label_counts: np.ndarray | None = None

    @property
    def changed(self) -> bool:
        return bool(self.counts[RELABEL] or self.counts[DROP])


def _relabeled(column: pa.Array, mask: np.ndarray, labels: pa.Array, name: str) -> pa.Array:
    """``column`` with the rows of ``mask`` set to ``labels`` (class names) in the column's own type."""
    plain = column.dictionary_decode() if pa.types.is_dictionary(column.type) else column
    try:
        values = pc.cast(labels, plain.type)
        out = pc.replace_with_mask(plain, pa.array(mask), values)
        return out.cast(column.type) if out.type != column.type else out
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise ConfigError(f"label column {name!r}: a new label cannot be stored as {column.type}: {exc}") from None


def curate_batch(
    batch: pa.RecordBatch, lookup: DecisionLookup, id_column: str, label_column: str, tally: Tally
) -> pa.RecordBatch:
    """One batch (with ``label_index``) with the decisions that apply to its rows applied."""
    given = batch.column("label_index").to_numpy(zero_copy_only=False)
    tally.rows_in += batch.num_rows
    pos, applies = lookup.match(batch.column(id_column), given) if not lookup.empty else (None, None)
    if pos is None or not applies.any():
        _count_labels(tally, given)
        tally.rows_out += batch.num_rows
        return batch
    action = np.where(applies, lookup.action[np.maximum(pos, 0)], -1)
    for code in (KEEP, RELABEL, DROP):
        tally.counts[code] += int((action == code).sum())
    tally.applied.update(pos[applies].tolist())
    relabel, drop = action == RELABEL, action == DROP
    if relabel.any():
        names = lookup.table.column("new_label").take(pa.array(pos[relabel])).combine_chunks()
        columns = {name: batch.column(name) for name in batch.schema.names}
        columns[label_column] = _relabeled(batch.column(label_column), relabel, names, label_column)
        codes = np.where(relabel, lookup.new_code[np.maximum(pos, 0)], given)
        columns["label_index"] = pa.array(codes.astype(np.int64))
        batch = pa.RecordBatch.from_arrays(list(columns.values()), schema=batch.schema)
        given = codes
    if drop.any():
        batch = batch.filter(pa.array(~drop))
        given = given[~drop]
    _count_labels(tally, given)
    tally.rows_out += batch.num_rows
    return batch


def _count_labels(tally: Tally, codes: np.ndarray) -> None:
    counts = np.bincount(codes[codes >= 0], minlength=0)
    if tally.label_counts is None:
        tally.label_counts = counts
    else:
        size = max(tally.label_counts.size, counts.size)
        tally.label_counts = np.pad(tally.label_counts, (0, size - tally.label_counts.size)) + np.pad(
            counts, (0, size - counts.size)
        )


def curate_batches(
    batches: Iterator[pa.RecordBatch], lookup: DecisionLookup, id_column: str, label_column: str, tally: Tally
) -> Iterator[pa.RecordBatch]:
    """:func:`curate_batch` over ``batches`` (``tally`` is filled as they go)."""
    for batch in batches:
        yield curate_batch(batch, lookup, id_column, label_column, tally)


@dataclass(frozen=True)
class CurationSource:
    """The raw rows of a date to curate.

    Attributes
    ----------
    schema : pyarrow.Schema
        Without ``partition``; with ``label_index``.
    batches : callable
        A fresh iterator of the rows (record batches with ``schema``) per call.
    meta : dict
        The ``raw_labels`` metadata of these rows (classes, id and label columns, ...).
    parent_version : str
        Their data version.
    parent_rows : int
    """

    schema: pa.Schema
    batches: Callable[[], Iterator[pa.RecordBatch]]
    meta: dict[str, Any]
    parent_version: str
    parent_rows: int


def source_from_raw_labels(store: PartitionStore, date: str) -> CurationSource:
    """The stored ``raw_labels`` of ``date`` as a source (its ``partition`` column left out)."""
    schema = store.schema("raw_labels", date).remove_metadata()
    names = [n for n in schema.names if n != "partition"]
    meta = store.metadata("raw_labels", date)
    rows = pq.read_metadata(store.path("raw_labels", date)).num_rows
    return CurationSource(
        pa.schema([schema.field(n) for n in names]),
        lambda: store.iter_batches("raw_labels", date, names),
        meta,
        meta["data_version"],
        rows,
    )


def _frame_batches(frame: pd.DataFrame, schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    for lo in range(0, len(frame), BATCH_ROWS):
        yield pa.RecordBatch.from_pandas(frame.iloc[lo : lo + BATCH_ROWS], schema=schema, preserve_index=False)


def source_from_snapshot(checked: Prevalidated) -> CurationSource:
    """A validated snapshot (in memory, or a Parquet file read in batches) as a source."""
    from cl_pipeline.audit.snapshot import stored_metadata

    if checked.parquet is not None:
        snap = checked.parquet
        return CurationSource(
            parquet_snapshot.raw_labels_schema(snap),
            lambda: parquet_snapshot.raw_label_batches(snap),
            parquet_snapshot.stored_metadata(snap),
            snap.data_version,
            snap.n,
        )
    snapshot = checked.snapshot
    if snapshot is None:
        raise TypeError("checked must hold a snapshot or a Parquet snapshot")
    frame = snapshot.frame.reset_index(drop=True)
    schema = pa.Schema.from_pandas(frame, preserve_index=False).remove_metadata()
    meta = stored_metadata(snapshot, checked.config)
    return CurationSource(schema, lambda: _frame_batches(frame, schema), meta, snapshot.data_version, len(frame))


def _note(tally: Tally, lookup: DecisionLookup, parent: str) -> str:
    if lookup.empty:
        return f"no review decisions yet: the curated version is the raw snapshot (version {parent})"
    if not tally.changed:
        return (
            f"no review decision changes this snapshot ({tally.counts[KEEP]} kept, {len(lookup.ids)} decisions "
            f"considered): the curated version is the raw snapshot (version {parent})"
        )
    return (
        f"{tally.counts[RELABEL]} relabeled, {tally.counts[DROP]} dropped, {tally.counts[KEEP]} kept "
        f"over raw version {parent}"
    )


def _lineage(tally: Tally, lookup: DecisionLookup, source: CurationSource) -> dict[str, Any]:
    applied = lookup.table.column("decision_id").take(pa.array(sorted(tally.applied), pa.int64())).to_pylist()
    return {
        "parent_version": source.parent_version,
        "parent_rows": source.parent_rows,
        "decisions_applied": len(applied),
        "relabeled": tally.counts[RELABEL],
        "dropped": tally.counts[DROP],
        "kept": tally.counts[KEEP],
        "decisions_hash": _digest(applied),
        "considered_hash": lookup.considered_hash,
        "created_at": datetime.datetime.now(datetime.UTC).isoformat(),
        "note": _note(tally, lookup, source.parent_version),
    }


def _hashed(
    batches: Iterator[pa.RecordBatch], schema: pa.Schema, done: Callable[[str], None]
) -> Iterator[pa.RecordBatch]:
    """Pass the batches on while hashing their snapshot columns; ``done(version)`` after the last one."""
    state = parquet_snapshot.StreamHash([n for n in schema.names if n not in PIPELINE_COLUMNS])
    for batch in batches:
        state.update(batch)
        yield batch
    done(state.hexdigest())


def _then(batches: Iterator[pa.RecordBatch], done: Callable[[], None]) -> Iterator[pa.RecordBatch]:
    yield from batches
    done()


def _class_counts(tally: Tally, classes: list[str]) -> np.ndarray:
    """Rows per class counted so far, shape (K,) (0 for classes no row had)."""
    counts = np.zeros(len(classes), dtype=np.int64)
    if tally.label_counts is not None:
        counts[: min(tally.label_counts.size, len(classes))] = tally.label_counts[: len(classes)]
    return counts


def _completed(
    info: dict[str, Any], tally: Tally, lookup: DecisionLookup, source: CurationSource, version: str, start: float
) -> dict[str, Any]:
    """``info`` with what is known after the last row: lineage, version, hash scheme, label counts, seconds."""
    changed = tally.changed
    info["curation"] = _lineage(tally, lookup, source)
    info["data_version"] = version if changed else source.parent_version
    info["hash_scheme"] = parquet_snapshot.HASH_SCHEME if changed else source.meta.get("hash_scheme")
    info["label_counts"] = _class_counts(tally, list(source.meta["classes"])).tolist()
    info["seconds"] = time.perf_counter() - start
    return info


def _check_class_sizes(tally: Tally, classes: list[str], n_folds: int | None) -> None:
    """The curated labels must still be auditable (the rule of the raw snapshot's validation)."""
    counts = _class_counts(tally, classes)
    if np.count_nonzero(counts) < 2:
        raise ConfigError(f"the curated labels hold {np.count_nonzero(counts)} class(es); at least 2 are needed")
    small = np.flatnonzero(counts < n_folds) if n_folds is not None else np.zeros(0, dtype=np.int64)
    if small.size:
        detail = ", ".join(f"{classes[k]!r} has {counts[k]}" for k in small[:5])
        raise ConfigError(
            f"after the review decisions, classes are too small for {n_folds}-fold cross-validation ({detail}): "
            "audit the raw snapshot (start_from = 'raw') or lower model.n_folds"
        )


def write_curated(
    store: PartitionStore,
    table: str,
    date: str,
    source: CurationSource,
    lookup: DecisionLookup,
    meta: dict[str, Any],
    start: float,
    n_folds: int | None = None,
) -> tuple[int, dict[str, Any]]:
    """Stream ``source`` through the decisions into ``table``'s partition ``date``; returns (rows, metadata).

    ``meta`` is completed after the last batch: ``data_version`` (the parent's when no row
    changed), ``hash_scheme``, ``label_counts`` and ``curation``. With ``n_folds``, labels
    left too small to audit raise ``ConfigError`` before the file is replaced.
    """
    tally, classes = Tally(), list(source.meta["classes"])
    info = dict(meta)

    def finish(version: str) -> None:
        if n_folds is not None:
            _check_class_sizes(tally, classes, n_folds)
        _completed(info, tally, lookup, source, version, start)

    curated = curate_batches(source.batches(), lookup, source.meta["id_column"], source.meta["label_column"], tally)
    if lookup.empty:  # nothing can change: the version is the parent's, no need to hash
        curated = _then(curated, lambda: finish(source.parent_version))
    else:
        curated = _hashed(curated, source.schema, finish)
    rows = store.write_batches(table, date, source.schema, curated, info)
    return rows, info


def _copy_of_raw_labels(
    store: PartitionStore,
    date: str,
    source: CurationSource,
    lookup: DecisionLookup,
    meta: dict[str, Any],
    start: float,
) -> tuple[int, dict[str, Any]]:
    """``curated_dataset`` when no decision can apply to the rows ``raw_labels`` holds: a copy of its file.

    The rows, their bytes and so their version are the parent's (what :func:`write_curated`
    would write, without decoding and re-encoding them); only the metadata is the curated
    version's (lineage, label counts as ``raw_labels`` recorded them or from its ``label_index``, seconds).
    """
    tally = Tally(rows_in=source.parent_rows, rows_out=source.parent_rows)
    if source.meta.get("label_counts") is not None:  # recorded by a streamed raw_labels
        tally.label_counts = np.asarray(source.meta["label_counts"], dtype=np.int64)
    else:
        for batch in store.iter_batches("raw_labels", date, ["label_index"], BATCH_ROWS):
            _count_labels(tally, batch.column(0).to_numpy(zero_copy_only=False))
    info = dict(meta)
    rows = store.copy(
        "raw_labels", CURATED, date, lambda: _completed(info, tally, lookup, source, source.parent_version, start)
    )
    return rows, info


def curated_dataset(store: PartitionStore, config: AuditConfig, date: str) -> StageResult:
    """The date's snapshot with the review decisions applied, with its own data version (``curated_dataset``)."""
    start = time.perf_counter()
    raw_meta = store.metadata("raw_labels", date)
    if raw_meta.get("curation") is None:
        source = source_from_raw_labels(store, date)
    else:  # raw_labels holds a curated version: curate the raw snapshot it came from
        source = source_from_snapshot(prevalidate(config, date))
        if source.parent_version != raw_meta["curation"]["parent_version"]:
            raise ConfigError(
                f"the source snapshot of {date} (version {source.parent_version}) is not the one raw_labels was "
                f"curated from ({raw_meta['curation']['parent_version']}): rerun the audit of {date}"
            )
    lookup = decision_lookup(store.root, date, list(source.meta["classes"]))
    keys = ("classes", "id_column", "label_column", "true_label_column", "probability_columns")
    meta: dict[str, Any] = {k: source.meta.get(k) for k in keys}
    if lookup.empty and raw_meta.get("curation") is None:  # the rows are raw_labels' own: copy the file
        rows, info = _copy_of_raw_labels(store, date, source, lookup, meta, start)
    else:
        rows, info = write_curated(store, CURATED, date, source, lookup, meta, start)
    curation = info["curation"]
    seconds = time.perf_counter() - start
    log.info("%-16s %s (%.2f s)", CURATED, curation["note"], seconds)
    return StageResult(
        curation["note"],
        seconds,
        rows,
        metadata={
            "data_version": info["data_version"],
            "parent_version": curation["parent_version"],
            "decisions_applied": curation["decisions_applied"],
            "relabeled": curation["relabeled"],
            "dropped": curation["dropped"],
            "kept": curation["kept"],
            "decisions_hash": curation["decisions_hash"],
            "note": curation["note"],
        },
        data_version=info["data_version"],
    )


def _changes(snapshot: Any, lookup: DecisionLookup) -> bool:
    """Whether a decision relabels or drops a row of an in-memory snapshot (ids and codes only)."""
    if lookup.empty:
        return False
    ids = pa.Array.from_pandas(snapshot.ids.reset_index(drop=True))
    pos, applies = lookup.match(ids, np.asarray(snapshot.labels))
    return bool(np.isin(lookup.action[pos[applies]], (RELABEL, DROP)).any())


def _refuse_annotations(config: AuditConfig) -> None:
    """Several annotators per example (issue 12): their consensus is the label; not curated yet."""
    if getattr(config.columns, "annotations", None) is not None:
        raise ConfigError(
            "[audit] start_from = 'curated' cannot be combined with columns.annotations yet: audit from 'raw'"
        )


def curated_raw_labels(
    store: PartitionStore, config: AuditConfig, date: str, checked: Prevalidated, start: float
) -> StageResult | None:
    """``raw_labels`` of an audit started from the curated version (``[audit] start_from = "curated"``).

    Writes the snapshot with the decisions applied, its metadata that of the raw snapshot
    plus the curated ``data_version`` and ``curation`` (the lineage). Returns None, after
    logging why, when no decision changes an in-memory snapshot: ``raw_labels`` is then
    written as for a raw audit (the raw version is the curated one).

    Raises
    ------
    ConfigError
        If the decisions leave fewer than 2 classes, or (K-fold) a class smaller than
        ``model.n_folds``; nothing is written.
    """
    _refuse_annotations(config)
    source = source_from_snapshot(checked)
    lookup = decision_lookup(store.root, date, list(source.meta["classes"]))
    if checked.snapshot is not None and not _changes(checked.snapshot, lookup):
        log.info("%-16s start_from = curated: %s", "raw_labels", _note(Tally(), lookup, source.parent_version))
        return None
    supplied = checked.snapshot is None or checked.snapshot.pred_probs is not None
    folds = None if supplied else config.model.n_folds  # K-fold needs n_folds examples per class
    meta = source.meta | {"config": config.model_dump(mode="json", exclude={"compute"})}
    rows, info = write_curated(store, "raw_labels", date, source, lookup, meta, start, folds)
    curation = info["curation"]
    seconds = info["seconds"]
    log.info("%-16s start_from = curated: %s (%.2f s)", "raw_labels", curation["note"], seconds)
    classes = list(source.meta["classes"])
    return StageResult(
        f"{rows} rows, {len(classes)} classes (curated: {curation['note']})",
        seconds,
        rows,
        metadata={
            "data_version": info["data_version"],
            "start_from": "curated",
            "parent_version": curation["parent_version"],
            "decisions_applied": curation["decisions_applied"],
            "decisions_hash": curation["decisions_hash"],
            "note": curation["note"],
        },
        json={"classes": classes, "class_counts": dict(zip(classes, info["label_counts"], strict=True))},
        data_version=info["data_version"],
    )


def check_curated(data_dir: Any, config: AuditConfig, checked: Prevalidated) -> str:
    """Before an audit from the curated version: what the decisions do to the snapshot, checked.

    For a snapshot held in memory the curated labels are counted (ids and codes only) and
    must still be auditable; a Parquet snapshot is checked while ``raw_labels`` streams it.

    Returns
    -------
    str
        A note for the user (what is applied, or that the curated version is the raw one).

    Raises
    ------
    ConfigError
        If the decisions leave fewer than 2 classes or (K-fold) a class smaller than ``model.n_folds``.
    """
    _refuse_annotations(config)
    snapshot = checked.snapshot
    classes = snapshot.classes if snapshot is not None else checked.parquet.classes  # type: ignore[union-attr]
    lookup = decision_lookup(data_dir, checked.date, list(classes))
    if snapshot is None:
        return f"{len(lookup.ids)} review decisions considered; they are applied while raw_labels is written"
    tally = Tally()
    codes = np.asarray(snapshot.labels, dtype=np.int64)
    if not lookup.empty:
        pos, applies = lookup.match(pa.Array.from_pandas(snapshot.ids.reset_index(drop=True)), codes)
        action = np.where(applies, lookup.action[np.maximum(pos, 0)], -1)
        for code in (KEEP, RELABEL, DROP):
            tally.counts[code] = int((action == code).sum())
        codes = np.where(action == RELABEL, lookup.new_code[np.maximum(pos, 0)], codes)[action != DROP]
    _count_labels(tally, codes)
    folds = None if snapshot.pred_probs is not None else config.model.n_folds
    _check_class_sizes(tally, list(snapshot.classes), folds)
    return _note(tally, lookup, snapshot.data_version)
