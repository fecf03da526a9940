"""The audit assets: each calls one stage of :mod:`cl_pipeline.audit.stages` and reports its metadata.

Asset graph (all daily-partitioned)::

    raw_labels -> oof_pred_probs -> confident_joint -> calibrated_joint -> pruned_dataset -> retrained_model
                                              \\-> label_issues ------------/
    audit_summary <- raw_labels, oof_pred_probs, confident_joint, label_issues

``label_issues`` and ``audit_summary`` do not depend on ``calibrated_joint``, so a
failed blocking check on Q stops only ``pruned_dataset`` and ``retrained_model``.

Dagster's "Row count" (``dagster/row_count``) is reported only where a table row is an
example (``raw_labels``, ``oof_pred_probs``, ``label_issues``, ``pruned_dataset``); the
K x K tables report ``class_pairs`` and ``classes`` instead, and the one-row records of
``retrained_model`` and ``audit_summary`` no count.
"""

import math
from collections.abc import Callable
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd

from cl_pipeline.audit import curation, issue_gallery, multilabel_stage, stages
from cl_pipeline.audit.history_plot import with_history
from cl_pipeline.audit.render import significant
from cl_pipeline.audit.stages import Blocked, StageResult
from cl_pipeline.audit.verdicts import Verdict
from cl_pipeline.defs.partitions import PARTITIONS
from cl_pipeline.defs.resources import AuditConfigResource, ComputeResource, PipelineStorage

__all__ = ["AUDIT_ASSETS", "blocked_observation", "plain_value", "table_metadata"]

_COMMON: dict[str, Any] = {"partitions_def": PARTITIONS, "group_name": "audit"}

#: Assets whose table has one row per example: their row count is Dagster's "Row count".
_ROWS_ARE_EXAMPLES = frozenset({"raw_labels", "oof_pred_probs", "label_issues", "pruned_dataset", "curated_dataset"})
#: Assets whose table has one row per (given, true) class pair.
_ROWS_ARE_CLASS_PAIRS = frozenset({"confident_joint", "calibrated_joint"})


def plain_value(value: Any) -> Any:
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
        dg.TableRecord(
            {str(c): (None if pd.isna(v) else plain_value(v)) for c, v in zip(frame.columns, row, strict=True)}
        )
        for row in frame.itertuples(index=False)
    ]
    return dg.MetadataValue.table(records, dg.TableSchema(columns=columns))


def blocked_observation(asset: str, date: str, failed: list[Verdict]) -> dg.AssetObservation:
    """An observation of ``asset`` for partition ``date``: not materialized, blocked by the ``failed`` checks.

    Shown in the asset's Events (and its partition's event history) next to the failed run.
    """
    said = "; ".join(f"blocked by check {v.name}: {v.message}" for v in failed)
    metadata: dict[str, Any] = {"status": "blocked (not materialized)", "blocked_by": ", ".join(v.name for v in failed)}
    for v in failed:
        metadata[v.name] = v.message
    return dg.AssetObservation(asset_key=asset, partition=date, description=said, metadata=metadata)


def _row_metadata(asset: str, rows: int) -> dict[str, Any]:
    """What a stage's row count means for ``asset`` (see the module docstring)."""
    if asset in _ROWS_ARE_EXAMPLES:
        return {"dagster/row_count": rows}
    if asset in _ROWS_ARE_CLASS_PAIRS:
        return {"classes": math.isqrt(rows), "class_pairs": rows}
    return {}


def _report(context: dg.AssetExecutionContext, run: Callable[[], StageResult]) -> dg.MaterializeResult:
    """Run one stage; its result as a ``MaterializeResult``, a refusal as a ``dg.Failure`` (and an observation)."""
    asset = context.asset_key.to_user_string()
    try:
        result = run()
    except Blocked as exc:
        # reported directly: an event logged by a step that then fails is dropped with the step's output
        context.instance.report_runless_asset_event(blocked_observation(asset, context.partition_key, exc.failed))
        metadata = {v.name: plain_value(v.value) for v in exc.failed if v.value is not None}
        raise dg.Failure(
            description=f"{exc}; {asset} not materialized", metadata=metadata, allow_retries=False
        ) from None
    context.log.info(f"{asset}: {result.summary} ({result.seconds:.2f} s)")
    plain = {key: plain_value(value) for key, value in result.metadata.items()}
    metadata: dict[str, Any] = {
        **_row_metadata(asset, result.row_count),
        **plain,
        "seconds": plain_value(result.seconds),
    }
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
    """Every example: id, given and suggested label, label quality, is_label_issue, rank.

    Its metadata shows the top 20 issues as pictures (``columns.image``) or with their text
    (:mod:`cl_pipeline.audit.issue_gallery`).
    """
    config, store, date = audit_config.config, storage.store, context.partition_key
    return _report(
        context,
        lambda: issue_gallery.with_issue_views(
            store, config, date, lambda: stages.label_issues(store, config, date, compute.engine(config))
        ),
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
    """One row per audit: versions, n, K, noise rate, issues, health score, thresholds, timings.

    Its metadata shows the noise-rate and issue-rate history of every date as a picture.
    """
    date, run_id, store = context.partition_key, context.run.run_id, storage.store
    return _report(context, lambda: with_history(store, stages.audit_summary(store, audit_config.config, date, run_id)))


@dg.asset(**_COMMON, deps=[raw_labels], kinds={"parquet"})
def curated_dataset(
    context: dg.AssetExecutionContext, audit_config: AuditConfigResource, storage: PipelineStorage
) -> dg.MaterializeResult:
    """The snapshot with the review decisions applied (relabel, drop), with its own data version."""
    date = context.partition_key
    if multilabel_stage.is_multilabel(storage.store, date):  # review decisions are single labels: skipped
        return _report(context, lambda: multilabel_stage.curated_dataset(storage.store, date))
    return _report(context, lambda: curation.curated_dataset(storage.store, audit_config.config, date))


AUDIT_ASSETS = [
    raw_labels,
    oof_pred_probs,
    confident_joint,
    calibrated_joint,
    label_issues,
    pruned_dataset,
    retrained_model,
    audit_summary,
    curated_dataset,
]
