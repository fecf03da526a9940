"""The audit of multi-label data (``columns.label_kind = "multilabel"``): a set of classes per example.

:mod:`cl_pipeline.audit.stages` dispatches here when the date's ``raw_labels`` hold label
sets (:func:`is_multilabel`), so the asset graph, the tables and the checks are those of
the single-label audit, each stage with its one-vs-rest meaning (docs/pipeline.md,
"Multi-label audits"):

- ``raw_labels``: the snapshot plus ``label_indices`` (list<int64>, the sorted class codes);
- ``oof_pred_probs``: K-fold (shuffled ``KFold``) ``OneVsRestClassifier`` probabilities, one
  independent probability per class (or the supplied ones, as they are);
- ``confident_joint``: the (K, 2, 2) one-vs-rest confident joints, 4 rows per class;
- ``calibrated_joint``: the 2 x 2 joint Q_k of each class (a K x K Q has no multi-label
  meaning) and ``class_quality`` per class; the estimated noise rate is the share of
  examples that cleanlab's default filter flags (some class likely wrong);
- ``label_issues``: :func:`cl_pipeline.core.multilabel.find_label_issues` and
  ``get_label_quality_scores`` on the stored probabilities, and the per-class issues;
- ``pruned_dataset``, ``retrained_model`` (one-vs-rest, subset accuracy), ``audit_summary``;
- ``curated_dataset``: skipped (review decisions are single labels); the date's file is removed.

The audit is in memory: a snapshot of more than ``MAX_CELLS`` examples x classes is refused.
"""

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from cl_pipeline.audit import multilabel_tables as mt
from cl_pipeline.audit import verdicts
from cl_pipeline.audit.estimators import build_estimator
from cl_pipeline.audit.features import check_trainable, encode_features
from cl_pipeline.audit.folds import single_threaded_blas
from cl_pipeline.audit.preflight import Prevalidated, _key, prevalidate
from cl_pipeline.audit.snapshot import (
    BYO_COLUMN,
    RESERVED_COLUMNS,
    Snapshot,
    _check_columns,
    _check_ids,
    _check_numeric,
    content_hash,
    stored_form,
)
from cl_pipeline.audit.stages import Blocked, StageResult, code_version, retrained_result
from cl_pipeline.config import AuditConfig, ChecksConfig, ConfigError, ModelConfig
from cl_pipeline.core import multilabel
from cl_pipeline.storage import PartitionStore
from cl_pipeline.storage.multilabel_labels import encode_label_sets, format_label_sets, parse_label_sets
from cl_pipeline.storage.queries import top_rows
from cl_pipeline.storage.sources import load_snapshot, read_probabilities_npy

__all__ = [
    "LABEL_INDICES",
    "MAX_CELLS",
    "MultilabelSnapshot",
    "audit_summary",
    "calibrated_joint",
    "confident_joint",
    "curated_dataset",
    "guard",
    "input_verdict",
    "is_multilabel",
    "label_issues",
    "oof_pred_probs",
    "prevalidate_any",
    "prevalidate_multilabel",
    "pruned_dataset",
    "raw_labels",
    "retrained_model",
]

log = logging.getLogger("cl_pipeline.progress")

#: The column of ``raw_labels`` holding each example's class codes (sorted).
LABEL_INDICES = "label_indices"
#: Largest examples x classes the in-memory multi-label audit takes (160 MB per float64 (n, K) array).
MAX_CELLS = 20_000_000
#: The multi-label ``label_kind``.
KIND = "multilabel"


@dataclass(frozen=True)
class MultilabelSnapshot:
    """A validated multi-label snapshot.

    Attributes
    ----------
    frame : DataFrame
        The snapshot's columns as read (the label column as given).
    classes : list of str
    labels : ndarray of int8, shape (n, K)
        Given label sets as a 0/1 indicator matrix.
    id_column, label_column, delimiter : str
    features : dict
        Expanded ``numeric``, ``categorical``, ``text`` column lists.
    pred_probs : ndarray of float64, shape (n, K), or None
        Supplied per-class probabilities.
    probability_columns : list of str
        The supplied probability columns (empty for a ``.npy`` file or the K-fold path).
    true_labels : ndarray of int8, shape (n, K), or None
        Known true sets (rows with ``true_known`` False are unknown).
    true_known : ndarray of bool, shape (n,), or None
    data_version : str
    """

    frame: pd.DataFrame
    classes: list[str]
    labels: np.ndarray
    id_column: str
    label_column: str
    delimiter: str
    features: dict[str, list[str]] = field(default_factory=dict)
    pred_probs: np.ndarray | None = None
    probability_columns: list[str] = field(default_factory=list)
    true_labels: np.ndarray | None = None
    true_known: np.ndarray | None = None
    data_version: str = ""

    @property
    def ids(self) -> pd.Series:
        """The id column."""
        return self.frame[self.id_column]

    def feature_view(self) -> Snapshot:
        """The rows as a :class:`Snapshot` for the feature encoders (its ``labels`` are unused zeros)."""
        return Snapshot(
            self.frame, self.classes, np.zeros(len(self.frame), dtype=np.int64), self.id_column, self.features
        )


