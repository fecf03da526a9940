"""The daily partitions every asset and check shares (one per snapshot date)."""

import dagster as dg

from cl_pipeline.config import start_date

__all__ = ["PARTITIONS"]

#: One partition per daily snapshot; env ``CL_PIPELINE_START_DATE`` sets the first date.
PARTITIONS = dg.DailyPartitionsDefinition(start_date=start_date(), end_offset=1)
