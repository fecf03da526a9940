"""Reading a dataset's labelled snapshots (and supplied probability files) from the configured source.

Sources (``SourceConfig.kind``): ``embedded`` (the digits demo), ``file`` (one
Parquet/CSV file), ``folder`` (one file per date, the date in the file name),
``duckdb`` (a table, optionally filtered by a date column; opened read-only).
The input readers of ``cl-pipeline find`` are in :mod:`cl_pipeline.storage.inputs`.
"""

import re
from pathlib import Path

import numpy as np
import pandas as pd

from cl_pipeline.config import ConfigError, SourceConfig

__all__ = ["load_snapshot", "read_probabilities_npy", "snapshot_dates"]

_DATE = re.compile(r"(\d{4}-\d{2}-\d{2})")


def snapshot_dates(source: SourceConfig) -> list[str]:
    """Dates (``YYYY-MM-DD``) of the snapshot files of a ``folder`` source; [] otherwise."""
    if source.kind != "folder":
        return []
    folder = Path(source.path or "")
    if not folder.is_dir():
        raise ConfigError(f"source.path {folder} is not a folder")
    dates = {m.group(1) for p in folder.glob(source.pattern) if (m := _DATE.search(p.name))}
    return sorted(dates)


def _folder_file(source: SourceConfig, date: str) -> Path:
    folder = Path(source.path or "")
    matches = [p for p in sorted(folder.glob(source.pattern)) if date in p.name and p.is_file()]
    if not matches:
        available = ", ".join(snapshot_dates(source)) or "none"
        raise ConfigError(f"no snapshot for {date} in folder {folder} (dates available: {available})")
    if len(matches) > 1:
        raise ConfigError(f"several snapshots for {date} in {folder}: {[p.name for p in matches]}")
    return matches[0]


def _read_file(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise ConfigError(f"source file not found: {path}")
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            return pd.read_parquet(path)
        if suffix == ".csv":
            return pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    raise ConfigError(f"unsupported snapshot file type {path.suffix!r} ({path}): use .parquet or .csv")


def _read_duckdb(source: SourceConfig, date: str) -> pd.DataFrame:
    import duckdb

    path = Path(source.path or "")
    if not path.is_file():
        raise ConfigError(f"DuckDB database not found: {path}")
    # source.table and source.date_column are validated identifiers (see SourceConfig).
    sql = f'SELECT * FROM "{source.table}"'
    params: list[object] = []
    if source.date_column:
        sql += f' WHERE CAST("{source.date_column}" AS DATE) = CAST(? AS DATE)'
        params.append(date)
    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.Error as exc:  # not a DuckDB file (or another version's), locked, unreadable
        raise ConfigError(f"source.path {path} is not a DuckDB database (or cannot be opened): {exc}") from exc
    try:
        frame = con.execute(sql, params).df()
    except duckdb.Error as exc:
        raise ConfigError(f"cannot read table {source.table!r} from {path}: {exc}") from exc
    finally:
        con.close()
    if source.date_column:
        frame = frame.drop(columns=[source.date_column])
    return frame


def load_snapshot(source: SourceConfig, date: str) -> pd.DataFrame:
    """The labelled snapshot for partition ``date`` as a DataFrame (not yet validated).

    Raises
    ------
    ConfigError
        The file, folder entry or table is missing or unreadable.
    """
    if source.kind == "embedded":
        from cl_pipeline.datasets import load_embedded

        return load_embedded(noise_rate=source.noise_rate, seed=source.seed)
    if source.kind == "file":
        return _read_file(Path(source.path or ""))
    if source.kind == "folder":
        return _read_file(_folder_file(source, date))
    return _read_duckdb(source, date)


def read_probabilities_npy(template: str, date: str) -> tuple[np.ndarray, Path]:
    """The supplied probabilities of ``date``: ``columns.probabilities_npy`` with ``{date}`` replaced.

    Returns
    -------
    pred_probs : ndarray, shape (n, K), float64
    path : Path
        The file read.

    Raises
    ------
    ConfigError
        The file is missing, unreadable or not numeric.
    """
    path = Path(str(template).replace("{date}", date))
    if not path.is_file():
        raise ConfigError(f"columns.probabilities_npy: file not found: {path}")
    try:
        probs = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:  # EOFError: an empty file
        raise ConfigError(f"columns.probabilities_npy: cannot read {path}: {exc}") from exc
    if probs.dtype.kind not in "fiu":
        raise ConfigError(f"columns.probabilities_npy: {path} holds dtype {probs.dtype}, not numbers")
    return probs.astype(np.float64, copy=False), path


def snapshot_parquet_file(source: SourceConfig, date: str) -> Path | None:
    """The Parquet file holding the snapshot of ``date`` for a ``file`` or ``folder`` source, else None.

    The audit streams such a file in record batches when its probabilities are supplied as columns.

    Raises
    ------
    ConfigError
        A folder source has no (or several) snapshots for ``date``.
    """
    if source.kind == "file":
        path = Path(source.path or "")
    elif source.kind == "folder":
        path = _folder_file(source, date)
    else:
        return None
    return path if path.suffix.lower() == ".parquet" and path.is_file() else None
