"""The DuckDB warehouse: one view per pipeline table over all its Parquet partitions.

``<data dir>/warehouse.duckdb`` holds only views (``CREATE OR REPLACE VIEW t AS
SELECT * FROM read_parquet('<data dir>/t/*.parquet')``), so every date is
queryable together, a rewritten partition replaces its rows, and the database
can be rebuilt from the Parquet files at any time. View names are validated
identifiers; values in queries are bound parameters. The data directory part of
each glob has DuckDB's glob characters escaped (:func:`glob_literal`), so a data
directory named ``runs[1]`` or ``a*b`` is read literally.

The views hold the data directory's absolute path (DuckDB resolves a relative path
against the *client's* working directory, not the database file's, so relative
views would break ``duckdb data/warehouse.duckdb`` and every other client). A
moved or copied data directory is handled by comparing each view's definition with
the current one: every command that opens the warehouse (each write, ``history``,
``diff``, the audit's summary) replaces views that point elsewhere.

A damaged database file (not a DuckDB file, truncated) is moved aside as
``warehouse.duckdb.damaged-<UTC time>`` (kept for inspection), the views are
rebuilt from the Parquet files, and a warning says so. ``history``, ``diff`` and
the audit's summary read through :meth:`Warehouse.reader`, an in-memory database
with the same views, so a busy, stale or damaged ``warehouse.duckdb`` never changes
their answer.

Each view's comment holds its definition, so :meth:`Warehouse.reconcile` can
check with a read-only connection (which other readers, e.g. ``duckdb -readonly``,
do not block) that the views are current, and takes the write lock only to
create, replace or drop a view. A new partition needs no view change. Views and
folders the pipeline did not make are left alone, and no DuckDB error ever fails
a write: the Parquet files are the data, the views are rebuilt from them by a
later write (at most every few seconds while the database is busy).
"""

import contextlib
import datetime
import fcntl
import logging
import os
import re
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import duckdb
import pandas as pd

from cl_pipeline.names import is_identifier
from cl_pipeline.names import validate_identifier as validate_name
from cl_pipeline.storage.decisions import DECISIONS
from cl_pipeline.storage.decisions import view_sql as decisions_view_sql
from cl_pipeline.storage.locks import LOCKS_DIR, LockTimeout, file_lock
from cl_pipeline.storage.versions import DERIVED_VIEWS, derived_view_sql

__all__ = ["STAGE_TIMINGS", "ViewStatus", "Warehouse", "glob_literal"]

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
#: After a deferral, one attempt only until a reconcile succeeds: a reader holding the
#: database for a whole audit costs one wait, not one per write.
_CHECK_ATTEMPTS = 8
_WRITE_ATTEMPTS = 8

#: Texts of DuckDB errors that mean the database file itself is unreadable (lower case).
_DAMAGED = (
    "not a valid duckdb database file",
    "could not read enough bytes",
    "checksum",
    "corrupt",
    "version number",
)

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


def _error_text(exc: duckdb.Error) -> str:
    """The message of ``exc`` in lower case without its quoted parts (paths may say anything)."""
    return re.sub(r'"[^"]*"', '""', str(exc)).lower()


def _is_busy(exc: duckdb.Error) -> bool:
    """Whether ``exc`` means another connection holds the database (lock or other mode)."""
    text = _error_text(exc)
    return "lock" in text or "different configuration" in text


def _is_damaged(exc: duckdb.Error) -> bool:
    """Whether ``exc`` (raised opening the database) means the file is damaged, not busy."""
    text = _error_text(exc)
    return not _is_busy(exc) and any(marker in text for marker in _DAMAGED)