def is_multilabel(store: PartitionStore, date: str) -> bool:
    """Whether the stored ``raw_labels`` of ``date`` hold label sets (False if there is none)."""
    try:
        return store.metadata("raw_labels", date).get("label_kind") == KIND
    except FileNotFoundError:
        return False


def _elapsed(name: str, start: float, summary: str) -> float:
    seconds = time.perf_counter() - start
    log.info("%-16s %s (%.2f s)", name, summary, seconds)
    return seconds


# --- validation ------------------------------------------------------------------------------


def _refuse_settings(config: AuditConfig) -> None:
    """The settings the multi-label audit does not take, refused by name."""
    if config.audit.start_from == "curated":
        raise ConfigError(
            "[audit] start_from = 'curated' cannot be combined with columns.label_kind = 'multilabel' "
            "(review decisions are single labels): audit from 'raw'"
        )
    if config.issues.rank_by not in multilabel.SCORE_METHODS:
        raise ConfigError(
            f"issues.rank_by {config.issues.rank_by!r} is not a multi-label score; use one of "
            f"{list(multilabel.SCORE_METHODS)}"
        )


def _check_sizes(y: np.ndarray, classes: list[str], column: str, n_folds: int | None) -> None:
    """At least 2 classes; each class given to some examples (n_folds, for K folds) and not to all."""
    n, k = y.shape
    if k < 2:
        raise ConfigError(f"label column {column!r} holds {k} class(es) {classes}; at least 2 are needed")
    if n * k > MAX_CELLS:
        raise ConfigError(
            f"{n} examples x {k} classes = {n * k} cells: the multi-label audit runs in memory and takes at "
            f"most {MAX_CELLS} (docs/pipeline.md, 'Multi-label audits')"
        )
    present = y.sum(axis=0)
    need = n_folds or 1
    if (small := np.flatnonzero(present < need)).size:
        detail = ", ".join(f"{classes[c]!r} in {int(present[c])}" for c in small[:5])
        raise ConfigError(
            f"label column {column!r}: class(es) given to too few examples ({detail}; each needs at least {need}"
            f"{' for ' + str(n_folds) + '-fold cross-validation' if n_folds else ''}): add examples or drop the class"
        )
    if (everywhere := np.flatnonzero(present == n)).size:
        raise ConfigError(
            f"label column {column!r}: class {classes[everywhere[0]]!r} is in every example's label set, so "
            "nothing can be learned or flagged about it: drop the class"
        )


def _supplied_probabilities(frame: pd.DataFrame, config: AuditConfig, columns: list[str], k: int, date: str):
    """Supplied per-class probabilities (columns or ``.npy``), each in [0, 1] (rows need not sum to 1)."""
    cols = config.columns
    ids = frame[cols.id]
    if columns:
        if bad := [c for c in columns if not pd.api.types.is_numeric_dtype(frame[c])]:
            raise ConfigError(f"probability column {bad[0]!r} is not numeric")
        probs, where = frame[columns].to_numpy(dtype=np.float64), f"probability columns {columns[0]}..{columns[-1]}"
    else:
        probs, path = read_probabilities_npy(str(cols.probabilities_npy), date)
        probs, where = np.asarray(probs, dtype=np.float64), f"probabilities file {path}"
    if probs.ndim != 2 or probs.shape != (len(frame), k):
        raise ConfigError(f"{where}: expected shape ({len(frame)}, {k}) (one column per class), got {probs.shape}")
    bad_rows = ~(np.isfinite(probs) & (probs >= 0) & (probs <= 1)).all(axis=1)
    if bad_rows.any():
        row = int(np.flatnonzero(bad_rows)[0])
        raise ConfigError(
            f"{where}: row {row} (id {ids.iloc[row]!r}) is not per-class probabilities (each finite, in [0, 1]): "
            f"{probs[row][:10].tolist()}"
        )
    return probs


def _true_sets(
    frame: pd.DataFrame, id_column: str, column: str | None, delimiter: str, classes: list[str]
) -> tuple[np.ndarray, np.ndarray] | None:
    """Known true label sets of ``column`` (null cells = unknown), encoded in ``classes``; None without a column."""
    if column is None:
        return None
    values = frame[column]
    known = values.notna().to_numpy()
    truth = np.zeros((len(frame), len(classes)), dtype=np.int8)
    if known.any():
        ids = frame[id_column][known].reset_index(drop=True)
        sets = parse_label_sets(values[known].reset_index(drop=True), column, delimiter, ids)
        truth[known], _ = encode_label_sets(sets, classes, column, ids, delimiter)
    return truth, known


