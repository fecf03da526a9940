"""Readers of the arrays ``cl-pipeline find`` takes: probabilities and labels from .npy, .csv or .parquet.

CSV header rule (``csv_header="auto"``): the first row is a header if any cell
is not a number, or if it is pandas' names of unnamed columns: exactly
``0,1,...,K-1`` in a probabilities file; exactly ``0`` in a one-column labels
file that has one row more than there are probabilities (the header of
``pd.Series(labels).to_csv()``). ``"yes"``/``"no"`` apply to every CSV input.
"""

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from cl_pipeline.config import ConfigError

__all__ = ["CSV_HEADER_HELP", "CSV_HEADER_MODES", "FindInputs", "read_array", "read_find_inputs"]

CSV_HEADER_MODES = ("auto", "yes", "no")
#: Help of ``--csv-header`` (the rule of the module docstring).
CSV_HEADER_HELP = """\
whether the first row of a CSV input is a header (default auto; yes/no apply to every CSV input).
auto: a first row is a header if any cell is not a number, or if it is pandas' names of unnamed
columns: exactly 0,1,...,K-1 (integers) in pred_probs; exactly 0 in a one-column labels file that
has one row more than pred_probs has examples. Use no for a first data row like 0,1 with K=2"""
#: Column names taken as the labels column of a several-column labels file.
LABEL_COLUMN_NAMES = ("label", "labels", "given_label")


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
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{what}: cannot read {path}: {exc}") from exc
    raise ConfigError(f"{what}: unsupported file type {suffix!r} ({path}); use .npy, .csv or .parquet")


def _as_probabilities(data: np.ndarray | pd.DataFrame) -> np.ndarray:
    if isinstance(data, np.ndarray):
        return data
    if data.shape[1] == 1 and data.iloc[:, 0].map(lambda v: hasattr(v, "__len__")).all():
        return np.stack(data.iloc[:, 0].to_numpy())
    non_numeric = [c for c in data.columns if not pd.api.types.is_numeric_dtype(data[c])]
    if non_numeric:
        raise ConfigError(f"pred_probs: column {non_numeric[0]!r} is not numeric")
    return data.to_numpy()


def _as_labels(data: np.ndarray | pd.DataFrame) -> np.ndarray:
    if isinstance(data, pd.DataFrame):
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
        If a file is missing or unreadable, or the two do not have the same number of examples.
    """
    if csv_header not in CSV_HEADER_MODES:
        raise ConfigError(f"csv_header {csv_header!r} is not one of {CSV_HEADER_MODES}")
    for path, what in ((pred_probs, "pred_probs"), (labels, "labels")):
        if not Path(path).is_file():
            raise ConfigError(f"{what}: file not found: {path}")
    is_csv = [Path(p).suffix.lower() == ".csv" for p in (pred_probs, labels)]
    raw_probs = _read_probs_csv(pred_probs, csv_header) if is_csv[0] else read_array(pred_probs, "pred_probs")
    probs = _as_probabilities(raw_probs)
    n = probs.shape[0] if probs.ndim else 0  # other shape errors are reported by the core
    notes: list[str] = []
    raw_labels = _read_labels_csv(labels, csv_header, n, notes) if is_csv[1] else read_array(labels, "labels")
    given = _as_labels(raw_labels)
    if probs.ndim == 2 and given.ndim == 1 and len(given) != n:
        hint = " (is the first row of a CSV a header? see --csv-header)" if any(is_csv) else ""
        raise ConfigError(f"labels: {len(given)} labels but pred_probs has {n} rows{hint}")
    return FindInputs(probs, given, notes)
