"""What each asset check decides, as plain functions over stored tables.

The Dagster checks in :mod:`cl_pipeline.defs.checks` record these verdicts
(:func:`record` writes the ``check_results`` row; Dagster records the same
evaluation, which the UI shows). ``pruned_dataset`` and ``retrained_model`` ask
:func:`guard` before they write: they go ahead only on the *recorded* verdicts of
the date's blocking checks, so the files, ``check_results``, ``history`` and the
UI never disagree, even when someone materializes those assets alone from the UI
(a blocking check only stops downstream steps of the run it ran in):

- a recorded failure refuses (and removes the date's stale pruned set and model),
  whatever the thresholds of the run that asks: a date blocked at 0.05 is not
  pruned by a run configured with 0.25. To change the verdict, rerun the checks
  (``cl-pipeline audit --max-noise-rate X``, or materialize ``calibrated_joint``
  with its checks), which records a new evaluation everywhere;
- a recorded pass refuses too when this run's thresholds fail the same value (the
  recorded pass stands, nothing is removed: rerun the checks to record the
  stricter verdict);
- no recorded verdict, or one about another Q (its value is not the stored
  Q's), refuses: run the checks first;
- the stored input is re-hashed as before (a file changed after its check refuses
  and removes the outputs derived from it).
"""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from cl_pipeline.audit import parquet_snapshot
from cl_pipeline.audit.snapshot import BYO_COLUMN, content_hash, encode_labels
from cl_pipeline.config import ChecksConfig
from cl_pipeline.storage import PartitionStore

__all__ = [
    "BLOCKED_BY_Q",
    "Verdict",
    "class_noise_verdict",
    "guard",
    "input_verdict",
    "noise_rate_verdict",
    "record",
    "recorded_verdict",
    "remember_written_input",
    "retract_blocked",
    "retrain_verdict",
]

#: Tables of a partition that a failing blocking check leaves unmaterialized.
BLOCKED_BY_Q = ("pruned_dataset", "retrained_model")

#: The blocking checks on Q (their verdicts are recorded per date; see :func:`guard`).
Q_CHECKS = ("noise_rate_below_threshold", "class_noise_below_threshold")


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


def _file_version(path: Path) -> tuple[int, int, int]:
    stat = path.stat()
    return stat.st_ino, stat.st_size, stat.st_mtime_ns


def remember_written_input(store: PartitionStore, date: str, rows: int, classes: list[str], digest: str) -> None:
    """Record the passing input verdict of a ``raw_labels`` file this process has just written.

    For ``raw_labels`` copied batch by batch: the copy hashed the very batches it wrote
    (with their label codes computed from the label column) and found the validated data
    version, so the verdict of that file, while it stays the same file (inode, size,
    mtime), is known without reading it back. Another process (a UI run's check, a
    later audit) or a changed file recomputes it from the file (:func:`_input_verdict`).
    """
    path = store.path("raw_labels", date)
    message = f"{rows} rows, {len(classes)} classes, data version {digest}: valid"
    _LAST_INPUT_VERDICT[str(path)] = (_file_version(path), Verdict("input_valid", True, None, None, message))


def input_verdict(store: PartitionStore, date: str) -> Verdict:
    """The verdict of :func:`_input_verdict`, computed once per version of the stored file."""
    path = store.path("raw_labels", date)
    key, version = str(path), _file_version(path)
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


def recorded_verdict(store: PartitionStore, date: str, name: str) -> tuple[Verdict, str] | None:
    """The last recorded verdict of check ``name`` for ``date`` and the run that recorded it (None if none)."""
    try:
        row = store.read("check_results", f"{date}.{name}").iloc[0]
    except FileNotFoundError:
        return None
    value = None if pd.isna(row["value"]) else float(row["value"])
    threshold = None if pd.isna(row["threshold"]) else float(row["threshold"])
    return Verdict(name, bool(row["passed"]), value, threshold, str(row["message"])), str(row["run_id"])


def _q_guard(store: PartitionStore, date: str, current: Verdict) -> tuple[Verdict | None, bool]:
    """(refusal or None, whether to retract) for one check on Q, from its record and ``current``."""
    name = current.name
    found = recorded_verdict(store, date, name)
    rerun = f"rerun the checks (`cl-pipeline audit --date {date}`, or materialize calibrated_joint with its checks)"
    if found is None:
        return Verdict(name, False, None, None, f"no verdict of {name} is recorded for {date}: {rerun} first"), False
    recorded, run_id = found
    if recorded.value is None or not np.isclose(recorded.value, current.value, rtol=1e-9, atol=1e-12):
        message = f"the recorded verdict is about another Q (value {recorded.value} vs {current.value} now): {rerun}"
        return Verdict(name, False, current.value, recorded.threshold, message), False
    if not recorded.passed:
        return Verdict(name, False, recorded.value, recorded.threshold, f"{recorded.message} (run {run_id})"), True
    if not current.passed:
        message = (
            f"{current.message} with this run's configuration; the recorded verdict stands "
            f"({recorded.message}, run {run_id}): {rerun} to record the new threshold"
        )
        return Verdict(name, False, current.value, current.threshold, message), False
    return None, False


def guard(
    store: PartitionStore,
    date: str,
    checks: ChecksConfig,
    input_of: Callable[[PartitionStore, str], Verdict] | None = None,
) -> list[Verdict]:
    """Why ``pruned_dataset``/``retrained_model`` must not write ``date`` now (empty: go ahead).

    Decided by the recorded verdicts of the blocking checks (see the module
    docstring), with ``checks`` (this run's thresholds) only able to refuse. When
    the record says the date is blocked, or the stored input changed, the date's
    pruned set and model are removed (:func:`retract_blocked`); otherwise nothing
    is written or removed.

    Parameters
    ----------
    store : PartitionStore
    date : str
        The partition key.
    checks : ChecksConfig
        The thresholds of the run that asks.
    input_of : callable, optional
        The input verdict of the stored snapshot (default :func:`input_verdict`; the
        multi-label audit passes its own).

    Returns
    -------
    list of Verdict
        The refusals, each naming its check and why.
    """
    failed: list[Verdict] = []
    current = (input_of or input_verdict)(store, date)
    recorded = recorded_verdict(store, date, "input_valid")
    if not current.passed:
        failed.append(current)
    elif recorded is not None and not recorded[0].passed:
        failed.append(recorded[0])
    retract = bool(failed)
    currents = (
        noise_rate_verdict(store, date, checks.max_noise_rate),
        class_noise_verdict(store, date, checks.max_class_noise_rate),
    )
    for verdict in currents:
        refusal, blocked = _q_guard(store, date, verdict)
        if refusal is not None:
            failed.append(refusal)
            retract = retract or blocked
    if retract:
        retract_blocked(store, date)
    return failed


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
