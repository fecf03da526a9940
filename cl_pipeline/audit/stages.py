"""One function per pipeline stage: read its inputs from the store, compute, write one table.

Each stage returns a :class:`StageResult` (plain values the orchestrator shows
as metadata); :mod:`cl_pipeline.defs.assets` wraps each in a Dagster asset.
Stages run in the order of the asset graph::

    raw_labels -> oof_pred_probs -> confident_joint -> calibrated_joint -> pruned_dataset -> retrained_model
                                              \\-> label_issues ------------/
    audit_summary <- raw_labels, oof_pred_probs, confident_joint, label_issues

``pruned_dataset`` and ``retrained_model`` raise :class:`Blocked` when a
blocking verdict fails for the date (see :mod:`cl_pipeline.audit.verdicts`).

A multi-label snapshot (``columns.label_kind = "multilabel"``) goes through the same
stages; each dispatches to :mod:`cl_pipeline.audit.multilabel_stage` when the date's
``raw_labels`` hold label sets.
"""

import functools
import hashlib
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from cl_pipeline import __version__
from cl_pipeline.audit import oof_staging, parquet_snapshot, render, streaming, tables, verdicts
from cl_pipeline.audit.compute import LOCAL, Engine
from cl_pipeline.audit.features import encode_features
from cl_pipeline.audit.folds import out_of_fold_probs
from cl_pipeline.audit.preflight import prevalidate
from cl_pipeline.audit.retrain import retrain
from cl_pipeline.audit.snapshot import BYO_COLUMN, Snapshot, snapshot_from_stored, stored_metadata
from cl_pipeline.config import AuditConfig
from cl_pipeline.storage import PartitionStore
from cl_pipeline.storage.queries import top_rows

__all__ = [
    "STAGES",
    "Blocked",
    "StageResult",
    "audit_summary",
    "calibrated_joint",
    "code_version",
    "confident_joint",
    "label_issues",
    "oof_pred_probs",
    "pruned_dataset",
    "raw_labels",
    "retrained_model",
]

log = logging.getLogger("cl_pipeline.progress")

#: The stages in the order of the asset graph (each is an asset and a table of the same name).
STAGES = (
    "raw_labels",
    "oof_pred_probs",
    "confident_joint",
    "calibrated_joint",
    "label_issues",
    "pruned_dataset",
    "retrained_model",
    "audit_summary",
    "curated_dataset",
    "annotator_quality",
)


@dataclass(frozen=True)
class StageResult:
    """What a stage did, for logs and the orchestrator's metadata.

    Attributes
    ----------
    summary : str
        One line (``"1797 rows, 10 classes"``).
    seconds : float
        Wall time of the stage.
    row_count : int
        Rows of the table the stage wrote.
    metadata : dict
        Plain values (numbers, strings).
    json : dict
        Values best shown as JSON (lists, mappings).
    markdown : dict
        Markdown texts (an inline picture).
    tables : dict
        Small tables (DataFrames) to show inline: matrices, per-class rates, top issues.
    data_version : str, optional
        The content hash of the stage's input data (``raw_labels`` only).
    """

    summary: str
    seconds: float
    row_count: int
    metadata: dict[str, Any] = field(default_factory=dict)
    json: dict[str, Any] = field(default_factory=dict)
    markdown: dict[str, str] = field(default_factory=dict)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    data_version: str | None = None


class Blocked(Exception):
    """A blocking verdict failed for the date: the stage refused to write."""

    def __init__(self, failed: list[verdicts.Verdict]) -> None:
        self.failed = failed
        super().__init__("; ".join(f"blocked by check {v.name}: {v.message}" for v in failed))


@functools.cache
def code_version() -> str:
    """Package version plus a hash of the package sources (changes whenever the code does)."""
    digest = hashlib.sha256()
    for path in sorted(Path(__file__).resolve().parents[1].rglob("*.py")):
        digest.update(path.read_bytes())
    return f"{__version__}+{digest.hexdigest()[:10]}"


