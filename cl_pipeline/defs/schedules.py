"""The nightly schedule of the audit job.

Environment (read when the definitions load):

- ``CL_PIPELINE_SCHEDULE_CRON``: cron of the nightly run, default ``"0 2 * * *"`` (02:00).
- ``CL_PIPELINE_SCHEDULE_TIMEZONE``: its time zone, default ``"UTC"``.
- ``CL_PIPELINE_SCHEDULE_LAG_DAYS``: the run audits the snapshot this many days before
  the run time, default ``1`` (the 02:00 run on the 2nd audits the 1st).
- ``CL_PIPELINE_SCHEDULE_ENABLED``: ``1`` starts the schedule switched on (default off; it
  can also be switched on in the UI or with ``dagster schedule start nightly_audit``).
"""

import os
from datetime import timedelta

import dagster as dg

from cl_pipeline.defs.jobs import audit_job

__all__ = ["nightly_audit"]


def _lag_days() -> int:
    return int(os.environ.get("CL_PIPELINE_SCHEDULE_LAG_DAYS", "1"))


@dg.schedule(
    job=audit_job,
    cron_schedule=os.environ.get("CL_PIPELINE_SCHEDULE_CRON", "0 2 * * *"),
    execution_timezone=os.environ.get("CL_PIPELINE_SCHEDULE_TIMEZONE", "UTC"),
    default_status=(
        dg.DefaultScheduleStatus.RUNNING
        if os.environ.get("CL_PIPELINE_SCHEDULE_ENABLED", "0") == "1"
        else dg.DefaultScheduleStatus.STOPPED
    ),
    description="Nightly audit of the previous day's snapshot (one daily partition per run).",
)
def nightly_audit(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    """Request the partition ``CL_PIPELINE_SCHEDULE_LAG_DAYS`` days before the tick."""
    date = (context.scheduled_execution_time - timedelta(days=_lag_days())).strftime("%Y-%m-%d")
    return dg.RunRequest(run_key=date, partition_key=date)
