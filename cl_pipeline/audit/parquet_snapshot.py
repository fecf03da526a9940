"""A Parquet snapshot with supplied probability columns, validated and stored in record batches.

For such a snapshot nothing is loaded whole: validation reads the file batch by
batch (and asks DuckDB for duplicated ids), ``raw_labels`` is written batch by
batch, and the data version is a streaming hash. Every rule and message is the
one of :func:`cl_pipeline.audit.snapshot.validate_snapshot`; the class order,
the label codes and the flags that follow are the same.

Data version (``hash_scheme = "arrow-1"``): for each column in schema order, its
name and Arrow type, then separate digests of its validity, its fixed-width
values (nulls as zero) or, for strings, its lengths and bytes, fed batch by batch,
so the hash does not depend on how the file is split into batches or row groups.
"""

import hashlib
import json
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from cl_pipeline.audit.compute import read_ahead
from cl_pipeline.audit.snapshot import (
    RESERVED_COLUMNS,
    _check_columns,
    _class_order,
    _codes,
    _show,
    check_probability_rows,
)
from cl_pipeline.config import AuditConfig, ConfigError
from cl_pipeline.storage.parquet import open_parquet

__all__ = ["HASH_SCHEME", "ParquetSnapshot", "StreamHash", "label_codes", "stream_hash", "validate_parquet_snapshot"]

HASH_SCHEME = "arrow-1"
#: Rows per batch while validating and copying (about 8 MiB of ten float64 columns).
BATCH_ROWS = 1 << 17
#: DuckDB's memory for the duplicated-id aggregate (it spills to a temporary folder beyond).
DUPLICATE_CHECK_MEMORY = "256MB"


@dataclass(frozen=True)
class ParquetSnapshot:
    """A validated Parquet snapshot (its rows stay in the file).

    Attributes
    ----------
    path : Path
    classes : list of str
    id_column, label_column : str
    probability_columns : list of str
    true_label_column : str or None
    label_counts : list of int
        ``n_k`` in class order.
    data_version : str
    """

    path: Path
    classes: list[str]
    id_column: str
    label_column: str
    probability_columns: list[str]
    true_label_column: str | None
    label_counts: list[int]
    data_version: str

    @property
    def n(self) -> int:
        return int(sum(self.label_counts))


def label_strings(column: pa.Array, name: str) -> np.ndarray:
    """Canonical class names of a non-null label column: integral numbers as ``'3'``, else ``str(value)``."""
    if pa.types.is_integer(column.type):
        return np.asarray(pc.cast(column, pa.int64()).to_numpy(zero_copy_only=False).astype(str), dtype=object)
    if pa.types.is_floating(column.type):
        numbers = column.to_numpy(zero_copy_only=False).astype(np.float64)
        fractional = numbers != np.round(numbers)
        if fractional.any():
            raise ConfigError(f"label column {name!r} holds a non-integer number {_show(numbers[fractional][0])}")
        return numbers.astype(np.int64).astype(str).astype(object)
    return column.to_pandas().astype(str).to_numpy(dtype=object)


def _plain(column: pa.Array) -> pa.Array:
    return column.dictionary_decode() if pa.types.is_dictionary(column.type) else column


def label_codes(column: pa.Array, name: str, classes: list[str]) -> np.ndarray:
    """Codes ``0..K-1`` of a label column in ``classes`` order (-1 for a value not in ``classes`` or null).

    Only the distinct values are turned into class names; every row is then looked up
    by its value (no Python string per row).
    """
    column = _plain(column)
    distinct = pc.unique(column)
    codes = np.append(_codes(label_strings(pc.drop_null(distinct), name), classes), -1)  # [-1]: null
    position = pc.fill_null(pc.index_in(column, value_set=pc.drop_null(distinct)), -1)
    return codes[position.to_numpy(zero_copy_only=False)]


