"""The ``monitor_scores`` stage and its check: a date's rows scored against the reference audit.

With ``[monitor] reference_date = R``, every date ``D > R`` is scored in one streaming pass
over its stored ``raw_labels`` (record batches, :func:`cl_pipeline.audit.monitor.score_batches`):

- **probabilities**: the ones the source supplies (``columns.probabilities`` or
  ``probabilities_npy``), else the reference's retrained model (the ``retrained_model``
  artifact of ``R``: its fitted encoder and ``ConfidentLearner``) on the rows' features;
  out of sample either way, since the model never saw the rows of ``D``;
- **flags**: ``R``'s confident thresholds and ``[monitor] filter_by`` (the rule of
  :mod:`cl_pipeline.audit.monitor`);
- **the reference's rate**, the same statistic on rows out of sample for the same
  probabilities: with the retrained model, ``R``'s hold-out rows (the seeded stratified split
  that ``retrained_model`` held out: ``model.holdout_fraction`` and ``model.random_state`` of
  ``R``'s stored configuration, checked against the hold-out size the model recorded); with
  supplied probabilities, every row of ``R``'s ``oof_pred_probs``. The K-fold probabilities of
  ``R`` come from other models than the retrained one, whose flagged fraction can differ a lot
  for the same labels (GaussianNB on the digits: 0.44 K-fold, 0.27 retrained), so they are not
  the reference's statistic when the new rows are scored by the retrained model.

The table ``monitor_scores`` (``row, id, given_label, suggested_label, self_confidence,
is_flagged``) holds the new rows; its metadata holds both rates and the test, which the
check ``noise_rate_vs_reference`` reads (:func:`monitor_verdict`). Dates on or before ``R``,
and every date when monitoring is off, are not scored (an earlier run's table is removed).
"""

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from cl_pipeline.audit import monitor
from cl_pipeline.audit.history_plot import history_markdown
from cl_pipeline.audit.snapshot import BYO_COLUMN
from cl_pipeline.audit.stages import StageResult
from cl_pipeline.audit.streaming import probabilities
from cl_pipeline.audit.tables import stored_confident_joint
from cl_pipeline.audit.verdicts import Verdict
from cl_pipeline.config import AuditConfig, ConfigError
from cl_pipeline.storage import PartitionStore

__all__ = [
    "CHECK_NAME",
    "TABLE",
    "Reference",
    "check_reference",
    "monitor_scores",
    "monitor_verdict",
    "reference_rate",
]

#: The table (and asset) of the scored new rows, and the name of its check.
TABLE = "monitor_scores"
CHECK_NAME = "noise_rate_vs_reference"
#: Rows per record batch of the scoring passes.
BATCH_ROWS = 65536
#: Tables a reference date must have (an audit that reached ``calibrated_joint``).
_AUDITED = ("raw_labels", "oof_pred_probs", "confident_joint", "calibrated_joint")


@dataclass(frozen=True)
class Reference:
    """What the reference audit gives the monitor.

    Attributes
    ----------
    date : str
    classes : list of str
    thresholds : ndarray, shape (K,)
        Its confident thresholds, in their stored dtype.
    noise_rate : float
        Its estimated noise rate ``1 - trace(Q)``.
    meta : dict
        Its ``raw_labels`` metadata (classes, features, stored configuration).
    model : object or None
        Its retrained model (``Pipeline(features, confident_learner)``); None when the
        new rows' probabilities are supplied.
    n_holdout : int or None
        Hold-out rows the model recorded.
    """

    date: str
    classes: list[str]
    thresholds: np.ndarray
    noise_rate: float
    meta: dict[str, Any]
    model: Any = None
    n_holdout: int | None = None


def _not_monitored(config: AuditConfig, date: str) -> str | None:
    """Why ``date`` is not scored (None: it is)."""
    reference = config.monitor.reference_date
    if reference is None:
        return "monitoring off ([monitor] reference_date is not set)"
    if date <= reference:
        return f"not monitored: {date} is not after the reference date {reference}"
    return None


def _supplied_config(config: AuditConfig) -> bool:
    return config.columns is not None and config.columns.byo_probabilities


