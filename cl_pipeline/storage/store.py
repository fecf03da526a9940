"""The partition store: every table and artifact of the pipeline under one data directory.

Layout (``<root>`` is the data directory)::

    <root>/<table>/<partition>.parquet           one file per (table, partition), see ``parquet``
    <root>/check_results/<partition>.<check>.parquet
    <root>/artifacts/<kind>/<partition>.<png|joblib>
    <root>/_cache/folds/<partition>/<key>/fold_<i>.npy
    <root>/warehouse.duckdb                       views only, see ``warehouse``

Every write is atomic (temp file + rename) and is followed by bringing the
warehouse views up to date, which never fails the write.
"""

import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import pandas as pd
import pyarrow as pa

from cl_pipeline.names import validate_identifier
from cl_pipeline.storage.parquet import (
    atomic_write_bytes,
    copy_partition,
    file_metadata,
    iter_table_batches,
    list_partitions,
    partition_path,
    read_metadata,
    read_table,
    staged_path,
    write_batches_to,
    write_table,
    write_table_batches,
)
from cl_pipeline.storage.warehouse import STAGE_TIMINGS, Warehouse

__all__ = ["ARTIFACT_SUFFIXES", "TABLES", "PartitionStore"]

#: Every table the pipeline writes (each is a warehouse view of the same name).
TABLES = (
    "raw_labels",
    "oof_pred_probs",
    "confident_joint",
    "calibrated_joint",
    "class_quality",
    "label_issues",
    "pruned_dataset",
    "retrained_model",
    "audit_summary",
    "check_results",
    "annotator_quality",
)

#: File suffixes of the artifacts stored next to the tables.
ARTIFACT_SUFFIXES = (".png", ".svg", ".joblib")