def load_stored_snapshot(store: PartitionStore, date: str) -> Snapshot:
    """The validated snapshot of ``date`` as stored by ``raw_labels``."""
    return snapshot_from_stored(store.read("raw_labels", date), store.metadata("raw_labels", date))


def load_pred_probs(store: PartitionStore, date: str) -> np.ndarray:
    """The stored out-of-fold probabilities of ``date`` as one (n, K) array in row order (feature path only)."""
    k = len(store.metadata("raw_labels", date)["classes"])
    parts = [
        streaming.probabilities(b.column(0), k) for b in store.iter_batches("oof_pred_probs", date, ["pred_probs"])
    ]
    return np.concatenate(parts).astype(np.float64, copy=False) if parts else np.empty((0, k))


def _multilabel(store: PartitionStore, date: str) -> Any:
    """The multi-label stages (:mod:`cl_pipeline.audit.multilabel_stage`) if ``date``'s raw_labels hold label sets."""
    from cl_pipeline.audit import multilabel_stage  # lazy: it imports this module

    return multilabel_stage if multilabel_stage.is_multilabel(store, date) else None


def _elapsed(name: str, start: float, summary: str) -> float:
    seconds = time.perf_counter() - start
    log.info("%-16s %s (%.2f s)", name, summary, seconds)
    return seconds


def raw_labels(store: PartitionStore, config: AuditConfig, date: str) -> StageResult:
    """The labelled snapshot of ``date``, validated; its content hash is the data version."""
    if config.columns is not None and config.columns.label_kind == "multilabel":
        from cl_pipeline.audit import multilabel_stage

        return multilabel_stage.raw_labels(store, config, date)
    start = time.perf_counter()
    checked = prevalidate(config, date)
    if config.audit.start_from == "curated":  # the review decisions applied (lazy: curation imports this module)
        from cl_pipeline.audit.curation import curated_raw_labels

        if (curated := curated_raw_labels(store, config, date, checked, start)) is not None:
            return curated
    if checked.parquet is not None:
        return _raw_labels_streamed(store, config, date, checked.parquet, start)
    snapshot = checked.snapshot
    if config.columns is not None and config.columns.annotations is not None:  # issue 12: audit the consensus
        from cl_pipeline.audit.annotators import consensus_snapshot

        snapshot = consensus_snapshot(store, config, date, snapshot)
    meta = stored_metadata(snapshot, config) | {"config": config.model_dump(mode="json", exclude={"compute"})}
    counts = np.bincount(snapshot.labels, minlength=len(snapshot.classes))
    summary = f"{len(snapshot.frame)} rows, {len(counts)} classes"
    seconds = _elapsed("raw_labels", start, summary)
    store.write("raw_labels", date, snapshot.frame, meta | {"seconds": seconds})
    return StageResult(
        summary,
        seconds,
        len(snapshot.frame),
        metadata={"data_version": snapshot.data_version},
        json={
            "classes": snapshot.classes,
            "class_counts": dict(zip(snapshot.classes, counts.tolist(), strict=True)),
        },
        data_version=snapshot.data_version,
    )


def _raw_labels_streamed(
    store: PartitionStore, config: AuditConfig, date: str, snapshot: parquet_snapshot.ParquetSnapshot, start: float
) -> StageResult:
    """``raw_labels`` of a Parquet snapshot with supplied probability columns, copied batch by batch."""
    info = parquet_snapshot.stored_metadata(snapshot) | {"config": config.model_dump(mode="json", exclude={"compute"})}
    schema = parquet_snapshot.raw_labels_schema(snapshot)
    stager = oof_staging.OofStager(store, date, info, _supplied_columns_schema(schema, info))
    try:
        batches = _timed(stager.feed(parquet_snapshot.raw_label_batches(snapshot, verify=True)), start, info)
        rows = store.write_batches("raw_labels", date, schema, batches, info)
    finally:
        stager.close()
    verdicts.remember_written_input(store, date, rows, snapshot.classes, snapshot.data_version)
    summary = f"{rows} rows, {len(snapshot.classes)} classes"
    seconds = _elapsed("raw_labels", start, summary)
    return StageResult(
        summary,
        seconds,
        rows,
        metadata={"data_version": snapshot.data_version},
        json={
            "classes": snapshot.classes,
            "class_counts": dict(zip(snapshot.classes, snapshot.label_counts, strict=True)),
        },
        data_version=snapshot.data_version,
    )


