"""Where the heavy work of an audit runs: in this process, or on a Dask cluster.

Dagster orchestrates the stages; inside a stage, the passes of the exact
batched engine (``cl_pipeline.core``'s states), the writing of the per-row
tables and the K folds of the feature path are *tasks* over slices of a
stored table. An :class:`Engine` maps a task over its slices and returns the
results in slice order:

- :data:`LOCAL` runs them one after another in this process (the default;
  one slice per table, so nothing changes for a single machine);
- :class:`DaskEngine` submits them to a ``dask.distributed`` scheduler, one
  task per slice of row groups. Workers read the slices from the shared data
  directory and write their parts of the per-row tables to a staging folder
  there; the run merges the states in slice order and commits the parts into
  the table atomically (see :mod:`cl_pipeline.audit.streaming`).

Results do not depend on the engine: states merge exactly (the core's
invariants), slices are cut at row-group boundaries of the stored file, and a
task that reruns (a worker died) recomputes the same slice from the same file.
``dask`` is imported only when a scheduler is configured.

Notation: a *slice* is a half-open range of row groups ``[first, stop)`` of one
Parquet file, with ``offset`` = the global index of its first row.
"""

import logging
import os
import shutil
import socket
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import CancelledError
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa

from cl_pipeline.names import check_scheduler_address
from cl_pipeline.storage import atomic_write_bytes
from cl_pipeline.storage.parquet import open_parquet, parquet_writer, process_alive
from cl_pipeline.storage.pipelining import read_ahead

__all__ = [
    "LOCAL",
    "DaskEngine",
    "Engine",
    "LocalEngine",
    "RowSlice",
    "local_engine",
    "read_ahead",
    "read_rows",
    "read_slice",
    "remove_stale_staging",
    "row_slices",
    "scheduler_reachable",
    "staging_dir",
    "write_part",
]

log = logging.getLogger(__name__)

#: Rows per slice when the work is distributed (about 2M rows: tens of MB of probabilities per task).
SLICE_ROWS = 1 << 21


@dataclass(frozen=True)
class RowSlice:
    """Row groups ``[first, stop)`` of the Parquet file ``path``, whose first row is global row ``offset``.

    Attributes
    ----------
    path : str
    first, stop : int
        Row-group range.
    offset, rows : int
        Global index of the first row, number of rows.
    index : int
        Position of the slice in the file (its part number).
    """

    path: str
    first: int
    stop: int
    offset: int
    rows: int
    index: int


def row_slices(path: Path, target_rows: int | None) -> list[RowSlice]:
    """Consecutive row-group ranges of ``path`` with about ``target_rows`` rows each (None: one slice).

    Cut at row-group boundaries only, so the slices of a file are a function of the file.
    """
    meta = open_parquet(path).metadata
    sizes = [meta.row_group(g).num_rows for g in range(meta.num_row_groups)]
    if target_rows is None:
        return [RowSlice(str(path), 0, len(sizes), 0, sum(sizes), 0)]
    out: list[RowSlice] = []
    first, offset, rows = 0, 0, 0
    for g, size in enumerate(sizes):
        rows += size
        if rows >= target_rows or g == len(sizes) - 1:
            out.append(RowSlice(str(path), first, g + 1, offset, rows, len(out)))
            first, offset, rows = g + 1, offset + rows, 0
    return out or [RowSlice(str(path), 0, 0, 0, 0, 0)]


def read_slice(part: RowSlice, columns: list[str] | None, batch_rows: int) -> Iterator[pa.RecordBatch]:
    """The record batches of one slice, in row order."""
    if part.stop > part.first:
        handle = open_parquet(part.path)
        yield from handle.iter_batches(batch_size=batch_rows, row_groups=range(part.first, part.stop), columns=columns)


def read_rows(path: str, columns: list[str], lo: int, hi: int) -> pa.Table:
    """Rows ``[lo, hi)`` of the Parquet file ``path`` (only the row groups that overlap them are read)."""
    handle = open_parquet(path)
    meta, groups, start, begin = handle.metadata, [], 0, None
    for g in range(meta.num_row_groups):
        size = meta.row_group(g).num_rows
        if start < hi and start + size > lo:
            groups.append(g)
            begin = start if begin is None else begin
        start += size
    if not groups:
        return handle.schema_arrow.empty_table().select(columns)
    table = handle.read_row_groups(groups, columns=columns)
    return table.slice(lo - begin, hi - lo)


def write_part(path: Path, schema: pa.Schema, batches: Iterator[pa.RecordBatch]) -> int:
    """Write ``batches`` to the Parquet file ``path`` atomically (temp + rename); returns the row count."""
    rows = 0

    def write(handle: Any) -> None:
        nonlocal rows
        with parquet_writer(handle, schema) as writer:
            for batch in batches:
                writer.write_batch(batch)
                rows += batch.num_rows

    atomic_write_bytes(Path(path), write)
    return rows


def staging_dir(root: Path, table: str) -> Path:
    """A new, empty folder for the parts of ``table``: ``<root>/_staging/<table>.<host>.<pid>.<token>``.

    The caller removes it after the commit; one left by a killed run is removed by
    :func:`remove_stale_staging` on the same host.
    """
    remove_stale_staging(root)
    path = Path(root) / "_staging" / f"{table}.{socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex[:12]}"
    path.mkdir(parents=True)
    return path


def remove_stale_staging(root: Path) -> list[Path]:
    """Remove the staging folders of processes of this host that no longer run (a killed audit); returns them."""
    folder, host, removed = Path(root) / "_staging", socket.gethostname(), []
    if not folder.is_dir():
        return removed
    for entry in folder.iterdir():
        table, _, rest = entry.name.partition(".")
        owner, _, token = rest.rpartition(".")
        where, _, pid = owner.rpartition(".")
        if where == host and pid.isdigit() and not process_alive(int(pid)):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


