"""The audit assets: each reads its inputs from storage, calls one stage, writes one table.

Asset graph (all daily-partitioned)::

    raw_labels -> oof_pred_probs -> confident_joint -> calibrated_joint -> pruned_dataset -> retrained_model
                                              \\-> label_issues ------------/
    audit_summary <- raw_labels, oof_pred_probs, confident_joint, label_issues

``label_issues`` and ``audit_summary`` do not depend on ``calibrated_joint``, so a
failed blocking check on Q stops only ``pruned_dataset`` and ``retrained_model``.
"""


import functools
import hashlib
import logging
import os
import time
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd

from cl_pipeline import __version__
from cl_pipeline.config import AuditConfig
from cl_pipeline.defs import render, stages, verdicts
from cl_pipeline.defs.resources import AuditConfigResource, PipelineStorage
from cl_pipeline.defs.snapshot import (
    Snapshot,
    snapshot_from_stored,
    stored_metadata,
    validate_snapshot,
)
from cl_pipeline.storage import atomic_write_bytes
from cl_pipeline.storage.sources import load_snapshot

__all__ = ["AUDIT_ASSETS", "PARTITIONS", "code_version"]

log = logging.getLogger("cl_pipeline.progress")

#: One partition per daily snapshot; ``CL_PIPELINE_START_DATE`` sets the first date.
PARTITIONS = dg.DailyPartitionsDefinition(
    start_date=os.environ.get("CL_PIPELINE_START_DATE", "2024-01-01"), end_offset=1
)

_COMMON: dict[str, Any] = {"partitions_def": PARTITIONS, "group_name": "audit"}


@functools.cache
def code_version() -> str:
    """Package version plus a hash of the package sources (changes whenever the code does)."""
    digest = hashlib.sha256()
    for path in sorted(Path(__file__).resolve().parents[1].rglob("*.py")):
        digest.update(path.read_bytes())
    return f"{__version__}+{digest.hexdigest()[:10]}"


def load_stored_snapshot(storage: PipelineStorage, partition: str) -> Snapshot:
    """The validated snapshot of ``partition`` as stored by ``raw_labels``."""
    frame = storage.read("raw_labels", partition)
    return snapshot_from_stored(frame, storage.metadata("raw_labels", partition))


def load_pred_probs(storage: PipelineStorage, partition: str) -> np.ndarray:
    """The stored out-of-fold probabilities of ``partition`` as an (n, K) array in row order."""
    frame = storage.read("oof_pred_probs", partition).sort_values("row")
    return np.stack(frame["pred_probs"].to_numpy()).astype(np.float64)


def _done(context: dg.AssetExecutionContext, name: str, start: float, detail: str) -> float:
    seconds = time.perf_counter() - start
    log.info("%-16s %s (%.2f s)", name, detail, seconds)
    context.log.info(f"{name}: {detail} ({seconds:.2f} s)")
    return seconds


@dg.asset(**_COMMON, kinds={"parquet", "duckdb"})
def raw_labels(
    context: dg.AssetExecutionContext, audit_config: AuditConfigResource, storage: PipelineStorage
) -> dg.MaterializeResult:
    """The labelled snapshot of the partition date, validated; its content hash is the data version."""
    start, date = time.perf_counter(), context.partition_key
    config = audit_config.load()
    snapshot = validate_snapshot(load_snapshot(config.source, date), config, date)
    if snapshot.pred_probs is None:
        stages.check_trainable(snapshot, config.model)  # bad model config or text: nothing written
    meta = stored_metadata(snapshot, config) | {"config": config.model_dump(mode="json")}
    counts = np.bincount(snapshot.labels, minlength=len(snapshot.classes))
    seconds = _done(context, "raw_labels", start, f"{len(snapshot.frame)} rows, {len(counts)} classes")
    storage.write("raw_labels", date, snapshot.frame, meta | {"seconds": seconds})
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(snapshot.frame),
            "classes": dg.MetadataValue.json(snapshot.classes),
            "class_counts": dg.MetadataValue.json(dict(zip(snapshot.classes, counts.tolist(), strict=True))),
            "data_version": snapshot.data_version,
            "seconds": seconds,
        },
        data_version=dg.DataVersion(snapshot.data_version),
    )