def _validate(frame: pd.DataFrame, config: AuditConfig, date: str) -> MultilabelSnapshot:
    """Check a raw snapshot against the configuration; parse and encode its label sets."""
    cols = config.columns
    if frame.empty:
        raise ConfigError(f"the snapshot for {date} has no rows")
    frame = frame.rename(columns=str).reset_index(drop=True)
    if reserved := [c for c in (*RESERVED_COLUMNS, LABEL_INDICES) if c in frame.columns]:
        raise ConfigError(f"snapshot column(s) {reserved} use reserved name(s); rename them in the source")
    expanded = _check_columns(frame, cols)
    _check_ids(frame, cols.id)
    ids = frame[cols.id]
    sets = parse_label_sets(frame[cols.label], cols.label, cols.label_delimiter, ids)
    y, classes = encode_label_sets(sets, cols.classes, cols.label, ids, cols.label_delimiter)
    _check_sizes(y, classes, cols.label, None if cols.byo_probabilities else config.model.n_folds)
    features = {k: expanded[k] for k in ("numeric", "categorical", "text")}
    _check_numeric(frame, features["numeric"], ids)
    probs = None
    if cols.byo_probabilities:
        probs = _supplied_probabilities(frame, config, expanded["probabilities"], len(classes), date)
    truth = _true_sets(frame, cols.id, cols.true_label, cols.label_delimiter, classes)
    try:
        stored = stored_form(frame)
    except Exception as exc:  # pyarrow's conversion errors name the column
        raise ConfigError(f"the snapshot cannot be stored as Parquet (a column of mixed types?): {exc}") from None
    version = content_hash(stored, probs if cols.probabilities_npy else None)
    return MultilabelSnapshot(
        frame,
        classes,
        y,
        cols.id,
        cols.label,
        cols.label_delimiter,
        features,
        probs,
        expanded["probabilities"],
        None if truth is None else truth[0],
        None if truth is None else truth[1],
        version,
    )


class _LastValidated:
    """The most recent validated multi-label snapshot of this process (one entry)."""

    key: str | None = None
    value: MultilabelSnapshot | None = None


def prevalidate_multilabel(config: AuditConfig, date: str) -> MultilabelSnapshot:
    """Load and validate the multi-label snapshot of ``date`` and the model settings, before anything is written.

    Cached like :func:`cl_pipeline.audit.preflight.prevalidate` (one entry per process), so the CLI's
    check and the ``raw_labels`` stage validate once.

    Raises
    ------
    ConfigError
        Naming the setting, column, row or value at fault.
    """
    key = _key(config, date)
    if _LastValidated.key == key and _LastValidated.value is not None:
        return _LastValidated.value
    if config.columns is None or config.columns.label_kind != KIND:
        raise ConfigError("columns.label_kind is not 'multilabel'")
    _refuse_settings(config)
    snapshot = _validate(load_snapshot(config.source, date), config, date)
    if snapshot.pred_probs is None:
        check_trainable(snapshot.feature_view(), config.model)
    _LastValidated.key, _LastValidated.value = key, snapshot
    return snapshot


def prevalidate_any(config: AuditConfig, date: str) -> Prevalidated:
    """:func:`~cl_pipeline.audit.preflight.prevalidate` for either label kind (what ``cl-pipeline audit`` calls).

    A multi-label snapshot is validated by :func:`prevalidate_multilabel`; the result then
    carries neither a single-label snapshot nor a Parquet description.
    """
    if config.columns is not None and config.columns.label_kind == KIND:
        prevalidate_multilabel(config, date)
        return Prevalidated(config, date, None)
    return prevalidate(config, date)


# --- stored label sets and probabilities -------------------------------------------------------


def _indicator(column: pa.Array | pa.ChunkedArray, k: int) -> np.ndarray:
    """An Arrow list<int64> column of class codes as the (n, K) 0/1 indicator matrix."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    lengths = array.value_lengths().fill_null(0).to_numpy(zero_copy_only=False)  # a null list: no class
    codes = array.flatten().to_numpy(zero_copy_only=False).astype(np.int64)
    y = np.zeros((len(array), k), dtype=np.int8)
    y[np.repeat(np.arange(len(array)), lengths), codes] = 1
    return y


def _codes(y: np.ndarray) -> pa.ListArray:
    """The (n, K) indicator as an Arrow list<int64> column of each row's class codes (ascending)."""
    offsets = np.concatenate([[0], np.cumsum(y.sum(axis=1, dtype=np.int64))]).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(np.nonzero(y)[1].astype(np.int64)))


def load_stored(store: PartitionStore, date: str) -> MultilabelSnapshot:
    """The validated multi-label snapshot of ``date`` as stored by ``raw_labels``."""
    meta = store.metadata("raw_labels", date)
    classes = list(meta["classes"])
    frame = store.read("raw_labels", date).drop(columns=["partition"], errors="ignore")
    y = _indicator(pa.array(frame[LABEL_INDICES].tolist(), pa.list_(pa.int64())), len(classes))
    probs = None
    if meta.get("probability_columns"):
        probs = frame[meta["probability_columns"]].to_numpy(dtype=np.float64)
    elif BYO_COLUMN in frame.columns:
        probs = np.stack(frame[BYO_COLUMN].to_numpy()).astype(np.float64)
    frame = frame.drop(columns=[LABEL_INDICES, BYO_COLUMN], errors="ignore")
    delimiter, id_column = meta["label_delimiter"], meta["id_column"]
    truth = _true_sets(frame, id_column, meta.get("true_label_column"), delimiter, classes)
    return MultilabelSnapshot(
        frame,
        classes,
        y,
        id_column,
        meta["label_column"],
        delimiter,
        dict(meta["features"]),
        probs,
        list(meta.get("probability_columns") or []),
        None if truth is None else truth[0],
        None if truth is None else truth[1],
        meta["data_version"],
    )


