"""What each asset check decides, as plain functions over stored tables (no Dagster here).

The Dagster checks in :mod:`cl_pipeline.defs.checks` record these verdicts;
``pruned_dataset`` and ``retrained_model`` ask :func:`blocking_failures` again
before they write, so a
partition whose noise is above the thresholds is never pruned or retrained,
even when someone materializes those assets alone from the UI (a blocking
check only stops downstream steps of the run it ran in).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from cl_pipeline.config import AuditConfig, ConfigError
from cl_pipeline.defs.resources import PipelineStorage
from cl_pipeline.defs.snapshot import BYO_COLUMN, content_hash

__all__ = [
    "BLOCKED_BY_Q",
    "Verdict",
    "blocking_failures",
    "class_noise_verdict",
    "input_verdict",
    "noise_rate_verdict",
    "retract_blocked",
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


def noise_rate_verdict(storage: PipelineStorage, date: str, limit: float) -> Verdict:
    """Estimated noise rate ``1 - trace(Q)`` of ``date`` against ``limit``."""
    value = float(storage.metadata("calibrated_joint", date)["noise_rate"])
    verdict = "<=" if value <= limit else ">"
    message = f"estimated noise rate {value:.4f} {verdict} threshold {limit:.4f}"
    return Verdict("noise_rate_below_threshold", value <= limit, value, limit, message)


def class_noise_verdict(storage: PipelineStorage, date: str, limit: float) -> Verdict:
    """The worst class's estimated label noise of ``date`` against ``limit``."""
    per_class = storage.read("class_quality", date)
    worst = per_class.loc[per_class["label_noise"].idxmax()]
    value = float(worst["label_noise"])
    verdict = "<=" if value <= limit else ">"
    message = f"worst class {worst['class_label']!r}: label noise {value:.4f} {verdict} threshold {limit:.4f}"
    return Verdict("class_noise_below_threshold", value <= limit, value, limit, message)


def blocking_failures(storage: PipelineStorage, date: str, config: AuditConfig) -> list[Verdict]:
    """The failing blocking checks of ``date`` (empty when pruning and retraining may go ahead).

    The stored input unchanged (its hash; not re-validated against ``config``,
    which may be a later run's) and both checks on Q with ``config``'s thresholds.
    """
    verdicts = (
        input_verdict(storage, date),
        noise_rate_verdict(storage, date, config.checks.max_noise_rate),
        class_noise_verdict(storage, date, config.checks.max_class_noise_rate),
    )
    return [v for v in verdicts if not v.passed]


def retract_blocked(storage: PipelineStorage, date: str) -> list[str]:
    """Delete ``date``'s pruned set, model and retrain check: a blocking check failed for it.

    They came from an earlier run whose data or Q is no longer the partition's.
    Returns the tables of ``BLOCKED_BY_Q`` that had a file (the model artifact
    and the ``check_results`` row are removed too).
    """
    removed = [table for table in BLOCKED_BY_Q if storage.remove(table, date)]
    storage.remove_artifact("retrained_model", date, ".joblib")
    storage.remove("check_results", date, key=f"{date}.retrained_not_worse_than_baseline")
    return removed


def input_verdict(storage: PipelineStorage, date: str, validate=None) -> Verdict:
    """The stored ``raw_labels`` of ``date`` are the rows that were validated (and still valid).

    Recomputes the content hash of the stored rows (the data version recorded
    when they were validated), so a file changed or damaged after the audit
    wrote it fails. With ``validate`` (the ``input_valid`` check, run with the
    configuration of the same run) the rows are also validated again; without
    it (the guard of ``pruned_dataset``/``retrained_model``, possibly run later
    with another configuration) only the hash and the stored label codes count.
    """
    stored = storage.read("raw_labels", date)
    meta = storage.metadata("raw_labels", date)
    frame = stored.drop(columns=["partition", "label_index", BYO_COLUMN], errors="ignore")
    extra = np.stack(stored[BYO_COLUMN].to_numpy()).astype(np.float64) if BYO_COLUMN in stored else None
    digest = content_hash(frame, extra)
    if digest != meta.get("data_version"):
        message = (f"stored raw_labels hash {digest} != data version {meta.get('data_version')} "
                   "recorded when the snapshot was validated: the file changed after the audit wrote it")  # fmt: skip
        return Verdict("input_valid", False, None, None, message)
    labels = stored["label_index"].to_numpy()
    classes = list(meta.get("classes", []))
    if labels.size and (labels.min() < 0 or labels.max() >= len(classes)):
        return Verdict("input_valid", False, None, None, "stored label_index is outside the recorded classes")
    if validate is None:
        return Verdict("input_valid", True, None, None, f"{len(frame)} rows, data version {digest}: unchanged")
    try:
        snapshot = validate(frame)
    except ConfigError as exc:
        return Verdict("input_valid", False, None, None, str(exc))
    if not np.array_equal(labels, snapshot.labels):
        return Verdict("input_valid", False, None, None, "stored label_index does not match the label column")
    message = f"{len(frame)} rows, {len(snapshot.classes)} classes, data version {digest}: valid"
    return Verdict("input_valid", True, None, None, message)


def as_row(verdict: Verdict, severity: str, blocking: bool, run_id: str) -> pd.DataFrame:
    """The ``check_results`` row of a verdict."""
    return pd.DataFrame([{
        "check_name": verdict.name, "passed": verdict.passed, "severity": severity,
        "blocking": blocking, "value": verdict.value, "threshold": verdict.threshold,
        "message": verdict.message, "run_id": run_id,
    }])  # fmt: skip