def label_counts(column: pa.Array, name: str) -> Counter:
    """Rows per class name of a non-null label column (names as :func:`label_strings` gives them)."""
    counted = pc.value_counts(_plain(column))
    names = label_strings(counted.field("values"), name)
    out: Counter = Counter()
    for label, count in zip(names.tolist(), counted.field("counts").to_numpy().tolist(), strict=True):
        out[label] += int(count)
    return out


def _batches(path: Path, columns: list[str] | None = None) -> Iterator[pa.RecordBatch]:
    yield from open_parquet(path).iter_batches(batch_size=BATCH_ROWS, columns=columns)


def _duplicated_ids(path: Path, column: str) -> tuple[int, list[Any]]:
    """(number of ids that occur more than once, up to 3 of them), by a DuckDB aggregate over the file."""
    import tempfile

    import duckdb

    quoted = '"' + column.replace('"', '""') + '"'  # a column of the file's schema, as a quoted identifier
    with tempfile.TemporaryDirectory(prefix="cl_ids_") as spill, duckdb.connect() as con:
        con.execute(f"SET temp_directory = '{spill.replace(chr(39), chr(39) * 2)}'")  # spills past the limit
        con.execute(f"SET memory_limit = '{DUPLICATE_CHECK_MEMORY}'")
        rows = con.execute(
            f"SELECT {quoted} AS id FROM read_parquet(?) GROUP BY 1 HAVING count(*) > 1 ORDER BY 1", [str(path)]
        ).fetchall()
    return len(rows), [r[0] for r in rows[:3]]


def _check_schema(path: Path, config: AuditConfig) -> tuple[pa.Schema, list[str]]:
    """The file's schema; the probability columns (expanded); every column rule that needs no row."""
    schema = pq.read_schema(path)
    names = [f.name for f in schema]
    reserved = [c for c in RESERVED_COLUMNS if c in names]
    if reserved:
        raise ConfigError(
            f"snapshot column(s) {reserved} use reserved name(s) {list(RESERVED_COLUMNS)}: "
            "the pipeline adds these columns itself; rename them in the source"
        )
    expanded = _check_columns(schema.empty_table().to_pandas(), config.columns)
    probs = expanded["probabilities"]
    non_numeric = [c for c in probs if not pa.types.is_floating(schema.field(c).type)]
    non_numeric = [c for c in non_numeric if not pa.types.is_integer(schema.field(c).type)]
    if non_numeric:
        raise ConfigError(f"probability column {non_numeric[0]!r} is not numeric")
    if len(probs) < 2:
        raise ConfigError(f"columns.probabilities names {len(probs)} column(s); at least 2 are needed")
    return schema, probs


def _scan(path: Path, config: AuditConfig, probs: list[str]) -> tuple[Counter, Counter, int, str]:
    """One pass over the rows: nulls, probability rows, label counts, true-label values and the data version."""
    cols = config.columns
    labels, truths, offset = Counter(), Counter(), 0
    version = StreamHash(pq.read_schema(path).names)
    for batch in read_ahead(_batches(path)):  # the next batches decode while this one is checked
        version.update(batch)
        ids = batch.column(cols.id)
        for column, what in ((cols.id, "id"), (cols.label, "label")):
            nulls = batch.column(column).null_count
            if nulls:
                row = offset + int(np.flatnonzero(batch.column(column).is_null().to_numpy(zero_copy_only=False))[0])
                raise ConfigError(f"{what} column {column!r} has null value(s) (first at row {row})")
        labels.update(label_counts(batch.column(cols.label), cols.label))
        block = np.column_stack([batch.column(c).to_numpy(zero_copy_only=False) for c in probs])
        block = block if block.dtype.kind == "f" else block.astype(np.float64)  # the rule sums in float64 anyway
        where = f"probability columns {probs[0]}..{probs[-1]}"
        check_probability_rows(block, where, offset, lambda i, ids=ids: ids[i].as_py())
        if cols.true_label:
            known = pc.drop_null(batch.column(cols.true_label))
            truths.update(label_counts(known, cols.true_label))
        offset += batch.num_rows
    return labels, truths, offset, version.hexdigest()