@dataclass(frozen=True)
class _Oof:
    """The stored ``oof_pred_probs`` of a date: ids, given sets, probabilities, known true sets."""

    ids: pa.Array
    labels: np.ndarray
    pred_probs: np.ndarray
    true_labels: np.ndarray | None
    true_known: np.ndarray | None


def _read_oof(store: PartitionStore, date: str) -> _Oof:
    from cl_pipeline.audit.streaming import probabilities

    k = len(store.metadata("raw_labels", date)["classes"])
    table = pa.Table.from_batches(list(store.iter_batches("oof_pred_probs", date)))
    probs = probabilities(table.column("pred_probs"), k).astype(np.float64, copy=False)
    truth = known = None
    if "true_indices" in table.column_names:
        known = table.column("true_indices").is_valid().to_numpy(zero_copy_only=False)
        truth = _indicator(table.column("true_indices"), k)
    ids = table.column("id").combine_chunks()
    return _Oof(ids, _indicator(table.column("given_indices"), k), probs, truth, known)


def _truth_arrays(ms: MultilabelSnapshot) -> dict[str, pa.Array]:
    """``true_label`` (text) and ``true_indices`` columns, null where the true set is unknown."""
    if ms.true_labels is None or ms.true_known is None:
        return {}
    text = format_label_sets(ms.true_labels, ms.classes, ms.delimiter)
    mask = pa.array(~ms.true_known)
    codes = _codes(ms.true_labels)
    nulled = pa.ListArray.from_arrays(codes.offsets, codes.values, mask=mask)
    return {"true_label": pa.array(text, pa.string(), mask=~ms.true_known), "true_indices": nulled}


# --- the stages ------------------------------------------------------------------------------


def raw_labels(store: PartitionStore, config: AuditConfig, date: str) -> StageResult:
    """The labelled multi-label snapshot of ``date``, validated, plus its class codes (``label_indices``)."""
    start = time.perf_counter()
    ms = prevalidate_multilabel(config, date)
    out = ms.frame.copy()
    out[LABEL_INDICES] = [np.flatnonzero(row).astype(np.int64) for row in ms.labels]
    if config.columns.probabilities_npy and ms.pred_probs is not None:
        out[BYO_COLUMN] = list(ms.pred_probs)
    meta = {
        "label_kind": KIND,
        "classes": ms.classes,
        "id_column": ms.id_column,
        "label_column": ms.label_column,
        "label_delimiter": ms.delimiter,
        "features": ms.features,
        "probability_columns": ms.probability_columns,
        "true_label_column": config.columns.true_label,
        "data_version": ms.data_version,
        "config": config.model_dump(mode="json", exclude={"compute"}),
    }
    n, counts = len(out), ms.labels.sum(axis=0)
    per_example = float(ms.labels.sum() / n)
    summary = f"{n} rows, {len(ms.classes)} classes (multi-label, {per_example:.2f} classes per example)"
    seconds = _elapsed("raw_labels", start, summary)
    store.write("raw_labels", date, out, meta | {"seconds": seconds})
    return StageResult(
        summary,
        seconds,
        n,
        metadata={
            "data_version": ms.data_version,
            "label_kind": KIND,
            "mean_classes_per_example": per_example,
            "examples_with_no_class": int((ms.labels.sum(axis=1) == 0).sum()),
        },
        json={"classes": ms.classes, "class_counts": dict(zip(ms.classes, counts.tolist(), strict=True))},
        data_version=ms.data_version,
    )


def one_vs_rest_oof(X: Any, y: np.ndarray, model: ModelConfig) -> tuple[np.ndarray, np.ndarray]:
    """K-fold out-of-sample per-class probabilities of ``OneVsRestClassifier(model.estimator)``.

    Parameters
    ----------
    X : ndarray or sparse matrix, shape (n, d)
    y : ndarray of 0/1, shape (n, K)
    model : ModelConfig
        Estimator, parameters, ``n_folds`` (shuffled ``KFold``, seeded by ``random_state``), ``n_jobs``.

    Returns
    -------
    pred_probs : ndarray of float64, shape (n, K)
        Independent probabilities (a class absent from, or in every row of, a training fold gets the
        constant 0 or 1 in its held-out fold: scikit-learn's constant predictor, with its warning).
    fold : ndarray of int64, shape (n,)
    """
    from joblib import Parallel, delayed
    from sklearn.base import clone
    from sklearn.model_selection import KFold
    from sklearn.multiclass import OneVsRestClassifier

    estimator = build_estimator(model)
    folds = list(KFold(model.n_folds, shuffle=True, random_state=model.random_state).split(np.zeros(len(y))))

    def fit(train: np.ndarray, test: np.ndarray) -> np.ndarray:
        fitted = OneVsRestClassifier(clone(estimator)).fit(X[train], y[train])
        return np.asarray(fitted.predict_proba(X[test]), dtype=np.float64)

    with single_threaded_blas():
        jobs = (delayed(fit)(train, test) for train, test in folds)
        results = Parallel(n_jobs=min(model.n_jobs, len(folds)), prefer="threads")(jobs)
    probs, fold = np.empty(y.shape, dtype=np.float64), np.empty(len(y), dtype=np.int64)
    for i, ((_, test), part) in enumerate(zip(folds, results, strict=True)):
        probs[test], fold[test] = part, i
    return np.clip(probs, 0.0, 1.0), fold


