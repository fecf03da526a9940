"""The single Dagster ``Definitions`` of the project (``dagster dev -m cl_pipeline.definitions``).

Assembled from :mod:`cl_pipeline.defs`: assets, checks, the job and its
executor, the nightly schedule, the new-snapshot sensor, and the three resources (the compute resource
sends the heavy work to a Dask cluster when one is configured). Resources resolve their
settings when a run starts: the data directory from ``CL_PIPELINE_DATA_DIR``
(default ``data/``) and the dataset configuration from ``CL_PIPELINE_CONFIG``
(default: the embedded digits dataset), unless run config says otherwise.
"""

import dagster as dg

from cl_pipeline.defs.annotator_assets import ANNOTATOR_ASSETS, ANNOTATOR_CHECKS
from cl_pipeline.defs.assets import AUDIT_ASSETS
from cl_pipeline.defs.checks import AUDIT_CHECKS
from cl_pipeline.defs.jobs import audit_executor, audit_job
from cl_pipeline.defs.monitor_assets import MONITOR_ASSETS, MONITOR_CHECKS
from cl_pipeline.defs.resources import AuditConfigResource, ComputeResource, PipelineStorage
from cl_pipeline.defs.schedules import nightly_audit
from cl_pipeline.defs.sensors import new_snapshot_sensor

__all__ = ["audit_job_definition", "defs"]

defs = dg.Definitions(
    assets=[*AUDIT_ASSETS, *ANNOTATOR_ASSETS, *MONITOR_ASSETS],
    asset_checks=[*AUDIT_CHECKS, *ANNOTATOR_CHECKS, *MONITOR_CHECKS],
    jobs=[audit_job],
    schedules=[nightly_audit],
    sensors=[new_snapshot_sensor],
    resources={"audit_config": AuditConfigResource(), "storage": PipelineStorage(), "compute": ComputeResource()},
    executor=audit_executor,
)


def audit_job_definition() -> dg.JobDefinition:
    """The resolved ``audit_job``, for ``dagster.reconstructable`` (multiprocess runs
    from Python: ``execute_job(reconstructable(audit_job_definition), instance, run_config=
    {"execution": {"config": {"multiprocess": {"max_concurrent": 2}}}})``)."""
    return defs.resolve_job_def("audit_job")