@dg.asset(**_COMMON, deps=[raw_labels], kinds={"scikit-learn", "parquet"})
def oof_pred_probs(
    context: dg.AssetExecutionContext, audit_config: AuditConfigResource, storage: PipelineStorage
) -> dg.MaterializeResult:
    """Out-of-sample predicted probabilities from stratified K-fold (skipped if supplied)."""
    start, date = time.perf_counter(), context.partition_key
    config = audit_config.load()
    snapshot = load_stored_snapshot(storage, date)
    if snapshot.pred_probs is not None:
        probs, fold, source = snapshot.pred_probs, np.full(snapshot.labels.size, -1), "supplied"
    else:
        X, _ = stages.encode_features(snapshot)
        probs, fold = stages.out_of_fold_probs(snapshot, X, config.model, storage.fold_cache(date))
        source = f"{config.model.n_folds}-fold {config.model.estimator}"
    table = pd.DataFrame({
        "row": np.arange(snapshot.labels.size), "id": snapshot.ids.to_numpy(),
        "given_index": snapshot.labels, "given_label": np.asarray(snapshot.classes, dtype=object)[snapshot.labels],
        "fold": fold, "pred_probs": list(probs),
    })  # fmt: skip
    accuracy = float((probs.argmax(axis=1) == snapshot.labels).mean())
    seconds = _done(context, "oof_pred_probs", start, f"{source}, accuracy vs given {accuracy:.3f}")
    storage.write("oof_pred_probs", date, table, {"classes": snapshot.classes, "seconds": seconds})
    return dg.MaterializeResult(metadata={
        "dagster/row_count": len(table), "source": source,
        "accuracy_vs_given_labels": accuracy, "seconds": seconds,
    })  # fmt: skip


@dg.asset(**_COMMON, deps=[oof_pred_probs], kinds={"numpy", "parquet"})
def confident_joint(context: dg.AssetExecutionContext, storage: PipelineStorage) -> dg.MaterializeResult:
    """The confident joint C (raw and calibrated counts) with the per-class confident thresholds."""
    start, date = time.perf_counter(), context.partition_key
    snapshot, probs = load_stored_snapshot(storage, date), load_pred_probs(storage, date)
    table, info = stages.confident_joint_table(snapshot.labels, probs, snapshot.classes)
    seconds = _done(context, "confident_joint", start, f"{info['off_diagonal']} off-diagonal examples")
    storage.write("confident_joint", date, table, info | {"seconds": seconds})
    k = len(snapshot.classes)
    counts = table["calibrated_count"].to_numpy().reshape(k, k)
    return dg.MaterializeResult(metadata={
        "dagster/row_count": len(table),
        "thresholds": dg.MetadataValue.json(dict(zip(snapshot.classes, info["thresholds"], strict=True))),
        "calibrated_confident_joint": dg.MetadataValue.md(
            render.markdown_matrix(counts, snapshot.classes, "given \\ true", 0)),
        "off_diagonal_examples": info["off_diagonal"], "seconds": seconds,
    })  # fmt: skip