def oof_pred_probs(store: PartitionStore, config: AuditConfig, date: str) -> StageResult:
    """Out-of-sample per-class probabilities: K-fold one-vs-rest (taken as is if supplied)."""
    start = time.perf_counter()
    ms = load_stored(store, date)
    n, k = ms.labels.shape
    if ms.pred_probs is not None:
        probs, fold, source = ms.pred_probs, np.full(n, -1, dtype=np.int64), "supplied"
    else:
        X, _ = encode_features(ms.feature_view())
        probs, fold = one_vs_rest_oof(X, ms.labels, config.model)
        source = f"{config.model.n_folds}-fold one-vs-rest {config.model.estimator}"
    columns = {
        "row": pa.array(np.arange(n, dtype=np.int64)),
        "id": pa.Array.from_pandas(ms.ids.reset_index(drop=True)),
        "given_label": pa.array(format_label_sets(ms.labels, ms.classes, ms.delimiter), pa.string()),
        "given_indices": _codes(ms.labels),
        "fold": pa.array(fold),
        "pred_probs": pa.FixedSizeListArray.from_arrays(pa.array(probs.reshape(-1)), k),
    }
    table = pa.table(columns | _truth_arrays(ms))
    accuracy = float(((probs >= 0.5) == ms.labels.astype(bool)).all(axis=1).mean())
    summary = f"{source}, subset accuracy vs given {accuracy:.3f}"
    info: dict[str, Any] = {"classes": ms.classes, "label_kind": KIND}
    info["seconds"] = _elapsed("oof_pred_probs", start, summary)
    rows = store.write_batches("oof_pred_probs", date, table.schema, table.to_batches(), info)
    return StageResult(
        summary, info["seconds"], rows, metadata={"source": source, "accuracy_vs_given_labels": accuracy}
    )


def _joint_frame(table: pd.DataFrame, column: str) -> pd.DataFrame:
    """One row per class: the four cells (given -> true, absent/present) of ``column``."""
    names = {(False, False): "absent->absent", (False, True): "absent->present"}
    names |= {(True, False): "present->absent", (True, True): "present->present"}
    wide = table.pivot(index="class_index", columns=["given_present", "true_present"], values=column)
    wide.columns = [names[c] for c in wide.columns]
    labels = table.drop_duplicates("class_index").set_index("class_index")["class_label"]
    return wide.reset_index(drop=True).assign(class_label=labels.to_numpy())[["class_label", *names.values()]]


def confident_joint(store: PartitionStore, date: str) -> StageResult:
    """The one-vs-rest confident joints (K, 2, 2), raw and calibrated, with each class's thresholds.

    Also records the estimated noise rate: the share of examples cleanlab's default filter
    (``prune_by_noise_rate`` on every class's 2 x 2 joint) flags, i.e. examples with some
    class estimated wrong (``1 - overall_multilabel_health_score`` in cleanlab).
    """
    start = time.perf_counter()
    classes = list(store.metadata("raw_labels", date)["classes"])
    oof = _read_oof(store, date)
    table, info = mt.multilabel_confident_joint(oof.labels, oof.pred_probs, classes)
    flagged = int(multilabel.find_label_issues(oof.labels, oof.pred_probs).sum())
    n = len(oof.labels)
    info |= {"label_kind": KIND, "n": n, "flagged_by_default_filter": flagged}
    info |= {"noise_rate": flagged / n, "health_score": 1.0 - flagged / n}
    summary = f"{info['off_diagonal']} off-diagonal (example, class) counts over {len(classes)} one-vs-rest joints"
    seconds = _elapsed("confident_joint", start, summary)
    store.write("confident_joint", date, table, info | {"seconds": seconds})
    return StageResult(
        summary,
        seconds,
        len(table),
        metadata={
            "off_diagonal_examples": info["off_diagonal"],
            "classes": len(classes),
            "class_pairs": len(table),
            "layout": "one-vs-rest: 4 rows per class (given x true, absent/present), cleanlab's (K, 2, 2)",
        },
        json={"thresholds": dict(zip(classes, info["thresholds"], strict=True))},
        tables={"calibrated_confident_joints": _joint_frame(table, "calibrated_count")},
    )


