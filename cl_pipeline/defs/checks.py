"""Asset checks. Each result is also written to the warehouse table ``check_results``.

- ``input_valid`` on ``raw_labels`` (blocking, ERROR): the stored rows are the validated
  rows (their hash is the recorded data version; label codes match the label column).
- ``noise_rate_below_threshold`` on ``calibrated_joint`` (blocking, ERROR): 1 - trace(Q).
- ``class_noise_below_threshold`` on ``calibrated_joint`` (blocking, ERROR): worst class.
- ``retrained_not_worse_than_baseline`` on ``retrained_model`` (WARN).

A failing blocking check stops ``pruned_dataset`` and ``retrained_model`` in the
same run and removes that date's copies from an earlier run (they were computed
from data or a Q that is no longer the partition's); after a failing check on
``calibrated_joint``, ``label_issues`` and Q stay available. Checks are
partitioned like their assets, so the UI shows each date's result. The verdicts
themselves are in :mod:`cl_pipeline.audit.verdicts`.

A blocked date must not look like a crash. Dagster fails the step of a failing
blocking check with ``DagsterAssetCheckFailedError`` ("1 blocking asset check
failed"), which names neither the value nor the threshold. So, after yielding
its result, a failing blocking check ends its step itself with a ``dg.Failure``
saying ``blocked by check X: value > threshold; A, B not materialized for DATE``
(the run's failure message), records an observation saying the same on each
asset it stops (their Events, for that partition), and tags the run
``cl_pipeline/blocked_by``. The steps downstream are skipped either way.
"""

import logging
import warnings
from collections.abc import Iterator
from typing import Any

import dagster as dg

from cl_pipeline.audit import multilabel_stage, verdicts
from cl_pipeline.audit.stages import STAGES
from cl_pipeline.audit.verdicts import Verdict
from cl_pipeline.defs.assets import blocked_observation, calibrated_joint, plain_value, raw_labels, retrained_model
from cl_pipeline.defs.partitions import PARTITIONS
from cl_pipeline.defs.resources import AuditConfigResource, PipelineStorage

__all__ = ["AUDIT_CHECKS", "BLOCKED_ASSETS", "BLOCKED_TAG"]

log = logging.getLogger("cl_pipeline.progress")

#: Run tag listing the blocking checks that failed in the run (comma-separated).
BLOCKED_TAG = "cl_pipeline/blocked_by"

#: The assets a failing blocking check stops (everything downstream of the asset it checks).
BLOCKED_ASSETS: dict[str, tuple[str, ...]] = {
    "input_valid": tuple(s for s in STAGES if s != "raw_labels"),
    "noise_rate_below_threshold": verdicts.BLOCKED_BY_Q,
    "class_noise_below_threshold": verdicts.BLOCKED_BY_Q,
}


def _partitioned_check(asset: Any, *, blocking: bool = False) -> Any:
    """``dg.asset_check`` partitioned like the assets, so each date keeps its own result.

    Partitioned check specs are a Dagster preview feature (1.13); the preview
    warning is silenced here, once, rather than shown on every load. The
    pipeline does not depend on them for blocking: ``pruned_dataset`` asks the
    verdicts again (see :mod:`cl_pipeline.audit.verdicts`).
    """

    def decorate(fn: Any) -> Any:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*partitions_def on an AssetCheckSpec.*")
            return dg.asset_check(asset=asset, blocking=blocking, partitions_def=PARTITIONS)(fn)

    return decorate


def _record(
    context: dg.AssetCheckExecutionContext,
    storage: PipelineStorage,
    verdict: Verdict,
    severity: dg.AssetCheckSeverity,
) -> Iterator[dg.AssetCheckResult]:
    """Write the verdict to ``check_results`` and yield it; a failed blocking one then stops the step.

    A failed blocking verdict also retracts the date's stale outputs, and ends the step with a
    ``dg.Failure`` that says what blocked what (see the module docstring).
    """
    date, store = context.partition_key, storage.store
    blocking = severity == dg.AssetCheckSeverity.ERROR
    if blocking and not verdict.passed:
        verdicts.retract_blocked(store, date)  # the date's pruned set and model of an earlier run are stale
    verdicts.record(store, date, verdict, severity.value, blocking, context.run.run_id)
    log.info("%-16s %s: %s - %s", "check", verdict.name, "passed" if verdict.passed else "FAILED", verdict.message)
    metadata: dict[str, Any] = {}
    if verdict.value is not None:
        metadata = {"value": plain_value(verdict.value), "threshold": plain_value(verdict.threshold)}
    if blocking:
        metadata["blocks_if_failed"] = ", ".join(BLOCKED_ASSETS[verdict.name])
    yield dg.AssetCheckResult(passed=verdict.passed, severity=severity, description=verdict.message, metadata=metadata)
    if blocking and not verdict.passed:
        raise _blocked(context, verdict)


