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
"""

import logging
import warnings
from typing import Any

import dagster as dg

from cl_pipeline.audit import verdicts
from cl_pipeline.audit.verdicts import Verdict
from cl_pipeline.defs.assets import calibrated_joint, raw_labels, retrained_model
from cl_pipeline.defs.partitions import PARTITIONS
from cl_pipeline.defs.resources import AuditConfigResource, PipelineStorage

__all__ = ["AUDIT_CHECKS"]

log = logging.getLogger("cl_pipeline.progress")


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
) -> dg.AssetCheckResult:
    """Write the verdict to ``check_results`` (a failed blocking one also retracts stale outputs)."""
    date, store = context.partition_key, storage.store
    blocking = severity == dg.AssetCheckSeverity.ERROR
    if blocking and not verdict.passed:
        verdicts.retract_blocked(store, date)  # the date's pruned set and model of an earlier run are stale
    verdicts.record(store, date, verdict, severity.value, blocking, context.run.run_id)
    log.info("%-16s %s: %s - %s", "check", verdict.name, "passed" if verdict.passed else "FAILED", verdict.message)
    metadata = {} if verdict.value is None else {"value": verdict.value, "threshold": verdict.threshold}
    return dg.AssetCheckResult(passed=verdict.passed, severity=severity, description=verdict.message, metadata=metadata)


@_partitioned_check(raw_labels, blocking=True)
def input_valid(context: dg.AssetCheckExecutionContext, storage: PipelineStorage) -> dg.AssetCheckResult:
    """The stored snapshot is the one validated (same content hash, label codes match)."""
    verdict = verdicts.input_verdict(storage.store, context.partition_key)
    return _record(context, storage, verdict, dg.AssetCheckSeverity.ERROR)


@_partitioned_check(calibrated_joint, blocking=True)
def noise_rate_below_threshold(
    context: dg.AssetCheckExecutionContext, audit_config: AuditConfigResource, storage: PipelineStorage
) -> dg.AssetCheckResult:
    """Estimated noise rate 1 - trace(Q) <= ``checks.max_noise_rate``."""
    limit = audit_config.config.checks.max_noise_rate
    verdict = verdicts.noise_rate_verdict(storage.store, context.partition_key, limit)
    return _record(context, storage, verdict, dg.AssetCheckSeverity.ERROR)


@_partitioned_check(calibrated_joint, blocking=True)
def class_noise_below_threshold(
    context: dg.AssetCheckExecutionContext, audit_config: AuditConfigResource, storage: PipelineStorage
) -> dg.AssetCheckResult:
    """Every class's estimated label noise <= ``checks.max_class_noise_rate``."""
    limit = audit_config.config.checks.max_class_noise_rate
    verdict = verdicts.class_noise_verdict(storage.store, context.partition_key, limit)
    return _record(context, storage, verdict, dg.AssetCheckSeverity.ERROR)


@_partitioned_check(retrained_model)
def retrained_not_worse_than_baseline(
    context: dg.AssetCheckExecutionContext, audit_config: AuditConfigResource, storage: PipelineStorage
) -> dg.AssetCheckResult:
    """Retrained hold-out accuracy >= baseline - ``checks.retrain_tolerance`` (true labels if known)."""
    tolerance = audit_config.config.checks.retrain_tolerance
    verdict = verdicts.retrain_verdict(storage.store, context.partition_key, tolerance)
    return _record(context, storage, verdict, dg.AssetCheckSeverity.WARN)


AUDIT_CHECKS = [
    input_valid,
    noise_rate_below_threshold,
    class_noise_below_threshold,
    retrained_not_worse_than_baseline,
]
