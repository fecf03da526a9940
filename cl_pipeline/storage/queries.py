"""Warehouse queries behind ``cl-pipeline history``, ``diff`` and the audit summary.

Each first repairs ``warehouse.duckdb`` where it can (:meth:`Warehouse.repair`: a
damaged file rebuilt, views of a moved data directory replaced, missing views
created; a busy database is left for later), then reads through
:meth:`Warehouse.reader` (the same views in an in-memory database), so the answer
is the Parquet files' whatever the state of ``warehouse.duckdb``.
All values are bound parameters; the only identifiers are the pipeline's own view names.
"""

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from cl_pipeline.config import ConfigError
from cl_pipeline.names import validate_identifier
from cl_pipeline.storage.store import TABLES
from cl_pipeline.storage.warehouse import Warehouse

__all__ = ["AuditReport", "audit_report", "diff_tables", "history_table", "top_rows"]

_FAILED_CHECKS = (
    "(SELECT partition, string_agg(check_name, ',' ORDER BY check_name) AS failed_checks "
    "FROM check_results WHERE NOT passed GROUP BY partition)"
)
_NO_FAILED_CHECKS = "(SELECT NULL::VARCHAR AS partition, NULL::VARCHAR AS failed_checks)"
_HISTORY_SQL = (
    "SELECT s.partition AS date, s.n, s.k, round(s.estimated_noise_rate, 4) AS noise_rate, "
    "s.num_issues AS issues, round(s.health_score, 4) AS health, s.data_version, "
    "coalesce(f.failed_checks, '') AS failed_checks FROM audit_summary s LEFT JOIN {failed} f "
    "USING (partition) ORDER BY s.partition"
)


@dataclass(frozen=True)
class _Views:
    """An open in-memory reader of one data directory's views."""

    data_dir: Path
    con: Any
    views: frozenset[str]

    def query(self, sql: str, params: Sequence[Any] | None = None) -> pd.DataFrame:
        return self.con.execute(sql, list(params or [])).df()


@contextlib.contextmanager
def _reader(data_dir: Path) -> Iterator[_Views]:
    """Repair ``warehouse.duckdb`` if it can, then read the files through in-memory views."""
    warehouse = Warehouse(data_dir, managed=TABLES)
    warehouse.repair()
    with warehouse.reader() as con:
        names = con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()
        yield _Views(warehouse.data_dir, con, frozenset(r[0] for r in names))


def history_table(data_dir: Path) -> pd.DataFrame:
    """One row per audited date: size, noise rate, issues, health, data version, failed checks.

    Raises
    ------
    ConfigError
        If the warehouse holds no audit yet.
    """
    with _reader(data_dir) as wh:
        if "audit_summary" not in wh.views:
            raise ConfigError(f"no audits in {wh.data_dir}: run `cl-pipeline audit` first")
        failed = _FAILED_CHECKS if "check_results" in wh.views else _NO_FAILED_CHECKS
        return wh.query(_HISTORY_SQL.format(failed=failed))


_DIFF_SQL = """
WITH a AS (SELECT id, given_label, is_label_issue FROM label_issues WHERE partition = ?),
     b AS (SELECT id, given_label, suggested_label, is_label_issue FROM label_issues WHERE partition = ?)
SELECT coalesce(a.id, b.id) AS id, a.given_label AS label_before, b.given_label AS label_after,
       coalesce(a.is_label_issue, false) AS flagged_before, coalesce(b.is_label_issue, false) AS flagged_after,
       a.id IS NOT NULL AS in_before, b.id IS NOT NULL AS in_after, b.suggested_label
FROM a FULL OUTER JOIN b ON a.id = b.id ORDER BY 1
"""


def diff_tables(data_dir: Path, date1: str, date2: str) -> dict[str, pd.DataFrame]:
    """Examples newly flagged, no longer flagged and relabeled between two audited dates.

    Raises
    ------
    ConfigError
        If either date has no audit.
    """
    with _reader(data_dir) as wh:
        audited = set()
        if "label_issues" in wh.views:
            audited = set(wh.query("SELECT DISTINCT partition FROM label_issues")["partition"])
        missing = [d for d in (date1, date2) if d not in audited]
        if missing:
            raise ConfigError(f"no audit for {', '.join(missing)} (audited: {', '.join(sorted(audited)) or 'none'})")
        both = wh.query(_DIFF_SQL, [date1, date2])
    present = both["in_before"] & both["in_after"]
    return {
        "newly flagged": both[both["flagged_after"] & ~both["flagged_before"] & both["in_after"]],
        "no longer flagged": both[both["flagged_before"] & ~both["flagged_after"] & both["in_before"]],
        "relabeled": both[present & (both["label_before"] != both["label_after"])],
    }


@dataclass(frozen=True)
class AuditReport:
    """What the warehouse says about one audited date.

    Attributes
    ----------
    summary : pandas.Series
        The ``audit_summary`` row.
    top_issues : DataFrame
        Up to ``top`` flagged examples, most suspicious first.
    model : pandas.Series or None
        The ``retrained_model`` row, if the date has one.
    """

    summary: pd.Series
    top_issues: pd.DataFrame
    model: pd.Series | None


def audit_report(data_dir: Path, date: str, top: int = 10) -> AuditReport | None:
    """The summary, top issues and model row of ``date``; None if the date has no summary.

    Raises
    ------
    duckdb.Error
        If the Parquet files cannot be read (one removed while being read).
    """
    with _reader(data_dir) as wh:
        if "audit_summary" not in wh.views:
            return None
        summary = wh.query("SELECT * FROM audit_summary WHERE partition = ?", [date])
        if summary.empty:
            return None
        top_issues = wh.query(
            "SELECT rank, id, given_label, suggested_label, label_quality FROM label_issues "
            "WHERE partition = ? AND is_label_issue ORDER BY rank LIMIT ?",
            [date, int(top)],
        )
        model = None
        if "retrained_model" in wh.views:
            rows = wh.query("SELECT * FROM retrained_model WHERE partition = ?", [date])
            model = None if rows.empty else rows.iloc[0]
        return AuditReport(summary.iloc[0], top_issues, model)


def top_rows(path: Path, columns: list[str], flag: str, order: str, limit: int) -> pd.DataFrame:
    """The first ``limit`` rows of one Parquet file where ``flag`` is true, by ``order`` ascending.

    A top-k in DuckDB over the file (in an in-memory database, so the warehouse is not
    locked): memory holds ``limit`` rows, not the file. Names are validated identifiers;
    the path and the limit are bound parameters.
    """
    import duckdb

    names = ", ".join(f'"{validate_identifier(c, "column")}"' for c in columns)
    flag, order = validate_identifier(flag, "column"), validate_identifier(order, "column")
    sql = f'SELECT {names} FROM read_parquet(?) WHERE "{flag}" ORDER BY "{order}" LIMIT ?'
    with duckdb.connect() as con:
        return con.execute(sql, [str(path), int(limit)]).df()