def check_reference(store: PartitionStore, config: AuditConfig, date: str) -> Reference | None:
    """The reference of ``date``'s monitoring, checked (None when ``date`` is not monitored).

    Raises
    ------
    ConfigError
        ``monitor.reference_date`` has not been audited in this data directory, or (when
        the rows' probabilities are not supplied) it has no retrained model, or the labels
        are multi-label.
    """
    if _not_monitored(config, date) is not None:
        return None
    ref = str(config.monitor.reference_date)
    if config.columns is not None and config.columns.label_kind == "multilabel":
        raise ConfigError(
            f"[monitor] reference_date {ref}: monitoring scores single labels; a multi-label audit "
            "(columns.label_kind = 'multilabel') cannot be monitored yet: remove the [monitor] section"
        )
    missing = [table for table in _AUDITED if not store.has(table, ref)]
    if missing:
        raise ConfigError(
            f"monitor.reference_date {ref} has not been audited in {store.root} (no {', '.join(missing)}): "
            f"audit it first (cl-pipeline audit --date {ref})"
        )
    thresholds, _ = stored_confident_joint(store.read("confident_joint", ref), store.metadata("confident_joint", ref))
    meta = store.metadata("raw_labels", ref)
    noise = float(store.metadata("calibrated_joint", ref)["noise_rate"])
    reference = Reference(ref, list(meta["classes"]), thresholds, noise, meta)
    return reference if _supplied_config(config) else _with_model(store, reference)


def _with_model(store: PartitionStore, reference: Reference) -> Reference:
    """``reference`` with its retrained model loaded (ConfigError naming why there is none)."""
    import dataclasses

    import joblib

    ref = reference.date
    status = "no retrained_model table"
    if store.has("retrained_model", ref):
        row = store.read("retrained_model", ref).iloc[0]
        status = str(row["status"])
        path = store.artifact_path("retrained_model", ref, ".joblib")
        if status == "trained" and path.is_file():
            artifact = joblib.load(path)
            return dataclasses.replace(reference, model=artifact["model"], n_holdout=int(row["n_holdout"]))
        status = status if status != "trained" else f"its artifact {path} is missing"
    raise ConfigError(
        f"monitor.reference_date {ref} has no retrained model ({status}); the new rows' probabilities come "
        "from it: audit the reference date until retrained_model is materialized, or supply probabilities"
    )


def _text(values: pd.Series) -> pd.Series:
    """A text column as the feature encoder saw it in training: strings, missing values as ""."""
    return values.astype(object).where(values.notna(), "").astype(str)


def _model_probs(model: Any, features: dict[str, list[str]], k: int) -> Callable[[pa.RecordBatch], np.ndarray]:
    """``batch -> (b, K)`` probabilities of the reference's model on the batch's feature columns."""
    names = [c for kind in ("numeric", "categorical", "text") for c in features[kind]]

    def probs_of(batch: pa.RecordBatch) -> np.ndarray:
        frame = batch.select(names).to_pandas()
        for column in features["text"]:
            frame[column] = _text(frame[column])
        out = np.asarray(model.predict_proba(frame), dtype=np.float64)
        if out.shape[1] != k:
            raise ValueError(f"the reference model gives {out.shape[1]} probabilities per row, expected K = {k}")
        return out

    return probs_of


def _supplied_probs(meta: dict[str, Any], k: int) -> tuple[list[str], Callable[[pa.RecordBatch], np.ndarray]]:
    """The columns holding supplied probabilities and ``batch -> (b, K)`` (float32 kept, as the audit keeps it)."""
    columns = list(meta.get("probability_columns") or [])
    if not columns:
        return [BYO_COLUMN], lambda batch: probabilities(batch.column(BYO_COLUMN), k)

    def probs_of(batch: pa.RecordBatch) -> np.ndarray:
        block = np.column_stack([batch.column(c).to_numpy(zero_copy_only=False) for c in columns])
        return block if block.dtype == np.float32 else block.astype(np.float64)

    return columns, probs_of


def reference_rate(store: PartitionStore, reference: Reference, filter_by: str) -> tuple[int, int, str]:
    """``(flagged, rows, basis)`` of the reference: the statistic of the new rows on its own rows.

    With a model: its hold-out rows, scored by it; without: its stored ``oof_pred_probs``.
    """
    k, ref, tally = len(reference.classes), reference.date, monitor.FlagTally()
    if reference.model is None:
        batches = store.iter_batches("oof_pred_probs", ref, ["id", "given_index", "pred_probs"], BATCH_ROWS)
        labels_of: Callable[[pa.RecordBatch], np.ndarray] = lambda b: b.column("given_index").to_numpy()  # noqa: E731
        probs_of = lambda b: probabilities(b.column("pred_probs"), k)  # noqa: E731
        basis = f"every row of {ref}'s oof_pred_probs (supplied or K-fold probabilities)"
    else:
        hold = _holdout_mask(store, reference)
        names = [c for kind in ("numeric", "categorical", "text") for c in reference.meta["features"][kind]]
        columns = [reference.meta["id_column"], "label_index", *names]
        batches = _rows(store.iter_batches("raw_labels", ref, columns, BATCH_ROWS), hold)
        labels_of = lambda b: b.column("label_index").to_numpy()  # noqa: E731
        probs_of = _model_probs(reference.model, reference.meta["features"], k)
        basis = f"the {int(hold.sum())} hold-out rows of {ref}, scored by its retrained model"
    schema = monitor.monitor_schema(pa.string())
    id_column = "id" if reference.model is None else reference.meta["id_column"]
    for _ in monitor.score_batches(
        batches, labels_of, probs_of, reference.thresholds, reference.classes, schema, tally, filter_by, id_column
    ):
        pass
    return tally.flagged, tally.rows, basis