def validate_parquet_snapshot(path: Path, config: AuditConfig, date: str) -> ParquetSnapshot:
    """Validate a Parquet snapshot with supplied probability columns, batch by batch.

    Raises
    ------
    ConfigError
        The rules and messages of ``validate_snapshot``: reserved or missing columns, null or
        duplicated ids, null or unknown labels, fewer than 2 classes, invalid probability rows.
    """
    cols = config.columns
    _, probs = _check_schema(path, config)
    with ThreadPoolExecutor(1, thread_name_prefix="cl-duplicate-ids") as pool:  # DuckDB runs beside the scan
        duplicates = pool.submit(_duplicated_ids, path, cols.id)
        labels, truths, n, version = _scan(path, config, probs)  # its errors first, as before
        dup, examples = duplicates.result()
    if n == 0:
        raise ConfigError(f"the snapshot for {date} has no rows")
    if dup:
        raise ConfigError(
            f"id column {cols.id!r} has {dup} duplicated id(s), e.g. {', '.join(_show(v) for v in examples)}"
        )
    classes = cols.classes if cols.classes is not None else _class_order(np.asarray(list(labels), dtype=object))
    for counter, column in ((labels, cols.label), (truths, cols.true_label)):
        unknown = sorted(set(counter) - set(classes))
        if unknown:
            raise ConfigError(
                f"label column {column!r} has value(s) not in columns.classes {classes}: "
                f"{', '.join(repr(b) for b in unknown[:5])} ({sum(counter[u] for u in unknown)} rows)"
            )
    counts = [int(labels.get(c, 0)) for c in classes]
    if sum(1 for c in counts if c) < 2:
        raise ConfigError(f"the labels hold {sum(1 for c in counts if c)} class(es); at least 2 are needed")
    if len(probs) != len(classes):
        raise ConfigError(
            f"probability columns {probs[0]}..{probs[-1]}: {len(probs)} probability columns but "
            f"{len(classes)} classes; list every class in columns.classes, in column order"
        )
    return ParquetSnapshot(path, list(classes), cols.id, cols.label, probs, cols.true_label, counts, version)


def _fixed_bytes(column: pa.Array) -> bytes:
    """Values of a fixed-width column as bytes, nulls as zero (so the bytes under nulls do not count)."""
    if column.null_count:
        column = pc.if_else(column.is_valid(), column, pa.scalar(0).cast(column.type))
    return np.ascontiguousarray(column.to_numpy(zero_copy_only=False)).tobytes()


def _update(digests: list[Any], column: pa.Array) -> None:
    """Feed one batch of one column into its (validity, lengths, values) digests."""
    valid, lengths, values = digests
    valid.update(np.asarray(column.is_valid().to_numpy(zero_copy_only=False), dtype=np.uint8).tobytes())
    kind = column.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_binary(kind):
        empty = pa.scalar(b"" if pa.types.is_binary(kind) else "", kind)
        blob = column.fill_null(empty).cast(pa.large_binary())  # rebuilt: no bytes under nulls
        offsets = np.frombuffer(blob.buffers()[1], dtype=np.int64)[blob.offset : blob.offset + len(blob) + 1]
        lengths.update(np.diff(offsets).tobytes())
        if len(blob) and offsets[-1] > offsets[0]:
            values.update(memoryview(blob.buffers()[2])[offsets[0] : offsets[-1]])
    elif pa.types.is_primitive(kind) and not pa.types.is_boolean(kind):
        values.update(_fixed_bytes(column))
    else:  # booleans, lists, structs, dictionaries: one JSON line per row
        text = "".join(json.dumps(v, sort_keys=True, default=str) + "\n" for v in column.to_pylist())
        values.update(text.encode())


