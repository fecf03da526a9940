"""A labelled snapshot validated against the audit configuration, and its data version.

Every problem found here is raised as :class:`~cl_pipeline.config.ConfigError`
with the column and offending value named, before anything is trained or written.
"""

import fnmatch
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from cl_pipeline import core
from cl_pipeline.config import AuditConfig, ColumnsConfig, ConfigError
from cl_pipeline.storage.sources import read_probabilities_npy

__all__ = [
    "BYO_COLUMN",
    "RESERVED_COLUMNS",
    "Snapshot",
    "content_hash",
    "encode_labels",
    "snapshot_from_stored",
    "stored_form",
    "stored_metadata",
    "validate_snapshot",
]

BYO_COLUMN = "_byo_pred_probs"
#: Column names the pipeline adds to every stored table; a snapshot may not use them.
RESERVED_COLUMNS = ("partition", "label_index", BYO_COLUMN)


@dataclass(frozen=True)
class Snapshot:
    """A validated snapshot: the rows plus everything derived from the configuration.

    Attributes
    ----------
    frame : DataFrame
        The snapshot's columns plus ``label_index`` (and ``_byo_pred_probs`` for a ``.npy`` source).
    classes : list of str
        Class names; ``labels`` and probability columns follow this order.
    labels : ndarray of int64
        Given labels encoded ``0..K-1``.
    id_column : str
        Name of the id column.
    features : dict
        Expanded ``numeric``, ``categorical`` and ``text`` column lists.
    pred_probs : ndarray or None
        Bring-your-own out-of-sample probabilities (n, K), if configured.
    true_labels : ndarray or None
        Known true labels encoded ``0..K-1``, if configured.
    data_version : str
        Content hash of the snapshot (and supplied probabilities).
    """

    frame: pd.DataFrame
    classes: list[str]
    labels: np.ndarray
    id_column: str
    features: dict[str, list[str]] = field(default_factory=dict)
    pred_probs: np.ndarray | None = None
    true_labels: np.ndarray | None = None
    data_version: str = ""

    @property
    def ids(self) -> pd.Series:
        """The id column."""
        return self.frame[self.id_column]


def _expand(patterns: list[str], columns: list[str], what: str, missing: list[str]) -> list[str]:
    out: list[str] = []
    for pattern in patterns:
        if any(ch in pattern for ch in "*?["):
            hits = [c for c in columns if fnmatch.fnmatchcase(c, pattern)]
            if not hits:
                missing.append(f"{pattern!r} ({what}: pattern matches no column)")
            out.extend(h for h in hits if h not in out)
        elif pattern not in columns:
            missing.append(f"{pattern!r} ({what})")
        elif pattern not in out:
            out.append(pattern)
    return out


def _check_columns(frame: pd.DataFrame, cols: ColumnsConfig) -> dict[str, list[str]]:
    names = [str(c) for c in frame.columns]
    missing: list[str] = []
    for attr in ("id", "label", "true_label"):
        value = getattr(cols, attr)
        if value is not None and value not in names:
            missing.append(f"{value!r} (columns.{attr})")
    expanded = {
        kind: _expand(getattr(cols, kind), names, f"columns.{kind}", missing)
        for kind in ("numeric", "categorical", "text", "probabilities")
    }
    if missing:
        shown = ", ".join(names[:20]) + (" ..." if len(names) > 20 else "")
        raise ConfigError(f"missing column(s) in snapshot: {', '.join(missing)}; available: {shown}")
    return expanded


def _show(value: object) -> str:
    """``repr`` of a value, numpy scalars shown as plain Python values."""
    return repr(value.item() if isinstance(value, np.generic) else value)


def _first(ids: pd.Series, mask: np.ndarray) -> str:
    return _show(ids[np.asarray(mask)].iloc[0])


def _check_ids(frame: pd.DataFrame, column: str) -> None:
    ids = frame[column]
    nulls = ids.isna().to_numpy()
    if nulls.any():
        row = int(np.flatnonzero(nulls)[0])
        raise ConfigError(f"id column {column!r} has {int(nulls.sum())} null value(s) (first at row {row})")
    dup = ids.duplicated(keep=False).to_numpy()
    if dup.any():
        examples = ", ".join(_show(v) for v in ids[dup].drop_duplicates().head(3))
        raise ConfigError(f"id column {column!r} has {int(ids[dup].nunique())} duplicated id(s), e.g. {examples}")


