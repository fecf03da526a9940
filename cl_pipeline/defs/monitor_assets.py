"""The ``monitor_scores`` asset and its check ``noise_rate_vs_reference`` (monitoring against a reference).

With ``[monitor] reference_date`` set, each later date's rows are scored against the
reference audit (:mod:`cl_pipeline.audit.monitor_stage`); the check compares their flagged
fraction with the reference's (two-proportion z-test), WARN by default, ERROR with
``[monitor] severity = "error"``; it never blocks pruning. Without a reference the asset
says so and the check passes. The asset runs after ``audit_summary`` so that its picture
of the rate history includes the date.
"""

import logging
from collections.abc import Iterator
from typing import Any

import dagster as dg

from cl_pipeline.audit import verdicts
from cl_pipeline.audit.monitor_stage import monitor_scores as score_against_reference
from cl_pipeline.audit.monitor_stage import monitor_verdict
from cl_pipeline.defs.assets import _COMMON, _report, audit_summary, plain_value, raw_labels
from cl_pipeline.defs.checks import _partitioned_check
from cl_pipeline.defs.resources import AuditConfigResource, PipelineStorage

__all__ = ["MONITOR_ASSETS", "MONITOR_CHECKS"]

log = logging.getLogger("cl_pipeline.progress")


@dg.asset(**_COMMON, deps=[raw_labels, audit_summary], kinds={"parquet"})
def monitor_scores(
    context: dg.AssetExecutionContext, audit_config: AuditConfigResource, storage: PipelineStorage
) -> dg.MaterializeResult:
    """The date's rows scored against ``[monitor] reference_date``: flags from its thresholds and model."""
    config, date = audit_config.config, context.partition_key
    return _report(context, lambda: score_against_reference(storage.store, config, date))


@_partitioned_check(monitor_scores)
def noise_rate_vs_reference(
    context: dg.AssetCheckExecutionContext, audit_config: AuditConfigResource, storage: PipelineStorage
) -> Iterator[dg.AssetCheckResult]:
    """The new rows' flagged fraction is not significantly above the reference's (``[monitor] alpha``)."""
    config, date = audit_config.config, context.partition_key
    verdict, details = monitor_verdict(storage.store, config, date)
    error = config.monitor.severity == "error"
    severity = dg.AssetCheckSeverity.ERROR if error else dg.AssetCheckSeverity.WARN
    verdicts.record(storage.store, date, verdict, severity.value, False, context.run.run_id)
    log.info("%-16s %s: %s - %s", "check", verdict.name, "passed" if verdict.passed else "FAILED", verdict.message)
    metadata: dict[str, Any] = {key: plain_value(value) for key, value in details.items()}
    if verdict.value is not None:
        metadata |= {"p_value": plain_value(verdict.value), "alpha": plain_value(verdict.threshold)}
    yield dg.AssetCheckResult(passed=verdict.passed, severity=severity, description=verdict.message, metadata=metadata)


MONITOR_ASSETS = [monitor_scores]
MONITOR_CHECKS = [noise_rate_vs_reference]
