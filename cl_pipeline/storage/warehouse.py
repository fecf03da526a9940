"""The DuckDB warehouse: one view per pipeline table over all its Parquet partitions.

``<data dir>/warehouse.duckdb`` holds only views (``CREATE OR REPLACE VIEW t AS
SELECT * FROM read_parquet('<data dir>/t/*.parquet')``), so every date is
queryable together, a rewritten partition replaces its rows, and the database
can be rebuilt from the Parquet files at any time. View names are validated
identifiers; values in queries are bound parameters.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from cl_pipeline.storage.parquet import list_partitions, validate_name

__all__ = ["Warehouse"]

log = logging.getLogger(__name__)

#: (database, view) pairs created by this process; their globs already cover new partitions.
_KNOWN_VIEWS: set[tuple[str, str]] = set()


class Warehouse:
    """Views over the partitioned Parquet tables of one data directory.

    Parameters
    ----------
    data_dir : path
        The pipeline data directory; the database is ``data_dir / "warehouse.duckdb"``.
    """

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.path = self.data_dir / "warehouse.duckdb"

    @contextlib.contextmanager
    def connect(self, read_only: bool = False, attempts: int = 20) -> Iterator[duckdb.DuckDBPyConnection]:
        """Open the database, retrying briefly while another process holds its lock."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        for attempt in range(attempts):
            try:
                con = duckdb.connect(str(self.path), read_only=read_only)
                break
            except duckdb.IOException as exc:
                if "lock" not in str(exc).lower() or attempt == attempts - 1:
                    raise
                time.sleep(0.25)
        try:
            yield con
        finally:
            con.close()

    def ensure_views(self, tables: Sequence[str]) -> None:
        """Create the views that this process has not created yet (a view's glob sees new files)."""
        missing = [t for t in tables if (str(self.path), t) not in _KNOWN_VIEWS]
        if missing:
            self.refresh_views(missing)

    def refresh_views(self, tables: Sequence[str]) -> None:
        """(Re)create the view of each table that has at least one partition, in one transaction."""
        statements = []
        for table in tables:
            validate_name(table)
            if not list_partitions(self.data_dir, table):
                continue
            pattern = str(self.data_dir / table / "*.parquet").replace("'", "''")
            statements.append(
                f'CREATE OR REPLACE VIEW "{table}" AS SELECT * FROM '
                f"read_parquet('{pattern}', union_by_name = true)"
            )
        if not statements:
            return
        with self.connect() as con:
            con.execute("BEGIN TRANSACTION")
            try:
                for sql in statements:
                    con.execute(sql)
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        _KNOWN_VIEWS.update((str(self.path), t) for t in tables if list_partitions(self.data_dir, t))
        log.info("warehouse views refreshed: %s", ", ".join(tables))

    def views(self) -> list[str]:
        """Names of the views present in the warehouse."""
        if not self.path.exists():
            return []
        with self.connect(read_only=True) as con:
            rows = con.execute(
                "SELECT view_name FROM duckdb_views() WHERE NOT internal ORDER BY view_name"
            ).fetchall()
        return [r[0] for r in rows]

    def query(self, sql: str, params: Sequence[Any] | None = None) -> pd.DataFrame:
        """Run a read-only query with bound ``params`` and return a DataFrame."""
        if not self.path.exists():
            raise FileNotFoundError(f"no warehouse at {self.path}: run `cl-pipeline audit` first")
        with self.connect(read_only=True) as con:
            return con.execute(sql, list(params or [])).df()