def _label_strings(values: pd.Series, column: str, ids: pd.Series) -> np.ndarray:
    """Canonical class names: integral numbers as ``'3'``, everything else ``str(value)``."""
    if pd.api.types.is_bool_dtype(values) or not pd.api.types.is_numeric_dtype(values):
        return values.astype(str).to_numpy(dtype=object)
    numbers = values.to_numpy(dtype=np.float64)
    fractional = numbers != np.round(numbers)
    if fractional.any():
        raise ConfigError(
            f"label column {column!r} holds a non-integer number {_show(numbers[fractional][0])} "
            f"(id {_first(ids, fractional)})"
        )
    return numbers.astype(np.int64).astype(str).astype(object)


def _codes(names: np.ndarray, classes: list[str]) -> np.ndarray:
    """Position of each name in ``classes`` (-1 if absent), vectorised (a hash table in pandas)."""
    return pd.Index(classes, dtype=object).get_indexer(names).astype(np.int64)


def encode_labels(values: pd.Series, classes: list[str]) -> np.ndarray:
    """Codes ``0..K-1`` of already validated label values in ``classes`` order (-1 if unknown)."""
    names = _label_strings(values, str(values.name), pd.Series(np.arange(len(values))))
    return _codes(names, classes)


def _class_order(names: np.ndarray) -> list[str]:
    distinct = sorted(pd.unique(names).tolist())
    try:
        return sorted(distinct, key=int)
    except ValueError:
        return distinct


def _encode_labels(
    frame: pd.DataFrame, cols: ColumnsConfig, column: str, classes: list[str] | None
) -> tuple[np.ndarray, list[str]]:
    values, ids = frame[column], frame[cols.id]
    nulls = values.isna().to_numpy()
    if nulls.any():
        raise ConfigError(f"label column {column!r} has {int(nulls.sum())} null value(s), e.g. id {_first(ids, nulls)}")
    names = _label_strings(values, column, ids)
    order = classes if classes is not None else _class_order(names)
    codes = _codes(names, order)
    unknown = codes < 0
    if unknown.any():
        bad = sorted(set(names[unknown].tolist()))[:5]
        raise ConfigError(
            f"label column {column!r} has value(s) not in columns.classes {order}: "
            f"{', '.join(repr(b) for b in bad)} ({int(unknown.sum())} rows, e.g. id {_first(ids, unknown)})"
        )
    return codes, order


def _check_class_sizes(labels: np.ndarray, classes: list[str], n_folds: int | None) -> None:
    counts = np.bincount(labels, minlength=len(classes))
    if np.count_nonzero(counts) < 2:
        raise ConfigError(f"the labels hold {np.count_nonzero(counts)} class(es); at least 2 are needed")
    if n_folds is None:
        return
    small = np.flatnonzero(counts < n_folds)
    if small.size:
        detail = ", ".join(f"{classes[k]!r} has {counts[k]}" for k in small[:5])
        raise ConfigError(
            f"classes too small for {n_folds}-fold cross-validation ({detail}; each needs at least "
            f"{n_folds}): lower model.n_folds, add examples or drop the class"
        )


def _check_numeric(frame: pd.DataFrame, columns: list[str], ids: pd.Series) -> None:
    for column in columns:
        values = frame[column]
        if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            continue
        coerced = pd.to_numeric(values, errors="coerce")
        bad = (coerced.isna() & values.notna()).to_numpy()
        if bad.any():
            raise ConfigError(
                f"numeric feature column {column!r} holds a non-numeric value "
                f"{_show(values[bad].iloc[0])} (id {_first(ids, bad)})"
            )


