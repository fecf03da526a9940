"""Readers of the arrays ``cl-pipeline find`` takes: probabilities and labels from .npy, .csv or .parquet.

CSV header rule (``csv_header="auto"``): the first row is a header if any cell
is not a number, or if it is pandas' names of unnamed columns: exactly
``0,1,...,K-1`` in a probabilities file; exactly ``0`` in a one-column labels
file that has one row more than there are probabilities (the header of
``pd.Series(labels).to_csv()``). ``"yes"``/``"no"`` apply to every CSV input.

Size rule: the confident joint and the noise matrices are ``K x K`` (``K*K*8`` bytes
each, a few at once). ``find`` refuses ``pred_probs`` whose ``K x K`` matrix would be
larger than both ``pred_probs`` itself (as float64, ``n*K*8`` bytes) and
``MAX_EXTRA_MATRIX_BYTES`` (64 MiB): that is ``K > n`` with ``K > 2896``. So its memory
stays proportional to its input (``K = 40,000`` with ``n = 4`` would need 11.9 GiB
per matrix for 1.2 MiB of probabilities).
"""

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from cl_pipeline.config import ConfigError

__all__ = [
    "CSV_HEADER_HELP",
    "CSV_HEADER_MODES",
    "MAX_EXTRA_MATRIX_BYTES",
    "OUTPUT_SUFFIXES",
    "FindInputs",
    "check_output_file",
    "read_array",
    "read_find_inputs",
]

CSV_HEADER_MODES = ("auto", "yes", "no")
#: Help of ``--csv-header`` (the rule of the module docstring).
CSV_HEADER_HELP = """\
whether the first row of a CSV input is a header (default auto; yes/no apply to every CSV input).
auto: a first row is a header if any cell is not a number, or if it is pandas' names of unnamed
columns: exactly 0,1,...,K-1 (integers) in pred_probs; exactly 0 in a one-column labels file that
has one row more than pred_probs has examples. Use no for a first data row like 0,1 with K=2"""
#: Column names taken as the labels column of a several-column labels file.
LABEL_COLUMN_NAMES = ("label", "labels", "given_label")
#: A K x K matrix may be larger than pred_probs up to this size (the size rule; K <= 2896).
MAX_EXTRA_MATRIX_BYTES = 64 * 2**20
#: File types ``find --out`` writes.
OUTPUT_SUFFIXES = (".csv", ".parquet")


@dataclass(frozen=True)
class FindInputs:
    """What ``find`` reads.

    Attributes
    ----------
    pred_probs : ndarray, shape (n, K)
    labels : ndarray, shape (n,)
    notes : list of str
        How an ambiguous input was read (to tell the user).
    """

    pred_probs: np.ndarray
    labels: np.ndarray
    notes: list[str] = field(default_factory=list)


