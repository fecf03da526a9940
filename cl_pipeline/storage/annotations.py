"""Readers of labels beyond one per example: several annotators per example, and multi-label sets.

Multi-annotator labels come in two layouts:

- wide: an ``(n, m)`` table, one column per annotator, a missing annotation NaN or
  an empty cell (``.npy``: a 2-D float array; ``.csv``/``.parquet``: every column is
  an annotator, named by its header);
- long: a table with the columns ``id, annotator, label`` (one row per annotation;
  other columns are ignored). :func:`pivot_annotations` turns it into the wide layout
  over given example ids, in sorted annotator order.

Multi-label labels: an ``(n, K)`` 0/1 ``.npy`` matrix, or one column (or the column
named ``label``/``labels``/``given_label``) of a CSV/Parquet table holding per row a
list of class ids (Parquet list column) or a delimited string (``"1,4"``; an empty
cell is the empty set).

Errors are :class:`~cl_pipeline.config.ConfigError` naming the argument, the row and
the value; value checks the core makes (class ids in range, rows with no annotation,
annotator columns with no label) are left to the core, whose messages name them.
"""

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from cl_pipeline.config import ConfigError
from cl_pipeline.storage.inputs import LABEL_COLUMN_NAMES, read_array

__all__ = [
    "LONG_COLUMNS",
    "AnnotatorLabels",
    "annotation_matrix",
    "is_long_table",
    "looks_like_long_table",
    "parse_label_set",
    "pivot_annotations",
    "read_annotator_labels",
    "read_multilabels",
]

#: Columns of the long layout of multi-annotator labels.
LONG_COLUMNS = ("id", "annotator", "label")


@dataclass(frozen=True)
class AnnotatorLabels:
    """Multi-annotator labels in the wide layout.

    Attributes
    ----------
    labels : DataFrame, shape (n, m)
        One column per annotator (named), NaN where an annotator did not label a row.
    notes : list of str
        How the input was read (to tell the user).
    """

    labels: pd.DataFrame
    notes: list[str] = field(default_factory=list)


def is_long_table(columns: list[str] | pd.Index) -> bool:
    """Whether a table's columns hold the long layout (``id``, ``annotator``, ``label``, any case)."""
    names = {str(c).lower() for c in columns}
    return set(LONG_COLUMNS) <= names


def _column(frame: pd.DataFrame, name: str) -> pd.Series:
    return frame[next(c for c in frame.columns if str(c).lower() == name)]


def pivot_annotations(frame: pd.DataFrame, ids: pd.Index, what: str = "annotations") -> pd.DataFrame:
    """The long layout ``id, annotator, label`` as a wide ``(len(ids), m)`` table.

    Parameters
    ----------
    frame : DataFrame
        Columns ``id``, ``annotator``, ``label`` (any case; others ignored).
    ids : Index, length n
        The examples, in row order; every ``id`` of ``frame`` must be one of them.
    what : str
        Names the input in errors.

    Returns
    -------
    DataFrame, shape (n, m)
        Index ``ids``, one column per annotator (sorted by name), NaN where missing.

    Raises
    ------
    ConfigError
        Missing columns, an empty table, an empty id/annotator/label cell, an id not
        among ``ids``, or one annotator labeling one example twice.
    """
    if not is_long_table(frame.columns):
        raise ConfigError(f"{what}: expected the columns {list(LONG_COLUMNS)}, got {list(frame.columns)}")
    if frame.empty:
        raise ConfigError(f"{what}: the table has no rows")
    long = pd.DataFrame({name: _column(frame, name) for name in LONG_COLUMNS}).reset_index(drop=True)
    for name in LONG_COLUMNS:
        empty = long[name].isna() | (long[name].astype(str).str.strip() == "")
        if empty.any():
            row = int(np.argmax(empty.to_numpy()))
            raise ConfigError(f"{what}: column {name!r} is empty in row {row}")
    rows = _rows_of(long["id"], ids, what)
    long["annotator"] = long["annotator"].astype(str)
    twice = long.assign(row=rows).duplicated(["row", "annotator"])
    if twice.any():
        r = int(np.argmax(twice.to_numpy()))
        raise ConfigError(
            f"{what}: annotator {long['annotator'][r]!r} labels id {_plain(long['id'][r])!r} twice (row {r} repeats it)"
        )
    names = sorted(long["annotator"].unique())
    cols = np.searchsorted(np.array(names, dtype=object), long["annotator"].to_numpy(dtype=object))
    wide = np.full((len(ids), len(names)), np.nan, dtype=object)
    wide[rows, cols] = long["label"].to_numpy(dtype=object)
    return pd.DataFrame(wide, index=ids, columns=names)