def _quote(text: str) -> str:
    """``text`` as an SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def glob_literal(path: Path | str) -> str:
    """``path`` with DuckDB's glob characters escaped, for the literal part of a glob pattern.

    ``[``, ``*`` and ``?`` become the one-character classes ``[[]``, ``[*]`` and
    ``[?]``; ``]`` and ``{`` are literal in DuckDB's globs already.

    Parameters
    ----------
    path : path or str

    Returns
    -------
    str
        A pattern that matches exactly ``path``.
    """
    return "".join(f"[{c}]" if c in "[*?" else c for c in str(path))


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
        if self.managed:  # the pipeline's warehouse: also the review tables and the views derived from tables
            self.managed += tuple(t for t in (DECISIONS, *DERIVED_VIEWS) if t not in self.managed)

    @contextlib.contextmanager
    def connect(self, read_only: bool = False, attempts: int = 20) -> Iterator[duckdb.DuckDBPyConnection]:
        """Open the database, retrying briefly while another process holds its lock.

        A damaged database file is moved aside and rebuilt first (see :meth:`rebuild_damaged`).
        """
        self.data_dir.mkdir(parents=True, exist_ok=True)
        con = self._open(str(self.path), read_only, attempts)
        try:
            yield con
        finally:
            con.close()

    def _open(self, path: str, read_only: bool, attempts: int) -> duckdb.DuckDBPyConnection:
        attempt, rebuilt = 0, False
        while True:
            try:
                return duckdb.connect(path, read_only=read_only)
            except duckdb.Error as exc:
                if not rebuilt and _is_damaged(exc) and self.rebuild_damaged(exc):
                    rebuilt = True  # a fresh database with every view: open it
                    continue
                attempt += 1
                if not _is_busy(exc) or attempt >= attempts:
                    raise
                time.sleep(0.25)

    def rebuild_damaged(self, error: duckdb.Error) -> bool:
        """Move a damaged ``warehouse.duckdb`` aside and rebuild its views; returns whether it did.

        The damaged file (and its ``.wal``) is renamed ``warehouse.duckdb.damaged-<UTC time>``
        and kept. Nothing is moved while another process has the file open (DuckDB holds
        a POSIX lock on it) or when another process rebuilt it meanwhile (under the lock
        file ``_locks/warehouse.lock``); then it returns True if the file is readable now.
        """
        try:
            with file_lock(self.data_dir / LOCKS_DIR / "warehouse.lock", timeout=30, what=f"warehouse {self.path}"):
                if not self._still_damaged():
                    return True
                if self._in_use():
                    return False
                stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%S.%fZ")
                aside = self.path.with_name(f"{self.path.name}.damaged-{stamp}")
                os.replace(self.path, aside)
                wal = self.path.with_name(self.path.name + ".wal")
                if wal.exists():
                    os.replace(wal, aside.with_name(aside.name + ".wal"))
                self._forget()
                self._create(self._definitions([*self.managed, STAGE_TIMINGS]), attempts=_WRITE_ATTEMPTS)
        except (LockTimeout, OSError) as exc:
            log.warning("warehouse %s is damaged (%s) and could not be rebuilt now: %s", self.path, error, exc)
            return False
        log.warning(
            "warehouse %s was damaged (%s): moved to %s and rebuilt from the Parquet files", self.path, error, aside
        )
        return True

    def _still_damaged(self) -> bool:
        """Whether the database file exists and still cannot be opened because it is damaged."""
        if not self.path.exists():
            return False
        try:
            duckdb.connect(str(self.path), read_only=True).close()
        except duckdb.Error as exc:
            return _is_damaged(exc)
        return False

    def _in_use(self) -> bool:
        """Whether another process holds a POSIX lock on the database file (DuckDB's own lock)."""
        fd = os.open(self.path, os.O_RDWR)
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        else:
            fcntl.lockf(fd, fcntl.LOCK_UN)
            return False
        finally:
            os.close(fd)

    def _forget(self) -> None:
        """Forget what this process knew about the views of this database."""
        key = str(self.path)
        _KNOWN_VIEWS.difference_update({k for k in _KNOWN_VIEWS if k[0] == key})
        _RECONCILED.discard(key)
        _RETRY_AT.pop(key, None)

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
        busy_before = key in _RETRY_AT  # deferred earlier: one quick attempt, no waiting
        try:
            present = self._present(attempts=1 if busy_before else _CHECK_ATTEMPTS)
            ours = [t for t, comment in present.items() if is_identifier(t) and self._is_ours(t, comment)]
            candidates = dict.fromkeys([*tables, *self.managed, *ours, STAGE_TIMINGS])
            wanted = self._definitions(list(candidates))
            stale = {t: sql for t, sql in wanted.items() if present.get(t) != sql}
            empty = [t for t in ours if t not in wanted]
            if stale or empty:
                self._apply(stale, empty, attempts=1 if busy_before else _WRITE_ATTEMPTS)
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

    def repair(self) -> ViewStatus:
        """Bring the views in line with the files now, whatever this process did before.

        What ``history``, ``diff`` and the audit's summary call first: a damaged file is
        rebuilt, views of a moved data directory are pointed at this one, missing views
        are created. Never raises for a busy database (returns ``"deferred"``); does
        nothing where there is no Parquet file yet (nothing is created).
        """
        if not self.path.exists() and not self._definitions([*self.managed, STAGE_TIMINGS]):
            return "current"
        self._forget()
        return self.reconcile()

    def _is_ours(self, table: str, comment: str | None) -> bool:
        """Whether a view's comment is the definition this pipeline gives ``table``, here or in another folder.

        A view made for the same table in a data directory that was moved or copied
        here is ours too (its comment is our query with another path), so it is replaced.
        """
        if comment is None:
            return False
        if table == STAGE_TIMINGS:
            return comment.startswith(_STAGE_TIMINGS_SQL.split("{pattern}")[0])
        return comment == self._sql_for(table) or (
            comment.startswith("SELECT * FROM read_parquet('")
            and comment.endswith(f"/{table}/*.parquet', union_by_name = true)")
        )

    def _present(self, attempts: int = _CHECK_ATTEMPTS) -> dict[str, str | None]:
        """``{view: comment}`` of the views in the database (read-only; empty if no database)."""
        if not self.path.exists():
            return {}
        with self.connect(read_only=True, attempts=attempts) as con:
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
            folder = "*" if table == STAGE_TIMINGS else DERIVED_VIEWS.get(table, table)
            if any(self.data_dir.glob(f"{folder}/*.parquet")):
                wanted[table] = self._sql_for(table)
        return wanted

    def _sql_for(self, table: str) -> str:
        """The query of the view ``table`` (a validated name)."""
        if table == DECISIONS:
            return decisions_view_sql(self.data_dir)
        if table in DERIVED_VIEWS:
            return derived_view_sql(table, self.data_dir)
        folder = glob_literal(self.data_dir)
        if table == STAGE_TIMINGS:
            return _STAGE_TIMINGS_SQL.format(pattern=_quote(f"{folder}/*/*.parquet"))
        pattern = f"{folder}/{table}/*.parquet"
        return f"SELECT * FROM read_parquet({_quote(pattern)}, union_by_name = true)"

    def _create(self, wanted: dict[str, str], attempts: int) -> None:
        """(Re)create views ``{name: query}`` in one transaction, recording each query as its comment."""
        self._apply(wanted, [], attempts)

    def _apply(self, wanted: dict[str, str], drop: Sequence[str], attempts: int) -> None:
        """Create or replace ``wanted`` views and drop ``drop`` views, in one transaction."""
        if "?" in str(self.path):
            raise duckdb.IOException(
                f"DuckDB 2.0 cannot commit to a database whose path contains '?' ({self.path}: it puts the "
                "write-ahead log at a wrong path); history, diff and the audit's summary read the files directly"
            )
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
                with contextlib.suppress(duckdb.Error):  # a failed statement or commit may have ended it
                    con.execute("ROLLBACK")
                raise
        log.info("warehouse views created: %s; dropped: %s", ", ".join(wanted) or "-", ", ".join(drop) or "-")

    @contextlib.contextmanager
    def reader(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """An in-memory DuckDB connection with the warehouse's views of the managed tables.

        The views are created from the Parquet files now, with the same queries as in
        ``warehouse.duckdb``, which is not opened: a reader holding it, a damaged file
        or stale views cannot change the answer, and nothing is locked. A view whose
        files cannot be read is left out, with a warning.
        """
        con = duckdb.connect()
        try:
            for table, sql in self._definitions([*self.managed, STAGE_TIMINGS]).items():
                try:
                    con.execute(f'CREATE VIEW "{table}" AS {sql}')
                except duckdb.Error as exc:  # one unreadable table does not hide the others
                    log.warning("view %s of %s not available: %s", table, self.data_dir, exc)
            yield con
        finally:
            con.close()

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