def read_array(path: str | Path, what: str) -> np.ndarray | pd.DataFrame:
    """Read ``.npy`` (array), ``.csv`` or ``.parquet`` (DataFrame) input named ``what`` in errors."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{what}: file not found: {path}")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            return np.load(path, allow_pickle=False)
        if suffix == ".csv":
            return pd.read_csv(path)
        if suffix == ".parquet":
            return pd.read_parquet(path)
    except (OSError, ValueError, EOFError) as exc:  # np.load: EOFError for an empty file
        raise ConfigError(f"{what}: cannot read {path}: {exc or type(exc).__name__}") from exc
    raise ConfigError(f"{what}: unsupported file type {suffix!r} ({path}); use .npy, .csv or .parquet")


def _is_list(value: object) -> bool:
    """Whether a cell holds a sequence of values (a Parquet list cell), not a scalar or text."""
    return isinstance(value, list | tuple | np.ndarray)


def _list_column(column: pd.Series) -> np.ndarray:
    """A list column (one probability vector per row) as an ``(n, K)`` array; ConfigError if ragged."""
    lengths = np.array([len(v) if _is_list(v) else -1 for v in column])
    if (lengths < 0).any():
        row = int(np.argmax(lengths < 0))
        raise ConfigError(f"pred_probs: list column {column.name!r} has no list in row {row}: {column.iloc[row]!r}")
    if (lengths != lengths[0]).any():
        row = int(np.argmax(lengths != lengths[0]))
        raise ConfigError(
            f"pred_probs: list column {column.name!r} is ragged: row {row} has {lengths[row]} values, "
            f"row 0 has {lengths[0]}"
        )
    return np.stack(column.to_numpy())


def _first_non_number(column: pd.Series) -> tuple[int, object]:
    """(row, value) of the first cell of ``column`` that is not a number."""
    bad = pd.to_numeric(column, errors="coerce").isna() & column.notna()
    row = int(np.argmax(bad.to_numpy())) if bad.any() else 0
    return row, column.iloc[row]


def _as_probabilities(data: np.ndarray | pd.DataFrame, path: str) -> np.ndarray:
    """The ``(n, K)`` probabilities of an array or of a table's K numeric columns or one list column."""
    if isinstance(data, np.ndarray):
        return data
    if data.empty:
        raise ConfigError(f"pred_probs: {path} has no rows")
    if data.shape[1] == 1 and data.iloc[:, 0].map(_is_list).any():
        return _list_column(data.iloc[:, 0])
    non_numeric = [c for c in data.columns if not pd.api.types.is_numeric_dtype(data[c])]
    if non_numeric:
        row, value = _first_non_number(data[non_numeric[0]])
        hint = " (a list column can be read from Parquet only)" if str(value).lstrip().startswith("[") else ""
        raise ConfigError(f"pred_probs: column {non_numeric[0]!r} is not numeric, e.g. row {row}: {value!r}{hint}")
    return data.to_numpy()


def _check_class_count(probs: np.ndarray) -> None:
    """The size rule of the module docstring, checked before any ``K x K`` matrix exists."""
    if probs.ndim != 2:
        return  # reported by the core
    n, k = probs.shape
    if k * k * 8 > max(n * k * 8, MAX_EXTRA_MATRIX_BYTES):
        raise ConfigError(
            f"pred_probs has {k} classes but {n} examples (shape ({n}, {k})): a K x K count matrix would "
            f"take {_size(k * k * 8)} (K*K*8 bytes), more than pred_probs itself and more than "
            f"{_size(MAX_EXTRA_MATRIX_BYTES)}; find needs at least as many examples as classes when K > 2896"
        )