def _rows_of(values: pd.Series, ids: pd.Index, what: str) -> np.ndarray:
    """Row of each id in ``ids`` (ids compared as text when their types differ)."""
    rows = ids.get_indexer(values)
    if (rows < 0).any() and ids.dtype != values.dtype:
        rows = pd.Index(ids.astype(str)).get_indexer(values.astype(str))
    if (rows < 0).any():
        r = int(np.argmax(rows < 0))
        raise ConfigError(
            f"{what}: id {_plain(values.iloc[r])!r} (row {r}) is not an example id "
            f"({len(ids)} examples, e.g. {[_plain(i) for i in ids[:3]]})"
        )
    return rows


def _plain(value: object) -> object:
    """A numpy scalar as the Python value (readable in messages)."""
    return value.item() if isinstance(value, np.generic) else value


def _wide_csv(path: str, csv_header: str, n: int) -> pd.DataFrame:
    """A wide CSV; auto header: a non-empty cell is not a number, or pandas' ``0..m-1`` names over n + 1 rows."""
    try:
        first = pd.read_csv(path, header=None, nrows=1, dtype=str, keep_default_na=False)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"labels: cannot read {path}: {exc}") from exc
    cells = [c.strip() for c in first.iloc[0]]
    header = csv_header == "yes" or (csv_header == "auto" and not all(_is_number_or_empty(c) for c in cells))
    try:
        frame = pd.read_csv(path, header=0 if header else None)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"labels: cannot read {path}: {exc}") from exc
    if csv_header == "auto" and not header and cells == [str(j) for j in range(len(cells))] and len(frame) == n + 1:
        frame = frame.iloc[1:].reset_index(drop=True)  # the header of pd.DataFrame(matrix).to_csv(index=False)
        frame.columns = cells
    return frame


def _is_number_or_empty(text: str) -> bool:
    if text == "":
        return True
    try:
        float(text)
    except ValueError:
        return False
    return True


def read_annotator_labels(path: str, n: int, csv_header: str = "auto") -> AnnotatorLabels:
    """Multi-annotator labels of ``cl-pipeline find --annotators`` (ids = row numbers ``0..n-1``).

    Parameters
    ----------
    path : str
        ``.npy`` (2-D), ``.csv`` or ``.parquet`` (wide or long layout, module docstring).
    n : int
        Number of examples (rows of ``pred_probs``).
    csv_header : {"auto", "yes", "no"}
        Whether the first row of a wide CSV is a header (auto: if a non-empty cell is not a number).

    Returns
    -------
    AnnotatorLabels

    Raises
    ------
    ConfigError
        Unreadable file, wrong shape, a row count other than ``n``, an id outside ``0..n-1``.
    """
    suffix = Path(path).suffix.lower()
    data = _wide_csv(path, csv_header, n) if suffix == ".csv" and Path(path).is_file() else read_array(path, "labels")
    notes: list[str] = []
    if isinstance(data, np.ndarray):
        if data.ndim != 2:
            raise ConfigError(f"labels: --annotators needs a 2-D (n, m) array, got shape {data.shape} from {path}")
        frame = pd.DataFrame(data, columns=[str(j) for j in range(data.shape[1])])
    elif is_long_table(data.columns):
        frame = pivot_annotations(data, pd.RangeIndex(n), "labels").reset_index(drop=True)
        notes.append(f"{path}: long table id, annotator, label read as {frame.shape[1]} annotators; ids are rows")
    else:
        frame = data
        frame.columns = [str(c) for c in frame.columns]
    if len(frame) != n:
        raise ConfigError(f"labels: {len(frame)} rows of annotations but pred_probs has {n} rows ({path})")
    return AnnotatorLabels(frame, notes)


def annotation_matrix(frame: pd.DataFrame, what: str = "labels") -> np.ndarray:
    """The wide table as float64 class ids with NaN (the core's ``labels_multiannotator``).

    Raises
    ------
    ConfigError
        A cell that is neither empty nor a number, naming its row and annotator.
    """
    numeric = frame.apply(pd.to_numeric, errors="coerce")
    given = frame.notna() & ~frame.astype(str).apply(lambda c: c.str.strip() == "")
    bad = given.to_numpy() & numeric.isna().to_numpy()
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise ConfigError(
            f"{what}: annotator {frame.columns[j]!r} row {i} has {frame.iat[i, j]!r}, not a class id "
            "(integers 0..K-1, empty or NaN for no annotation)"
        )
    return numeric.to_numpy(dtype=np.float64)