@dg.asset(**_COMMON, deps=[confident_joint], kinds={"numpy", "parquet"})
def calibrated_joint(context: dg.AssetExecutionContext, storage: PipelineStorage) -> dg.MaterializeResult:
    """Q = the estimated joint of given and true labels, with py and both noise matrices."""
    start, date = time.perf_counter(), context.partition_key
    snapshot, probs = load_stored_snapshot(storage, date), load_pred_probs(storage, date)
    k, classes = len(snapshot.classes), snapshot.classes
    calibrated = storage.read("confident_joint", date)["calibrated_count"].to_numpy().reshape(k, k)
    joint, per_class, info = stages.calibrated_joint_tables(snapshot.labels, probs, classes, calibrated)
    png = render.heatmap_png(np.asarray(info["Q"]), classes, f"Q (noise rate {info['noise_rate']:.3f})")
    atomic_write_bytes(storage.artifact_path("heatmaps", date, ".png"), lambda f: f.write(png))
    seconds = _done(context, "calibrated_joint", start, f"estimated noise rate {info['noise_rate']:.4f}")
    storage.write("class_quality", date, per_class)  # its time is calibrated_joint's
    storage.write("calibrated_joint", date, joint, info | {"seconds": seconds})
    return dg.MaterializeResult(metadata={
        "dagster/row_count": len(joint), "estimated_noise_rate": info["noise_rate"],
        "Q": dg.MetadataValue.md(render.markdown_matrix(np.asarray(info["Q"]), classes, "given \\ true")),
        "noise_matrix": dg.MetadataValue.md(render.markdown_matrix(
            np.asarray(info["noise_matrix"]), classes, "P(given=row | true=col)")),
        "Q_heatmap": dg.MetadataValue.md(render.png_markdown(png, "heatmap of Q")),
        "class_noise_rates": dg.MetadataValue.md(render.markdown_table(per_class[
            ["class_label", "n", "label_noise", "inverse_label_noise", "label_quality"]])),
        "seconds": seconds,
    })  # fmt: skip


@dg.asset(**_COMMON, deps=[raw_labels, oof_pred_probs, confident_joint], kinds={"numpy", "parquet"})
def label_issues(
    context: dg.AssetExecutionContext, audit_config: AuditConfigResource, storage: PipelineStorage
) -> dg.MaterializeResult:
    """Every example: id, given and suggested label, label quality, is_label_issue, rank."""
    start, date = time.perf_counter(), context.partition_key
    config = audit_config.load()
    snapshot, probs = load_stored_snapshot(storage, date), load_pred_probs(storage, date)
    table, info = stages.label_issues_table(snapshot, probs, config.issues)
    seconds = _done(context, "label_issues", start, f"{info['num_issues']} of {info['n']} flagged")
    storage.write("label_issues", date, table, info | {"seconds": seconds})
    top = table.loc[table["is_label_issue"], ["rank", "id", "given_label", "suggested_label", "label_quality"]]
    metadata: dict[str, Any] = {
        "dagster/row_count": len(table), "num_issues": info["num_issues"],
        "top_20_issues": dg.MetadataValue.md(render.markdown_table(top.head(20))), "seconds": seconds,
    }  # fmt: skip
    metadata.update({k: info[k] for k in ("precision", "recall", "true_errors") if k in info})
    return dg.MaterializeResult(metadata=metadata)


@dg.asset(**_COMMON, deps=[raw_labels, label_issues, calibrated_joint], kinds={"parquet"})
def pruned_dataset(
    context: dg.AssetExecutionContext, audit_config: AuditConfigResource, storage: PipelineStorage
) -> dg.MaterializeResult:
    """The snapshot without its flagged examples (blocked when the noise checks fail)."""
    start, date = time.perf_counter(), context.partition_key
    _refuse_if_blocked(storage, date, audit_config.load())
    raw = storage.read("raw_labels", date)
    issues = storage.read("label_issues", date).sort_values("row")
    kept = raw.loc[~issues["is_label_issue"].to_numpy()]
    seconds = _done(context, "pruned_dataset", start, f"{len(kept)} kept, {len(raw) - len(kept)} removed")
    storage.write("pruned_dataset", date, kept, {"seconds": seconds})
    return dg.MaterializeResult(metadata={
        "dagster/row_count": len(kept), "removed": len(raw) - len(kept), "seconds": seconds,
    })  # fmt: skip


def _refuse_if_blocked(storage: PipelineStorage, date: str, config: AuditConfig) -> None:
    """Fail when a blocking check fails for ``date``, even if no check ran in this run.

    A blocking check only stops the steps of its own run; materializing
    ``pruned_dataset`` or ``retrained_model`` alone from the UI must not prune
    or retrain a partition whose stored input changed or whose estimated noise
    is above the thresholds. The date's stale pruned set and model go too.
    """
    failed = verdicts.blocking_failures(storage, date, config)
    if failed:
        verdicts.retract_blocked(storage, date)  # an earlier run's outputs are stale too
        raise dg.Failure(
            description="; ".join(f"blocked by check {v.name}: {v.message}" for v in failed),
            metadata={v.name: v.value for v in failed if v.value is not None},
        )


