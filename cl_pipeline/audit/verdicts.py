"""What each asset check decides, as plain functions over stored tables.

The Dagster checks in :mod:`cl_pipeline.defs.checks` record these verdicts
(:func:`record` writes the ``check_results`` row);
``pruned_dataset`` and ``retrained_model`` ask :func:`blocking_failures` again
before they write, so a
partition whose noise is above the thresholds is never pruned or retrained,
even when someone materializes those assets alone from the UI (a blocking
check only stops downstream steps of the run it ran in).
"""

from dataclasses import dataclass

import numpy as np
import pandas as pd

from cl_pipeline.audit import parquet_snapshot
from cl_pipeline.audit.snapshot import BYO_COLUMN, content_hash, encode_labels
from cl_pipeline.config import ChecksConfig
from cl_pipeline.storage import PartitionStore

__all__ = [
    "BLOCKED_BY_Q",
    "Verdict",
    "blocking_failures",
    "class_noise_verdict",
    "input_verdict",
    "noise_rate_verdict",
    "record",
    "retract_blocked",
    "retrain_verdict",
]

#: Tables of a partition that a failing blocking check leaves unmaterialized.
BLOCKED_BY_Q = ("pruned_dataset", "retrained_model")


@dataclass(frozen=True)
class Verdict:
    """The outcome of one check on one partition."""

    name: str
    passed: bool
    value: float | None
    threshold: float | None
    message: str


def noise_rate_verdict(store: PartitionStore, date: str, limit: float) -> Verdict:
    """Estimated noise rate ``1 - trace(Q)`` of ``date`` against ``limit``."""
    value = float(store.metadata("calibrated_joint", date)["noise_rate"])
    verdict = "<=" if value <= limit else ">"
    message = f"estimated noise rate {value:.4f} {verdict} threshold {limit:.4f}"
    return Verdict("noise_rate_below_threshold", value <= limit, value, limit, message)


def class_noise_verdict(store: PartitionStore, date: str, limit: float) -> Verdict:
    """The worst class's estimated label noise of ``date`` against ``limit``."""
    per_class = store.read("class_quality", date)
    worst = per_class.loc[per_class["label_noise"].idxmax()]
    value = float(worst["label_noise"])
    verdict = "<=" if value <= limit else ">"
    message = f"worst class {worst['class_label']!r}: label noise {value:.4f} {verdict} threshold {limit:.4f}"
    return Verdict("class_noise_below_threshold", value <= limit, value, limit, message)


def blocking_failures(store: PartitionStore, date: str, checks: ChecksConfig) -> list[Verdict]:
    """The failing blocking checks of ``date`` (empty when pruning and retraining may go ahead).

    The stored input unchanged (its hash; not re-validated against ``config``,
    which may be a later run's) and both checks on Q with ``config``'s thresholds.
    """
    verdicts = (
        input_verdict(store, date),
        noise_rate_verdict(store, date, checks.max_noise_rate),
        class_noise_verdict(store, date, checks.max_class_noise_rate),
    )
    return [v for v in verdicts if not v.passed]


def retract_blocked(store: PartitionStore, date: str) -> list[str]:
    """Delete ``date``'s pruned set, model and retrain check: a blocking check failed for it.

    They came from an earlier run whose data or Q is no longer the partition's.
    Returns the tables of ``BLOCKED_BY_Q`` that had a file (the model artifact
    and the ``check_results`` row are removed too).
    """
    removed = [table for table in BLOCKED_BY_Q if store.remove(table, date)]
    store.remove_artifact("retrained_model", date, ".joblib")
    store.remove("check_results", date, key=f"{date}.retrained_not_worse_than_baseline")
    return removed


#: The last input verdict of each stored ``raw_labels`` file in this process, with the file's
#: (inode, size, mtime_ns) when it was computed: the guard of ``pruned_dataset``/``retrained_model``
#: reuses the ``input_valid`` check's verdict instead of hashing the same file again.
_LAST_INPUT_VERDICT: dict[str, tuple[tuple[int, int, int], Verdict]] = {}


def input_verdict(store: PartitionStore, date: str) -> Verdict:
    """The verdict of :func:`_input_verdict`, computed once per version of the stored file."""
    path = store.path("raw_labels", date)
    stat = path.stat()
    key, version = str(path), (stat.st_ino, stat.st_size, stat.st_mtime_ns)
    cached = _LAST_INPUT_VERDICT.get(key)
    if cached is not None and cached[0] == version:
        return cached[1]
    verdict = _input_verdict(store, date)
    _LAST_INPUT_VERDICT[key] = (version, verdict)
    return verdict