def calibrated_joint(store: PartitionStore, date: str) -> StageResult:
    """Each class's 2 x 2 joint Q_k and noise matrices, and per-class label quality (``class_quality``).

    A K x K Q has no multi-label meaning (classes are not exclusive), so none is computed;
    the noise rate is the one recorded by :func:`confident_joint`.
    """
    start = time.perf_counter()
    classes = list(store.metadata("raw_labels", date)["classes"])
    k, joint_meta = len(classes), store.metadata("confident_joint", date)
    calibrated = store.read("confident_joint", date)["calibrated_count"].to_numpy(dtype=np.int64).reshape(k, 2, 2)
    counts = np.asarray(joint_meta["label_counts"], dtype=np.int64)
    joint, per_class = mt.multilabel_joint_tables(classes, calibrated, counts, joint_meta["num_label_issues"])
    noise_rate = float(joint_meta["noise_rate"])
    info = {
        "label_kind": KIND,
        "noise_rate": noise_rate,
        "noise_rate_definition": "share of examples flagged by prune_by_noise_rate (some class estimated wrong)",
        "health_score": float(joint_meta["health_score"]),
        "Q": "not computed: classes are not exclusive; see the per-class 2 x 2 joints",
    }
    summary = f"estimated noise rate {noise_rate:.4f} (examples with some class estimated wrong)"
    seconds = _elapsed("calibrated_joint", start, summary)
    store.write("class_quality", date, per_class)
    store.write("calibrated_joint", date, joint, info | {"seconds": seconds})
    worst = per_class.loc[per_class["label_noise"].idxmax()]
    return StageResult(
        summary,
        seconds,
        len(joint),
        metadata={
            "estimated_noise_rate": noise_rate,
            "worst_class": str(worst["class_label"]),
            "worst_class_label_noise": float(worst["label_noise"]),
            "classes": k,
            "class_pairs": len(joint),
            "Q": info["Q"],
        },
        tables={"Q_per_class": _joint_frame(joint, "joint"), "class_noise_rates": per_class},
    )


def _precision_recall(mask: np.ndarray, oof: _Oof, y: np.ndarray) -> dict[str, Any]:
    """Precision and recall of the flags against the known true sets (an error: true set != given set)."""
    if oof.true_labels is None or oof.true_known is None or not oof.true_known.any():
        return {}
    known = oof.true_known
    errors = known & (oof.true_labels != y).any(axis=1)
    hits, flagged_known = int((mask & errors).sum()), int((mask & known).sum())
    return {
        "true_errors": int(errors.sum()),
        "precision": hits / flagged_known if flagged_known else None,
        "recall": hits / int(errors.sum()) if errors.any() else None,
    }


def label_issues(store: PartitionStore, config: AuditConfig, date: str) -> StageResult:
    """Every example: given and predicted sets, label quality, is_label_issue, rank, classes with an issue.

    ``is_label_issue`` = :func:`cl_pipeline.core.multilabel.find_label_issues` with ``issues.filter_by``,
    ``label_quality`` = ``get_label_quality_scores`` with ``issues.rank_by``, ``classes_with_issue`` =
    ``find_multilabel_issues_per_class``, all on the stored ``oof_pred_probs``; ``suggested_label`` is
    the set of classes with probability >= 0.5; ``rank`` 1, 2, ... over the flagged rows only.
    """
    start = time.perf_counter()
    classes, issues = list(store.metadata("raw_labels", date)["classes"]), config.issues
    oof, delimiter = _read_oof(store, date), store.metadata("raw_labels", date)["label_delimiter"]
    y, probs = oof.labels, oof.pred_probs
    options = {"filter_by": issues.filter_by, "min_examples_per_class": issues.min_examples_per_class}
    mask = multilabel.find_label_issues(y, probs, **options)
    quality = multilabel.get_label_quality_scores(y, probs, method=issues.rank_by)
    per_class = multilabel.find_multilabel_issues_per_class(y, probs, **options).astype(np.int8)
    rank = mt.ranks_of_flagged(mask, quality)
    suggested = (probs >= 0.5).astype(np.int8)
    columns = {
        "row": pa.array(np.arange(len(y), dtype=np.int64)),
        "id": oof.ids,
        "given_label": pa.array(format_label_sets(y, classes, delimiter), pa.string()),
        "suggested_label": pa.array(format_label_sets(suggested, classes, delimiter), pa.string()),
        "label_quality": pa.array(quality, pa.float64()),
        "is_label_issue": pa.array(mask),
        "rank": pa.array(rank, pa.int64(), mask=rank < 0),
        "classes_with_issue": pa.array(format_label_sets(per_class, classes, delimiter), pa.string()),
        "given_indices": _codes(y),
        "suggested_indices": _codes(suggested),
        "issue_class_indices": _codes(per_class),
    }
    if oof.true_labels is not None:
        text = format_label_sets(oof.true_labels, classes, delimiter)
        columns["true_label"] = pa.array(text, pa.string(), mask=~oof.true_known)
    table = pa.table(columns)
    info: dict[str, Any] = {"label_kind": KIND, "n": len(y), "num_issues": int(mask.sum())}
    info |= {"num_class_issues": int(per_class.sum()), "filter_by": issues.filter_by, "rank_by": issues.rank_by}
    info["class_issues"] = dict(zip(classes, per_class.sum(axis=0).tolist(), strict=True))
    info |= _precision_recall(mask, oof, y)
    summary = f"{info['num_issues']} of {info['n']} flagged ({info['num_class_issues']} (example, class) issues)"
    info["seconds"] = _elapsed("label_issues", start, summary)
    rows = store.write_batches("label_issues", date, table.schema, table.to_batches(), info)
    shown = ["rank", "id", "given_label", "suggested_label", "classes_with_issue", "label_quality"]
    top = top_rows(store.path("label_issues", date), shown, "is_label_issue", "rank", 20)
    keys = ("num_issues", "num_class_issues", "precision", "recall", "true_errors")
    metadata = {k: info[k] for k in keys if info.get(k) is not None}
    return StageResult(
        summary,
        info["seconds"],
        rows,
        metadata=metadata,
        json={"class_issues": info["class_issues"]},
        tables={"top_20_issues": top},
    )


