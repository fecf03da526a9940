"""The review loop: export the flags of an audited date as a worklist, import the reviewers' decisions.

- :func:`export_queue` writes the flagged examples of a date not decided yet, most
  suspicious first, as CSV, Parquet or Label Studio tasks (the suggested label as a
  prediction), with :func:`labeling_config` for the Label Studio project.
- :func:`import_decisions` reads a CSV/Parquet decision file or a Label Studio JSON
  export (:mod:`cl_pipeline.audit.review_files`), validates every row against the
  audited snapshot before anything is written, and appends the new decisions to the
  ``review_decisions`` table (:mod:`cl_pipeline.storage.decisions`).

Decision file columns: ``id``, ``decision`` (``keep`` | ``relabel`` | ``drop``; a blank
decision is a row not reviewed yet and is skipped), ``new_label`` (``relabel`` only),
optional ``date`` (one per file; default the ``date`` argument, else the latest
audited date), ``reviewer`` (default the ``reviewer`` argument, else the login name),
``note``, ``decided_at`` (ISO 8601, default the import time), ``given_label`` (checked
against the snapshot when present). Other columns (an export's) are ignored.
"""

import datetime
import getpass
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

import duckdb
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from cl_pipeline.audit.review_files import (
    DROP_CHOICE,
    LS_CHOICES,
    LS_ID_KEY,
    LS_NOTE,
    DecisionRow,
    ReviewInputError,
    read_decision_file,
)
from cl_pipeline.config import AuditConfig, ConfigError
from cl_pipeline.storage.decisions import (
    DECISION_SCHEMA,
    DECISIONS,
    AppendResult,
    append_decisions,
    decision_id,
    review_queue_reader,
)
from cl_pipeline.storage.parquet import atomic_write_bytes, list_partitions
from cl_pipeline.storage.store import PartitionStore

__all__ = [
    "EXPORT_FORMATS",
    "ExportResult",
    "ImportResult",
    "ReviewInputError",
    "export_queue",
    "import_decisions",
    "labeling_config",
    "resolve_date",
]

#: ``review export --format`` values and the file suffix each needs.
EXPORT_FORMATS = {"csv": ".csv", "parquet": ".parquet", "label-studio": ".json"}
#: The columns of an exported queue besides the display columns.
QUEUE_COLUMNS = (
    "id",
    "date",
    "rank",
    "given_label",
    "suggested_label",
    "label_quality",
    "decision",
    "new_label",
    "note",
)
#: ``model_version`` of the Label Studio predictions.
MODEL_VERSION = "cl_pipeline"
#: At most this many problems are listed in one import error.
MAX_LISTED = 20


def audited_dates(store: PartitionStore) -> list[str]:
    """Dates with both ``label_issues`` and ``raw_labels`` (sorted)."""
    raw = set(list_partitions(store.root, "raw_labels"))
    return [d for d in list_partitions(store.root, "label_issues") if d in raw]


def resolve_date(store: PartitionStore, date: str | None) -> str:
    """``date`` if audited, else (``None``) the latest audited date.

    Raises
    ------
    ConfigError
        If ``date`` is not ``YYYY-MM-DD`` or was not audited, or nothing was audited.
    """
    dates = audited_dates(store)
    if date is None:
        if not dates:
            raise ConfigError(f"no audited date in {store.root}: run `cl-pipeline audit` first")
        return _single_label(store, dates[-1])
    try:
        ok = datetime.date.fromisoformat(date).isoformat() == date
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ConfigError(f"date {date!r} is not a date YYYY-MM-DD")
    if date not in dates:
        raise ConfigError(f"date {date} has no audit (audited: {', '.join(dates) or 'none'})")
    return _single_label(store, date)


