"""The DuckDB warehouse: one view per pipeline table over all its Parquet partitions.

``<data dir>/warehouse.duckdb`` holds only views (``CREATE OR REPLACE VIEW t AS
SELECT * FROM read_parquet('<data dir>/t/*.parquet')``), so every date is
queryable together, a rewritten partition replaces its rows, and the database
can be rebuilt from the Parquet files at any time. View names are validated
identifiers; values in queries are bound parameters.

Each view's comment holds its definition, so :meth:`Warehouse.reconcile` can
check with a read-only connection (which other readers, e.g. ``duckdb -readonly``,
do not block) that the views are current, and takes the write lock only to
create, replace or drop a view. A new partition needs no view change. Views and
folders the pipeline did not make are left alone, and no DuckDB error ever fails
a write: the Parquet files are the data, the views are rebuilt from them by a
later write (at most every few seconds while the database is busy).
"""

import contextlib
import logging
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import duckdb
import pandas as pd

from cl_pipeline.names import is_identifier
from cl_pipeline.names import validate_identifier as validate_name

__all__ = ["STAGE_TIMINGS", "ViewStatus", "Warehouse"]

log = logging.getLogger(__name__)

#: (database, view) pairs this process created or found current; their globs cover new partitions.
_KNOWN_VIEWS: set[tuple[str, str]] = set()
#: Databases this process has reconciled with the files on disk since the last deferral.
_RECONCILED: set[str] = set()
#: After a deferral, when (``time.monotonic()``) a write of known tables may try again.
_RETRY_AT: dict[str, float] = {}
_RETRY_SECONDS = 5.0

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
    'SELECT stage, "partition", seconds FROM ('
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
    managed : sequence of str, optional
        Tables whose views :meth:`reconcile` always keeps in line with their
        folders (the pipeline's tables), besides the ones being written and the
        views it made earlier. Other folders and views are never touched.
    """

    def __init__(self, data_dir: Path, managed: Sequence[str] = ()) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.path = self.data_dir / "warehouse.duckdb"
        self.managed = tuple(validate_name(t) for t in managed)

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
        """Make sure each of ``tables`` that has partitions has its current view, without failing on locks.

        Cheap on the hot path: once this process has reconciled the warehouse
        (see :meth:`reconcile`) and knows a table's view, nothing is opened (the
        view's glob already covers new files). Otherwise the whole warehouse is
        reconciled, which also retries anything an earlier, busy attempt left.

        Parameters
        ----------
        tables : sequence of str
            Table names (validated).

        Returns
        -------
        {"current", "created", "deferred"}
            Whether the views were already current, were changed, or could not
            be checked or changed now.
        """
        key = str(self.path)
        todo = [t for t in tables if (key, t) not in _KNOWN_VIEWS]
        pending = self._definitions(todo)
        if key in _RECONCILED and not pending:
            return "current"
        if not pending and time.monotonic() < _RETRY_AT.get(key, 0.0):
            return "deferred"  # a busy warehouse is retried every _RETRY_SECONDS, not on every write
        return self.reconcile(tables)

    def reconcile(self, tables: Sequence[str] = ()) -> ViewStatus:
        """Bring the views in line with the Parquet files, in one transaction.

        The tables considered are ``tables`` (being written), ``managed`` and
        those whose view this pipeline made earlier (its comment is its query),
        plus ``stage_timings``. Each with partitions gets its view, created or
        replaced when missing or defined differently; one with no file left
        loses its view (a view over no file fails every query). Other folders
        and views are left alone. Definitions are compared with a read-only
        connection, so open readers (``duckdb -readonly``) are not disturbed
        unless something must change. Any DuckDB error (another connection
        holding the database, a file vanishing mid-way) is logged as a warning
        and retried by a later write: the Parquet files, not the views, are the
        data, so a write never fails because of the views.

        Parameters
        ----------
        tables : sequence of str, optional
            Tables being written now (validated names).

        Returns
        -------
        {"current", "created", "deferred"}
        """
        key = str(self.path)
        try:
            present = self._present()
            ours = [t for t, comment in present.items() if is_identifier(t) and comment == self._sql_for(t)]
            candidates = dict.fromkeys([*tables, *self.managed, *ours, STAGE_TIMINGS])
            wanted = self._definitions(list(candidates))
            stale = {t: sql for t, sql in wanted.items() if present.get(t) != sql}
            empty = [t for t in ours if t not in wanted]
            if stale or empty:
                self._apply(stale, empty, attempts=_WRITE_ATTEMPTS)
        except duckdb.Error as exc:
            _RECONCILED.discard(key)
            _RETRY_AT[key] = time.monotonic() + _RETRY_SECONDS
            busy = "in use by another connection" if _is_busy(exc) else "not updated"
            log.warning("warehouse %s %s (%s); its views will be updated by a later write", self.path, busy, exc)
            return "deferred"
        _KNOWN_VIEWS.difference_update({(key, t) for t in present} - {(key, t) for t in wanted})
        _KNOWN_VIEWS.update((key, t) for t in wanted)
        _RECONCILED.add(key)
        _RETRY_AT.pop(key, None)
        return "created" if stale or empty else "current"

    def _present(self) -> dict[str, str | None]:
        """``{view: comment}`` of the views in the database (read-only; empty if no database)."""
        if not self.path.exists():
            return {}
        with self.connect(read_only=True, attempts=_CHECK_ATTEMPTS) as con:
            return dict(con.execute(_VIEW_COMMENTS).fetchall())

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
            folder = "*" if table == STAGE_TIMINGS else table
            if any(self.data_dir.glob(f"{folder}/*.parquet")):
                wanted[table] = self._sql_for(table)
        return wanted

    def _sql_for(self, table: str) -> str:
        """The query of the view ``table`` (a validated name)."""
        if table == STAGE_TIMINGS:
            return _STAGE_TIMINGS_SQL.format(pattern=_quote(str(self.data_dir / "*" / "*.parquet")))
        pattern = str(self.data_dir / table / "*.parquet")
        return f"SELECT * FROM read_parquet({_quote(pattern)}, union_by_name = true)"

    def _create(self, wanted: dict[str, str], attempts: int) -> None:
        """(Re)create views ``{name: query}`` in one transaction, recording each query as its comment."""
        self._apply(wanted, [], attempts)

    def _apply(self, wanted: dict[str, str], drop: Sequence[str], attempts: int) -> None:
        """Create or replace ``wanted`` views and drop ``drop`` views, in one transaction."""
        with self.connect(attempts=attempts) as con:
            con.execute("BEGIN TRANSACTION")
            try:
                for table, sql in wanted.items():
                    con.execute(f'CREATE OR REPLACE VIEW "{validate_name(table)}" AS {sql}')
                    con.execute(f'COMMENT ON VIEW "{table}" IS {_quote(sql)}')
                for table in drop:
                    con.execute(f'DROP VIEW IF EXISTS "{validate_name(table)}"')
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        log.info("warehouse views created: %s; dropped: %s", ", ".join(wanted) or "-", ", ".join(drop) or "-")

    def views(self) -> list[str]:
        """Names of the views present in the warehouse."""
        if not self.path.exists():
            return []
        with self.connect(read_only=True) as con:
            rows = con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal ORDER BY view_name").fetchall()
        return [r[0] for r in rows]

    def query(self, sql: str, params: Sequence[Any] | None = None) -> pd.DataFrame:
        """Run a read-only query with bound ``params`` and return a DataFrame."""
        if not self.path.exists():
            raise FileNotFoundError(f"no warehouse at {self.path}: run `cl-pipeline audit` first")
        with self.connect(read_only=True) as con:
            return con.execute(sql, list(params or [])).df()