def check_probability_rows(probs: np.ndarray, where: str, first_row: int, id_of: Callable[[int], object]) -> None:
    """Raise ``ConfigError`` naming the first row of ``probs`` that is not a probability vector.

    ``first_row`` is the global row of ``probs[0]``; ``id_of(i)`` gives the id of local row ``i``.
    """
    bad_rows = core.invalid_probability_rows(probs)
    if bad_rows.any():
        row = int(np.flatnonzero(bad_rows)[0])
        raise ConfigError(
            f"{where}: row {first_row + row} (id {_show(id_of(row))}) is not a probability vector "
            f"(finite, >= 0, summing to 1 within {core.ROW_SUM_TOLERANCE}): {probs[row][:10].tolist()}"
        )


def _check_probabilities(probs: np.ndarray, k: int, where: str, ids: pd.Series) -> np.ndarray:
    if probs.ndim != 2 or probs.shape[0] != len(ids):
        raise ConfigError(f"{where}: expected shape ({len(ids)}, {k}), got {probs.shape}")
    if probs.shape[1] != k:
        raise ConfigError(
            f"{where}: {probs.shape[1]} probability columns but {k} classes; "
            "list every class in columns.classes, in column order"
        )
    check_probability_rows(probs, where, 0, lambda row: ids.iloc[row])
    return probs


def _byo_probabilities(frame: pd.DataFrame, cols: ColumnsConfig, prob_cols: list[str], k: int, date: str) -> np.ndarray:
    ids = frame[cols.id]
    if prob_cols:
        non_numeric = [c for c in prob_cols if not pd.api.types.is_numeric_dtype(frame[c])]
        if non_numeric:
            raise ConfigError(f"probability column {non_numeric[0]!r} is not numeric")
        probs = frame[prob_cols].to_numpy(dtype=np.float64)
        return _check_probabilities(probs, k, f"probability columns {prob_cols[0]}..{prob_cols[-1]}", ids)
    probs, path = read_probabilities_npy(str(cols.probabilities_npy), date)
    return _check_probabilities(probs, k, f"probabilities file {path}", ids)


def _cell_text(value: object) -> str:
    """A stable text form of a cell that cannot be hashed as is (list, array, dict)."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    return json.dumps(value, sort_keys=True, default=str)


def _hashable(column: pd.Series) -> pd.Series:
    """``column`` in a form ``hash_pandas_object`` accepts: object cells that are
    lists, arrays or dicts (Parquet lists and structs) as JSON text.
    """
    if column.dtype == object and column.map(lambda v: isinstance(v, (list, tuple, dict, np.ndarray))).any():
        return column.map(lambda v: None if v is None else _cell_text(v))
    return column


def stored_form(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` as it reads back from Parquet (what ``raw_labels`` stores).

    Hashing this form makes the data version reproducible from the stored file:
    Arrow may reshape some values on the way (dicts with different keys become
    one struct, DuckDB's arbitrary bytes under nulls disappear).
    """
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), buffer)
    buffer.seek(0)
    return pq.read_table(buffer).to_pandas()


def content_hash(frame: pd.DataFrame, extra: np.ndarray | None = None) -> str:
    """Deterministic content hash of a table's column names and values (and an array).

    Values are hashed with ``pandas.util.hash_pandas_object`` column by column, so
    the hash depends on what the cells hold, not on their memory layout, and
    list/struct cells are hashed through their JSON text. The data version is
    this hash of :func:`stored_form`, so the stored Parquet copy hashes to it again.
    """
    digest = hashlib.sha256()
    for column in frame.columns:
        digest.update(repr(str(column)).encode())
        values = pd.util.hash_pandas_object(_hashable(frame[column]), index=False)
        digest.update(values.to_numpy(dtype=np.uint64).tobytes())
    if extra is not None:
        digest.update(np.ascontiguousarray(extra).tobytes())
    return digest.hexdigest()[:16]


