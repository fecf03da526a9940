"""Reading decision files: CSV, Parquet, or a Label Studio JSON export of our tasks.

Each row becomes a :class:`DecisionRow` checked on its own (the decision set, a
label for ``relabel`` and only for it, the date's and time's formats); the checks
against the audited snapshot are in :mod:`cl_pipeline.audit.review`. Every problem
is reported at once, each naming its row (``row N``: the N-th data row of a CSV or
Parquet file, the header not counted; ``task N``: the N-th task of a Label Studio
export, from 1), and nothing is written.

Label Studio export: a JSON list of tasks, each with our ``data`` (``id``, ``date``,
``given_label``, ...) and ``annotations`` (``result``: a ``choices`` item from the
``label`` control, optionally a ``textarea`` item from ``note``; ``completed_by``;
``updated_at``). The latest annotation not cancelled counts; a task without one is
not reviewed yet. The chosen class is the decision: the given label means keep,
another class relabel, :data:`DROP_CHOICE` drop.
"""

import csv
import dataclasses
import datetime
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from cl_pipeline.config import ConfigError
from cl_pipeline.storage.decisions import DECISION_KINDS

__all__ = ["DROP_CHOICE", "LS_CHOICES", "LS_ID_KEY", "LS_NOTE", "DecisionRow", "ReviewInputError", "read_decision_file"]

#: The Label Studio choice meaning "drop this example".
DROP_CHOICE = "(drop this example)"
#: Names of the Label Studio controls of our labeling config, and the data key of the example id.
LS_CHOICES, LS_NOTE, LS_ID_KEY = "label", "note", "id"
#: Columns a CSV/Parquet decision file must have.
REQUIRED_COLUMNS = ("id", "decision")
_MAX_LISTED = 20


class ReviewInputError(ConfigError):
    """A decision file that cannot be imported (the message names the file and the rows)."""


@dataclass(frozen=True)
class DecisionRow:
    """One row of a decision file, its fields as text (None when blank).

    ``where`` names the row in messages; ``chosen`` marks a Label Studio choice (choosing
    the given label is a keep, not an error).
    """

    where: str
    id: str
    decision: str | None
    new_label: str | None = None
    date: str | None = None
    reviewer: str | None = None
    note: str | None = None
    decided_at: datetime.datetime | None = None
    given_label: str | None = None
    chosen: bool = False

    def content(self) -> tuple[str | None, str | None]:
        """What was decided (two rows of one id must agree on it)."""
        return self.decision, self.new_label

    def as_keep(self) -> "DecisionRow":
        """This row as a keep (a Label Studio choice of the given label)."""
        return dataclasses.replace(self, decision="keep", new_label=None)


@dataclass(frozen=True)
class ParsedFile:
    """The rows of a decision file and its format (``csv``, ``parquet`` or ``label-studio``)."""

    rows: list[DecisionRow]
    format: str


def _text(value: Any) -> str | None:
    """A cell as text: None for blank/missing, integral floats without ``.0`` (a Parquet int column with nulls)."""
    if value is None:
        return None
    if isinstance(value, float):
        if value != value:  # NaN
            return None
        if value.is_integer():
            return str(int(value))
    text = str(value).strip()
    return text or None


def _fail(path: Path, problems: list[str]) -> None:
    if problems:
        more = f"; and {len(problems) - _MAX_LISTED} more" if len(problems) > _MAX_LISTED else ""
        raise ReviewInputError(f"{path}: nothing imported: " + "; ".join(problems[:_MAX_LISTED]) + more)


def read_decision_file(path: Path) -> ParsedFile:
    """Read and check a decision file row by row (see the module docstring).

    Raises
    ------
    ReviewInputError
        Missing or unreadable file, another suffix, wrong columns, no rows, or bad rows.
    """
    path = Path(path)
    if not path.is_file():
        raise ReviewInputError(f"decision file not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".json":
        return ParsedFile(_label_studio_rows(path), "label-studio")
    if suffix not in (".csv", ".parquet"):
        raise ReviewInputError(f"{path}: use a .csv, .parquet or .json (Label Studio export) file")
    records = _csv_records(path) if suffix == ".csv" else _parquet_records(path)
    if not records:
        raise ReviewInputError(f"{path}: the file has no rows")
    problems: list[str] = []
    rows = []
    for number, record in enumerate(records, start=1):
        row = _table_row(f"row {number}", record, problems)
        if row is not None:
            rows.append(row)
    _fail(path, problems)
    return ParsedFile(rows, suffix[1:])


def _check_columns(path: Path, columns: list[str]) -> None:
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise ReviewInputError(
            f"{path}: missing column(s) {', '.join(missing)} (columns found: {', '.join(columns) or 'none'}); "
            "a decision file has id, decision and optional new_label, date, reviewer, note, decided_at"
        )


def _csv_records(path: Path) -> list[dict[str, Any]]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            _check_columns(path, [c.strip() for c in reader.fieldnames or []])
            return [{(k or "").strip(): v for k, v in record.items()} for record in reader]
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ReviewInputError(f"{path}: not a readable UTF-8 CSV file ({exc})") from None


def _parquet_records(path: Path) -> list[dict[str, Any]]:
    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several types for damaged files
        raise ReviewInputError(f"{path}: not a readable Parquet file ({exc})") from None
    _check_columns(path, table.column_names)
    wanted = [c for c in ("id", "decision", "new_label", "date", "reviewer", "note", "decided_at", "given_label")]
    return table.select([c for c in wanted if c in table.column_names]).to_pylist()


def _day(value: str | None, where: str, problems: list[str]) -> str | None:
    if value is None:
        return None
    try:
        if datetime.date.fromisoformat(value).isoformat() == value:
            return value
    except ValueError:
        pass
    problems.append(f"{where}: date {value!r} is not a date YYYY-MM-DD")
    return None


def _moment(value: Any, where: str, problems: list[str]) -> datetime.datetime | None:
    """An ISO 8601 time (a ``datetime`` as is); without a zone it is taken as UTC."""
    if value is None or isinstance(value, datetime.datetime):
        moment = value
    else:
        try:
            moment = datetime.datetime.fromisoformat(str(value))
        except ValueError:
            problems.append(f"{where}: decided_at {value!r} is not an ISO 8601 time")
            return None
    if moment is None:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=datetime.UTC)).astimezone(datetime.UTC)


