"""The sensor that audits a folder source's new snapshots as they appear (besides the nightly schedule).

Every ``SENSOR_INTERVAL_SECONDS`` (while the Dagster daemon runs) it lists the dated files of
the configured ``folder`` source and requests ``audit_job`` for each date whose file is newer
than that date's ``audit_summary`` (never audited, or the file changed since), oldest first, at
most ``MAX_RUNS_PER_TICK`` per tick. The run key is the date plus the file's modification time
and size, so a file is audited once per version even when its audit fails. Other sources have
no dated snapshots: the sensor skips, saying so.

Environment (read when the definitions load): ``CL_PIPELINE_SENSOR_ENABLED=1`` starts it
switched on (default off, like the schedule; it can be switched on in the UI or with
``dagster sensor start new_snapshot_sensor``).
"""

import os
import re
from collections.abc import Iterator
from pathlib import Path

import dagster as dg

from cl_pipeline.config import SourceConfig, config_file, load_config
from cl_pipeline.defs.jobs import audit_job
from cl_pipeline.defs.partitions import PARTITIONS
from cl_pipeline.defs.resources import PipelineStorage
from cl_pipeline.storage import PartitionStore

__all__ = ["MAX_RUNS_PER_TICK", "SENSOR_INTERVAL_SECONDS", "new_snapshot_sensor", "snapshots_to_audit"]

#: Seconds between two looks at the folder.
SENSOR_INTERVAL_SECONDS = 60
#: Runs requested per tick at most (the rest wait for the next ticks; the run queue runs one at a time).
MAX_RUNS_PER_TICK = 5


def _dated_files(source: SourceConfig) -> Iterator[tuple[str, Path]]:
    """(date, file) for every file of the folder source whose name holds a date ``YYYY-MM-DD``."""
    for path in sorted(Path(source.path or "").glob(source.pattern)):
        match = re.search(r"\d{4}-\d{2}-\d{2}", path.name)
        if match is not None and path.is_file():
            yield match.group(0), path


def snapshots_to_audit(
    source: SourceConfig, store: PartitionStore, partitions: dg.PartitionsDefinition
) -> list[tuple[str, str]]:
    """The snapshots of a folder source that are newer than their audit, oldest first.

    Parameters
    ----------
    source : SourceConfig
        A ``folder`` source (others give ``[]``).
    store : PartitionStore
        The data directory whose ``audit_summary`` files date the audits.
    partitions : PartitionsDefinition
        Dates outside it (before the first partition, after tomorrow) are left for later.

    Returns
    -------
    list of (date, file stamp)
        The stamp is ``<mtime_ns>-<size>`` of the snapshot file.
    """
    if source.kind != "folder":
        return []
    keys = set(partitions.get_partition_keys())
    pending = []
    for date, path in _dated_files(source):
        if date not in keys:
            continue
        stat = path.stat()
        audited = store.path("audit_summary", date)
        if audited.is_file() and audited.stat().st_mtime_ns >= stat.st_mtime_ns:
            continue
        pending.append((date, f"{stat.st_mtime_ns}-{stat.st_size}"))
    return pending


@dg.sensor(
    job=audit_job,
    minimum_interval_seconds=SENSOR_INTERVAL_SECONDS,
    default_status=(
        dg.DefaultSensorStatus.RUNNING
        if os.environ.get("CL_PIPELINE_SENSOR_ENABLED", "0") == "1"
        else dg.DefaultSensorStatus.STOPPED
    ),
    description="Audits each new or changed snapshot of a folder source (one daily partition per run).",
)
def new_snapshot_sensor(
    context: dg.SensorEvaluationContext, storage: PipelineStorage
) -> Iterator[dg.RunRequest | dg.SkipReason]:
    """Request ``audit_job`` for the snapshots newer than their audit (see the module docstring).

    The configuration is the one the launched runs use (env ``CL_PIPELINE_CONFIG``), read here
    rather than through the ``audit_config`` resource so that a configuration which does not
    load is a skip with its message, not a failed tick.
    """
    try:
        source = load_config(config_file()).source
    except ValueError as exc:  # ConfigError: the message names the key and the value
        yield dg.SkipReason(f"the configuration does not load: {exc}")
        return
    if source.kind != "folder":
        yield dg.SkipReason(f"source.kind is {source.kind!r}: only a folder source has dated snapshots to watch")
        return
    pending = snapshots_to_audit(source, PartitionStore(storage.root), PARTITIONS)
    if not pending:
        yield dg.SkipReason(f"every snapshot in {source.path} is audited")
        return
    for date, stamp in pending[:MAX_RUNS_PER_TICK]:
        context.log.info(f"new snapshot for {date} ({stamp}): requesting its audit")
        yield dg.RunRequest(run_key=f"{date}@{stamp}", partition_key=date)