def validate_snapshot(frame: pd.DataFrame, config: AuditConfig, date: str) -> Snapshot:
    """Check a raw snapshot against the configuration and encode its labels.

    Parameters
    ----------
    frame : DataFrame
        The snapshot as read from the source.
    config : AuditConfig
    date : str
        The partition date (used in ``.npy`` paths and messages).

    Returns
    -------
    Snapshot

    Raises
    ------
    ConfigError
        Empty snapshot, reserved column names, missing columns, null or duplicate ids, null or unknown labels, fewer
        than 2 classes, classes too small for K folds, non-numeric numeric features, invalid
        supplied probabilities. The message names the column and an offending value.
    """
    cols = config.columns
    if cols is None:
        raise ConfigError("columns section missing")
    if frame.empty:
        raise ConfigError(f"the snapshot for {date} has no rows")
    frame = frame.rename(columns=str).reset_index(drop=True)
    reserved = [c for c in RESERVED_COLUMNS if c in frame.columns]
    if reserved:
        raise ConfigError(
            f"snapshot column(s) {reserved} use reserved name(s) {list(RESERVED_COLUMNS)}: "
            "the pipeline adds these columns itself; rename them in the source"
        )
    expanded = _check_columns(frame, cols)
    _check_ids(frame, cols.id)
    labels, classes = _encode_labels(frame, cols, cols.label, cols.classes)
    _check_class_sizes(labels, classes, None if cols.byo_probabilities else config.model.n_folds)
    features = {k: expanded[k] for k in ("numeric", "categorical", "text")}
    _check_numeric(frame, features["numeric"], frame[cols.id])
    probs = None
    if cols.byo_probabilities:
        probs = _byo_probabilities(frame, cols, expanded["probabilities"], len(classes), date)
    true_labels = None
    if cols.true_label is not None:
        known = frame[cols.true_label].notna().to_numpy()
        true_labels = np.full(len(frame), -1, dtype=np.int64)
        true_labels[known], _ = _encode_labels(frame[known], cols, cols.true_label, classes)
    try:
        stored = stored_form(frame)
    except Exception as exc:  # pyarrow's conversion errors name the column
        raise ConfigError(f"the snapshot cannot be stored as Parquet (a column of mixed types?): {exc}") from None
    version = content_hash(stored, probs if cols.probabilities_npy else None)
    out = frame.copy()
    out["label_index"] = labels
    if cols.probabilities_npy and probs is not None:
        out[BYO_COLUMN] = list(probs)
    return Snapshot(out, classes, labels, cols.id, features, probs, true_labels, version)


def stored_metadata(snapshot: Snapshot, config: AuditConfig) -> dict[str, object]:
    """What :func:`snapshot_from_stored` needs to rebuild the snapshot from its Parquet copy."""
    cols = config.columns
    prob_columns: list[str] = []
    if cols is not None and cols.probabilities:
        names = [str(c) for c in snapshot.frame.columns]
        prob_columns = _expand(cols.probabilities, names, "columns.probabilities", [])
    return {
        "classes": snapshot.classes,
        "id_column": snapshot.id_column,
        "features": snapshot.features,
        "probability_columns": prob_columns,
        "true_label_column": None if cols is None else cols.true_label,
        "label_column": None if cols is None else cols.label,
        "data_version": snapshot.data_version,
    }


def snapshot_from_stored(frame: pd.DataFrame, meta: dict) -> Snapshot:
    """Rebuild a :class:`Snapshot` from the stored ``raw_labels`` partition and its metadata."""
    frame = frame.drop(columns=["partition"], errors="ignore")
    classes = list(meta["classes"])
    labels = frame["label_index"].to_numpy(dtype=np.int64)
    probs = None
    if meta.get("probability_columns"):
        probs = frame[meta["probability_columns"]].to_numpy(dtype=np.float64)
    elif BYO_COLUMN in frame.columns:
        probs = np.stack(frame[BYO_COLUMN].to_numpy()).astype(np.float64)
    true_labels = None
    if meta.get("true_label_column"):
        values = frame[meta["true_label_column"]]
        known = values.notna().to_numpy()
        true_labels = np.full(len(frame), -1, dtype=np.int64)
        names = _label_strings(values[known], meta["true_label_column"], frame[meta["id_column"]][known])
        true_labels[known] = _codes(names, classes)
    return Snapshot(
        frame, classes, labels, meta["id_column"], dict(meta["features"]), probs, true_labels, meta["data_version"]
    )
