"""The audit assets: each calls one stage of :mod:`cl_pipeline.audit.stages` and reports its metadata.

Asset graph (all daily-partitioned)::

    raw_labels -> oof_pred_probs -> confident_joint -> calibrated_joint -> pruned_dataset -> retrained_model
                                              \\-> label_issues ------------/
    audit_summary <- raw_labels, oof_pred_probs, confident_joint, label_issues

``label_issues`` and ``audit_summary`` do not depend on ``calibrated_joint``, so a
failed blocking check on Q stops only ``pruned_dataset`` and ``retrained_model``.
"""

from collections.abc import Callable
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd

from cl_pipeline.audit import stages
from cl_pipeline.audit.render import significant
from cl_pipeline.audit.stages import Blocked, StageResult
from cl_pipeline.defs.partitions import PARTITIONS
from cl_pipeline.defs.resources import AuditConfigResource, ComputeResource, PipelineStorage

__all__ = ["AUDIT_ASSETS", "table_metadata"]

_COMMON: dict[str, Any] = {"partitions_def": PARTITIONS, "group_name": "audit"}


def _value(value: Any) -> Any:
    """A table cell or plain metadata value for the UI: floats to 4 significant digits, numpy as Python."""
    if isinstance(value, np.generic):
        value = value.item()
    return significant(value) if isinstance(value, float) else value


def _column_type(dtype: Any) -> str:
    if pd.api.types.is_bool_dtype(dtype):
        return "bool"
    if pd.api.types.is_integer_dtype(dtype):
        return "int"
    return "float" if pd.api.types.is_float_dtype(dtype) else "string"


def table_metadata(frame: pd.DataFrame) -> dg.TableMetadataValue:
    """``frame`` as Dagster table metadata (shown inline on the asset page), numbers to 4 significant digits."""
    columns = [dg.TableColumn(str(c), _column_type(frame[c].dtype)) for c in frame.columns]
    records = [
        dg.TableRecord({str(c): (None if pd.isna(v) else _value(v)) for c, v in zip(frame.columns, row, strict=True)})
        for row in frame.itertuples(index=False)
    ]
    return dg.MetadataValue.table(records, dg.TableSchema(columns=columns))


def _report(context: dg.AssetExecutionContext, run: Callable[[], StageResult]) -> dg.MaterializeResult:
    """Run one stage; its result as a ``MaterializeResult``, a refusal as a ``dg.Failure``."""
    try:
        result = run()
    except Blocked as exc:
        metadata = {v.name: v.value for v in exc.failed if v.value is not None}
        raise dg.Failure(description=str(exc), metadata=metadata) from None
    context.log.info(f"{context.asset_key.to_user_string()}: {result.summary} ({result.seconds:.2f} s)")
    plain = {key: _value(value) for key, value in result.metadata.items()}
    metadata: dict[str, Any] = {"dagster/row_count": result.row_count, **plain, "seconds": _value(result.seconds)}
    metadata |= {key: dg.MetadataValue.json(value) for key, value in result.json.items()}
    metadata |= {key: dg.MetadataValue.md(value) for key, value in result.markdown.items()}
    metadata |= {key: table_metadata(frame) for key, frame in result.tables.items()}
    version = None if result.data_version is None else dg.DataVersion(result.data_version)
    return dg.MaterializeResult(metadata=metadata, data_version=version)


@dg.asset(**_COMMON, kinds={"parquet", "duckdb"})
def raw_labels(
    context: dg.AssetExecutionContext, audit_config: AuditConfigResource, storage: PipelineStorage
) -> dg.MaterializeResult:
    """The labelled snapshot of the partition date, validated; its content hash is the data version."""
    return _report(context, lambda: stages.raw_labels(storage.store, audit_config.config, context.partition_key))


@dg.asset(**_COMMON, deps=[raw_labels], kinds={"scikit-learn", "parquet"})
def oof_pred_probs(
    context: dg.AssetExecutionContext,
    audit_config: AuditConfigResource,
    storage: PipelineStorage,
    compute: ComputeResource,
) -> dg.MaterializeResult:
    """Out-of-sample predicted probabilities from stratified K-fold (skipped if supplied)."""
    config = audit_config.config
    return _report(
        context, lambda: stages.oof_pred_probs(storage.store, config, context.partition_key, compute.engine(config))
    )


@dg.asset(**_COMMON, deps=[oof_pred_probs], kinds={"numpy", "parquet"})
def confident_joint(
    context: dg.AssetExecutionContext,
    audit_config: AuditConfigResource,
    storage: PipelineStorage,
    compute: ComputeResource,
) -> dg.MaterializeResult:
    """The confident joint C (raw and calibrated counts) with the per-class confident thresholds."""
    engine = compute.engine(audit_config.config)
    return _report(context, lambda: stages.confident_joint(storage.store, context.partition_key, engine))


@dg.asset(**_COMMON, deps=[confident_joint], kinds={"numpy", "parquet"})
def calibrated_joint(context: dg.AssetExecutionContext, storage: PipelineStorage) -> dg.MaterializeResult:
    """Q = the estimated joint of given and true labels, with py and both noise matrices."""
    return _report(context, lambda: stages.calibrated_joint(storage.store, context.partition_key))


@dg.asset(**_COMMON, deps=[raw_labels, oof_pred_probs, confident_joint], kinds={"numpy", "parquet"})
def label_issues(
    context: dg.AssetExecutionContext,
    audit_config: AuditConfigResource,
    storage: PipelineStorage,
    compute: ComputeResource,
) -> dg.MaterializeResult:
    """Every example: id, given and suggested label, label quality, is_label_issue, rank."""
    config = audit_config.config
    return _report(
        context, lambda: stages.label_issues(storage.store, config, context.partition_key, compute.engine(config))
    )


@dg.asset(**_COMMON, deps=[raw_labels, label_issues, calibrated_joint], kinds={"parquet"})
def pruned_dataset(
    context: dg.AssetExecutionContext,
    audit_config: AuditConfigResource,
    storage: PipelineStorage,
    compute: ComputeResource,
) -> dg.MaterializeResult:
    """The snapshot without its flagged examples (refused when a blocking check fails)."""
    config = audit_config.config
    return _report(
        context, lambda: stages.pruned_dataset(storage.store, config, context.partition_key, compute.engine(config))
    )


@dg.asset(**_COMMON, deps=[raw_labels, oof_pred_probs, pruned_dataset], kinds={"scikit-learn"})
def retrained_model(
    context: dg.AssetExecutionContext, audit_config: AuditConfigResource, storage: PipelineStorage
) -> dg.MaterializeResult:
    """Prune + reweight + refit (``ConfidentLearner``) vs the noisy-label baseline on a hold-out split."""
    return _report(context, lambda: stages.retrained_model(storage.store, audit_config.config, context.partition_key))


@dg.asset(**_COMMON, deps=[raw_labels, oof_pred_probs, confident_joint, label_issues], kinds={"duckdb"})
def audit_summary(
    context: dg.AssetExecutionContext, audit_config: AuditConfigResource, storage: PipelineStorage
) -> dg.MaterializeResult:
    """One row per audit: versions, n, K, noise rate, issues, health score, thresholds, timings."""
    date, run_id = context.partition_key, context.run.run_id
    return _report(context, lambda: stages.audit_summary(storage.store, audit_config.config, date, run_id))


AUDIT_ASSETS = [
    raw_labels,
    oof_pred_probs,
    confident_joint,
    calibrated_joint,
    label_issues,
    pruned_dataset,
    retrained_model,
    audit_summary,
]