def _skip_retrain(snapshot: Snapshot) -> str | None:
    if snapshot.pred_probs is not None:
        return "probabilities were supplied: no features to train on"
    return None


@dg.asset(**_COMMON, deps=[raw_labels, oof_pred_probs, pruned_dataset], kinds={"scikit-learn"})
def retrained_model(
    context: dg.AssetExecutionContext, audit_config: AuditConfigResource, storage: PipelineStorage
) -> dg.MaterializeResult:
    """Prune + reweight + refit (``ConfidentLearner``) vs the noisy-label baseline on a hold-out split."""
    import joblib

    start, date = time.perf_counter(), context.partition_key
    config: AuditConfig = audit_config.load()
    _refuse_if_blocked(storage, date, config)
    snapshot = load_stored_snapshot(storage, date)
    row: dict[str, Any] = {"status": "trained", "artifact": None}
    if (reason := _skip_retrain(snapshot)) is not None:
        row["status"] = f"skipped: {reason}"
    else:
        artifact, scores = stages.retrain(snapshot, load_pred_probs(storage, date), config)
        path = storage.artifact_path("retrained_model", date, ".joblib")
        atomic_write_bytes(path, lambda handle: joblib.dump(artifact, handle))
        row.update(scores, artifact=str(path))
    seconds = _done(context, "retrained_model", start, row["status"])
    storage.write("retrained_model", date, pd.DataFrame([row | {"seconds": seconds}]), {"seconds": seconds})
    metadata = {k: v for k, v in row.items() if v is not None}
    return dg.MaterializeResult(metadata=metadata | {"dagster/row_count": 1, "seconds": seconds})


@dg.asset(**_COMMON, deps=[raw_labels, oof_pred_probs, confident_joint, label_issues], kinds={"duckdb"})
def audit_summary(
    context: dg.AssetExecutionContext, audit_config: AuditConfigResource, storage: PipelineStorage
) -> dg.MaterializeResult:
    """One row per audit: versions, n, K, noise rate, issues, health score, thresholds, timings."""
    start, date = time.perf_counter(), context.partition_key
    config = audit_config.load()
    snapshot = load_stored_snapshot(storage, date)
    probs = load_pred_probs(storage, date)
    joint_meta, issues_meta = storage.metadata("confident_joint", date), storage.metadata("label_issues", date)
    from cl_pipeline import core

    row: dict[str, Any] = {
        "data_version": snapshot.data_version, "code_version": code_version(),
        "run_id": context.run.run_id, "created_at": pd.Timestamp.now(tz="UTC"),
        "n": int(snapshot.labels.size), "k": len(snapshot.classes), "classes": list(snapshot.classes),
        "estimated_noise_rate": joint_meta["noise_rate"], "num_issues": issues_meta["num_issues"],
        "health_score": float(core.overall_label_health_score(snapshot.labels, probs)),
        "thresholds": joint_meta["thresholds"], "filter_by": config.issues.filter_by,
        "max_noise_rate": config.checks.max_noise_rate,
        "max_class_noise_rate": config.checks.max_class_noise_rate,
        "retrain_tolerance": config.checks.retrain_tolerance,
        "precision": issues_meta.get("precision"), "recall": issues_meta.get("recall"),
    }  # fmt: skip
    for table in ("raw_labels", "oof_pred_probs", "confident_joint", "label_issues"):
        row[f"seconds_{table}"] = storage.metadata(table, date).get("seconds")
    row["seconds_audit_summary"] = _done(context, "audit_summary", start, "recorded")
    storage.write("audit_summary", date, pd.DataFrame([row]), {"seconds": row["seconds_audit_summary"]})
    keep = ("n", "k", "estimated_noise_rate", "num_issues", "health_score", "data_version", "code_version")
    return dg.MaterializeResult(metadata={k: row[k] for k in keep} | {"dagster/row_count": 1})


AUDIT_ASSETS = [
    raw_labels, oof_pred_probs, confident_joint, calibrated_joint,
    label_issues, pruned_dataset, retrained_model, audit_summary,
]  # fmt: skip
