"""The append-only ``review_decisions`` table and the review queue query.

Layout: ``<data dir>/review_decisions/<date>.<key>.parquet``, one file per import
(``key``: 16 hex digits of a hash of the new decisions' ids), never rewritten or
deleted. Each file is written with :func:`~cl_pipeline.storage.parquet.atomic_write_bytes`
(temp file, fsync, rename), under an exclusive ``flock`` of
``review_decisions/.lock`` held while the ids already stored are read and the
new file is renamed into place. So an import lands whole or not at all, two
imports running at once never write the same decision twice, and nothing an
audit does (it never touches this folder) can lose one.

Row schema (:data:`DECISION_SCHEMA`): ``decision_id`` (32 hex digits of a SHA-256
over the decision's content: id, date, decision, new label, given label, reviewer,
note, and the time the source gave it, else the source file's hash; so importing
the same file again adds nothing), ``id`` (the example id as text), ``date`` (the
audited snapshot the flags came from), ``decision`` (``keep`` | ``relabel`` | ``drop``),
``new_label`` (``relabel`` only), ``given_label`` (at review time), ``reviewer``,
``note``, ``decided_at`` (UTC: the source's time, else the import's),
``imported_at`` (UTC), ``source_file`` (its name), ``source_sha256``, ``source_format``.

The latest decision per id wins: the greatest ``(decided_at, imported_at, decision_id)``
(:data:`LATEST_ORDER`). The warehouse view ``review_decisions`` holds every row plus
``is_latest`` (:func:`view_sql`).
"""

import contextlib
import fcntl
import hashlib
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from cl_pipeline.names import validate_identifier
from cl_pipeline.storage.parquet import atomic_write_bytes, partition_path

__all__ = [
    "DECISIONS",
    "DECISION_KINDS",
    "DECISION_SCHEMA",
    "LATEST_ORDER",
    "AppendResult",
    "append_decisions",
    "decision_files",
    "decision_id",
    "known_ids",
    "read_decisions",
    "review_queue_reader",
    "view_sql",
]

log = logging.getLogger(__name__)

#: The table (folder and warehouse view) of review decisions.
DECISIONS = "review_decisions"
#: What a reviewer can decide about a flagged example.
DECISION_KINDS = ("keep", "relabel", "drop")
_UTC = pa.timestamp("us", tz="UTC")
#: Every file of ``review_decisions`` has exactly this schema.
DECISION_SCHEMA = pa.schema(
    [
        pa.field("decision_id", pa.string(), nullable=False),
        pa.field("id", pa.string(), nullable=False),
        pa.field("date", pa.string(), nullable=False),
        pa.field("decision", pa.string(), nullable=False),
        pa.field("new_label", pa.string()),
        pa.field("given_label", pa.string(), nullable=False),
        pa.field("reviewer", pa.string(), nullable=False),
        pa.field("note", pa.string()),
        pa.field("decided_at", _UTC, nullable=False),
        pa.field("imported_at", _UTC, nullable=False),
        pa.field("source_file", pa.string(), nullable=False),
        pa.field("source_sha256", pa.string(), nullable=False),
        pa.field("source_format", pa.string(), nullable=False),
    ]
)
#: The order in which a later decision on the same id replaces an earlier one (SQL, descending = latest).
LATEST_ORDER = "decided_at DESC, imported_at DESC, decision_id DESC"


def decision_id(
    example_id: str,
    date: str,
    decision: str,
    new_label: str | None,
    given_label: str,
    reviewer: str,
    note: str | None,
    when: str,
) -> str:
    """The content key of one decision: 32 hex digits of a SHA-256 over its fields.

    ``when`` is the time the source gave the decision (ISO 8601), or, for a source
    without times, the source file's SHA-256: the same decision restated in another
    file is a new decision (it may override one made in between), the same file
    imported twice is not.
    """
    fields = (example_id, date, decision, new_label, given_label, reviewer, note, when)
    if not all(isinstance(f, str) for f in fields if f is not None):
        raise TypeError(f"decision fields must be str or None, got {[type(f).__name__ for f in fields]}")
    text = "\x1f".join("\x00" if f is None else f for f in fields)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _folder(data_dir: Path) -> Path:
    return Path(data_dir) / DECISIONS


def decision_files(data_dir: Path) -> list[Path]:
    """The Parquet files of ``review_decisions`` (sorted; empty if none)."""
    return sorted(_folder(data_dir).glob("*.parquet"))