def _blocked(context: dg.AssetCheckExecutionContext, verdict: Verdict) -> dg.Failure:
    """Say that ``verdict`` blocked the date: observations on the stopped assets, a run tag, the step's failure."""
    date, stopped = context.partition_key, BLOCKED_ASSETS[verdict.name]
    for asset in stopped:
        context.op_execution_context.log_event(blocked_observation(asset, date, [verdict]))
    run = context.instance.get_run_by_id(context.run.run_id)
    earlier = [name for name in (run.tags.get(BLOCKED_TAG, "") if run else "").split(",") if name]
    context.instance.add_run_tags(context.run.run_id, {BLOCKED_TAG: ",".join(dict.fromkeys([*earlier, verdict.name]))})
    description = (
        f"blocked by check {verdict.name}: {verdict.message}; {', '.join(stopped)} not materialized for {date}"
        " (a blocking check failed: the audit stopped on purpose, nothing crashed)"
    )
    metadata = {"check": verdict.name, "not_materialized": ", ".join(stopped)}
    if verdict.value is not None:
        metadata |= {"value": plain_value(verdict.value), "threshold": plain_value(verdict.threshold)}
    return dg.Failure(description=description, metadata=metadata, allow_retries=False)


@_partitioned_check(raw_labels, blocking=True)
def input_valid(context: dg.AssetCheckExecutionContext, storage: PipelineStorage) -> Iterator[dg.AssetCheckResult]:
    """The stored snapshot is the one validated (same content hash, label codes match)."""
    verdict = multilabel_stage.input_verdict(storage.store, context.partition_key)  # either label kind
    yield from _record(context, storage, verdict, dg.AssetCheckSeverity.ERROR)


@_partitioned_check(calibrated_joint, blocking=True)
def noise_rate_below_threshold(
    context: dg.AssetCheckExecutionContext, audit_config: AuditConfigResource, storage: PipelineStorage
) -> Iterator[dg.AssetCheckResult]:
    """Estimated noise rate 1 - trace(Q) <= ``checks.max_noise_rate``."""
    limit = audit_config.config.checks.max_noise_rate
    verdict = verdicts.noise_rate_verdict(storage.store, context.partition_key, limit)
    yield from _record(context, storage, verdict, dg.AssetCheckSeverity.ERROR)


@_partitioned_check(calibrated_joint, blocking=True)
def class_noise_below_threshold(
    context: dg.AssetCheckExecutionContext, audit_config: AuditConfigResource, storage: PipelineStorage
) -> Iterator[dg.AssetCheckResult]:
    """Every class's estimated label noise <= ``checks.max_class_noise_rate``."""
    limit = audit_config.config.checks.max_class_noise_rate
    verdict = verdicts.class_noise_verdict(storage.store, context.partition_key, limit)
    yield from _record(context, storage, verdict, dg.AssetCheckSeverity.ERROR)


@_partitioned_check(retrained_model)
def retrained_not_worse_than_baseline(
    context: dg.AssetCheckExecutionContext, audit_config: AuditConfigResource, storage: PipelineStorage
) -> Iterator[dg.AssetCheckResult]:
    """Retrained hold-out accuracy >= baseline - ``checks.retrain_tolerance`` (true labels if known)."""
    tolerance = audit_config.config.checks.retrain_tolerance
    verdict = verdicts.retrain_verdict(storage.store, context.partition_key, tolerance)
    yield from _record(context, storage, verdict, dg.AssetCheckSeverity.WARN)


AUDIT_CHECKS = [
    input_valid,
    noise_rate_below_threshold,
    class_noise_below_threshold,
    retrained_not_worse_than_baseline,
]
