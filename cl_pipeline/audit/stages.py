"""One function per pipeline stage: read its inputs from the store, compute, write one table.

Each stage returns a :class:`StageResult` (plain values the orchestrator shows
as metadata); :mod:`cl_pipeline.defs.assets` wraps each in a Dagster asset.
Stages run in the order of the asset graph::

    raw_labels -> oof_pred_probs -> confident_joint -> calibrated_joint -> pruned_dataset -> retrained_model
                                              \\-> label_issues ------------/
    audit_summary <- raw_labels, oof_pred_probs, confident_joint, label_issues

``pruned_dataset`` and ``retrained_model`` raise :class:`Blocked` when a
blocking verdict fails for the date (see :mod:`cl_pipeline.audit.verdicts`).
"""

import functools
import hashlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cl_pipeline import __version__, core
from cl_pipeline.audit import render, tables, verdicts
from cl_pipeline.audit.features import encode_features
from cl_pipeline.audit.folds import out_of_fold_probs
from cl_pipeline.audit.preflight import prevalidate
from cl_pipeline.audit.retrain import retrain
from cl_pipeline.audit.snapshot import Snapshot, snapshot_from_stored, stored_metadata
from cl_pipeline.config import AuditConfig
from cl_pipeline.storage import PartitionStore

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
        Markdown texts (tables, an inline picture).
    data_version : str, optional
        The content hash of the stage's input data (``raw_labels`` only).
    """

    summary: str
    seconds: float
    row_count: int
    metadata: dict[str, Any] = field(default_factory=dict)
    json: dict[str, Any] = field(default_factory=dict)
    markdown: dict[str, str] = field(default_factory=dict)
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
    """The stored out-of-fold probabilities of ``date`` as an (n, K) float64 array in row order."""
    frame = store.read("oof_pred_probs", date).sort_values("row")
    return np.stack(frame["pred_probs"].to_numpy()).astype(np.float64)


def _elapsed(name: str, start: float, summary: str) -> float:
    seconds = time.perf_counter() - start
    log.info("%-16s %s (%.2f s)", name, summary, seconds)
    return seconds


def raw_labels(store: PartitionStore, config: AuditConfig, date: str) -> StageResult:
    """The labelled snapshot of ``date``, validated; its content hash is the data version."""
    start = time.perf_counter()
    snapshot = prevalidate(config, date).snapshot
    meta = stored_metadata(snapshot, config) | {"config": config.model_dump(mode="json")}
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


def oof_pred_probs(store: PartitionStore, config: AuditConfig, date: str) -> StageResult:
    """Out-of-sample predicted probabilities from stratified K-fold (taken as is if supplied)."""
    start = time.perf_counter()
    snapshot = load_stored_snapshot(store, date)
    if snapshot.pred_probs is not None:
        probs, fold, source = snapshot.pred_probs, np.full(snapshot.labels.size, -1), "supplied"
    else:
        X, _ = encode_features(snapshot)
        probs, fold = out_of_fold_probs(snapshot, X, config.model, store.fold_cache(date))
        source = f"{config.model.n_folds}-fold {config.model.estimator}"
    names = np.asarray(snapshot.classes, dtype=object)
    table = pd.DataFrame(
        {
            "row": np.arange(snapshot.labels.size),
            "id": snapshot.ids.to_numpy(),
            "given_index": snapshot.labels,
            "given_label": names[snapshot.labels],
            "fold": fold,
            "pred_probs": list(probs),
        }
    )
    accuracy = float((probs.argmax(axis=1) == snapshot.labels).mean())
    summary = f"{source}, accuracy vs given {accuracy:.3f}"
    seconds = _elapsed("oof_pred_probs", start, summary)
    store.write("oof_pred_probs", date, table, {"classes": snapshot.classes, "seconds": seconds})
    metadata = {"source": source, "accuracy_vs_given_labels": accuracy}
    return StageResult(summary, seconds, len(table), metadata=metadata)


def confident_joint(store: PartitionStore, date: str) -> StageResult:
    """The confident joint C (raw and calibrated counts) with the per-class confident thresholds."""
    start = time.perf_counter()
    snapshot, probs = load_stored_snapshot(store, date), load_pred_probs(store, date)
    table, info = tables.confident_joint_table(snapshot.labels, probs, snapshot.classes)
    summary = f"{info['off_diagonal']} off-diagonal examples"
    seconds = _elapsed("confident_joint", start, summary)
    store.write("confident_joint", date, table, info | {"seconds": seconds})
    k = len(snapshot.classes)
    counts = table["calibrated_count"].to_numpy().reshape(k, k)
    return StageResult(
        summary,
        seconds,
        len(table),
        metadata={"off_diagonal_examples": info["off_diagonal"]},
        json={"thresholds": dict(zip(snapshot.classes, info["thresholds"], strict=True))},
        markdown={"calibrated_confident_joint": render.markdown_matrix(counts, snapshot.classes, "given \\ true", 0)},
    )


def calibrated_joint(store: PartitionStore, date: str) -> StageResult:
    """Q = the estimated joint of given and true labels, with py, both noise matrices and per-class quality."""
    start = time.perf_counter()
    snapshot, probs = load_stored_snapshot(store, date), load_pred_probs(store, date)
    k, classes = len(snapshot.classes), snapshot.classes
    calibrated = store.read("confident_joint", date)["calibrated_count"].to_numpy().reshape(k, k)
    joint, per_class, info = tables.calibrated_joint_tables(snapshot.labels, probs, classes, calibrated)
    png = render.heatmap_png(np.asarray(info["Q"]), classes, f"Q (noise rate {info['noise_rate']:.3f})")
    store.write_artifact("heatmaps", date, ".png", lambda handle: handle.write(png))
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
        markdown={
            "Q": render.markdown_matrix(np.asarray(info["Q"]), classes, "given \\ true"),
            "noise_matrix": render.markdown_matrix(
                np.asarray(info["noise_matrix"]), classes, "P(given=row | true=col)"
            ),
            "Q_heatmap": render.png_markdown(png, "heatmap of Q"),
            "class_noise_rates": render.markdown_table(per_class[quality_columns]),
        },
    )


def label_issues(store: PartitionStore, config: AuditConfig, date: str) -> StageResult:
    """Every example: id, given and suggested label, label quality, is_label_issue, rank."""
    start = time.perf_counter()
    snapshot, probs = load_stored_snapshot(store, date), load_pred_probs(store, date)
    table, info = tables.label_issues_table(snapshot, probs, config.issues)
    summary = f"{info['num_issues']} of {info['n']} flagged"
    seconds = _elapsed("label_issues", start, summary)
    store.write("label_issues", date, table, info | {"seconds": seconds})
    top = table.loc[table["is_label_issue"], ["rank", "id", "given_label", "suggested_label", "label_quality"]]
    metadata = {"num_issues": info["num_issues"]}
    metadata |= {k: info[k] for k in ("precision", "recall", "true_errors") if k in info}
    return StageResult(
        summary, seconds, len(table), metadata=metadata, markdown={"top_20_issues": render.markdown_table(top.head(20))}
    )


def refuse_if_blocked(store: PartitionStore, date: str, config: AuditConfig) -> None:
    """Raise :class:`Blocked` when a blocking verdict fails for ``date``, even if no check ran in this run.

    A blocking check only stops the steps of its own run; materializing
    ``pruned_dataset`` or ``retrained_model`` alone (from the UI) must not prune
    or retrain a date whose stored input changed or whose estimated noise is
    above the thresholds. The date's stale pruned set and model go too.
    """
    failed = verdicts.blocking_failures(store, date, config.checks)
    if failed:
        verdicts.retract_blocked(store, date)  # an earlier run's outputs are stale too
        raise Blocked(failed)


def pruned_dataset(store: PartitionStore, config: AuditConfig, date: str) -> StageResult:
    """The snapshot without its flagged examples (refused when a blocking verdict fails)."""
    start = time.perf_counter()
    refuse_if_blocked(store, date, config)
    raw = store.read("raw_labels", date)
    issues = store.read("label_issues", date).sort_values("row")
    kept = raw.loc[~issues["is_label_issue"].to_numpy()]
    summary = f"{len(kept)} kept, {len(raw) - len(kept)} removed"
    seconds = _elapsed("pruned_dataset", start, summary)
    store.write("pruned_dataset", date, kept, {"seconds": seconds})
    return StageResult(summary, seconds, len(kept), metadata={"removed": len(raw) - len(kept)})


def retrained_model(store: PartitionStore, config: AuditConfig, date: str) -> StageResult:
    """Prune + reweight + refit (``ConfidentLearner``) vs the noisy-label baseline on a hold-out split."""
    import joblib

    start = time.perf_counter()
    refuse_if_blocked(store, date, config)
    snapshot = load_stored_snapshot(store, date)
    row: dict[str, Any] = {"status": "trained", "artifact": None}
    if snapshot.pred_probs is not None:
        row["status"] = "skipped: probabilities were supplied: no features to train on"
    else:
        artifact, scores = retrain(snapshot, load_pred_probs(store, date), config)
        path = store.write_artifact("retrained_model", date, ".joblib", lambda handle: joblib.dump(artifact, handle))
        row.update(scores, artifact=str(path))
    seconds = _elapsed("retrained_model", start, row["status"])
    store.write("retrained_model", date, pd.DataFrame([row | {"seconds": seconds}]), {"seconds": seconds})
    metadata = {k: v for k, v in row.items() if v is not None}
    return StageResult(row["status"], seconds, 1, metadata=metadata)


def audit_summary(store: PartitionStore, config: AuditConfig, date: str, run_id: str) -> StageResult:
    """One row per audit: versions, n, K, noise rate, issues, health score, thresholds, timings."""
    start = time.perf_counter()
    snapshot, probs = load_stored_snapshot(store, date), load_pred_probs(store, date)
    joint_meta, issues_meta = store.metadata("confident_joint", date), store.metadata("label_issues", date)
    checks = config.checks
    row: dict[str, Any] = {
        "data_version": snapshot.data_version,
        "code_version": code_version(),
        "run_id": run_id,
        "created_at": pd.Timestamp.now(tz="UTC"),
        "n": int(snapshot.labels.size),
        "k": len(snapshot.classes),
        "classes": list(snapshot.classes),
        "estimated_noise_rate": joint_meta["noise_rate"],
        "num_issues": issues_meta["num_issues"],
        "health_score": float(core.overall_label_health_score(snapshot.labels, probs)),
        "thresholds": joint_meta["thresholds"],
        "filter_by": config.issues.filter_by,
        "max_noise_rate": checks.max_noise_rate,
        "max_class_noise_rate": checks.max_class_noise_rate,
        "retrain_tolerance": checks.retrain_tolerance,
        "precision": issues_meta.get("precision"),
        "recall": issues_meta.get("recall"),
    }
    for table in ("raw_labels", "oof_pred_probs", "confident_joint", "label_issues"):
        row[f"seconds_{table}"] = store.metadata(table, date).get("seconds")
    seconds = row["seconds_audit_summary"] = _elapsed("audit_summary", start, "recorded")
    store.write("audit_summary", date, pd.DataFrame([row]), {"seconds": seconds})
    keep = ("n", "k", "estimated_noise_rate", "num_issues", "health_score", "data_version", "code_version")
    return StageResult("recorded", seconds, 1, metadata={k: row[k] for k in keep})