def _flags(store: PartitionStore, date: str) -> np.ndarray:
    """``label_issues.is_label_issue`` of ``date`` in row order."""
    parts = [
        b.column(0).to_numpy(zero_copy_only=False) for b in store.iter_batches("label_issues", date, ["is_label_issue"])
    ]
    return np.concatenate(parts).astype(bool)


def pruned_dataset(store: PartitionStore, config: AuditConfig, date: str) -> StageResult:
    """The snapshot without its flagged examples (refused when a blocking verdict fails)."""
    start = time.perf_counter()
    if failed := guard(store, date, config.checks):
        raise Blocked(failed)
    raw = store.read("raw_labels", date).drop(columns=["partition"])
    flags = _flags(store, date)
    kept = raw[~flags].reset_index(drop=True)
    removed = int(flags.sum())
    summary = f"{len(kept)} kept, {removed} removed"
    seconds = _elapsed("pruned_dataset", start, summary)
    store.write("pruned_dataset", date, kept, {"seconds": seconds, "removed": removed, "label_kind": KIND})
    return StageResult(summary, seconds, len(kept), metadata={"removed": removed})


def retrain_one_vs_rest(
    ms: MultilabelSnapshot, pred_probs: np.ndarray, config: AuditConfig
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Prune + refit ``OneVsRestClassifier`` vs the same model on the given sets, on a seeded hold-out split.

    The training rows' issues are found again among the training rows alone (their stored
    out-of-fold probabilities, ``issues.filter_by``); scores are subset accuracy (the whole set right).

    Returns
    -------
    artifact : dict
        ``{"model": Pipeline(encoder, OneVsRestClassifier), "classes", "data_version", "scores", "label_kind"}``.
    scores : dict
        ``n_train, n_holdout, n_pruned``, ``baseline_accuracy``, ``retrained_accuracy`` (and ``*_true_accuracy``).
    """
    from sklearn.base import clone
    from sklearn.metrics import accuracy_score
    from sklearn.model_selection import train_test_split
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.pipeline import Pipeline

    model, y = config.model, ms.labels
    X, encoder = encode_features(ms.feature_view())
    train, hold = train_test_split(np.arange(len(y)), test_size=model.holdout_fraction, random_state=model.random_state)
    train, hold = np.sort(train), np.sort(hold)
    options = {"filter_by": config.issues.filter_by, "min_examples_per_class": config.issues.min_examples_per_class}
    issues = multilabel.find_label_issues(y[train], pred_probs[train], **options)
    keep = train[~issues]
    estimator = build_estimator(model)
    with single_threaded_blas():
        baseline = OneVsRestClassifier(clone(estimator)).fit(X[train], y[train])
        retrained = OneVsRestClassifier(clone(estimator)).fit(X[keep], y[keep])
    predicted = {"baseline": baseline.predict(X[hold]), "retrained": retrained.predict(X[hold])}
    scores: dict[str, Any] = {"n_train": int(train.size), "n_holdout": int(hold.size), "n_pruned": int(issues.sum())}
    scores |= {f"{name}_accuracy": float(accuracy_score(y[hold], p)) for name, p in predicted.items()}
    if ms.true_labels is not None and ms.true_known is not None and ms.true_known[hold].all():
        truth = ms.true_labels[hold]
        scores |= {f"{name}_true_accuracy": float(accuracy_score(truth, p)) for name, p in predicted.items()}
    artifact = {
        "model": Pipeline([("features", encoder), ("one_vs_rest", retrained)]),
        "classes": ms.classes,
        "data_version": ms.data_version,
        "scores": scores,
        "label_kind": KIND,
    }
    return artifact, scores


def retrained_model(store: PartitionStore, config: AuditConfig, date: str) -> StageResult:
    """Prune + refit (one-vs-rest) vs the noisy-label baseline on a hold-out split; skipped without features."""
    import joblib

    start = time.perf_counter()
    if failed := guard(store, date, config.checks):
        raise Blocked(failed)
    row: dict[str, Any] = {"status": "trained", "artifact": None}
    ms = load_stored(store, date)
    if ms.pred_probs is not None:
        row["status"] = "skipped: probabilities were supplied: no features to train on"
    else:
        artifact, scores = retrain_one_vs_rest(ms, _read_oof(store, date).pred_probs, config)
        path = store.write_artifact("retrained_model", date, ".joblib", lambda handle: joblib.dump(artifact, handle))
        row.update(scores, artifact=str(path))
    return retrained_result(store, date, row, start)


def audit_summary(store: PartitionStore, config: AuditConfig, date: str, run_id: str) -> StageResult:
    """One row per audit, as the single-label one; ``thresholds`` = each class's threshold of "present"."""
    start = time.perf_counter()
    raw_meta = store.metadata("raw_labels", date)
    joint_meta, issues_meta = store.metadata("confident_joint", date), store.metadata("label_issues", date)
    checks = config.checks
    row: dict[str, Any] = {
        "data_version": raw_meta["data_version"],
        "code_version": code_version(),
        "run_id": run_id,
        "created_at": pd.Timestamp.now(tz="UTC"),
        "n": int(joint_meta["n"]),
        "k": len(raw_meta["classes"]),
        "classes": list(raw_meta["classes"]),
        "estimated_noise_rate": float(joint_meta["noise_rate"]),
        "num_issues": int(issues_meta["num_issues"]),
        "health_score": float(joint_meta["health_score"]),
        "thresholds": [float(t[1]) for t in joint_meta["thresholds"]],
        "filter_by": config.issues.filter_by,
        "max_noise_rate": checks.max_noise_rate,
        "max_class_noise_rate": checks.max_class_noise_rate,
        "retrain_tolerance": checks.retrain_tolerance,
        "precision": issues_meta.get("precision"),
        "recall": issues_meta.get("recall"),
        "label_kind": KIND,
        "num_class_issues": int(issues_meta["num_class_issues"]),
    }
    for table in ("raw_labels", "oof_pred_probs", "confident_joint", "label_issues"):
        row[f"seconds_{table}"] = store.metadata(table, date).get("seconds")
    seconds = row["seconds_audit_summary"] = _elapsed("audit_summary", start, "recorded")
    store.write("audit_summary", date, pd.DataFrame([row]), {"seconds": seconds})
    shown = {k: v for k, v in row.items() if k not in ("classes", "thresholds", "created_at") and v is not None}
    shown["created_at"] = row["created_at"].isoformat()
    thresholds = dict(zip(row["classes"], row["thresholds"], strict=True))
    return StageResult(
        "recorded", seconds, 1, metadata=shown, json={"classes": row["classes"], "thresholds": thresholds}
    )


