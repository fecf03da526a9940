"""Atomic, partitioned Parquet files: ``<data dir>/<table>/<partition>.parquet``.

One file per (table, partition). A write goes to a temporary file in the same
folder, is flushed to disk and then moved over the old file with ``os.replace``,
so a reader sees either the old or the new partition, never a partial one, and
rewriting a partition replaces its rows instead of appending to them. The file
gets the mode a plain ``open(path, "w")`` would give (``0o666 & ~umask``), not the
owner-only mode of the temporary file.
"""

import json
import logging
import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from cl_pipeline.names import validate_identifier as validate_name

__all__ = [
    "atomic_write_bytes",
    "list_partitions",
    "partition_path",
    "read_metadata",
    "read_table",
    "write_frame",
    "write_table",
]

log = logging.getLogger(__name__)

_PARTITION = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,63}$")
_META_KEY = b"cl_pipeline"


def partition_path(data_dir: Path, table: str, partition: str) -> Path:
    """The file holding one partition of a table (names validated)."""
    validate_name(table)
    if not isinstance(partition, str) or not _PARTITION.match(partition):
        raise ValueError(f"invalid partition key {partition!r}")
    return Path(data_dir) / table / f"{partition}.parquet"


def _proc_umask() -> int | None:
    """The process umask read from ``/proc/self/status`` (Linux >= 4.7), or None."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return None


def _umask_at_import() -> int:
    """The umask when this module is imported (``os.umask`` round trip only without /proc)."""
    found = _proc_umask()
    if found is not None:
        return found
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_IMPORT_UMASK = _umask_at_import()


def current_umask() -> int:
    """The process umask, read without changing it (falls back to its value at import).

    Returns
    -------
    int
        The permission bits removed from newly created files, e.g. ``0o022``.
    """
    found = _proc_umask()
    return _IMPORT_UMASK if found is None else found


def atomic_write_bytes(path: Path, write: Any) -> None:
    """Create ``path`` atomically: ``write(file_object)`` fills a temp file, then ``os.replace``.

    The temporary file is in the same folder, is fsync'ed, and gets the mode
    ``0o666 & ~umask`` (what ``open(path, "w")`` gives a new file) before the rename.
    On any exception the temporary file is removed and ``path`` is left as it was.

    Parameters
    ----------
    path : path
        The file to create or replace.
    write : callable
        Called with the binary file object to fill.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_frame(path: Path, frame: pd.DataFrame) -> Path:
    """Atomically write ``frame`` to ``path`` as CSV or Parquet (by its suffix), without the index.

    Raises
    ------
    ValueError
        If the suffix is neither ``.csv`` nor ``.parquet``.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        atomic_write_bytes(path, lambda handle: handle.write(frame.to_csv(index=False).encode()))
    elif suffix == ".parquet":
        atomic_write_bytes(path, lambda handle: frame.to_parquet(handle, index=False))
    else:
        raise ValueError(f"output file {path}: use a .csv or .parquet file name")
    return path


def write_table(
    data_dir: Path,
    table: str,
    partition: str,
    frame: pd.DataFrame,
    metadata: Mapping[str, Any] | None = None,
    key: str | None = None,
) -> Path:
    """Write one partition of ``table`` atomically, replacing any previous version.

    A ``partition`` column holding the partition key is put first; ``metadata``
    (JSON-serialisable) is stored in the Parquet schema and read back by
    :func:`read_metadata`. ``key`` names the file instead of ``partition`` when a
    table holds several files per partition (``check_results``: one per check).
    """
    path = partition_path(data_dir, table, key or partition)
    frame = frame.drop(columns=["partition"], errors="ignore")
    frame.insert(0, "partition", partition)
    frame = frame.reset_index(drop=True)
    arrow = pa.Table.from_pandas(frame, preserve_index=False)
    merged = dict(arrow.schema.metadata or {})
    merged[_META_KEY] = json.dumps(dict(metadata or {}), sort_keys=True, default=str).encode()
    arrow = arrow.replace_schema_metadata(merged)
    atomic_write_bytes(path, lambda handle: pq.write_table(arrow, handle, compression="zstd"))
    log.info("wrote %s rows to %s", len(frame), path)
    return path


def read_table(data_dir: Path, table: str, partition: str) -> pd.DataFrame:
    """Read one partition of ``table`` (raises FileNotFoundError naming the file if absent)."""
    path = partition_path(data_dir, table, partition)
    if not path.is_file():
        raise FileNotFoundError(f"{table} has no partition {partition} (expected {path})")
    return pq.read_table(path).to_pandas()


def read_metadata(data_dir: Path, table: str, partition: str) -> dict[str, Any]:
    """The metadata mapping stored with one partition by :func:`write_table`."""
    path = partition_path(data_dir, table, partition)
    schema_meta = pq.read_schema(path).metadata or {}
    return json.loads(schema_meta.get(_META_KEY, b"{}"))


def list_partitions(data_dir: Path, table: str) -> list[str]:
    """Sorted partition keys that have a file for ``table``."""
    folder = Path(data_dir) / validate_name(table)
    return sorted(p.stem for p in folder.glob("*.parquet")) if folder.is_dir() else []
