"""The audit job and its executor (the nightly schedule is in :mod:`cl_pipeline.defs.schedules`)."""

import dagster as dg
from dagster._core.definitions.executor_definition import (
    IN_PROC_CONFIG,
    MULTI_PROC_CONFIG,
    multi_or_in_process_executor,
)

__all__ = ["audit_executor", "audit_job"]


@dg.executor(
    name="in_process_or_capped_multiprocess",
    config_schema=dg.Field(
        dg.Selector({"in_process": IN_PROC_CONFIG, "multiprocess": MULTI_PROC_CONFIG}),
        default_value={"in_process": {}},
    ),
)
def audit_executor(init_context: dg.InitExecutorContext) -> dg.Executor:
    """In-process by default (a spawned step costs 4-10 s on 2 cores).

    Select ``{"execution": {"config": {"multiprocess": {"max_concurrent": 2}}}}`` in the run
    config for a capped multiprocess run.
    """
    return multi_or_in_process_executor.executor_creation_fn(init_context)  # type: ignore[misc]


audit_job = dg.define_asset_job(
    "audit_job",
    selection=dg.AssetSelection.groups("audit"),
    executor_def=audit_executor,
    description="Materialize one daily partition of the whole audit, with its checks.",
)
