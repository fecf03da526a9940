"""``cl-pipeline export-dataset``: write any dataset version (raw or curated) as CSV or Parquet.

A version is found in ``dataset_versions`` (:mod:`cl_pipeline.storage.versions`) by its
hash, or by date and kind. Its rows are read, batch by batch, from a table that holds
them (``curated_dataset`` or ``raw_labels``); the raw parent of an audit started from
the curated version is held by no table, and is read from the configured source
again, which must still hash to that version. The file has the snapshot's own
columns (not the pipeline's ``partition`` and ``label_index``), in stored order, so a
Parquet export of a curated version hashes to its version again.
"""

import datetime
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from cl_pipeline.audit.curation import PIPELINE_COLUMNS, decision_lookup, source_from_snapshot
from cl_pipeline.audit.preflight import prevalidate
from cl_pipeline.config import AuditConfig, ConfigError
from cl_pipeline.storage import PartitionStore
from cl_pipeline.storage.parquet import COMPRESSION, atomic_write_bytes, open_parquet
from cl_pipeline.storage.versions import CURATED, read_dataset_versions

__all__ = ["EXPORT_SUFFIXES", "KINDS", "DatasetExport", "export_dataset"]

#: File suffixes ``export-dataset`` writes, and the format each means.
EXPORT_SUFFIXES = {".csv": "csv", ".parquet": "parquet"}
#: What ``--kind`` selects for a date.
KINDS = ("curated", "raw")
#: At most this many known versions are listed in an error.
MAX_LISTED = 10


@dataclass(frozen=True)
class DatasetExport:
    """What :func:`export_dataset` wrote.

    Attributes
    ----------
    path : Path
    rows : int
    version, kind, date : str
    source : str
        Where the rows came from: ``curated_dataset``, ``raw_labels`` or ``source``.
    notes : tuple of str
        What the reader should know (curated equals raw; decisions imported since).
    """

    path: Path
    rows: int
    version: str
    kind: str
    date: str
    source: str
    notes: tuple[str, ...]


def _check_out(out: Path) -> str:
    fmt = EXPORT_SUFFIXES.get(out.suffix.lower())
    if fmt is None:
        raise ConfigError(f"--out {out}: use a .csv or .parquet file name")
    if not out.parent.is_dir():
        raise ConfigError(f"--out {out}: folder {out.parent} does not exist")
    return fmt


def _check_date(date: str) -> str:
    try:
        ok = datetime.date.fromisoformat(date).isoformat() == date
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ConfigError(f"--date {date!r} is not a date YYYY-MM-DD")
    return date


def _choose(versions: list[dict[str, Any]], date: str | None, version: str | None, kind: str) -> dict[str, Any]:
    """The ``dataset_versions`` row asked for (a held copy preferred; the latest date for a hash)."""
    if version is not None:
        found = [r for r in versions if r["version"] == version]
        if not found:
            known = sorted({r["version"] for r in versions})
            listed = ", ".join(known[:MAX_LISTED]) + (" ..." if len(known) > MAX_LISTED else "")
            raise ConfigError(f"--version {version!r} is not a dataset version (known: {listed or 'none'})")
    else:
        found = [r for r in versions if r["date"] == date and r["kind"] == kind]
        if not found:
            dates = sorted({r["date"] for r in versions if r["kind"] == kind})
            hint = f" (run `cl-pipeline audit --date {date}`: it writes curated_dataset)" if kind == "curated" else ""
            raise ConfigError(
                f"no {kind} version of {date}{hint}; dates with one: {', '.join(dates[-MAX_LISTED:]) or 'none'}"
            )
    order = {CURATED: 0, "raw_labels": 1}

    def rank(row: dict[str, Any]) -> tuple:
        held = (row["stored_in"] or "").split(",")
        return (row["date"], -min((order.get(t, 9) for t in held), default=9))

    return max(found, key=rank)


def _batches_of(path: Path, columns: list[str]) -> Iterator[pa.RecordBatch]:
    yield from open_parquet(path).iter_batches(batch_size=1 << 16, columns=columns)