def _rows(batches: Iterator[pa.RecordBatch], keep: np.ndarray) -> Iterator[pa.RecordBatch]:
    """The rows of ``batches`` (in row order) where ``keep`` is True."""
    offset = 0
    for batch in batches:
        chosen = keep[offset : offset + batch.num_rows]
        offset += batch.num_rows
        if chosen.any():
            yield batch.filter(pa.array(chosen))


def _holdout_mask(store: PartitionStore, reference: Reference) -> np.ndarray:
    """The rows ``retrained_model`` held out of ``reference``'s training, recomputed, shape (n,) bool."""
    from sklearn.model_selection import train_test_split

    ref = reference.date
    labels = np.concatenate(
        [b.column(0).to_numpy() for b in store.iter_batches("raw_labels", ref, ["label_index"], BATCH_ROWS)]
    )
    model = reference.meta.get("config", {}).get("model", {})
    if "holdout_fraction" not in model or "random_state" not in model:
        raise ConfigError(f"the raw_labels of {ref} do not record the model configuration: re-audit {ref}")
    _, hold = train_test_split(
        np.arange(labels.size),
        test_size=model["holdout_fraction"],
        stratify=labels,
        random_state=model["random_state"],
    )
    if hold.size != reference.n_holdout:
        raise ConfigError(
            f"the hold-out split of {ref} recomputes to {hold.size} rows, its retrained model recorded "
            f"{reference.n_holdout}: re-audit {ref}"
        )
    mask = np.zeros(labels.size, dtype=bool)
    mask[hold] = True
    return mask


@dataclass(frozen=True)
class _NewRows:
    """How to read one date's stored rows for scoring."""

    columns: list[str]
    labels_of: Callable[[pa.RecordBatch], np.ndarray]
    probs_of: Callable[[pa.RecordBatch], np.ndarray]
    source: str


def _new_rows(store: PartitionStore, date: str, reference: Reference) -> _NewRows:
    """The columns, label codes (the reference's) and probabilities of ``date``'s ``raw_labels``."""
    meta = store.metadata("raw_labels", date)
    classes, k = list(meta["classes"]), len(reference.classes)
    supplied = bool(meta.get("probability_columns")) or BYO_COLUMN in store.schema("raw_labels", date).names
    if supplied and classes != reference.classes:
        raise ConfigError(
            f"the supplied probabilities of {date} are over the classes {classes}, those of the reference "
            f"{reference.date} over {reference.classes}: set columns.classes so that both dates share one order"
        )
    unknown = [c for c in classes if c not in reference.classes]
    if unknown:
        raise ConfigError(f"labels of {date} are not classes of the reference {reference.date}: {unknown}")
    to_reference = np.asarray([reference.classes.index(c) for c in classes], dtype=np.int64)
    labels_of = lambda b: to_reference[b.column("label_index").to_numpy(zero_copy_only=False)]  # noqa: E731
    if supplied:
        columns, probs_of = _supplied_probs(meta, k)
        source = "supplied probabilities"
    else:
        features = reference.meta["features"]
        columns = [c for kind in ("numeric", "categorical", "text") for c in features[kind]]
        absent = sorted(set(columns) - set(store.schema("raw_labels", date).names))
        if absent:
            raise ConfigError(f"{date} lacks feature columns of the reference model: {absent}")
        probs_of = _model_probs(reference.model, features, k)
        source = f"the retrained model of {reference.date}"
    return _NewRows([meta["id_column"], "label_index", *columns], labels_of, probs_of, source)


def _tested(
    batches: Iterator[pa.RecordBatch],
    tally: monitor.FlagTally,
    counts: tuple[int, int],
    config: AuditConfig,
    info: dict,
    start: float,
) -> Iterator[pa.RecordBatch]:
    """Pass the scored batches on; after the last one, put the counts, the test and the seconds in ``info``."""
    yield from batches
    mon = config.monitor
    result = monitor.compare(tally.flagged, tally.rows, counts[0], counts[1], mon.alpha, mon.alternative)
    info.update(
        n_new=result.n_new,
        flagged_new=result.flagged_new,
        new_noise_rate=result.new_rate,
        n_reference=result.n_reference,
        flagged_reference=result.flagged_reference,
        reference_noise_rate=result.reference_rate,
        z=result.test.z,
        p_value=result.test.p_value,
        alpha=result.alpha,
        alternative=result.alternative,
        significant=result.significant,
        seconds=time.perf_counter() - start,
    )


