"""Persistence of pipeline tables: atomic partitioned Parquet files and DuckDB views over them."""

from cl_pipeline.storage.parquet import (
    atomic_write_bytes,
    list_partitions,
    partition_path,
    read_metadata,
    read_table,
    validate_name,
    write_table,
)
from cl_pipeline.storage.warehouse import STAGE_TIMINGS, Warehouse

__all__ = [
    "STAGE_TIMINGS",
    "Warehouse",
    "atomic_write_bytes",
    "list_partitions",
    "partition_path",
    "read_metadata",
    "read_table",
    "validate_name",
    "write_table",
]