def _supplied_columns_schema(raw: pa.Schema, meta: dict[str, Any]) -> pa.Schema:
    """``oof_pred_probs`` schema when the probabilities are columns of the snapshot (their own dtype).

    ``raw`` is the schema of ``raw_labels`` (stored, or about to be written).
    """
    types = {raw.field(c).type for c in meta["probability_columns"]}
    dtype = np.dtype(np.float32) if types == {pa.float32()} else np.dtype(np.float64)
    id_type = raw.field(meta["id_column"]).type
    return streaming.oof_schema(id_type, len(meta["classes"]), dtype, bool(meta.get("true_label_column")))


def _timed(batches: Iterator[pa.RecordBatch], start: float, info: dict[str, Any]) -> Iterator[pa.RecordBatch]:
    """Pass the batches on; after the last one, record the stage's seconds in ``info``."""
    yield from batches
    info["seconds"] = time.perf_counter() - start


def oof_pred_probs(store: PartitionStore, config: AuditConfig, date: str, engine: Engine = LOCAL) -> StageResult:
    """Out-of-sample predicted probabilities from stratified K-fold (taken as is if supplied), in batches.

    The K folds run on ``engine`` (threads here, or one task per fold on a Dask cluster).
    """
    if (multilabel := _multilabel(store, date)) is not None:  # in memory, this process
        return multilabel.oof_pred_probs(store, config, date)
    start = time.perf_counter()
    meta = store.metadata("raw_labels", date)
    k = len(meta["classes"])
    if meta.get("probability_columns"):
        if (adopted := oof_staging.adopt(store, date, meta)) is not None:
            return _adopted_oof(adopted, start)
        schema = _supplied_columns_schema(store.schema("raw_labels", date), meta)
        batches, source = streaming.oof_batches_from_raw(store, date, meta, schema, engine), "supplied"
        class_totals = _stored_class_counts(store, date, meta, k)
    else:
        snapshot = load_stored_snapshot(store, date)
        class_totals = np.bincount(snapshot.labels, minlength=k).astype(np.int64)
        if snapshot.pred_probs is not None:
            probs, fold, source = snapshot.pred_probs, np.full(snapshot.labels.size, -1), "supplied"
        else:
            X, _ = encode_features(snapshot)
            probs, fold = out_of_fold_probs(snapshot, X, config.model, store.fold_cache(date), engine)
            source = f"{config.model.n_folds}-fold {config.model.estimator}"
        id_type = pa.Array.from_pandas(snapshot.ids).type
        schema = streaming.oof_schema(id_type, k, probs.dtype, snapshot.true_labels is not None)
        batches = streaming.oof_batches_from_arrays(snapshot, probs, fold, schema)
    tally, info = [0, 0], {"classes": meta["classes"]}
    rows = store.write_batches(
        "oof_pred_probs", date, schema, _timed(streaming.tallied(batches, class_totals, tally, info), start, info), info
    )
    accuracy = tally[0] / max(tally[1], 1)
    summary = f"{source}, accuracy vs given {accuracy:.3f}"
    seconds = _elapsed("oof_pred_probs", start, summary)
    return StageResult(summary, seconds, rows, metadata={"source": source, "accuracy_vs_given_labels": accuracy})