def _size(nbytes: int) -> str:
    """``nbytes`` in the largest binary unit that keeps the number >= 1 (``11.9 GiB``)."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if nbytes >= scale:
            return f"{nbytes / scale:.1f} {unit}"
    return f"{nbytes} bytes"


def check_output_file(out: str | None) -> Path | None:
    """``find --out``: a ``.csv``/``.parquet`` file that can be written, checked before any work.

    Folders of the path that do not exist yet are created when the file is written, so
    writability is probed (a temporary file, removed at once) in the nearest existing one.

    Parameters
    ----------
    out : str or None
        The ``--out`` argument; None (no ``--out``) is returned as is.

    Returns
    -------
    Path or None

    Raises
    ------
    ConfigError
        Naming ``--out`` and its value: another suffix, an existing folder, a path under
        a file, or a folder that cannot be written.
    """
    if out is None:
        return None
    path = Path(out)
    if path.suffix.lower() not in OUTPUT_SUFFIXES:
        raise ConfigError(f"--out {out}: use a .csv or .parquet file name")
    if path.is_dir():
        raise ConfigError(f"--out {out}: {path} is a folder")
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise ConfigError(f"--out {out}: {folder} is not a folder")
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise ConfigError(f"--out {out}: cannot write in {folder}: {exc.strerror or exc}") from None
    return path


def _as_labels(data: np.ndarray | pd.DataFrame, path: str) -> np.ndarray:
    if isinstance(data, pd.DataFrame):
        if data.empty:
            raise ConfigError(f"labels: {path} has no rows")
        named = [c for c in data.columns if str(c).lower() in LABEL_COLUMN_NAMES]
        if data.shape[1] != 1 and not named:
            raise ConfigError(f"labels: expected one column or a column named 'label', got {list(data.columns)}")
        data = data[named[0] if named else data.columns[0]].to_numpy()
    if data.dtype.kind == "f" and np.all(np.isfinite(data)) and np.all(data == np.round(data)):
        data = data.astype(np.int64)
    return data


def _is_number(text: str) -> bool:
    """Whether ``text`` parses as a float (``"1"``, ``"0.25"``, ``"1e-3"``, ``"nan"``)."""
    try:
        float(text)
    except ValueError:
        return False
    return True


def _csv_first_row(path: str, what: str) -> list[str]:
    """The raw text cells of the first row of the CSV file ``path`` (``what`` names it in errors)."""
    try:
        first = pd.read_csv(path, header=None, nrows=1, dtype=str, keep_default_na=False)
    except (OSError, ValueError) as exc:  # pandas' EmptyDataError and ParserError are ValueErrors
        raise ConfigError(f"{what}: cannot read {path}: {exc}") from exc
    return [cell.strip() for cell in first.iloc[0]]


def _read_csv(path: str, what: str, header: bool) -> pd.DataFrame:
    """The whole CSV file, its first row taken as the header or as data."""
    try:
        return pd.read_csv(path, header=0 if header else None)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{what}: cannot read {path}: {exc}") from exc


def _read_probs_csv(path: str, mode: str) -> pd.DataFrame:
    """A probability CSV, its header decided by ``mode``."""
    if mode != "auto":
        return _read_csv(path, "pred_probs", mode == "yes")
    cells = _csv_first_row(path, "pred_probs")
    pandas_names = cells == [str(i) for i in range(len(cells))]
    return _read_csv(path, "pred_probs", pandas_names or not all(map(_is_number, cells)))


def _read_labels_csv(path: str, mode: str, n_examples: int, notes: list[str]) -> pd.DataFrame:
    """A labels CSV, its header decided by ``mode`` and (auto, first row ``0``) the row count."""
    if mode != "auto":
        return _read_csv(path, "labels", mode == "yes")
    cells = _csv_first_row(path, "labels")
    if not all(map(_is_number, cells)):
        return _read_csv(path, "labels", header=True)
    data = _read_csv(path, "labels", header=False)
    if cells == ["0"] and len(data) == n_examples + 1:  # the header of pd.Series(labels).to_csv
        notes.append(
            f"{path}: first row '0' read as a header (the file has one row more than "
            "pred_probs); pass --csv-header no if it is a label"
        )
        data = data.iloc[1:].reset_index(drop=True)
    return data


def read_find_inputs(pred_probs: str, labels: str, csv_header: str = "auto") -> FindInputs:
    """The probabilities and labels given to ``cl-pipeline find``.

    Parameters
    ----------
    pred_probs, labels : str
        ``.npy``, ``.csv`` or ``.parquet`` files: ``(n, K)`` probabilities and ``n`` labels.
    csv_header : {"auto", "yes", "no"}
        Whether the first row of a CSV input is a header (see the module docstring).

    Returns
    -------
    FindInputs

    Raises
    ------
    ConfigError
        If a file is missing, unreadable or has no rows, a list column is ragged, ``pred_probs``
        has more classes than examples, or the two do not have the same number of examples.
    """
    if csv_header not in CSV_HEADER_MODES:
        raise ConfigError(f"csv_header {csv_header!r} is not one of {CSV_HEADER_MODES}")
    for path, what in ((pred_probs, "pred_probs"), (labels, "labels")):
        if not Path(path).is_file():
            raise ConfigError(f"{what}: file not found: {path}")
    is_csv = [Path(p).suffix.lower() == ".csv" for p in (pred_probs, labels)]
    raw_probs = _read_probs_csv(pred_probs, csv_header) if is_csv[0] else read_array(pred_probs, "pred_probs")
    probs = _as_probabilities(raw_probs, pred_probs)
    _check_class_count(probs)
    n = probs.shape[0] if probs.ndim else 0  # other shape errors are reported by the core
    notes: list[str] = []
    raw_labels = _read_labels_csv(labels, csv_header, n, notes) if is_csv[1] else read_array(labels, "labels")
    given = _as_labels(raw_labels, labels)
    if probs.ndim == 2 and given.ndim == 1 and len(given) != n:
        hint = " (is the first row of a CSV a header? see --csv-header)" if any(is_csv) else ""
        raise ConfigError(f"labels: {len(given)} labels but pred_probs has {n} rows{hint}")
    return FindInputs(probs, given, notes)