class PartitionStore:
    """Partitioned Parquet tables, artifacts and the DuckDB warehouse under one data directory.

    Parameters
    ----------
    root : path
        The data directory (created on first write).
    """

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def write(
        self,
        table: str,
        partition: str,
        frame: pd.DataFrame,
        metadata: dict[str, Any] | None = None,
        key: str | None = None,
    ) -> Path:
        """Atomically replace one partition of ``table``; then bring the warehouse views up to date.

        ``key`` names the file instead of ``partition`` when a table holds several
        files per partition (``check_results``). The view step never fails the
        write (see ``Warehouse.reconcile``).
        """
        path = write_table(self.root, table, partition, frame, metadata, key=key)
        self.warehouse.ensure_views([table, STAGE_TIMINGS])
        return path

    def write_batches(
        self,
        table: str,
        partition: str,
        schema: pa.Schema,
        batches: Iterable[pa.RecordBatch],
        metadata: dict[str, Any] | None = None,
    ) -> int:
        """Atomically replace one partition of ``table`` from record batches; returns the row count.

        ``metadata`` is read after the last batch (a stage may fill it while producing them).
        """
        rows = write_table_batches(self.root, table, partition, schema, batches, metadata)
        self.warehouse.ensure_views([table, STAGE_TIMINGS])
        return rows

    def copy(
        self,
        source_table: str,
        table: str,
        partition: str,
        metadata: dict[str, Any] | Callable[[], dict[str, Any]],
    ) -> int:
        """Atomically make one partition of ``table`` the rows of ``source_table``'s, with ``metadata``.

        A file copy, no decoding (``storage.parquet.copy_partition``; a callable ``metadata``
        is called after the rows are copied); returns the row count.
        """
        rows = copy_partition(self.root, source_table, table, partition, metadata)
        self.warehouse.ensure_views([table, STAGE_TIMINGS])
        return rows

    def write_staged(
        self,
        table: str,
        partition: str,
        schema: pa.Schema,
        batches: Iterable[pa.RecordBatch],
        metadata: dict[str, Any] | None = None,
    ) -> int:
        """Write one partition of ``table`` ahead of its stage, as its staged file (atomically).

        The staged file is the partition as :meth:`write_batches` would write it, kept under a
        name no reader sees (:func:`~cl_pipeline.storage.parquet.staged_path`) until
        :meth:`adopt_staged` renames it into the table; returns the row count.
        """
        return write_batches_to(staged_path(self.root, table, partition), partition, schema, batches, metadata)

    def staged_metadata(self, table: str, partition: str) -> dict[str, Any] | None:
        """The metadata of the staged file of one partition, or None if there is none (or it cannot be read)."""
        path = staged_path(self.root, table, partition)
        try:
            return file_metadata(path)
        except (OSError, ValueError, pa.ArrowException):
            return None

    def adopt_staged(self, table: str, partition: str) -> int:
        """Make the staged file the partition (one atomic rename; no byte is copied); returns its row count."""
        import pyarrow.parquet as pq

        source, target = staged_path(self.root, table, partition), self.path(table, partition)
        rows = pq.read_metadata(source).num_rows
        os.replace(source, target)
        self.warehouse.ensure_views([table, STAGE_TIMINGS])
        return rows

    def remove_staged(self, table: str, partition: str) -> bool:
        """Delete the staged file of one partition; returns whether there was one."""
        try:
            staged_path(self.root, table, partition).unlink()
        except FileNotFoundError:
            return False
        return True

    def iter_batches(
        self, table: str, partition: str, columns: list[str] | None = None, batch_rows: int = 65536
    ) -> Iterator[pa.RecordBatch]:
        """Record batches of one partition of ``table`` in row order (``columns`` only, if given)."""
        return iter_table_batches(self.root, table, partition, columns, batch_rows)

    def path(self, table: str, partition: str) -> Path:
        """The file of one partition of ``table`` (names validated; it may not exist yet)."""
        return partition_path(self.root, table, partition)

    def schema(self, table: str, partition: str) -> pa.Schema:
        """The Arrow schema of one partition of ``table`` (only the footer is read)."""
        import pyarrow.parquet as pq

        path = self.path(table, partition)
        if not path.is_file():
            raise FileNotFoundError(f"{table} has no partition {partition} (expected {path})")
        return pq.read_schema(path)

    def remove(self, table: str, partition: str, key: str | None = None) -> bool:
        """Delete one partition file of ``table`` (``key``: its file name, default ``partition``).

        Returns whether a file was removed. ``os.remove`` is atomic: readers see
        the partition or nothing.
        """
        path = partition_path(self.root, table, key or partition)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        self.warehouse.reconcile()  # drops the view if that was its last file
        return True

    def read(self, table: str, partition: str) -> pd.DataFrame:
        """One partition of a table (``FileNotFoundError`` naming the file if absent)."""
        return read_table(self.root, table, partition)

    def metadata(self, table: str, partition: str) -> dict[str, Any]:
        """The metadata stored with one partition of a table."""
        return read_metadata(self.root, table, partition)

    def has(self, table: str, partition: str) -> bool:
        """Whether ``table`` has a file for ``partition``."""
        return partition in list_partitions(self.root, table)

    def artifact_path(self, kind: str, partition: str, suffix: str) -> Path:
        """Where an artifact (model, picture) of one partition is stored (names validated)."""
        validate_identifier(kind, "artifact kind")
        if suffix not in ARTIFACT_SUFFIXES:
            raise ValueError(f"invalid artifact suffix {suffix!r}: one of {ARTIFACT_SUFFIXES}")
        return partition_path(self.root / "artifacts", kind, partition).with_suffix(suffix)

    def write_artifact(self, kind: str, partition: str, suffix: str, write: Callable[[BinaryIO], Any]) -> Path:
        """Atomically create or replace one partition's artifact; ``write(file)`` fills it."""
        path = self.artifact_path(kind, partition, suffix)
        atomic_write_bytes(path, write)
        return path

    def remove_artifact(self, kind: str, partition: str, suffix: str) -> bool:
        """Delete one partition's artifact; returns whether it existed."""
        try:
            self.artifact_path(kind, partition, suffix).unlink()
        except FileNotFoundError:
            return False
        return True

    def fold_cache(self, partition: str) -> Path:
        """Folder of the out-of-fold cache of one partition."""
        partition_path(self.root, "_cache", partition)  # validates the partition key
        return self.root / "_cache" / "folds" / partition

    @property
    def warehouse(self) -> Warehouse:
        """The DuckDB warehouse of this data directory (managing the pipeline's tables)."""
        return Warehouse(self.root, managed=TABLES)
