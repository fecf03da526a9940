"""Persistence and inputs of the pipeline (no Dagster here).

- :mod:`~cl_pipeline.storage.parquet`: atomic partitioned Parquet files;
- :mod:`~cl_pipeline.storage.warehouse`: the DuckDB warehouse of views over them;
- :mod:`~cl_pipeline.storage.store`: :class:`PartitionStore`, every table and artifact of a data directory;
- :mod:`~cl_pipeline.storage.queries`: the warehouse queries behind ``history``, ``diff`` and the summary;
- :mod:`~cl_pipeline.storage.sources`: snapshot readers (what ``audit`` reads);
- :mod:`~cl_pipeline.storage.inputs`: array readers (what ``find`` reads).
"""

from cl_pipeline.names import validate_identifier as validate_name
from cl_pipeline.storage.parquet import (
    atomic_write_bytes,
    list_partitions,
    partition_path,
    read_metadata,
    read_table,
    write_table,
)
from cl_pipeline.storage.store import ARTIFACT_SUFFIXES, TABLES, PartitionStore
from cl_pipeline.storage.warehouse import STAGE_TIMINGS, Warehouse

__all__ = [
    "ARTIFACT_SUFFIXES",
    "STAGE_TIMINGS",
    "TABLES",
    "PartitionStore",
    "Warehouse",
    "atomic_write_bytes",
    "list_partitions",
    "partition_path",
    "read_metadata",
    "read_table",
    "validate_name",
    "write_table",
]