def _rows(store: PartitionStore, config: AuditConfig, row: dict[str, Any]) -> tuple[pa.Schema, Any, str]:
    """(schema, batches, where) of the version of ``row``."""
    held = [t for t in (row["stored_in"] or "").split(",") if t]
    for table in (CURATED, "raw_labels"):
        if table in held:
            schema = store.schema(table, row["date"]).remove_metadata()
            names = [n for n in schema.names if n not in PIPELINE_COLUMNS]
            batches = _batches_of(store.path(table, row["date"]), names)
            return pa.schema([schema.field(n) for n in names]), batches, table
    source = source_from_snapshot(prevalidate(config, row["date"]))
    if source.parent_version != row["version"]:
        raise ConfigError(
            f"version {row['version']} ({row['kind']}, {row['date']}) is held by no table, and the source snapshot "
            f"of {row['date']} is now version {source.parent_version}: it cannot be written any more"
        )
    names = [n for n in source.schema.names if n not in PIPELINE_COLUMNS]
    batches = (b.select(names) for b in source.batches())
    return pa.schema([source.schema.field(n) for n in names]), batches, "source"


def _write(out: Path, fmt: str, schema: pa.Schema, batches: Iterator[pa.RecordBatch]) -> int:
    rows = 0

    def write(handle: Any) -> None:
        nonlocal rows
        if fmt == "csv":
            writer: Any = pacsv.CSVWriter(handle, schema)
        else:
            writer = pq.ParquetWriter(handle, schema, compression=COMPRESSION)
        try:
            for batch in batches:
                writer.write_batch(batch)
                rows += batch.num_rows
        finally:
            writer.close()

    try:
        atomic_write_bytes(out, write)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise ConfigError(f"--out {out}: the version cannot be written as {fmt} ({exc}); try .parquet") from None
    return rows


def _notes(store: PartitionStore, row: dict[str, Any], where: str) -> tuple[str, ...]:
    if row["kind"] != "curated" or where == "source":
        return ()
    meta = store.metadata(where, row["date"])
    curation = meta.get("curation") or {}
    notes = [curation["note"]] if curation.get("note") else []
    now = decision_lookup(store.root, row["date"], list(meta["classes"])).considered_hash
    if now != curation.get("considered_hash"):
        notes.append(
            f"review decisions were imported after this version was made: run `cl-pipeline audit --date {row['date']}` "
            "for a curated version with them"
        )
    return tuple(notes)


def export_dataset(
    store: PartitionStore,
    config: AuditConfig,
    out: Path,
    date: str | None = None,
    version: str | None = None,
    kind: str = "curated",
) -> DatasetExport:
    """Write one dataset version to ``out`` (``.csv`` or ``.parquet``, atomically).

    Parameters
    ----------
    store : PartitionStore
    config : AuditConfig
        For the raw parent of a curated audit, read from the source again.
    out : path
    date : str, optional
        With ``kind``: that date's version. Exactly one of ``date`` and ``version``.
    version : str, optional
        A version hash of ``dataset_versions``.
    kind : {"curated", "raw"}
        With ``date`` only.

    Returns
    -------
    DatasetExport

    Raises
    ------
    ConfigError
        A bad file name, date, kind or version, or no such version (nothing written).
    """
    out = Path(out)
    if (date is None) == (version is None):
        raise ConfigError("give exactly one of --date and --version")
    if kind not in KINDS:
        raise ConfigError(f"--kind {kind!r} is not one of {', '.join(KINDS)}")
    fmt = _check_out(out)
    if date is not None:
        _check_date(date)
    versions = read_dataset_versions(store.root).to_pylist()
    row = _choose(versions, date, version, kind)
    schema, batches, where = _rows(store, config, row)
    notes = _notes(store, row, where)
    rows = _write(out, fmt, schema, batches)
    return DatasetExport(out, rows, row["version"], row["kind"], row["date"], where, notes)
