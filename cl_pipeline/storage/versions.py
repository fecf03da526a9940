"""Dataset versions and review metrics: two warehouse views computed from other tables.

- ``dataset_versions``: one row per version of a date's data: every raw snapshot
  (``kind = 'raw'``, no parent) and every curated version (``kind = 'curated'``, the raw
  version as parent), read from the metadata stored in the ``raw_labels`` and
  ``curated_dataset`` files (only their footers are read). Columns: ``version``,
  ``kind``, ``parent_version``, ``date``, ``rows``, ``decisions_applied``, ``relabeled``,
  ``dropped``, ``kept``, ``decisions_hash``, ``created_at``, ``stored_in`` (the tables
  holding the rows, comma-separated; null when no table does: the raw parent of an
  audit started from the curated version).
- ``review_metrics``: one row per audited date (``audit_summary``): ``flagged``,
  ``reviewed``, ``confirmed`` (relabel or drop), ``relabeled``, ``dropped``, ``kept``,
  ``reviewed_flagged`` and ``precision`` (confirmed / reviewed among the flagged
  examples), the same for the top 10, 100 and 1000 ranks (``reviewed_top_10``,
  ``precision_top_10``, ...; precision null where none was reviewed),
  ``median_hours_to_decision`` (from ``audit_summary.created_at`` to ``decided_at``)
  and ``audited_at``. A decision counts for the date it was made on (``date``), the
  latest one per (id, date); ranks are those of the date's current ``label_issues``.

Each query depends on which tables have files (a glob matching no file fails in
DuckDB), so :data:`DERIVED_VIEWS` names the table a view needs; the warehouse
recomputes the definition whenever it reconciles and replaces it when it changed.
Paths in the SQL are the resolved data directory with DuckDB's glob characters
escaped, as in the other views.

:func:`latest_decisions` gives the decisions that apply to one date's snapshot.
"""

from pathlib import Path

import duckdb
import pyarrow as pa

from cl_pipeline.storage.decisions import LATEST_ORDER, decision_files, read_decisions
from cl_pipeline.storage.decisions import view_sql as decisions_view_sql

__all__ = [
    "CURATED",
    "DATASET_VERSIONS",
    "DERIVED_VIEWS",
    "RANK_BUCKETS",
    "REVIEW_METRICS",
    "dataset_versions_sql",
    "derived_view_sql",
    "latest_decisions",
    "read_dataset_versions",
    "review_counts",
    "review_metrics_sql",
]

#: The table of curated versions (one partition per date).
CURATED = "curated_dataset"
DATASET_VERSIONS = "dataset_versions"
REVIEW_METRICS = "review_metrics"
#: Each derived view and the table that must have a file for the view to exist.
DERIVED_VIEWS = {DATASET_VERSIONS: "raw_labels", REVIEW_METRICS: "audit_summary"}
#: The top-N rank buckets of ``review_metrics``.
RANK_BUCKETS = (10, 100, 1000)
_CONFIRMED = "('relabel', 'drop')"


def _literal(path: Path | str) -> str:
    """``path`` with DuckDB's glob characters escaped (``[`` -> ``[[]``), as an SQL string body."""
    escaped = "".join(f"[{c}]" if c in "[*?" else c for c in str(path))
    return escaped.replace("'", "''")


def _tables_with_files(data_dir: Path, tables: list[str]) -> list[str]:
    root = Path(data_dir).resolve()
    return [t for t in tables if any((root / t).glob("*.parquet"))]


def _globs(data_dir: Path, tables: list[str]) -> str:
    """An SQL list literal of the ``*.parquet`` globs of ``tables``."""
    root = Path(data_dir).resolve()
    return "[" + ", ".join(f"'{_literal(root / t)}/*.parquet'" for t in tables) + "]"