def parse_label_set(value: object, delimiter: str, row: int, what: str = "labels") -> list[int]:
    """One multi-label cell as a list of integer class ids (empty/NaN = no class).

    Raises
    ------
    ConfigError
        A token that is not an integer, naming the row and the value.
    """
    if isinstance(value, list | tuple | np.ndarray):
        tokens = list(value)
    elif value is None or (isinstance(value, float) and np.isnan(value)):
        return []
    elif isinstance(value, str):
        tokens = [t.strip() for t in value.strip().strip("[]").split(delimiter)] if delimiter else [value]
        tokens = [t for t in tokens if t != ""]
    else:
        tokens = [value]
    out = []
    for token in tokens:
        try:
            number = float(token)
        except (TypeError, ValueError):
            number = np.nan
        if not np.isfinite(number) or number != int(number):
            raise ConfigError(
                f"{what}: row {row} has {value!r}: {token!r} is not an integer class id "
                f"(label delimiter {delimiter!r}, see --label-delimiter)"
            )
        out.append(int(number))
    return out


def read_multilabels(path: str, n: int, delimiter: str = ",", csv_header: str = "auto") -> list[list[int]] | np.ndarray:
    """Multi-label labels of ``cl-pipeline find --multilabel``.

    Parameters
    ----------
    path : str
        ``.npy`` (an (n, K) 0/1 matrix) or ``.csv``/``.parquet`` (lists or delimited strings).
    n : int
        Number of examples (rows of ``pred_probs``).
    delimiter : str
        Separator of class ids inside a text cell.
    csv_header : {"auto", "yes", "no"}
        Whether the first row of a CSV is a header (auto: if it is not a set of integers).

    Returns
    -------
    list of lists of int, or ndarray, shape (n, K)
        The core validates the values (0/1, class ids below K).
    """
    if not delimiter:
        raise ConfigError("--label-delimiter must not be empty")
    if Path(path).suffix.lower() == ".csv" and Path(path).is_file():
        data = _multilabel_csv(path, delimiter, csv_header)
    else:
        data = read_array(path, "labels")
    if isinstance(data, np.ndarray):
        if data.ndim != 2:
            raise ConfigError(f"labels: --multilabel .npy must be an (n, K) 0/1 matrix, got shape {data.shape}")
        given: list[list[int]] | np.ndarray = data
    else:
        column = _label_column(data, path)
        given = [parse_label_set(value, delimiter, row) for row, value in enumerate(column)]
    if len(given) != n:
        raise ConfigError(f"labels: {len(given)} rows of labels but pred_probs has {n} rows ({path})")
    return given


def _label_column(data: pd.DataFrame, path: str) -> pd.Series:
    if data.empty:
        raise ConfigError(f"labels: {path} has no rows")
    named = [c for c in data.columns if str(c).lower() in LABEL_COLUMN_NAMES]
    if data.shape[1] != 1 and not named:
        raise ConfigError(f"labels: expected one column or a column named 'label', got {list(data.columns)}")
    return data[named[0] if named else data.columns[0]]


def _multilabel_csv(path: str, delimiter: str, csv_header: str) -> pd.DataFrame:
    try:
        raw = pd.read_csv(path, header=None, dtype=str, keep_default_na=False)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"labels: cannot read {path}: {exc}") from exc
    header = csv_header == "yes"
    if csv_header == "auto" and len(raw):
        try:
            parse_label_set(raw.iat[0, 0], delimiter, 0)
        except ConfigError:
            header = True
    if header:
        raw = raw.iloc[1:].set_axis([str(c) for c in raw.iloc[0]], axis=1).reset_index(drop=True)
    return raw


def looks_like_long_table(path: str) -> bool:
    """Whether a ``.csv``/``.parquet`` labels file has the columns ``id, annotator, label`` (header only read)."""
    suffix = Path(path).suffix.lower()
    if not Path(path).is_file() or suffix not in (".csv", ".parquet"):
        return False
    try:
        if suffix == ".csv":
            columns = list(pd.read_csv(path, nrows=0).columns)
        else:
            import pyarrow.parquet as pq

            columns = pq.read_schema(path).names
    except (OSError, ValueError):
        return False  # the reader reports it
    return is_long_table(columns)