def monitor_scores(store: PartitionStore, config: AuditConfig, date: str) -> StageResult:
    """Score ``date``'s rows against the reference audit; write ``monitor_scores`` with the test in its metadata.

    Not monitored (monitoring off, or ``date`` not after the reference): nothing is scored
    and an earlier run's table of ``date`` is removed.

    Raises
    ------
    ConfigError
        The reference is not audited or has no model (see :func:`check_reference`), or
        ``date``'s classes, features or probabilities do not fit it.
    """
    start = time.perf_counter()
    reference = check_reference(store, config, date)
    if reference is None:
        reason = str(_not_monitored(config, date))
        store.remove(TABLE, date)
        return StageResult(reason, time.perf_counter() - start, 0)  # the history is on audit_summary
    mon = config.monitor
    new = _new_rows(store, date, reference)
    flagged_ref, n_ref, basis = reference_rate(store, reference, mon.filter_by)
    meta = store.metadata("raw_labels", date)
    schema = monitor.monitor_schema(store.schema("raw_labels", date).field(meta["id_column"]).type)
    tally, info = monitor.FlagTally(), {"reference_date": reference.date, "filter_by": mon.filter_by}
    info |= {"probabilities": new.source, "reference_basis": basis, "reference_q_noise_rate": reference.noise_rate}
    batches = monitor.score_batches(
        store.iter_batches("raw_labels", date, new.columns, BATCH_ROWS),
        new.labels_of,
        new.probs_of,
        reference.thresholds,
        reference.classes,
        schema,
        tally,
        mon.filter_by,
        meta["id_column"],
    )
    tested = _tested(batches, tally, (flagged_ref, n_ref), config, info, start)
    rows = store.write_batches(TABLE, date, schema, tested, info)
    seconds = time.perf_counter() - start
    summary = (
        f"{info['flagged_new']} of {rows} new rows flagged ({info['new_noise_rate']:.4f}) vs "
        f"{info['reference_noise_rate']:.4f} on {reference.date}: p = {info['p_value']:.3g}"
    )
    shown = {key: value for key, value in info.items() if key != "seconds"}
    return StageResult(
        summary,
        seconds,
        rows,
        metadata={"dagster/row_count": rows, **shown},
        markdown=history_markdown(store),
    )


def monitor_verdict(store: PartitionStore, config: AuditConfig, date: str) -> tuple[Verdict, dict[str, Any]]:
    """The check ``noise_rate_vs_reference`` of ``date``: passed unless the new rows' rate differs significantly.

    Returns
    -------
    verdict : Verdict
        ``value`` = the p-value, ``threshold`` = ``alpha``; passed when not monitored.
    details : dict
        Both rates, z, the p-value and both row counts (empty when not monitored).
    """
    reason = _not_monitored(config, date)
    if reason is not None:
        return Verdict(CHECK_NAME, True, None, None, reason), {}
    mon = config.monitor
    reference = mon.reference_date
    info = store.metadata(TABLE, date) if store.has(TABLE, date) else {}
    wanted = {"reference_date": reference, "filter_by": mon.filter_by, "alternative": mon.alternative}
    if any(info.get(key) != value for key, value in wanted.items()):
        message = f"{date} has no monitor_scores with {wanted}: materialize monitor_scores first"
        return Verdict(CHECK_NAME, False, None, None, message), {}
    keys = ("reference_date", "reference_noise_rate", "new_noise_rate", "z", "p_value", "n_reference", "n_new")
    details = {key: info[key] for key in (*keys, "flagged_reference", "flagged_new", "reference_q_noise_rate")}
    alpha, p_value = float(mon.alpha), float(info["p_value"])
    differs = "noisier than" if mon.alternative == "greater" else "different from"
    said = (
        f"new rows {info['new_noise_rate']:.4f} ({info['flagged_new']} of {info['n_new']} flagged) vs reference "
        f"{reference} {info['reference_noise_rate']:.4f} ({info['flagged_reference']} of {info['n_reference']}): "
        f"z = {info['z']:.3f}, p = {p_value:.3g}"
    )
    if p_value < alpha:
        return Verdict(CHECK_NAME, False, p_value, alpha, f"{said} < alpha {alpha:g}: {differs} the reference"), details
    return Verdict(CHECK_NAME, True, p_value, alpha, f"{said} >= alpha {alpha:g}"), details
