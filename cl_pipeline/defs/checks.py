"""Asset checks. Each result is also written to the warehouse table ``check_results``.

- ``input_valid`` on ``raw_labels`` (blocking, ERROR): the stored snapshot re-validates.
- ``noise_rate_below_threshold`` on ``calibrated_joint`` (blocking, ERROR): 1 - trace(Q).
- ``class_noise_below_threshold`` on ``calibrated_joint`` (blocking, ERROR): worst class.
- ``retrained_not_worse_than_baseline`` on ``retrained_model`` (WARN).

A failing blocking check on ``calibrated_joint`` stops ``pruned_dataset`` and
``retrained_model`` in the same run; ``label_issues`` and Q stay available.
"""


import logging
from typing import Any

import dagster as dg
import pandas as pd

from cl_pipeline.config import ConfigError
from cl_pipeline.defs.assets import calibrated_joint, raw_labels, retrained_model
from cl_pipeline.defs.resources import AuditConfigResource, PipelineStorage
from cl_pipeline.defs.snapshot import validate_snapshot

__all__ = ["AUDIT_CHECKS"]

log = logging.getLogger("cl_pipeline.progress")


def _record(
    context: dg.AssetCheckExecutionContext, storage: PipelineStorage, name: str, passed: bool,
    severity: dg.AssetCheckSeverity, value: Any, threshold: Any, message: str,
) -> dg.AssetCheckResult:  # fmt: skip
    date = context.partition_key
    row = {
        "check_name": name, "passed": passed, "severity": severity.value, "blocking": severity
        == dg.AssetCheckSeverity.ERROR, "value": None if value is None else float(value),
        "threshold": None if threshold is None else float(threshold), "message": message,
        "run_id": context.run.run_id,
    }  # fmt: skip
    storage.write("check_results", date, pd.DataFrame([row]), key=f"{date}.{name}")
    log.info("%-16s %s: %s", "check", name, ("passed" if passed else "FAILED") + f" - {message}")
    return dg.AssetCheckResult(
        passed=passed, severity=severity, description=message,
        metadata={"value": row["value"], "threshold": row["threshold"]} if value is not None else {},
    )  # fmt: skip


@dg.asset_check(asset=raw_labels, blocking=True)
def input_valid(
    context: dg.AssetCheckExecutionContext, audit_config: AuditConfigResource, storage: PipelineStorage
) -> dg.AssetCheckResult:
    """The stored snapshot passes validation again (ids unique, labels known, classes large enough)."""
    config = audit_config.load()
    frame = storage.read("raw_labels", context.partition_key).drop(columns=["partition", "label_index"])
    try:
        snapshot = validate_snapshot(frame.drop(columns=["_byo_pred_probs"], errors="ignore"), config,
                                     context.partition_key)  # fmt: skip
        passed, message = True, f"{len(snapshot.frame)} rows, {len(snapshot.classes)} classes, valid"
    except ConfigError as exc:
        passed, message = False, str(exc)
    return _record(context, storage, "input_valid", passed, dg.AssetCheckSeverity.ERROR, None, None, message)


@dg.asset_check(asset=calibrated_joint, blocking=True)
def noise_rate_below_threshold(
    context: dg.AssetCheckExecutionContext, audit_config: AuditConfigResource, storage: PipelineStorage
) -> dg.AssetCheckResult:
    """Estimated noise rate 1 - trace(Q) <= ``checks.max_noise_rate``."""
    limit = audit_config.load().checks.max_noise_rate
    value = float(storage.metadata("calibrated_joint", context.partition_key)["noise_rate"])
    verdict = "<=" if value <= limit else ">"
    message = f"estimated noise rate {value:.4f} {verdict} threshold {limit:.4f}"
    return _record(context, storage, "noise_rate_below_threshold", value <= limit,
                   dg.AssetCheckSeverity.ERROR, value, limit, message)  # fmt: skip


@dg.asset_check(asset=calibrated_joint, blocking=True)
def class_noise_below_threshold(
    context: dg.AssetCheckExecutionContext, audit_config: AuditConfigResource, storage: PipelineStorage
) -> dg.AssetCheckResult:
    """Every class's estimated label noise <= ``checks.max_class_noise_rate``."""
    limit = audit_config.load().checks.max_class_noise_rate
    per_class = storage.read("class_quality", context.partition_key)
    worst = per_class.loc[per_class["label_noise"].idxmax()]
    value = float(worst["label_noise"])
    verdict = "<=" if value <= limit else ">"
    message = f"worst class {worst['class_label']!r}: label noise {value:.4f} {verdict} threshold {limit:.4f}"
    return _record(context, storage, "class_noise_below_threshold", value <= limit,
                   dg.AssetCheckSeverity.ERROR, value, limit, message)  # fmt: skip


@dg.asset_check(asset=retrained_model)
def retrained_not_worse_than_baseline(
    context: dg.AssetCheckExecutionContext, audit_config: AuditConfigResource, storage: PipelineStorage
) -> dg.AssetCheckResult:
    """Retrained hold-out accuracy >= baseline - ``checks.retrain_tolerance`` (true labels if known)."""
    tolerance = audit_config.load().checks.retrain_tolerance
    row = storage.read("retrained_model", context.partition_key).iloc[0]
    if row["status"] != "trained":
        return _record(context, storage, "retrained_not_worse_than_baseline", True,
                       dg.AssetCheckSeverity.WARN, None, None, str(row["status"]))  # fmt: skip
    suffix = "true_accuracy" if pd.notna(row.get("retrained_true_accuracy")) else "accuracy"
    retrained, baseline = float(row[f"retrained_{suffix}"]), float(row[f"baseline_{suffix}"])
    passed = retrained >= baseline - tolerance
    message = (f"hold-out {suffix.replace('_', ' ')}: retrained {retrained:.4f} vs baseline {baseline:.4f}"
               f" (tolerance {tolerance})")  # fmt: skip
    return _record(context, storage, "retrained_not_worse_than_baseline", passed,
                   dg.AssetCheckSeverity.WARN, retrained - baseline, -tolerance, message)  # fmt: skip


AUDIT_CHECKS = [input_valid, noise_rate_below_threshold, class_noise_below_threshold,
                retrained_not_worse_than_baseline]  # fmt: skip