def _stored_class_counts(store: PartitionStore, date: str, meta: dict[str, Any], k: int) -> np.ndarray:
    """``n_k`` of the stored ``raw_labels``: recorded by a streamed copy, else counted from ``label_index``."""
    if meta.get("label_counts") is not None:
        return np.asarray(meta["label_counts"], dtype=np.int64)
    counts = np.zeros(k, dtype=np.int64)
    for batch in store.iter_batches("raw_labels", date, ["label_index"], 1 << 20):
        counts += np.bincount(batch.column(0).to_numpy(zero_copy_only=False), minlength=k)
    return counts


def _adopted_oof(staged: dict[str, Any], start: float) -> StageResult:
    """The result of ``oof_pred_probs`` when the table is the file staged while ``raw_labels`` was copied."""
    accuracy = float(staged["accuracy"])
    summary = f"supplied, accuracy vs given {accuracy:.3f} (written with raw_labels)"
    seconds = _elapsed("oof_pred_probs", start, summary)
    metadata = {
        "source": "supplied",
        "accuracy_vs_given_labels": accuracy,
        "staged_seconds": staged.get("staged_seconds"),
    }
    return StageResult(summary, seconds, int(staged["rows"]), metadata=metadata)


def confident_joint(store: PartitionStore, date: str, engine: Engine = LOCAL) -> StageResult:
    """The confident joint C (raw and calibrated counts) with the per-class confident thresholds.

    One pass over ``oof_pred_probs`` (three when its file does not carry the thresholds), one
    task per slice on ``engine``, merged exactly.
    """
    if (multilabel := _multilabel(store, date)) is not None:
        return multilabel.confident_joint(store, date)
    start = time.perf_counter()
    classes = list(store.metadata("raw_labels", date)["classes"])
    thresholds, joint = streaming.confident_joint_pass(store, date, len(classes), engine)
    table, info = tables.confident_joint_table(thresholds, joint, classes)
    summary = f"{info['off_diagonal']} off-diagonal examples"
    seconds = _elapsed("confident_joint", start, summary)
    store.write("confident_joint", date, table, info | {"seconds": seconds})
    return StageResult(
        summary,
        seconds,
        len(table),
        metadata={"off_diagonal_examples": info["off_diagonal"]},
        json={"thresholds": dict(zip(classes, info["thresholds"], strict=True))},
        tables={"calibrated_confident_joint": render.matrix_frame(joint.calibrated, classes, "given \\ true")},
    )


def calibrated_joint(store: PartitionStore, date: str) -> StageResult:
    """Q = the estimated joint of given and true labels, with py, both noise matrices and per-class quality.

    Computed from the stored confident joint and its counts alone: no row is read.
    """
    if (multilabel := _multilabel(store, date)) is not None:
        return multilabel.calibrated_joint(store, date)
    start = time.perf_counter()
    classes = list(store.metadata("raw_labels", date)["classes"])
    k, joint_meta = len(classes), store.metadata("confident_joint", date)
    calibrated = store.read("confident_joint", date)["calibrated_count"].to_numpy().reshape(k, k)
    counts = np.asarray(joint_meta["label_counts"], dtype=np.int64)
    joint, per_class, info = tables.calibrated_joint_tables(classes, calibrated, counts, joint_meta["num_label_issues"])
    picture = render.heatmap_svg(np.asarray(info["Q"]), classes, f"Q (noise rate {info['noise_rate']:.3f})")
    store.write_artifact("heatmaps", date, ".svg", lambda handle: handle.write(picture.encode()))
    store.remove_artifact("heatmaps", date, ".png")  # the PNG of earlier versions
    summary = f"estimated noise rate {info['noise_rate']:.4f}"
    seconds = _elapsed("calibrated_joint", start, summary)
    store.write("class_quality", date, per_class)  # its time is calibrated_joint's
    store.write("calibrated_joint", date, joint, info | {"seconds": seconds})
    quality_columns = ["class_label", "n", "label_noise", "inverse_label_noise", "label_quality"]
    return StageResult(
        summary,
        seconds,
        len(joint),
        metadata={"estimated_noise_rate": info["noise_rate"]},
        markdown={"Q_heatmap": render.svg_markdown(picture, "heatmap of Q")},
        tables={
            "Q": render.matrix_frame(np.asarray(info["Q"]), classes, "given \\ true"),
            "noise_matrix": render.matrix_frame(np.asarray(info["noise_matrix"]), classes, "P(given=row | true=col)"),
            "class_noise_rates": per_class[quality_columns],
        },
    )