def _single_label(store: PartitionStore, date: str) -> str:
    """``date``, unless its audit is multi-label: reviews and curated versions are single-label only."""
    if store.metadata("raw_labels", date).get("label_kind") == "multilabel":
        raise ConfigError(
            f"the audit of {date} is multi-label: the review queue, review decisions and curated versions "
            "work on single-label audits only (see 'Multi-label audits' in docs/pipeline.md)"
        )
    return date


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_queue` wrote: ``rows`` examples of ``date`` to ``path`` (and the labeling config)."""

    path: Path
    rows: int
    date: str
    format: str
    labeling_config: Path | None


def _export_format(out: Path, fmt: str | None) -> str:
    by_suffix = {suffix: name for name, suffix in EXPORT_FORMATS.items()}
    if fmt is None:
        fmt = by_suffix.get(out.suffix.lower())
        if fmt is None:
            raise ConfigError(f"--out {out}: use a .csv, .parquet or .json (label-studio) file name")
    if fmt not in EXPORT_FORMATS:
        raise ConfigError(f"--format {fmt!r} is not one of {', '.join(EXPORT_FORMATS)}")
    if out.suffix.lower() != EXPORT_FORMATS[fmt]:
        raise ConfigError(f"--out {out}: a {fmt} export needs a {EXPORT_FORMATS[fmt]} file name")
    return fmt


def export_queue(
    store: PartitionStore,
    config: AuditConfig,
    out: Path,
    date: str | None = None,
    top: int | None = None,
    fmt: str | None = None,
) -> ExportResult:
    """Write the review queue of ``date``: flagged, not yet decided, most suspicious first.

    Parameters
    ----------
    store : PartitionStore
        The data directory (read only, except ``out``).
    config : AuditConfig
        Its ``columns.display`` are added from the date's ``raw_labels``.
    out : path
        The file to write (atomically): ``.csv``, ``.parquet`` or ``.json`` (Label Studio tasks;
        the labeling config goes next to it as ``<stem>.label_config.xml``).
    date : str, optional
        An audited date (default: the latest).
    top : int, optional
        At most this many examples.
    fmt : {"csv", "parquet", "label-studio"}, optional
        Default: from the suffix of ``out``.

    Returns
    -------
    ExportResult

    Raises
    ------
    ConfigError
        A bad date, format, file name or display column (nothing written).
    """
    out = Path(out)
    fmt = _export_format(out, fmt)
    date = resolve_date(store, date)
    meta = store.metadata("raw_labels", date)
    display = list(config.columns.display) if config.columns is not None else []
    available = store.schema("raw_labels", date).names
    missing = [c for c in display if c not in available]
    if missing:
        raise ConfigError(f"columns.display {missing[0]!r} is not a column of raw_labels {date} (columns: {available})")
    taken = [c for c in display if c in QUEUE_COLUMNS]
    if taken:
        raise ConfigError(f"columns.display {taken[0]!r} is a column of the queue itself ({', '.join(QUEUE_COLUMNS)})")
    reader = review_queue_reader(
        store.root,
        store.path("label_issues", date),
        store.path("raw_labels", date),
        meta["id_column"],
        display,
        date,
        top,
    )
    if fmt == "label-studio":
        rows = _write_tasks(out, reader, display)
        xml = out.with_name(f"{out.stem}.label_config.xml")
        text = labeling_config(list(meta["classes"]), display)
        atomic_write_bytes(xml, lambda handle: handle.write(text.encode()))
        return ExportResult(out, rows, date, fmt, xml)
    rows = _write_table(out, reader, fmt)
    return ExportResult(out, rows, date, fmt, None)


def _write_table(out: Path, reader: pa.RecordBatchReader, fmt: str) -> int:
    """Stream ``reader`` into a CSV or Parquet file (atomically); returns the row count."""
    rows = 0

    def write(handle: Any) -> None:
        nonlocal rows
        if fmt == "csv":
            writer: Any = pacsv.CSVWriter(handle, reader.schema)
        else:
            writer = pq.ParquetWriter(handle, reader.schema, compression="zstd")
        try:
            for batch in reader:
                writer.write_batch(batch)
                rows += batch.num_rows
        finally:
            writer.close()

    atomic_write_bytes(out, write)
    return rows


def _task(row: dict[str, Any], display: Sequence[str]) -> dict[str, Any]:
    """One Label Studio task: our fields as ``data``, the suggested label as a prediction."""
    data = {
        LS_ID_KEY: row["id"],
        "date": row["date"],
        "rank": row["rank"],
        "given_label": row["given_label"],
        "suggested_label": row["suggested_label"],
        "label_quality": row["label_quality"],
    }
    data |= {c: None if row[c] is None else str(row[c]) for c in display}  # shown as text or an image URL
    score = min(1.0, max(0.0, 1.0 - float(row["label_quality"])))
    choice = {"choices": [row["suggested_label"]]}
    result = [{"from_name": LS_CHOICES, "to_name": _object_name(display), "type": "choices", "value": choice}]
    return {"data": data, "predictions": [{"model_version": MODEL_VERSION, "score": score, "result": result}]}


def _write_tasks(out: Path, reader: pa.RecordBatchReader, display: Sequence[str]) -> int:
    """Stream ``reader`` into a Label Studio tasks JSON list (atomically); returns the task count."""
    rows = 0

    def write(handle: Any) -> None:
        nonlocal rows
        handle.write(b"[")
        for batch in reader:
            for row in batch.to_pylist():
                handle.write(b"\n" if rows == 0 else b",\n")
                handle.write(json.dumps(_task(row, display), default=str).encode())
                rows += 1
        handle.write(b"\n]\n")

    atomic_write_bytes(out, write)
    return rows


_IMAGE_WORDS = ("image", "img", "picture", "photo")


def _is_image(column: str) -> bool:
    """Display columns named like ``image``, ``image_url``, ``img_path`` are shown as pictures."""
    return any(word in column.lower() for word in _IMAGE_WORDS)


def _object_name(display: Sequence[str]) -> str:
    """The Label Studio object the choices refer to: the first display column, else the id."""
    return f"show_{display[0]}" if display else "show_id"


def labeling_config(classes: Sequence[str], display: Sequence[str]) -> str:
    """The Label Studio labeling config of an exported queue.

    Shows the id, given and suggested label and each display column (``<Image>`` for
    columns named like images, ``<Text>`` otherwise); one single choice ``label`` among
    the classes plus ``DROP_CHOICE``; a free-text ``note``. Choosing the given label means
    keep, another class relabel, ``DROP_CHOICE`` drop.

    Raises
    ------
    ValueError
        If a class is named ``DROP_CHOICE`` or ``classes`` is empty.
    """
    classes = [str(c) for c in classes]
    if not classes or DROP_CHOICE in classes:
        raise ValueError(f"classes must be non-empty and not contain {DROP_CHOICE!r}, got {classes}")
    lines = ["<View>", '  <Header value="Example"/>', '  <Text name="show_id" value="$id"/>']
    for column in display:
        tag = "Image" if _is_image(column) else "Text"
        lines.append(f'  <Header value={quoteattr(column)}/>\n  <{tag} name="show_{column}" value="${column}"/>')
    lines += [
        '  <Header value="Given label (suggested: see the prediction)"/>',
        '  <Text name="show_given" value="$given_label"/>',
        f'  <Choices name="{LS_CHOICES}" toName="{_object_name(display)}" choice="single" showInline="true">',
        *(f"    <Choice value={quoteattr(c)}/>" for c in [*classes, DROP_CHOICE]),
        "  </Choices>",
        f'  <TextArea name="{LS_NOTE}" toName="{_object_name(display)}" placeholder="note (optional)"'
        ' rows="2" maxSubmissions="1"/>',
        "</View>",
    ]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class ImportResult:
    """What :func:`import_decisions` did.

    Attributes
    ----------
    date : str
        The audited date the decisions are about.
    decisions : int
        Decisions in the file (after merging identical repeats).
    undecided : int
        Rows without a decision (not reviewed yet), skipped.
    stored : AppendResult
        What was written (nothing when every decision was already stored).
    """

    date: str
    decisions: int
    undecided: int
    stored: AppendResult


def import_decisions(
    store: PartitionStore,
    path: Path,
    reviewer: str | None = None,
    date: str | None = None,
    now: datetime.datetime | None = None,
) -> ImportResult:
    """Validate a decision file against its audited date, then append its new decisions.

    Parameters
    ----------
    store : PartitionStore
        The data directory.
    path : path
        ``.csv``, ``.parquet`` or ``.json`` (a Label Studio export of our tasks).
    reviewer : str, optional
        For rows that name none (default: the login name).
    date : str, optional
        For a file without dates (default: the latest audited date).
    now : datetime, optional
        The import time (UTC; default now): ``imported_at``, and ``decided_at`` of rows without one.

    Returns
    -------
    ImportResult

    Raises
    ------
    ReviewInputError
        Naming the file and each bad row; nothing is written.
    """
    path = Path(path)
    now = _utc(now or datetime.datetime.now(datetime.UTC))
    parsed = read_decision_file(path)
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    rows = [r for r in parsed.rows if r.decision is not None]
    undecided = len(parsed.rows) - len(rows)
    if not rows:
        raise ReviewInputError(f"{path}: no decisions ({len(parsed.rows)} rows, none with a decision)")
    day = _file_date(store, path, rows, date)
    rows = _merge_repeats(path, rows)
    given = _given_labels(store, day, rows)
    classes = [str(c) for c in store.metadata("raw_labels", day)["classes"]]
    rows = _check_against_snapshot(path, rows, given, classes)
    default_reviewer = reviewer if reviewer else login_name()
    table = _decision_table(rows, day, given, default_reviewer, now, path.name, sha, parsed.format)
    stored = append_decisions(store.root, table)
    if stored.path is not None:
        store.warehouse.ensure_views([DECISIONS])
    return ImportResult(day, len(rows), undecided, stored)


def login_name() -> str:
    """The user's login name (``getpass.getuser``), or ``"unknown"`` where the system has none."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _utc(moment: datetime.datetime) -> datetime.datetime:
    if not isinstance(moment, datetime.datetime) or moment.tzinfo is None:
        raise TypeError(f"now must be a timezone-aware datetime, got {moment!r}")
    return moment.astimezone(datetime.UTC)


def _fail(path: Path, problems: list[str]) -> None:
    if problems:
        more = f"; and {len(problems) - MAX_LISTED} more" if len(problems) > MAX_LISTED else ""
        raise ReviewInputError(f"{path}: nothing imported: " + "; ".join(problems[:MAX_LISTED]) + more)


def _file_date(store: PartitionStore, path: Path, rows: list[DecisionRow], date: str | None) -> str:
    """The one audited date of the file's rows (``date`` or the latest audited date if they have none)."""
    dated = [r for r in rows if r.date is not None]
    if dated and len(dated) != len(rows):
        first = next(r for r in rows if r.date is None)
        _fail(path, [f"{first.where}: no date, but other rows have one"])
    if not dated:
        return resolve_date(store, date)
    first = dated[0]
    other = next((r for r in dated if r.date != first.date), None)
    if other is not None:
        _fail(path, [f"the file mixes dates: {first.where} has {first.date}, {other.where} has {other.date}"])
    if date is not None and date != first.date:
        _fail(path, [f"--date {date} differs from the file's date {first.date} ({first.where})"])
    try:
        return resolve_date(store, first.date)
    except ConfigError as exc:
        raise ReviewInputError(f"{path}: nothing imported: {first.where}: {exc}") from None


def _merge_repeats(path: Path, rows: list[DecisionRow]) -> list[DecisionRow]:
    """One row per id: identical repeats merge, conflicting ones are an error naming both rows."""
    first: dict[str, DecisionRow] = {}
    problems = []
    for row in rows:
        seen = first.setdefault(row.id, row)
        if seen is not row and seen.content() != row.content():
            problems.append(
                f"{row.where}: id {row.id!r} repeats {seen.where} with another decision "
                f"({row.decision} {row.new_label or ''} vs {seen.decision} {seen.new_label or ''})".replace(" )", ")")
            )
    _fail(path, problems)
    return list(first.values())


def _given_labels(store: PartitionStore, date: str, rows: list[DecisionRow]) -> dict[str, str]:
    """``{id: given label}`` in the date's ``label_issues`` for the ids of ``rows`` (absent ids left out)."""
    wanted = pa.table({"id": pa.array([r.id for r in rows], pa.string())})
    with duckdb.connect() as con:
        con.register("wanted", wanted)
        found = con.execute(
            "SELECT CAST(li.id AS VARCHAR), li.given_label FROM read_parquet(?) li "
            "JOIN wanted w ON CAST(li.id AS VARCHAR) = w.id",
            [str(store.path("label_issues", date))],
        ).fetchall()
    return dict(found)


def _check_against_snapshot(
    path: Path, rows: list[DecisionRow], given: dict[str, str], classes: list[str]
) -> list[DecisionRow]:
    """Unknown ids, labels outside the classes, a stale given label; a chosen given label is a keep."""
    problems, checked = [], []
    for row in rows:
        label = given.get(row.id)
        if label is None:
            problems.append(f"{row.where}: unknown id {row.id!r} (not in the audited snapshot)")
            continue
        if row.given_label is not None and row.given_label != label:
            problems.append(
                f"{row.where}: given_label {row.given_label!r} differs from the snapshot's {label!r} for id {row.id!r}"
            )
        if row.new_label is not None and row.new_label not in classes:
            problems.append(f"{row.where}: new_label {row.new_label!r} is not a class ({', '.join(classes)})")
        elif row.new_label == label:
            if row.chosen:
                row = row.as_keep()
            else:
                problems.append(f"{row.where}: relabel to the given label {label!r}: use decision keep")
        checked.append(row)
    _fail(path, problems)
    return checked


def _decision_table(
    rows: list[DecisionRow],
    date: str,
    given: dict[str, str],
    reviewer: str,
    now: datetime.datetime,
    source: str,
    sha: str,
    fmt: str,
) -> pa.Table:
    """The rows as a :data:`DECISION_SCHEMA` table with their content ids."""
    records = []
    for r in rows:
        who = r.reviewer or reviewer
        when = r.decided_at.isoformat() if r.decided_at is not None else sha
        key = decision_id(r.id, date, r.decision, r.new_label, given[r.id], who, r.note, when)
        records.append(
            {
                "decision_id": key,
                "id": r.id,
                "date": date,
                "decision": r.decision,
                "new_label": r.new_label,
                "given_label": given[r.id],
                "reviewer": who,
                "note": r.note,
                "decided_at": r.decided_at or now,
                "imported_at": now,
                "source_file": source,
                "source_sha256": sha,
                "source_format": fmt,
            }
        )
    return pa.Table.from_pylist(records, schema=DECISION_SCHEMA)
