"""The DuckDB warehouse: one view per pipeline table over all its Parquet partitions.

``<data dir>/warehouse.duckdb`` holds only views (``CREATE OR REPLACE VIEW t AS
SELECT * FROM read_parquet('<data dir>/t/*.parquet')``), so every date is
queryable together, a rewritten partition replaces its rows, and the database
can be rebuilt from the Parquet files at any time. View names are validated
identifiers; values in queries are bound parameters.

Each view's comment holds its definition, so :meth:`Warehouse.ensure_views` can
check with a read-only connection (which other readers, e.g. ``duckdb -readonly``,
do not block) that the views are current, and takes the write lock only to
create a missing or changed view. A new partition needs no view change.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import duckdb
import pandas as pd

from cl_pipeline.storage.parquet import list_partitions, validate_name

__all__ = ["STAGE_TIMINGS", "ViewStatus", "Warehouse"]

log = logging.getLogger(__name__)

#: (database, view) pairs created by this process; their globs already cover new partitions.
_KNOWN_VIEWS: set[tuple[str, str]] = set()

#: Outcome of :meth:`Warehouse.ensure_views`.
ViewStatus = Literal["current", "created", "deferred"]

#: Connection attempts (0.25 s apart) of ``ensure_views`` before giving up for this write.
_CHECK_ATTEMPTS = 8
_WRITE_ATTEMPTS = 8

_VIEW_COMMENTS = (
    "SELECT view_name, comment FROM duckdb_views() "
    "WHERE NOT internal AND database_name = current_database() AND schema_name = 'main'"
)


#: Views computed from the metadata stored in every Parquet file, not from one table.
#: ``stage_timings``: seconds each asset took for each partition (the ``seconds``
#: entry of the file's metadata), for every table that records it.
STAGE_TIMINGS = "stage_timings"
_STAGE_TIMINGS_SQL = (
    "SELECT stage, \"partition\", seconds FROM ("
    "SELECT regexp_extract(file_name, '([^/]+)/[^/]+[.]parquet$', 1) AS stage, "
    "regexp_extract(file_name, '([^/]+)[.]parquet$', 1) AS \"partition\", "
    "CASE WHEN decode(key) = 'cl_pipeline' THEN "
    "TRY_CAST(json_extract_string(decode(value), '$.seconds') AS DOUBLE) END AS seconds "
    "FROM parquet_kv_metadata({pattern}) WHERE decode(key) = 'cl_pipeline') "
    "WHERE seconds IS NOT NULL"
)


def _is_busy(exc: duckdb.Error) -> bool:
    """Whether ``exc`` means another connection holds the database (lock or other mode)."""
    text = str(exc).lower()
    return "lock" in text or "different configuration" in text


def _quote(text: str) -> str:
    """``text`` as an SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


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

    def ensure_views(self, tables: Sequence[str]) -> ViewStatus:
        """Make sure each table with partitions has its current view, without failing on locks.

        Views this process already verified are skipped (their globs see new files).
        The others are checked with a read-only connection; only a missing or changed
        view opens the database read-write. If another process holds the database
        (an open reader blocks the write lock, an open writer blocks even reading),
        a warning is logged and the views are left for the next write.

        Parameters
        ----------
        tables : sequence of str
            Table names (validated).

        Returns
        -------
        {"current", "created", "deferred"}
            Whether the views were already current, were (re)created, or could not
            be checked or created now.
        """
        todo = [t for t in tables if (str(self.path), t) not in _KNOWN_VIEWS]
        wanted = self._definitions(todo)
        if not wanted:
            return "current"
        try:
            stale = self._stale(wanted)
            if stale:
                self._create(stale, attempts=_WRITE_ATTEMPTS)
        except (duckdb.IOException, duckdb.ConnectionException) as exc:
            if not _is_busy(exc):
                raise
            log.warning("warehouse %s is in use by another connection (%s); views of %s will be "
                        "created on the next write", self.path, exc, ", ".join(wanted))  # fmt: skip
            return "deferred"
        _KNOWN_VIEWS.update((str(self.path), t) for t in wanted)
        return "created" if stale else "current"

    def drop_empty_views(self, tables: Sequence[str]) -> ViewStatus:
        """Drop the view of each of ``tables`` that has no partition left.

        A view whose glob matches no file fails every query, so the last
        partition of a table going away (a blocked rerun) takes its view
        with it; the next write creates it again. Like :meth:`ensure_views`,
        a busy database only defers this (a warning is logged).

        Returns
        -------
        {"current", "created", "deferred"}
            ``"created"`` when a view was dropped.
        """
        empty = [validate_name(t) for t in tables if not list_partitions(self.data_dir, t)]
        if not empty or not self.path.exists():
            return "current"
        try:
            present = set(self.views())
            doomed = [t for t in empty if t in present]
            if doomed:
                with self.connect(attempts=_WRITE_ATTEMPTS) as con:
                    con.execute("BEGIN TRANSACTION")
                    for table in doomed:
                        con.execute(f'DROP VIEW IF EXISTS "{table}"')
                    con.execute("COMMIT")
        except (duckdb.IOException, duckdb.ConnectionException) as exc:
            if not _is_busy(exc):
                raise
            log.warning("warehouse %s is in use (%s); empty views %s stay until the next write",
                        self.path, exc, ", ".join(empty))  # fmt: skip
            return "deferred"
        _KNOWN_VIEWS.difference_update((str(self.path), t) for t in empty)
        return "created" if doomed else "current"

    def refresh_views(self, tables: Sequence[str]) -> None:
        """(Re)create the view of each table that has at least one partition, in one transaction.

        Unlike :meth:`ensure_views` this raises ``duckdb.IOException`` if the write
        lock stays unavailable.
        """
        wanted = self._definitions(tables)
        if wanted:
            self._create(wanted, attempts=20)
            _KNOWN_VIEWS.update((str(self.path), t) for t in wanted)

    def _definitions(self, tables: Sequence[str]) -> dict[str, str]:
        """The view query of each of ``tables`` that has at least one partition."""
        wanted = {}
        for table in tables:
            validate_name(table)
            if table == STAGE_TIMINGS:
                if any(self.data_dir.glob("*/*.parquet")):
                    pattern = _quote(str(self.data_dir / "*" / "*.parquet"))
                    wanted[table] = _STAGE_TIMINGS_SQL.format(pattern=pattern)
            elif list_partitions(self.data_dir, table):
                pattern = str(self.data_dir / table / "*.parquet")
                wanted[table] = f"SELECT * FROM read_parquet({_quote(pattern)}, union_by_name = true)"
        return wanted

    def _stale(self, wanted: dict[str, str]) -> dict[str, str]:
        """The entries of ``wanted`` whose view is missing or has another definition (read-only)."""
        if not self.path.exists():
            return dict(wanted)
        with self.connect(read_only=True, attempts=_CHECK_ATTEMPTS) as con:
            present = dict(con.execute(_VIEW_COMMENTS).fetchall())
        return {t: sql for t, sql in wanted.items() if present.get(t) != sql}

    def _create(self, wanted: dict[str, str], attempts: int) -> None:
        """(Re)create views ``{name: query}`` in one transaction, recording each query as its comment."""
        with self.connect(attempts=attempts) as con:
            con.execute("BEGIN TRANSACTION")
            try:
                for table, sql in wanted.items():
                    con.execute(f'CREATE OR REPLACE VIEW "{table}" AS {sql}')
                    con.execute(f'COMMENT ON VIEW "{table}" IS {_quote(sql)}')
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        log.info("warehouse views created: %s", ", ".join(wanted))

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