def label_issues(store: PartitionStore, config: AuditConfig, date: str, engine: Engine = LOCAL) -> StageResult:
    """Every example: id, given and suggested label, label quality, is_label_issue, rank (flagged rows only).

    Written in row order, batch by batch; ``rank`` is 1, 2, ... over the flagged rows
    (most suspicious first) and null for the others. The selection and the scores run
    on ``engine`` (on a Dask cluster, workers write the slices that the run commits).
    """
    if (multilabel := _multilabel(store, date)) is not None:
        return multilabel.label_issues(store, config, date)
    start = time.perf_counter()
    classes = list(store.metadata("raw_labels", date)["classes"])
    oof = store.schema("oof_pred_probs", date)
    schema = streaming.label_issues_schema(oof.field("id").type, "true_index" in oof.names)
    thresholds, joint = tables.stored_confident_joint(
        store.read("confident_joint", date), store.metadata("confident_joint", date)
    )
    info: dict[str, Any] = {}
    batches = streaming.label_issue_batches(
        store, date, classes, config.issues, thresholds, joint, schema, info, engine
    )
    rows = store.write_batches("label_issues", date, schema, _timed(batches, start, info), info)
    if config.audit.start_from == "curated":  # examples a reviewer kept are not flagged again
        from cl_pipeline.audit.reviewed import review_label_issues

        review_label_issues(store, date, info)
    summary = f"{info['num_issues']} of {info['n']} flagged"
    seconds = _elapsed("label_issues", start, summary)
    top = top_rows(
        store.path("label_issues", date),
        ["rank", "id", "given_label", "suggested_label", "label_quality"],
        "is_label_issue",
        "rank",
        20,
    )
    metadata = {"num_issues": info["num_issues"]}
    metadata |= {k: info[k] for k in ("precision", "recall", "true_errors") if k in info}
    return StageResult(summary, seconds, rows, metadata=metadata, tables={"top_20_issues": top})


def pruned_dataset(store: PartitionStore, config: AuditConfig, date: str, engine: Engine = LOCAL) -> StageResult:
    """The snapshot without its flagged examples (refused when a blocking verdict fails), in batches.

    On a Dask ``engine`` the workers filter slices of the snapshot; the run commits them.
    """
    if (multilabel := _multilabel(store, date)) is not None:
        return multilabel.pruned_dataset(store, config, date)
    start = time.perf_counter()
    if failed := verdicts.guard(store, date, config.checks):  # the recorded verdicts decide
        raise Blocked(failed)
    info: dict[str, Any] = {}
    schema = store.schema("raw_labels", date).remove_metadata()
    batches = _timed(streaming.pruned_batches(store, date, schema, info, engine), start, info)
    kept = store.write_batches("pruned_dataset", date, schema, batches, info)
    removed = int(info["removed"])
    summary = f"{kept} kept, {removed} removed"
    seconds = _elapsed("pruned_dataset", start, summary)
    return StageResult(summary, seconds, kept, metadata={"removed": removed})


#: The UI names of the hold-out scores: each says which labels it is measured against (the
#: given labels are noisy, so a retrained model that fixes them can score lower against them).
SCORE_LABELS = {
    "baseline_accuracy": "holdout accuracy vs given labels: baseline",
    "retrained_accuracy": "holdout accuracy vs given labels: retrained",
    "baseline_true_accuracy": "holdout accuracy vs true labels: baseline",
    "retrained_true_accuracy": "holdout accuracy vs true labels: retrained",
}