def scheduler_reachable(address: str, timeout: float = 5.0) -> str | None:
    """None if a TCP connection to the scheduler ``address`` opens within ``timeout`` s, else why not."""
    host, _, port = address.split("://", 1)[1].rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            return None
    except OSError as exc:
        return f"cannot reach the Dask scheduler at {address}: {exc}"


class Engine(Protocol):
    """Maps a task over slices; results in slice order."""

    #: Rows per slice (None: one slice per table).
    slice_rows: int | None
    #: Whether the tasks run in other processes (they then read and write the shared data directory).
    distributed: bool

    def map(self, task: Callable[..., Any], items: Sequence[Any], shared: Any = None, name: str = "task") -> list:
        """``[task(item, shared) for item in items]``."""
        ...


class LocalEngine:
    """Tasks in this process: one after another, or in ``threads`` threads over slices of ``slice_rows``.

    Threads pay off because the work of a task (Parquet decoding, numpy over a batch)
    releases the GIL. Results are the same for any number of threads: states merge
    exactly and :meth:`imap` keeps the slice order.

    Parameters
    ----------
    threads : int
        Threads running tasks (1: in the calling thread).
    slice_rows : int, optional
        Rows per slice (None: one slice per table).
    """

    distributed = False

    def __init__(self, threads: int = 1, slice_rows: int | None = None) -> None:
        self.threads = max(1, int(threads))
        self.slice_rows = slice_rows

    def map(self, task: Callable[..., Any], items: Sequence[Any], shared: Any = None, name: str = "task") -> list:
        """``[task(item, shared) for item in items]``, in this process."""
        return list(self.imap(task, items, shared))

    def imap(self, task: Callable[..., Any], items: Sequence[Any], shared: Any = None) -> Iterator[Any]:
        """``task(item, shared)`` for each item, yielded in item order, at most ``threads`` tasks ahead."""
        if self.threads == 1 or len(items) < 2:
            yield from (task(item, shared) for item in items)
            return
        from collections import deque
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(self.threads, thread_name_prefix="cl-task") as pool:
            pending: deque = deque()
            for item in items:
                pending.append(pool.submit(task, item, shared))
                if len(pending) >= self.threads:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()


#: One slice per table, in the calling thread: the reference engine (and the stages' default).
LOCAL = LocalEngine()
#: Rows per slice of the threaded local engine (each thread holds one slice of output while it waits to be written).
LOCAL_SLICE_ROWS = 1 << 19


def local_engine() -> LocalEngine:
    """The engine of an audit without a Dask scheduler: one thread per core, slices of ``LOCAL_SLICE_ROWS``."""
    return LocalEngine(threads=os.cpu_count() or 1, slice_rows=LOCAL_SLICE_ROWS)


class DaskEngine:
    """Tasks on a ``dask.distributed`` cluster; the client connects on first use.

    Parameters
    ----------
    address : str
        Scheduler address (``tcp://HOST:PORT``).
    slice_rows : int
        Rows per slice (tasks are cut at row-group boundaries near this size).
    timeout : float
        Seconds to wait for the scheduler when connecting.
    """

    distributed = True

    def __init__(self, address: str, slice_rows: int = SLICE_ROWS, timeout: float = 10.0) -> None:
        self.address = check_scheduler_address(address)
        self.slice_rows = slice_rows
        self.timeout = timeout
        self._client: Any = None

    @property
    def client(self) -> Any:
        """The ``distributed.Client`` of this engine (connected on first use)."""
        if self._client is None:
            from distributed import Client

            try:
                self._client = Client(self.address, timeout=self.timeout, set_as_default=False)
            except OSError as exc:
                raise ConnectionError(f"cannot reach the Dask scheduler at {self.address}: {exc}") from exc
        return self._client

    #: Times a map is started when its tasks are cancelled because their shared data was lost.
    MAP_ATTEMPTS = 3

    def map(self, task: Callable[..., Any], items: Sequence[Any], shared: Any = None, name: str = "task") -> list:
        """Run ``task(item, shared)`` for every item on the cluster; results in item order.

        ``shared`` is sent to the workers once. Keys carry a fresh token, so two runs on one
        scheduler never share results. A task lost with its worker is rerun by the scheduler;
        if the worker also held the last copy of ``shared`` (scattered data cannot be
        recomputed, so the scheduler cancels the tasks that need it), the whole map is started
        again, up to ``MAP_ATTEMPTS`` times. Tasks are functions of their inputs, so a rerun
        gives the same results.
        """
        if not items:
            return []
        for _ in range(self.MAP_ATTEMPTS - 1):
            try:
                return self._map_once(task, items, shared, name)
            except CancelledError as exc:
                log.warning("%s tasks cancelled (%s): shared data lost with a worker, map started again", name, exc)
        return self._map_once(task, items, shared, name)

    def _map_once(self, task: Callable[..., Any], items: Sequence[Any], shared: Any, name: str) -> list:
        client, token = self.client, uuid.uuid4().hex[:12]
        handle = client.scatter(shared, broadcast=True, hash=False) if shared is not None else None
        keys = [f"cl-{name}-{token}-{i}" for i in range(len(items))]
        futures = client.map(task, list(items), shared=handle, key=keys, pure=False)
        try:
            return client.gather(futures)
        finally:
            client.cancel([*futures, *([handle] if handle is not None else [])])

    def close(self) -> None:
        """Close the client (the cluster keeps running)."""
        if self._client is not None:
            self._client.close()
            self._client = None