def dataset_versions_sql(data_dir: Path) -> str:
    """The query of the view ``dataset_versions`` (see the module docstring).

    Raises
    ------
    ValueError
        If no ``raw_labels`` or ``curated_dataset`` file exists (there is no version yet).
    """
    tables = _tables_with_files(data_dir, ["raw_labels", CURATED])
    if not tables:
        raise ValueError(f"no raw_labels or {CURATED} file in {data_dir}: no dataset version yet")
    globs = _globs(data_dir, tables)
    meta = "json_extract_string(m, '$.curation.{}')"
    number = "TRY_CAST(" + meta + " AS BIGINT)"
    return (
        "WITH files AS (SELECT k.file_name, regexp_extract(k.file_name, '([^/]+)/[^/]+[.]parquet$', 1) AS tbl, "
        "regexp_extract(k.file_name, '([^/]+)[.]parquet$', 1) AS date, decode(k.value) AS m, f.num_rows, "
        f"b.last_modified FROM parquet_kv_metadata({globs}) k "
        f"JOIN parquet_file_metadata({globs}) f USING (file_name) "
        f"JOIN (SELECT filename AS file_name, last_modified FROM read_blob({globs})) b USING (file_name) "
        "WHERE decode(k.key) = 'cl_pipeline'), "
        "held AS (SELECT json_extract_string(m, '$.data_version') AS version, "
        "CASE WHEN json_extract(m, '$.curation') IS NULL THEN 'raw' ELSE 'curated' END AS kind, "
        f"{meta.format('parent_version')} AS parent_version, date, num_rows AS rows, "
        f"coalesce({number.format('decisions_applied')}, 0) AS decisions_applied, "
        f"coalesce({number.format('relabeled')}, 0) AS relabeled, "
        f"coalesce({number.format('dropped')}, 0) AS dropped, coalesce({number.format('kept')}, 0) AS kept, "
        f"{meta.format('decisions_hash')} AS decisions_hash, "
        f"coalesce(TRY_CAST({meta.format('created_at')} AS TIMESTAMPTZ), last_modified) AS created_at, "
        "tbl AS stored_in FROM files), "
        f"parents AS (SELECT {meta.format('parent_version')} AS version, 'raw' AS kind, NULL AS parent_version, date, "
        f"{number.format('parent_rows')} AS rows, 0 AS decisions_applied, 0 AS relabeled, 0 AS dropped, "
        "0 AS kept, NULL AS decisions_hash, NULL::TIMESTAMPTZ AS created_at, NULL AS stored_in "
        "FROM files WHERE json_extract(m, '$.curation') IS NOT NULL), "
        "every AS (SELECT * FROM held UNION ALL SELECT * FROM parents) "
        "SELECT version, kind, any_value(parent_version) AS parent_version, date, max(rows) AS rows, "
        "max(decisions_applied) AS decisions_applied, max(relabeled) AS relabeled, max(dropped) AS dropped, "
        "max(kept) AS kept, any_value(decisions_hash) AS decisions_hash, min(created_at) AS created_at, "
        "string_agg(DISTINCT stored_in, ',' ORDER BY stored_in) AS stored_in "
        "FROM every GROUP BY date, kind, version"
    )


def _decisions_relation(data_dir: Path) -> str:
    """Every stored decision (the ``review_decisions`` view's query), or an empty relation of its columns."""
    if decision_files(data_dir):
        return f"({decisions_view_sql(data_dir)})"
    return (
        "(SELECT NULL::VARCHAR AS id, NULL::VARCHAR AS date, NULL::VARCHAR AS decision, "
        "NULL::TIMESTAMPTZ AS decided_at, NULL::TIMESTAMPTZ AS imported_at, NULL::VARCHAR AS decision_id WHERE false)"
    )


def review_metrics_sql(data_dir: Path) -> str:
    """The query of the view ``review_metrics`` (see the module docstring).

    Raises
    ------
    ValueError
        If no ``audit_summary`` file exists (no audited date yet).
    """
    if not _tables_with_files(data_dir, ["audit_summary"]):
        raise ValueError(f"no audit_summary file in {data_dir}: no audited date yet")
    root = Path(data_dir).resolve()
    if _tables_with_files(data_dir, ["label_issues"]):
        flags = (
            'SELECT "partition" AS date, CAST(id AS VARCHAR) AS id, rank '
            f"FROM read_parquet('{_literal(root / 'label_issues')}/*.parquet', union_by_name = true) "
            "WHERE is_label_issue"
        )
    else:
        flags = "SELECT NULL::VARCHAR AS date, NULL::VARCHAR AS id, NULL::BIGINT AS rank WHERE false"
    confirmed = f"decision IN {_CONFIRMED}"
    buckets = "".join(
        f", count(rank) FILTER (WHERE rank <= {n}) AS reviewed_top_{n}, "
        f"(count(rank) FILTER (WHERE rank <= {n} AND {confirmed}))::DOUBLE "
        f"/ nullif(count(rank) FILTER (WHERE rank <= {n}), 0) AS precision_top_{n}"
        for n in RANK_BUCKETS
    )
    return (
        'WITH s AS (SELECT "partition" AS date, num_issues AS flagged, created_at '
        f"FROM read_parquet('{_literal(root / 'audit_summary')}/*.parquet', union_by_name = true)), "
        f"d AS (SELECT id, date, decision, decided_at FROM {_decisions_relation(data_dir)} "
        f"QUALIFY row_number() OVER (PARTITION BY id, date ORDER BY {LATEST_ORDER}) = 1), "
        f"li AS ({flags}), "
        "j AS (SELECT s.date, s.flagged, s.created_at, d.id, d.decision, d.decided_at, li.rank "
        "FROM s LEFT JOIN d ON d.date = s.date LEFT JOIN li ON li.date = d.date AND li.id = d.id) "
        "SELECT date, any_value(flagged) AS flagged, count(id) AS reviewed, "
        f"count(id) FILTER (WHERE {confirmed}) AS confirmed, "
        "count(id) FILTER (WHERE decision = 'relabel') AS relabeled, "
        "count(id) FILTER (WHERE decision = 'drop') AS dropped, count(id) FILTER (WHERE decision = 'keep') AS kept, "
        "count(rank) AS reviewed_flagged, "
        f"(count(rank) FILTER (WHERE {confirmed}))::DOUBLE / nullif(count(rank), 0) AS precision{buckets}, "
        "median(epoch(decided_at) - epoch(created_at)) / 3600.0 AS median_hours_to_decision, "
        "any_value(created_at) AS audited_at FROM j GROUP BY date"
    )


