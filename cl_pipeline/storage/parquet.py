"""Atomic, partitioned Parquet files: ``<data dir>/<table>/<partition>.parquet``.

One file per (table, partition). A write goes to a temporary file in the same
folder, is flushed to disk and then moved over the old file with ``os.replace``,
so a reader sees either the old or the new partition, never a partial one, and
rewriting a partition replaces its rows instead of appending to them. The file
gets the mode a plain ``open(path, "w")`` would give (``0o666 & ~umask``), not the
owner-only mode of the temporary file.
"""

import glob
import io
import json
import logging
import os
import re
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from cl_pipeline.names import validate_identifier as validate_name
from cl_pipeline.storage.pipelining import read_ahead

__all__ = [
    "COMPRESSION",
    "atomic_write_bytes",
    "copy_partition",
    "file_metadata",
    "parquet_writer",
    "process_alive",
    "list_partitions",
    "open_parquet",
    "partition_path",
    "read_metadata",
    "read_table",
    "iter_table_batches",
    "write_frame",
    "write_table",
    "staged_path",
    "write_batches_to",
    "write_table_batches",
]

log = logging.getLogger(__name__)

#: Parquet compression of every table. Snappy: at 2M x 10 float32 a write costs 0.53 s of CPU
#: (zstd 0.81 s) for a file 13% larger (84 vs 74 MB); every stage writes or reads its tables
#: several times, so the CPU matters more than the bytes.
COMPRESSION = "snappy"

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


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` exists (signal 0 checks without sending anything)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale_temps(path: Path) -> None:
    """Delete temporary files of ``path`` left by writers that were killed mid-write.

    Temporary names carry the writer's pid (``.<name>.<pid>.<random>.tmp``); one whose
    process is gone can never be completed, so it goes. A live writer's file is kept.
    """
    prefix = f".{path.name}."
    for tmp in path.parent.glob(f"{glob.escape(prefix)}*.tmp"):
        pid = tmp.name[len(prefix) :].split(".", 1)[0]
        if pid.isdigit() and not process_alive(int(pid)):
            tmp.unlink(missing_ok=True)
            log.warning("removed %s, left by a writer (pid %s) that died mid-write", tmp, pid)


#: Bytes a file may grow by before the background flush writes them to disk (see :class:`_EarlyFlush`).
FLUSH_EVERY = 64 << 20


class _EarlyFlush:
    """Writes a growing file's data to disk while it is still being written, in a thread.

    ``fdatasync`` of what has reached the OS each time the file has grown by ``FLUSH_EVERY``
    bytes (checked every 50 ms), so the ``fsync`` that must come before the rename only waits
    for the tail: at 10M rows a table's fsync otherwise waits a second for the whole file,
    with the CPU idle. Durability is unchanged (the final fsync still runs); only the
    disk's work is moved earlier, overlapping the encoding of the next row groups.
    """

    def __init__(self, fd: int) -> None:
        self._fd, self._done = fd, threading.Event()
        self._thread = threading.Thread(target=self._run, name="cl-pipeline-flush", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        synced = 0
        while not self._done.wait(0.05):
            try:
                size = os.fstat(self._fd).st_size
                if size - synced >= FLUSH_EVERY:
                    os.fdatasync(self._fd)
                    synced = size
            except OSError:  # closed under us or not supported: the final fsync still runs
                return

    def stop(self) -> None:
        self._done.set()
        self._thread.join()


def atomic_write_bytes(path: Path, write: Any) -> None:
    """Create ``path`` atomically: ``write(file_object)`` fills a temp file, then ``os.replace``.

    The temporary file is in the same folder, is fsync'ed, and gets the mode
    ``0o666 & ~umask`` (what ``open(path, "w")`` gives a new file) before the rename.
    On any exception the temporary file is removed and ``path`` is left as it was; a
    temporary file left by a killed writer is removed by the next write of ``path``.

    Parameters
    ----------
    path : path
        The file to create or replace.
    write : callable
        Called with the binary file object to fill.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            flusher = _EarlyFlush(handle.fileno())
            try:
                write(handle)
                handle.flush()
            finally:
                flusher.stop()  # before the file closes: the thread uses its descriptor
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _dictionary_columns(schema: pa.Schema) -> list[str]:
    """Columns worth Parquet's dictionary encoding: strings (labels, ids, the partition key).

    Numbers are written plain: dictionary-encoding float probabilities costs about four times
    the write time (measured at 1M x 10 float32) and saves nothing.
    """
    textual = (pa.types.is_string, pa.types.is_large_string, pa.types.is_dictionary)
    return [f.name for f in schema if any(test(f.type) for test in textual)]


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
    dictionary = _dictionary_columns(arrow.schema)
    atomic_write_bytes(
        path, lambda handle: pq.write_table(arrow, handle, compression=COMPRESSION, use_dictionary=dictionary)
    )
    log.info("wrote %s rows to %s", len(frame), path)
    return path


def write_table_batches(
    data_dir: Path,
    table: str,
    partition: str,
    schema: pa.Schema,
    batches: Iterable[pa.RecordBatch],
    metadata: Mapping[str, Any] | None = None,
) -> int:
    """Write one partition of ``table`` from record batches, atomically; returns the row count.

    The batches (each with ``schema``) are written one row group at a time, so
    memory holds a few batches, not the table; the ``partition`` column is put
    first as in :func:`write_table`. ``metadata`` may hold values known only
    after the last batch: it is read when the file is closed (pass a dict and
    fill it while the batches are produced).

    ``batches`` is run in a thread two batches ahead of the writer
    (:func:`~cl_pipeline.storage.pipelining.read_ahead`): the next batches are computed
    while this one is encoded, which is most of a streaming stage's time on one core.
    An exception of ``batches`` is raised here, and nothing is written.
    """
    return write_batches_to(partition_path(data_dir, table, partition), partition, schema, batches, metadata)


def staged_path(data_dir: Path, table: str, partition: str) -> Path:
    """Where a partition of ``table`` computed ahead of its stage waits: ``<table>/.<partition>.parquet.staged``.

    Not a ``*.parquet`` name: neither :func:`list_partitions` nor the warehouse views see it.
    """
    path = partition_path(data_dir, table, partition)
    return path.with_name(f".{path.name}.staged")


def write_batches_to(
    path: Path,
    partition: str,
    schema: pa.Schema,
    batches: Iterable[pa.RecordBatch],
    metadata: Mapping[str, Any] | None = None,
) -> int:
    """:func:`write_table_batches` into the file ``path`` (a table's partition, or its staged file)."""
    fields = [pa.field("partition", pa.string()), *(f for f in schema if f.name != "partition")]
    rows = 0

    def write(handle: Any) -> None:
        nonlocal rows
        writer = None
        try:
            for batch in read_ahead(iter(batches)):
                if writer is None:
                    writer = parquet_writer(handle, pa.schema(fields))
                key = pa.array([partition], pa.string()).take(pa.array(np.zeros(batch.num_rows, dtype=np.int32)))
                columns = [key, *(batch.column(f.name) for f in fields[1:])]
                writer.write_batch(pa.RecordBatch.from_arrays(columns, schema=pa.schema(fields)))
                rows += batch.num_rows
            if writer is None:
                writer = parquet_writer(handle, pa.schema(fields))
            meta = json.dumps(dict(metadata or {}), sort_keys=True, default=str).encode()
            writer.add_key_value_metadata({_META_KEY.decode(): meta.decode()})
        finally:
            if writer is not None:
                writer.close()

    atomic_write_bytes(path, write)
    log.info("wrote %s rows to %s", rows, path)
    return rows


def _footer_with(path: Path, metadata: Mapping[str, Any]) -> bytes:
    """The footer of ``path`` (file metadata, its length, ``PAR1``) with ``metadata`` as the store's key."""
    schema = pq.read_schema(path)
    sink = io.BytesIO()
    writer = parquet_writer(sink, schema.remove_metadata())
    meta = json.dumps(dict(metadata), sort_keys=True, default=str)
    writer.add_key_value_metadata({_META_KEY.decode(): meta})
    writer.close()
    footer = pq.read_metadata(io.BytesIO(sink.getvalue()))
    footer.append_row_groups(pq.read_metadata(path))  # their offsets point into the copied bytes
    out = io.BytesIO()
    footer.write_metadata_file(out)  # PAR1, file metadata, length, PAR1
    return out.getvalue()[4:]


def _copy_bytes(source: Any, out: Any, count: int) -> None:
    """Copy the first ``count`` bytes of ``source`` to ``out`` (in the kernel where the OS can)."""
    out.flush()
    copied = 0
    if hasattr(os, "copy_file_range"):
        try:
            while copied < count:  # in steps, so the early flush writes each to disk while the next is copied
                step = os.copy_file_range(source.fileno(), out.fileno(), min(count - copied, 4 * FLUSH_EVERY))
                if step == 0:
                    break
                copied += step
        except OSError:  # not supported between these files: copy through user space
            pass
    source.seek(copied)
    out.seek(copied)
    while copied < count:
        chunk = source.read(min(1 << 24, count - copied))
        if not chunk:
            raise OSError(f"{source.name} ended at byte {copied} of the {count} to copy")
        out.write(chunk)
        copied += len(chunk)


def copy_partition(
    data_dir: Path,
    source_table: str,
    table: str,
    partition: str,
    metadata: Mapping[str, Any] | Callable[[], Mapping[str, Any]],
) -> int:
    """Make one partition of ``table`` hold the rows of ``source_table``'s, atomically; returns the row count.

    The rows are the same bytes: the source file's row groups are copied as they are
    (``os.copy_file_range``, in the kernel, without decoding), followed by a new footer
    that describes the same row groups and holds ``metadata``. ``curated_dataset`` uses
    it when no review decision changes a date's rows: what would be a decode, re-encode
    and write of every row is a file copy (10M rows: 5.9 s -> about 1 s). ``metadata``
    may be a callable: it is called once the rows are copied.
    """
    source, path = partition_path(data_dir, source_table, partition), partition_path(data_dir, table, partition)
    if not source.is_file():
        raise FileNotFoundError(f"{source_table} has no partition {partition} (expected {source})")
    size = source.stat().st_size
    with source.open("rb") as handle:
        handle.seek(size - 8)
        data_end = size - 8 - int.from_bytes(handle.read(4), "little")

    def write(out: Any) -> None:
        with source.open("rb") as handle:
            _copy_bytes(handle, out, data_end)
        out.seek(0, os.SEEK_END)
        out.write(_footer_with(source, metadata() if callable(metadata) else metadata))

    atomic_write_bytes(path, write)
    rows = pq.read_metadata(path).num_rows
    log.info("copied %s rows of %s to %s", rows, source, path)
    return rows


def open_parquet(path: str | Path) -> pq.ParquetFile:
    """A ``ParquetFile`` for streaming reads: without pre-buffering.

    pyarrow's default (``pre_buffer=True``) keeps every row group it has read
    in the reader's cache until the reader is closed, so a pass over a file
    with ``iter_batches`` held memory growing with the file: 1.2 GiB of a
    30M-row, 1.3 GB snapshot at its end, read 2.5x slower than without. Every
    batch-by-batch read of the package opens files through this function.
    """
    return pq.ParquetFile(path, pre_buffer=False)


def parquet_writer(handle: Any, schema: pa.Schema) -> pq.ParquetWriter:
    """A ``ParquetWriter`` with the store's settings: ``COMPRESSION``, dictionaries for strings only."""
    return pq.ParquetWriter(handle, schema, compression=COMPRESSION, use_dictionary=_dictionary_columns(schema))


def iter_table_batches(
    data_dir: Path, table: str, partition: str, columns: list[str] | None = None, batch_rows: int = 65536
) -> Iterator[pa.RecordBatch]:
    """Record batches of one partition of ``table`` in row order (``columns`` only, if given)."""
    path = partition_path(data_dir, table, partition)
    if not path.is_file():
        raise FileNotFoundError(f"{table} has no partition {partition} (expected {path})")
    yield from open_parquet(path).iter_batches(batch_size=batch_rows, columns=columns)


def read_table(data_dir: Path, table: str, partition: str) -> pd.DataFrame:
    """Read one partition of ``table`` (raises FileNotFoundError naming the file if absent)."""
    path = partition_path(data_dir, table, partition)
    if not path.is_file():
        raise FileNotFoundError(f"{table} has no partition {partition} (expected {path})")
    return pq.read_table(path).to_pandas()


def read_metadata(data_dir: Path, table: str, partition: str) -> dict[str, Any]:
    """The metadata mapping stored with one partition by :func:`write_table` or :func:`write_table_batches`.

    Read from the file's key-value metadata (which holds the schema's too), so only the footer is read.
    """
    return file_metadata(partition_path(data_dir, table, partition))


def file_metadata(path: Path) -> dict[str, Any]:
    """The store's metadata mapping in the footer of the Parquet file ``path`` (only the footer is read)."""
    file_meta = pq.read_metadata(path).metadata or {}
    return json.loads(file_meta.get(_META_KEY, b"{}"))


def list_partitions(data_dir: Path, table: str) -> list[str]:
    """Sorted partition keys that have a file for ``table``."""
    folder = Path(data_dir) / validate_name(table)
    return sorted(p.stem for p in folder.glob("*.parquet")) if folder.is_dir() else []