def _pattern(data_dir: Path) -> str:
    """The DuckDB glob of the decision files; the folder's own glob characters escaped (``[`` -> ``[[]``)."""
    folder = "".join(f"[{c}]" if c in "[*?" else c for c in str(_folder(data_dir).resolve()))
    return folder + "/*.parquet"


@contextlib.contextmanager
def _locked(data_dir: Path) -> Iterator[None]:
    """An exclusive advisory lock on the decisions folder (``flock``: released if the process dies)."""
    folder = _folder(data_dir)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def known_ids(data_dir: Path, candidates: Sequence[str]) -> set[str]:
    """Which of ``candidates`` (decision ids) are already stored."""
    if not decision_files(data_dir) or not candidates:
        return set()
    with duckdb.connect() as con:
        con.register("wanted", pa.table({"decision_id": pa.array(list(candidates), pa.string())}))
        rows = con.execute(
            "SELECT DISTINCT d.decision_id FROM read_parquet(?, union_by_name = true) d "
            "JOIN wanted USING (decision_id)",
            [_pattern(data_dir)],
        ).fetchall()
    return {r[0] for r in rows}


@dataclass(frozen=True)
class AppendResult:
    """What :func:`append_decisions` did.

    Attributes
    ----------
    path : Path or None
        The file written, or None when every decision was already stored.
    written : int
        Decisions written.
    already_stored : int
        Decisions skipped because an earlier import stored them.
    """

    path: Path | None
    written: int
    already_stored: int


def append_decisions(data_dir: Path, decisions: pa.Table) -> AppendResult:
    """Append the decisions not stored yet as one new Parquet file (atomic, under the folder lock).

    Parameters
    ----------
    data_dir : path
        The pipeline's data directory.
    decisions : pyarrow.Table
        Rows with :data:`DECISION_SCHEMA`, all of one ``date``, distinct ``decision_id``.

    Returns
    -------
    AppendResult

    Raises
    ------
    TypeError
        If ``decisions`` is not a table with :data:`DECISION_SCHEMA`.
    ValueError
        If it is empty, mixes dates or repeats a ``decision_id``.
    """
    if not isinstance(decisions, pa.Table) or not decisions.schema.equals(DECISION_SCHEMA):
        got = decisions.schema if isinstance(decisions, pa.Table) else type(decisions).__name__
        raise TypeError(f"decisions must be a pyarrow.Table with DECISION_SCHEMA, got {got}")
    dates = set(decisions.column("date").to_pylist())
    ids = decisions.column("decision_id").to_pylist()
    if decisions.num_rows == 0 or len(dates) != 1 or len(set(ids)) != len(ids):
        raise ValueError(
            f"decisions: need at least one row, one date and distinct decision ids; got {decisions.num_rows} "
            f"rows, dates {sorted(dates)}, {len(ids) - len(set(ids))} repeated ids"
        )
    (date,) = dates
    with _locked(data_dir):
        stored = known_ids(data_dir, ids)
        new = decisions.filter(pa.array([i not in stored for i in ids]))
        if new.num_rows == 0:
            return AppendResult(None, 0, len(stored))
        key = hashlib.sha256("\n".join(sorted(new.column("decision_id").to_pylist())).encode()).hexdigest()[:16]
        path = partition_path(Path(data_dir), DECISIONS, f"{date}.{key}")
        atomic_write_bytes(path, lambda handle: pq.write_table(new, handle, compression="zstd"))
    log.info("wrote %s review decisions to %s", new.num_rows, path)
    return AppendResult(path, new.num_rows, len(stored))


def _decisions_source(data_dir: Path) -> tuple[str, list[str]]:
    """A SQL relation of every stored decision (distinct ``decision_id``) and its parameters."""
    if not decision_files(data_dir):
        empty = ", ".join(f'NULL::{_sql_type(f.type)} AS "{f.name}"' for f in DECISION_SCHEMA)
        return f"(SELECT {empty} WHERE false)", []
    return (
        "(SELECT * FROM read_parquet(?, union_by_name = true) QUALIFY row_number() OVER "
        "(PARTITION BY decision_id ORDER BY imported_at, source_sha256) = 1)",
        [_pattern(data_dir)],
    )


def _sql_type(arrow_type: pa.DataType) -> str:
    return "TIMESTAMPTZ" if pa.types.is_timestamp(arrow_type) else "VARCHAR"