def _table_row(where: str, record: dict[str, Any], problems: list[str]) -> DecisionRow | None:
    """A CSV/Parquet row checked on its own; None (with ``problems`` extended) if it is bad."""
    cells = {k: _text(v) for k, v in record.items() if k != "decided_at"}
    example, decision, label = cells.get("id"), cells.get("decision"), cells.get("new_label")
    before = len(problems)
    if example is None:
        problems.append(f"{where}: no id")
    if decision is not None:
        decision = decision.lower()
        if decision not in DECISION_KINDS:
            problems.append(f"{where}: decision {cells['decision']!r} is not one of {', '.join(DECISION_KINDS)}")
        elif decision == "relabel" and label is None:
            problems.append(f"{where}: relabel without a new_label")
        elif decision != "relabel" and label is not None:
            problems.append(f"{where}: new_label {label!r} given with decision {decision!r} (only relabel takes one)")
    elif label is not None:
        problems.append(f"{where}: new_label {label!r} without a decision")
    day = _day(cells.get("date"), where, problems)
    moment = _moment(record.get("decided_at") or None, where, problems)
    if len(problems) > before:
        return None
    return DecisionRow(
        where, example, decision, label, day, cells.get("reviewer"), cells.get("note"), moment, cells.get("given_label")
    )


def _label_studio_rows(path: Path) -> list[DecisionRow]:
    try:
        tasks = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ReviewInputError(f"{path}: not a Label Studio JSON export ({exc})") from None
    if not isinstance(tasks, list):
        raise ReviewInputError(f"{path}: a Label Studio JSON export is a list of tasks, got {type(tasks).__name__}")
    if not tasks:
        raise ReviewInputError(f"{path}: the file has no tasks")
    problems: list[str] = []
    rows = [_task_row(f"task {i}", task, problems) for i, task in enumerate(tasks, start=1)]
    _fail(path, problems)
    return [r for r in rows if r is not None]


def _latest_annotation(task: dict[str, Any]) -> dict[str, Any] | None:
    """The task's latest annotation that was not cancelled (by ``updated_at``, then ``id``)."""
    done = [a for a in task.get("annotations") or [] if isinstance(a, dict) and not a.get("was_cancelled")]
    if not done:
        return None
    return max(done, key=lambda a: (str(a.get("updated_at") or a.get("created_at") or ""), str(a.get("id"))))


def _reviewer(annotation: dict[str, Any]) -> str | None:
    """``completed_by`` as text: a user's email if the export holds the user, else ``label-studio user N``."""
    who = annotation.get("completed_by")
    if isinstance(who, dict):
        who = who.get("email") or who.get("username") or who.get("id")
        return None if who is None else str(who)
    return None if who is None else f"label-studio user {who}"


def _task_row(where: str, task: Any, problems: list[str]) -> DecisionRow | None:
    """The decision of one exported task (``decision`` None: not reviewed yet); None if it is bad."""
    data = task.get("data") if isinstance(task, dict) else None
    example = _text(data.get(LS_ID_KEY)) if isinstance(data, dict) else None
    if example is None:
        problems.append(f"{where}: no data.{LS_ID_KEY} (is this an export of tasks written by review export?)")
        return None
    where = f"{where} (id {example!r})"
    annotation = _latest_annotation(task)
    if annotation is None:
        return DecisionRow(where, example, None)  # not reviewed yet
    results = [r for r in annotation.get("result") or [] if isinstance(r, dict)]
    choices = [r for r in results if r.get("from_name") == LS_CHOICES and r.get("type") == "choices"]
    chosen = [c for r in choices for c in (r.get("value") or {}).get("choices") or []]
    if len(chosen) != 1:
        problems.append(f"{where}: annotation {annotation.get('id')} has {len(chosen)} choices of {LS_CHOICES!r}")
        return None
    notes = [r for r in results if r.get("from_name") == LS_NOTE and r.get("type") == "textarea"]
    note = "\n".join(t for r in notes for t in (r.get("value") or {}).get("text") or []) or None
    choice = str(chosen[0])
    decision, label = ("drop", None) if choice == DROP_CHOICE else ("relabel", choice)
    moment = _moment(annotation.get("updated_at") or annotation.get("created_at"), where, problems)
    day = _day(_text(data.get("date")), where, problems)
    given = _text(data.get("given_label"))
    return DecisionRow(where, example, decision, label, day, _reviewer(annotation), note, moment, given, chosen=True)