def curated_dataset(store: PartitionStore, date: str) -> StageResult:
    """Not made for multi-label data: review decisions are single labels. The date's old file is removed."""
    start = time.perf_counter()
    removed = store.remove("curated_dataset", date)
    summary = "skipped: review decisions are single labels; a multi-label snapshot has no curated version"
    seconds = _elapsed("curated_dataset", start, summary)
    return StageResult(summary, seconds, 0, metadata={"status": summary, "removed_earlier_version": removed})


# --- checks ----------------------------------------------------------------------------------


def input_verdict(store: PartitionStore, date: str) -> verdicts.Verdict:
    """The stored multi-label ``raw_labels`` of ``date`` are the rows validated (hash, label codes).

    For a single-label date, :func:`cl_pipeline.audit.verdicts.input_verdict`.
    """
    if not is_multilabel(store, date):
        return verdicts.input_verdict(store, date)
    meta = store.metadata("raw_labels", date)
    stored = store.read("raw_labels", date)
    frame = stored.drop(columns=["partition", LABEL_INDICES, BYO_COLUMN], errors="ignore")
    extra = np.stack(stored[BYO_COLUMN].to_numpy()).astype(np.float64) if BYO_COLUMN in stored else None
    digest = content_hash(frame, extra)
    if digest != meta.get("data_version"):
        message = (
            f"stored raw_labels hash {digest} != data version {meta.get('data_version')} "
            "recorded when the snapshot was validated: the file changed after the audit wrote it"
        )
        return verdicts.Verdict("input_valid", False, None, None, message)
    classes, column = list(meta["classes"]), meta["label_column"]
    try:
        sets = parse_label_sets(frame[column], column, meta["label_delimiter"], frame[meta["id_column"]])
        y, _ = encode_label_sets(sets, classes, column, frame[meta["id_column"]], meta["label_delimiter"])
    except ConfigError as exc:
        return verdicts.Verdict("input_valid", False, None, None, f"stored label column: {exc}")
    if not np.array_equal(y, load_stored(store, date).labels):
        return verdicts.Verdict(
            "input_valid", False, None, None, f"stored {LABEL_INDICES} do not match the label column"
        )
    message = f"{len(frame)} rows, {len(classes)} classes (multi-label), data version {digest}: valid"
    return verdicts.Verdict("input_valid", True, None, None, message)


def guard(store: PartitionStore, date: str, checks: ChecksConfig) -> list[verdicts.Verdict]:
    """:func:`cl_pipeline.audit.verdicts.guard` with the multi-label input verdict (same rules)."""
    return verdicts.guard(store, date, checks, input_of=input_verdict)