def read_decisions(data_dir: Path, latest_only: bool = False) -> pa.Table:
    """Every stored decision (or only the latest per id), ordered by id, then latest first.

    Returns
    -------
    pyarrow.Table
        :data:`DECISION_SCHEMA` columns plus ``is_latest`` (bool).
    """
    source, params = _decisions_source(data_dir)
    where = "WHERE is_latest" if latest_only else ""
    sql = (
        f"SELECT * FROM (SELECT *, row_number() OVER (PARTITION BY id ORDER BY {LATEST_ORDER}) = 1 AS is_latest "
        f"FROM {source}) {where} ORDER BY id, {LATEST_ORDER}"
    )
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        return con.sql(sql, params=params).to_arrow_table()


def view_sql(data_dir: Path) -> str:
    """The query of the warehouse view ``review_decisions``: every decision plus ``is_latest``.

    For ``Warehouse._sql_for`` (the pattern is a quoted literal, as the other views'
    are; the path is the resolved data directory, not user text).
    """
    pattern = _pattern(data_dir).replace("'", "''")
    return (
        f"SELECT *, row_number() OVER (PARTITION BY id ORDER BY {LATEST_ORDER}) = 1 AS is_latest "
        f"FROM read_parquet('{pattern}', union_by_name = true)"
    )


def review_queue_reader(
    data_dir: Path,
    label_issues: Path,
    raw_labels: Path,
    id_column: str,
    display: Sequence[str],
    date: str,
    top: int | None,
    batch_rows: int = 8192,
) -> pa.RecordBatchReader:
    """The flagged examples of one date not decided yet, most suspicious first, as record batches.

    An example counts as decided when its latest decision (any date) was made on the
    same given label; a decision on a label that has changed since does not hide it.
    DuckDB sorts (spilling to disk if needed) and streams; memory holds one batch.

    Parameters
    ----------
    data_dir : path
        The data directory (for the stored decisions).
    label_issues, raw_labels : path
        The date's ``label_issues`` and ``raw_labels`` Parquet files.
    id_column : str
        The id column of ``raw_labels`` (a plain identifier).
    display : sequence of str
        Columns of ``raw_labels`` to add (plain identifiers, present in the file).
    date : str
        The date written in the ``date`` column.
    top : int or None
        At most this many rows (the ``top`` lowest ranks).

    Returns
    -------
    pyarrow.RecordBatchReader
        ``id, date, rank, given_label, suggested_label, label_quality``, the display columns,
        then empty ``decision, new_label, note`` for the reviewer to fill in.
    """
    names = [validate_identifier(c, "column") for c in display]
    validate_identifier(id_column, "column")
    if top is not None and (isinstance(top, bool) or not isinstance(top, int) or top < 1):
        raise ValueError(f"top must be an integer >= 1 or None, got {top!r}")
    shown = "".join(f', r."{c}"' for c in names)
    join = f'LEFT JOIN read_parquet(?) r ON CAST(r."{id_column}" AS VARCHAR) = li.id' if names else ""
    source, params = _decisions_source(data_dir)
    sql = (
        "WITH li AS (SELECT CAST(id AS VARCHAR) AS id, rank, given_label, suggested_label, label_quality "
        "FROM read_parquet(?) WHERE is_label_issue), "
        f"latest AS (SELECT id, given_label FROM {source} "
        f"QUALIFY row_number() OVER (PARTITION BY id ORDER BY {LATEST_ORDER}) = 1) "
        "SELECT li.id, ?::VARCHAR AS date, li.rank, li.given_label, li.suggested_label, li.label_quality"
        f"{shown}, NULL::VARCHAR AS decision, NULL::VARCHAR AS new_label, NULL::VARCHAR AS note "
        f"FROM li {join} WHERE NOT EXISTS (SELECT 1 FROM latest d WHERE d.id = li.id "
        "AND d.given_label = li.given_label) ORDER BY li.rank, li.id"
    )
    args: list[object] = [str(label_issues), *params, date]
    if names:
        args.append(str(raw_labels))
    if top is not None:
        sql += " LIMIT ?"
        args.append(int(top))
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    reader = con.sql(sql, params=args).to_arrow_reader(batch_rows)
    return _closing(reader, con)


def _closing(reader: pa.RecordBatchReader, con: duckdb.DuckDBPyConnection) -> pa.RecordBatchReader:
    """``reader`` as a new reader that closes ``con`` once exhausted."""

    def batches() -> Iterator[pa.RecordBatch]:
        try:
            yield from reader
        finally:
            con.close()

    return pa.RecordBatchReader.from_batches(reader.schema, batches())