class StreamHash:
    """The ``arrow-1`` data version fed one record batch (all its columns) at a time.

    Each column keeps its own (validity, lengths, values) digests, so feeding whole
    batches gives the hash of :func:`stream_hash`, which reads column by column.
    """

    def __init__(self, columns: list[str]) -> None:
        self.columns = list(columns)
        self._parts = {name: [hashlib.sha256() for _ in range(3)] for name in self.columns}
        self._types: dict[str, pa.DataType | None] = dict.fromkeys(self.columns)

    def update(self, batch: pa.RecordBatch) -> None:
        """Feed the next rows (``batch`` holds every column of ``columns``)."""
        for name in self.columns:
            self.update_column(name, batch.column(name))

    def update_column(self, name: str, column: pa.Array) -> None:
        """Feed the next values of one column."""
        self._types[name] = column.type
        _update(self._parts[name], column)

    def hexdigest(self) -> str:
        """The data version (16 hex digits)."""
        digest = hashlib.sha256(HASH_SCHEME.encode())
        for name in self.columns:
            digest.update(repr(name).encode() + str(self._types[name]).encode())
            for part in self._parts[name]:
                digest.update(part.digest())
        return digest.hexdigest()[:16]


def stream_hash(read: Any, columns: list[str]) -> str:
    """The data version of a table read column by column: ``read(columns)`` yields record batches.

    See the module docstring; equal for any split of the rows into batches, and to
    :class:`StreamHash` fed whole batches.
    """
    state = StreamHash(columns)
    for name in columns:
        for batch in read([name]):
            state.update_column(name, batch.column(0))
    return state.hexdigest()


def stored_columns(batch: pa.RecordBatch, codes: np.ndarray) -> pa.RecordBatch:
    """A source batch as ``raw_labels`` stores it: its columns plus ``label_index``."""
    arrays = [*batch.columns, pa.array(codes, pa.int64())]
    return pa.RecordBatch.from_arrays(arrays, names=[*batch.schema.names, "label_index"])


def raw_label_batches(snapshot: ParquetSnapshot, verify: bool = False) -> Iterator[pa.RecordBatch]:
    """The snapshot's batches with their label codes, for ``raw_labels``.

    With ``verify``, the batches are hashed as they pass and, after the last one, a
    ConfigError is raised unless they hash to ``snapshot.data_version``: the file
    changed since it was validated (raised before the writer commits anything).
    """
    state = StreamHash(pq.read_schema(snapshot.path).names) if verify else None
    for batch in read_ahead(_batches(snapshot.path)):
        if state is not None:
            state.update(batch)
        codes = label_codes(batch.column(snapshot.label_column), snapshot.label_column, snapshot.classes)
        yield stored_columns(batch, codes)
    if state is not None and state.hexdigest() != snapshot.data_version:
        raise ConfigError(
            f"snapshot {snapshot.path} changed while it was audited (data version {snapshot.data_version} when "
            f"validated, {state.hexdigest()} when copied): audit it again"
        )


def raw_labels_schema(snapshot: ParquetSnapshot) -> pa.Schema:
    """The schema of ``raw_labels`` for this snapshot."""
    return pq.read_schema(snapshot.path).remove_metadata().append(pa.field("label_index", pa.int64()))


def stored_metadata(snapshot: ParquetSnapshot) -> dict[str, Any]:
    """What later stages (and the input check) need, as ``snapshot.stored_metadata`` gives it."""
    return {
        "classes": snapshot.classes,
        "id_column": snapshot.id_column,
        "features": {"numeric": [], "categorical": [], "text": []},
        "probability_columns": snapshot.probability_columns,
        "true_label_column": snapshot.true_label_column,
        "label_column": snapshot.label_column,
        "data_version": snapshot.data_version,
        "hash_scheme": HASH_SCHEME,
        "label_counts": snapshot.label_counts,
    }
