"""The daily partitions every asset and check shares (one per snapshot date)."""

import dagster as dg

from cl_pipeline.config import start_date

__all__ = ["PARTITIONS", "daily_partitions"]


def daily_partitions() -> dg.DailyPartitionsDefinition:
    """One partition per day from :func:`cl_pipeline.config.start_date` to tomorrow.

    The first day is env ``CL_PIPELINE_START_DATE`` if set, else the first snapshot of a
    ``folder`` source (env ``CL_PIPELINE_CONFIG``), else 2024-01-01: a folder audited since
    its first file shows no run of "missing" days before it.
    """
    return dg.DailyPartitionsDefinition(start_date=start_date(), end_offset=1)


#: Built when the definitions load (a code-location reload picks up a new start).
PARTITIONS = daily_partitions()
