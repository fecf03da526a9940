"""Everything an audit checks before it writes anything: configuration, date, snapshot, model.

:func:`prevalidate` is the one entry point: the CLI calls it before it starts a
run (so bad input exits 2 with nothing written) and the ``raw_labels`` stage
calls it again in the run. The snapshot is validated once per audit: the
second call in the same process returns the snapshot the first one validated,
as long as the configuration, the date and the source files are unchanged.
"""

import datetime
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from cl_pipeline.audit.features import check_trainable
from cl_pipeline.audit.parquet_snapshot import ParquetSnapshot, validate_parquet_snapshot
from cl_pipeline.audit.snapshot import Snapshot, validate_snapshot
from cl_pipeline.config import AuditConfig, ConfigError, start_date
from cl_pipeline.storage.sources import load_snapshot, snapshot_dates, snapshot_parquet_file

__all__ = ["Prevalidated", "audit_date", "prevalidate"]

#: The one accepted form of ``--date`` (ASCII digits only).
_ISO_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


@dataclass(frozen=True)
class Prevalidated:
    """A configuration, a partition date and the snapshot of that date, all valid.

    ``snapshot`` holds the rows in memory; for a Parquet snapshot whose probabilities
    are supplied as columns, ``parquet`` describes it instead and the rows stay in the file.
    """

    config: AuditConfig
    date: str
    snapshot: Snapshot | None
    parquet: ParquetSnapshot | None = None


def audit_date(requested: str | None, config: AuditConfig) -> str:
    """The partition to audit: ``requested`` (``YYYY-MM-DD``), else the latest snapshot, else today.

    Raises
    ------
    ConfigError
        If ``requested`` is not exactly ``YYYY-MM-DD`` (``2026``, ``now``, ``20261120`` are
        refused), is not a real day, or is outside the daily partitions.
    """
    if requested is not None:
        if not _ISO_DAY.fullmatch(requested):
            raise ConfigError(f"--date {requested!r} is not a date YYYY-MM-DD")
        try:
            date = datetime.date.fromisoformat(requested).isoformat()
        except ValueError:
            raise ConfigError(f"--date {requested!r} is not a date YYYY-MM-DD (no such day)") from None
    else:
        dates = snapshot_dates(config.source)
        date = dates[-1] if dates else pd.Timestamp.now(tz="UTC").strftime("%Y-%m-%d")
    start = pd.Timestamp(start_date())
    if not start <= pd.Timestamp(date) <= pd.Timestamp.now() + pd.Timedelta(days=1):
        raise ConfigError(f"--date {date} is outside the daily partitions ({start:%Y-%m-%d} .. today)")
    return date


def _fingerprint(path: str | None) -> tuple[str, int, int] | None:
    """(path, size, mtime) of a source file, None for no file."""
    if not path:
        return None
    try:
        stat = os.stat(path)
    except OSError:
        return (path, -1, -1)
    return (path, stat.st_size, stat.st_mtime_ns)


def _key(config: AuditConfig, date: str) -> str:
    """What a validated snapshot depends on: the configuration, the date and the source files."""
    npy = config.columns.probabilities_npy if config.columns is not None else None
    files = [_fingerprint(config.source.path)]
    if config.source.kind == "folder" and config.source.path:
        files += [_fingerprint(str(p)) for p in sorted(Path(config.source.path).glob(config.source.pattern))]
    if npy:
        files.append(_fingerprint(npy.replace("{date}", date)))
    if config.columns is not None and isinstance(config.columns.annotations, str):
        files.append(_fingerprint(config.columns.annotations.replace("{date}", date)))
    return json.dumps([config.model_dump(mode="json"), date, files], sort_keys=True, default=str)


class _LastValidated:
    """The most recent validated snapshot of this process (one entry: memory stays bounded)."""

    key: str | None = None
    value: Prevalidated | None = None


def _check_image_columns(config: AuditConfig, checked: Prevalidated, path: Path | None) -> None:
    """``columns.image`` against the snapshot's columns (what ``label_issues`` will read), before anything is written."""
    if config.columns is None or config.columns.image is None:
        return
    import pyarrow as pa
    import pyarrow.parquet as pq

    from cl_pipeline.audit.issue_gallery import image_source

    if path is not None:
        schema = pq.read_schema(path)
    else:
        schema = pa.Schema.from_pandas(checked.snapshot.frame, preserve_index=False)
    image_source(config, schema, checked.date)


def prevalidate(config: AuditConfig, date: str) -> Prevalidated:
    """Load and validate the snapshot of ``date`` and the model settings, before anything is written.

    Parameters
    ----------
    config : AuditConfig
    date : str
        ``YYYY-MM-DD`` (see :func:`audit_date`).

    Returns
    -------
    Prevalidated

    Raises
    ------
    ConfigError
        Naming the setting, column or value at fault.
    """
    key = _key(config, date)
    if _LastValidated.key == key and _LastValidated.value is not None:
        return _LastValidated.value
    cols = config.columns
    path = snapshot_parquet_file(config.source, date) if cols is not None and cols.probabilities else None
    if path is not None:
        result = Prevalidated(config, date, None, validate_parquet_snapshot(path, config, date))
    else:
        frame, checked_as = load_snapshot(config.source, date), config
        if cols is not None and cols.annotations is not None:  # issue 12: the majority vote as the label
            from cl_pipeline.audit.annotators import with_majority_vote

            frame, checked_as = with_majority_vote(frame, config, date)
        snapshot = validate_snapshot(frame, checked_as, date)
        if snapshot.pred_probs is None:
            check_trainable(snapshot, config.model)
        result = Prevalidated(config, date, snapshot)
    _check_image_columns(config, result, path)
    _LastValidated.key, _LastValidated.value = key, result
    return result