_BUILDERS = {DATASET_VERSIONS: dataset_versions_sql, REVIEW_METRICS: review_metrics_sql}


def derived_view_sql(view: str, data_dir: Path) -> str:
    """The query of one of :data:`DERIVED_VIEWS` for ``data_dir``.

    Raises
    ------
    ValueError
        If ``view`` is not a derived view, or its table has no file.
    """
    if view not in _BUILDERS:
        raise ValueError(f"view must be one of {sorted(_BUILDERS)}, got {view!r}")
    return _BUILDERS[view](data_dir)


def read_dataset_versions(data_dir: Path) -> pa.Table:
    """Every row of ``dataset_versions`` (an in-memory DuckDB over the files; empty when there is none),
    by date, raw before curated."""
    try:
        sql = dataset_versions_sql(data_dir)
    except ValueError:
        return pa.table({"version": pa.array([], pa.string())})
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        return con.sql(f"SELECT * FROM ({sql}) ORDER BY date, kind DESC, version").to_arrow_table()


def latest_decisions(data_dir: Path, until: str) -> pa.Table:
    """The latest decision per id among those made on snapshots up to ``until`` (``date <= until``).

    What applies to the snapshot of ``until``: the curated version and the ``label_issues``
    of an audit started from it (a decision is voided where the given label differs
    from its ``given_label``; the caller checks that against each row).

    Parameters
    ----------
    data_dir : path
    until : str
        A date ``YYYY-MM-DD``.

    Returns
    -------
    pyarrow.Table
        ``DECISION_SCHEMA`` columns, one row per id, ordered by id.
    """
    if not isinstance(until, str):
        raise TypeError(f"until must be a date string YYYY-MM-DD, got {until!r}")
    every = read_decisions(data_dir).drop_columns(["is_latest"])
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        con.register("every_decision", every)
        return con.sql(
            "SELECT * FROM every_decision WHERE date <= ? "
            f"QUALIFY row_number() OVER (PARTITION BY id ORDER BY {LATEST_ORDER}) = 1 ORDER BY id",
            params=[until],
        ).to_arrow_table()


def review_counts(data_dir: Path, date: str) -> dict[str, int]:
    """``reviewed``, ``confirmed`` (relabel or drop) and ``kept``: the decisions made on ``date``'s flags so far
    (the latest per id)."""
    if not decision_files(data_dir):
        return {"reviewed": 0, "confirmed": 0, "kept": 0}
    with duckdb.connect() as con:
        row = con.execute(
            f"SELECT count(*), count(*) FILTER (WHERE decision IN {_CONFIRMED}), "
            "count(*) FILTER (WHERE decision = 'keep') FROM (SELECT decision "
            f"FROM {_decisions_relation(data_dir)} WHERE date = ? "
            f"QUALIFY row_number() OVER (PARTITION BY id ORDER BY {LATEST_ORDER}) = 1)",
            [date],
        ).fetchone()
    reviewed, confirmed, kept = (int(x) for x in row)
    return {"reviewed": reviewed, "confirmed": confirmed, "kept": kept}