def retrained_model(store: PartitionStore, config: AuditConfig, date: str) -> StageResult:
    """Prune + reweight + refit (``ConfidentLearner``) vs the noisy-label baseline on a hold-out split."""
    import joblib

    if (multilabel := _multilabel(store, date)) is not None:
        return multilabel.retrained_model(store, config, date)
    start = time.perf_counter()
    if failed := verdicts.guard(store, date, config.checks):  # the recorded verdicts decide
        raise Blocked(failed)
    row: dict[str, Any] = {"status": "trained", "artifact": None}
    meta = store.metadata("raw_labels", date)
    if meta.get("probability_columns") or BYO_COLUMN in store.schema("raw_labels", date).names:
        row["status"] = "skipped: probabilities were supplied: no features to train on"
    else:
        snapshot = load_stored_snapshot(store, date)
        artifact, scores = retrain(snapshot, load_pred_probs(store, date), config)
        path = store.write_artifact("retrained_model", date, ".joblib", lambda handle: joblib.dump(artifact, handle))
        row.update(scores, artifact=str(path))
    return retrained_result(store, date, row, start)


def retrained_result(store: PartitionStore, date: str, row: dict[str, Any], start: float) -> StageResult:
    """Write ``retrained_model``'s one ``row`` (with its seconds) and return the stage's result."""
    seconds = _elapsed("retrained_model", start, row["status"])
    store.write("retrained_model", date, pd.DataFrame([row | {"seconds": seconds}]), {"seconds": seconds})
    metadata = {SCORE_LABELS.get(k, k): v for k, v in row.items() if v is not None}
    return StageResult(row["status"], seconds, 1, metadata=metadata)


def audit_summary(store: PartitionStore, config: AuditConfig, date: str, run_id: str) -> StageResult:
    """One row per audit: versions, n, K, noise rate, issues, health score, thresholds, timings.

    Read from the metadata the earlier stages stored: no row is read.
    """
    if (multilabel := _multilabel(store, date)) is not None:
        return multilabel.audit_summary(store, config, date, run_id)
    start = time.perf_counter()
    raw_meta = store.metadata("raw_labels", date)
    joint_meta, issues_meta = store.metadata("confident_joint", date), store.metadata("label_issues", date)
    checks = config.checks
    row: dict[str, Any] = {
        "data_version": raw_meta["data_version"],
        "code_version": code_version(),
        "run_id": run_id,
        "created_at": pd.Timestamp.now(tz="UTC"),
        "n": int(sum(joint_meta["label_counts"])),
        "k": len(raw_meta["classes"]),
        "classes": list(raw_meta["classes"]),
        "estimated_noise_rate": joint_meta["noise_rate"],
        "num_issues": issues_meta["num_issues"],
        "health_score": float(joint_meta["health_score"]),
        "thresholds": joint_meta["thresholds"],
        "filter_by": config.issues.filter_by,
        "max_noise_rate": checks.max_noise_rate,
        "max_class_noise_rate": checks.max_class_noise_rate,
        "retrain_tolerance": checks.retrain_tolerance,
        "precision": issues_meta.get("precision"),
        "recall": issues_meta.get("recall"),
    }
    from cl_pipeline.audit.reviewed import review_summary  # lazy: it imports this module

    review, progress = review_summary(store, config, date, int(issues_meta["num_issues"]))
    row |= review
    for table in ("raw_labels", "oof_pred_probs", "confident_joint", "label_issues"):
        row[f"seconds_{table}"] = store.metadata(table, date).get("seconds")
    seconds = row["seconds_audit_summary"] = _elapsed("audit_summary", start, "recorded")
    store.write("audit_summary", date, pd.DataFrame([row]), {"seconds": seconds})
    shown = {k: v for k, v in row.items() if k not in ("classes", "thresholds", "created_at")}
    shown["created_at"] = row["created_at"].isoformat()
    shown["review_progress"] = progress
    thresholds = dict(zip(row["classes"], row["thresholds"], strict=True))
    return StageResult(
        "recorded", seconds, 1, metadata=shown, json={"classes": row["classes"], "thresholds": thresholds}
    )