def _changed(digest: str, recorded: str | None) -> Verdict:
    """The failed input verdict of a stored file whose hash is not the recorded data version."""
    message = (
        f"stored raw_labels hash {digest} != data version {recorded} "
        "recorded when the snapshot was validated: the file changed after the audit wrote it"
    )
    return Verdict("input_valid", False, None, None, message)


def _streamed_input_verdict(store: PartitionStore, date: str, meta: dict) -> Verdict:
    """The input verdict of a ``raw_labels`` stored batch by batch (``hash_scheme`` ``"arrow-1"``)."""
    names = [n for n in store.schema("raw_labels", date).names if n not in ("partition", "label_index")]
    digest = parquet_snapshot.stream_hash(lambda columns: store.iter_batches("raw_labels", date, columns), names)
    if digest != meta.get("data_version"):
        return _changed(digest, meta.get("data_version"))
    classes, column, rows = list(meta["classes"]), meta["label_column"], 0
    for batch in store.iter_batches("raw_labels", date, [column, "label_index"]):
        codes = parquet_snapshot.label_codes(batch.column(0), column, classes)
        if not np.array_equal(codes, batch.column(1).to_numpy(zero_copy_only=False)):
            return Verdict("input_valid", False, None, None, "stored label_index does not match the label column")
        rows += batch.num_rows
    message = f"{rows} rows, {len(classes)} classes, data version {digest}: valid"
    return Verdict("input_valid", True, None, None, message)


def _input_verdict(store: PartitionStore, date: str) -> Verdict:
    """The stored ``raw_labels`` of ``date`` are the rows that were validated.

    The snapshot is validated once, by ``raw_labels`` before it is written; this
    verdict proves the stored file still holds those rows: it recomputes their
    content hash (the data version recorded when they were validated), so a
    file changed or damaged after the audit wrote it fails, and checks that the
    stored label codes are the label column encoded in the recorded classes.
    """
    meta = store.metadata("raw_labels", date)
    if meta.get("hash_scheme") == parquet_snapshot.HASH_SCHEME:
        return _streamed_input_verdict(store, date, meta)
    stored = store.read("raw_labels", date)
    frame = stored.drop(columns=["partition", "label_index", BYO_COLUMN], errors="ignore")
    extra = np.stack(stored[BYO_COLUMN].to_numpy()).astype(np.float64) if BYO_COLUMN in stored else None
    digest = content_hash(frame, extra)
    if digest != meta.get("data_version"):
        return _changed(digest, meta.get("data_version"))
    labels = stored["label_index"].to_numpy()
    classes = list(meta.get("classes", []))
    if labels.size and (labels.min() < 0 or labels.max() >= len(classes)):
        return Verdict("input_valid", False, None, None, "stored label_index is outside the recorded classes")
    label_column = meta.get("label_column")
    if label_column is not None and not np.array_equal(labels, encode_labels(frame[label_column], classes)):
        return Verdict("input_valid", False, None, None, "stored label_index does not match the label column")
    message = f"{len(frame)} rows, {len(classes)} classes, data version {digest}: valid"
    return Verdict("input_valid", True, None, None, message)


def as_row(verdict: Verdict, severity: str, blocking: bool, run_id: str) -> pd.DataFrame:
    """The ``check_results`` row of a verdict."""
    return pd.DataFrame(
        [
            {
                "check_name": verdict.name,
                "passed": verdict.passed,
                "severity": severity,
                "blocking": blocking,
                "value": verdict.value,
                "threshold": verdict.threshold,
                "message": verdict.message,
                "run_id": run_id,
            }
        ]
    )


def record(store: PartitionStore, date: str, verdict: Verdict, severity: str, blocking: bool, run_id: str) -> None:
    """Write the ``check_results`` row of ``verdict`` (one file per date and check)."""
    store.write("check_results", date, as_row(verdict, severity, blocking, run_id), key=f"{date}.{verdict.name}")


def retrain_verdict(store: PartitionStore, date: str, tolerance: float) -> Verdict:
    """Retrained hold-out accuracy >= baseline - ``tolerance`` (true labels if known)."""
    row = store.read("retrained_model", date).iloc[0]
    name = "retrained_not_worse_than_baseline"
    if row["status"] != "trained":
        return Verdict(name, True, None, None, str(row["status"]))
    suffix = "true_accuracy" if pd.notna(row.get("retrained_true_accuracy")) else "accuracy"
    retrained, baseline = float(row[f"retrained_{suffix}"]), float(row[f"baseline_{suffix}"])
    message = (
        f"hold-out {suffix.replace('_', ' ')}: retrained {retrained:.4f} vs baseline {baseline:.4f}"
        f" (tolerance {tolerance})"
    )
    return Verdict(name, retrained >= baseline - tolerance, retrained - baseline, -tolerance, message)
