"""Several annotators per example: consensus labels, annotator quality, what to relabel next.

The two-step of the audit (docs/pipeline.md, "Multiple annotators and multi-label data"):
out-of-sample probabilities need labels to train the folds, and CROWDLAB's consensus
needs out-of-sample probabilities. So the folds are trained on the majority vote
(:func:`majority_vote_labels`, as cleanlab's multi-annotator tutorial does), then
:func:`consensus_tables` runs CROWDLAB with those probabilities; the consensus is the
given label of the confident-learning stages.
"""

import fnmatch
import json
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from cl_pipeline.audit.compute import LOCAL
from cl_pipeline.audit.features import encode_features
from cl_pipeline.audit.folds import out_of_fold_probs
from cl_pipeline.audit.snapshot import BYO_COLUMN, Snapshot, content_hash, stored_form
from cl_pipeline.config import AuditConfig, ConfigError, IssuesConfig
from cl_pipeline.core import multiannotator
from cl_pipeline.storage.annotations import pivot_annotations
from cl_pipeline.storage.inputs import read_array
from cl_pipeline.storage.store import PartitionStore

__all__ = [
    "ANNOTATOR_COLUMNS",
    "CONSENSUS_COLUMNS",
    "ConsensusTables",
    "annotation_frame",
    "consensus_snapshot",
    "consensus_tables",
    "encode_annotations",
    "find_multiannotator_tables",
    "majority_vote_labels",
    "with_majority_vote",
]

#: Columns of the per-example consensus table (after the example key).
CONSENSUS_COLUMNS = (
    "consensus_label",
    "consensus_quality_score",
    "annotator_agreement",
    "num_annotations",
    "active_learning_score",
)
#: Columns of the per-annotator table.
ANNOTATOR_COLUMNS = (
    "annotator",
    "annotator_quality",
    "agreement_with_consensus",
    "worst_class",
    "num_examples_labeled",
)


@dataclass(frozen=True)
class ConsensusTables:
    """What CROWDLAB says about a labeled dataset.

    Attributes
    ----------
    consensus : DataFrame, n rows
        ``CONSENSUS_COLUMNS`` in example order.
    annotators : DataFrame, m rows
        ``ANNOTATOR_COLUMNS`` in annotator (column) order.
    """

    consensus: pd.DataFrame
    annotators: pd.DataFrame


def majority_vote_labels(labels_multiannotator: np.ndarray, num_classes: int) -> np.ndarray:
    """Majority vote of each example (ties: the core's rule without model probabilities).

    Parameters
    ----------
    labels_multiannotator : ndarray of float, shape (n, m)
        Class ids, NaN where missing.
    num_classes : int
        K; a label ``>= K`` is refused (the core's message).

    Returns
    -------
    ndarray of int64, shape (n,)
    """
    uniform = np.full((labels_multiannotator.shape[0], num_classes), 1.0 / num_classes)
    return multiannotator.get_majority_vote_label(labels_multiannotator, uniform)


def consensus_tables(
    labels_multiannotator: np.ndarray, pred_probs: np.ndarray, annotators: list[str]
) -> ConsensusTables:
    """CROWDLAB consensus, quality and ActiveLab score per example; quality per annotator.

    Parameters
    ----------
    labels_multiannotator : ndarray of float, shape (n, m)
        Class ids ``0..K-1``, NaN where missing (validated by the core).
    pred_probs : ndarray of float, shape (n, K)
        Out-of-sample probabilities.
    annotators : list of str, length m
        Names of the columns.

    Returns
    -------
    ConsensusTables
    """
    if len(annotators) != np.shape(labels_multiannotator)[1]:
        raise ValueError(f"annotators has {len(annotators)} names for {np.shape(labels_multiannotator)[1]} columns")
    result = multiannotator.get_label_quality_multiannotator(
        labels_multiannotator, pred_probs, return_detailed_quality=False
    )
    scores, _ = multiannotator.get_active_learning_scores(labels_multiannotator, pred_probs)
    consensus = pd.DataFrame(
        {
            "consensus_label": result.consensus_label,
            "consensus_quality_score": result.consensus_quality_score,
            "annotator_agreement": result.annotator_agreement,
            "num_annotations": result.num_annotations,
            "active_learning_score": scores,
        }
    )
    table = pd.DataFrame(
        {
            "annotator": [str(a) for a in annotators],
            "annotator_quality": result.annotator_quality,
            "agreement_with_consensus": result.agreement_with_consensus,
            "worst_class": result.worst_class,
            "num_examples_labeled": result.num_examples_labeled,
        }
    )
    return ConsensusTables(consensus, table)


def find_multiannotator_tables(
    labels_multiannotator: np.ndarray, pred_probs: np.ndarray, annotators: list[str], issues: IssuesConfig
) -> ConsensusTables:
    """``cl-pipeline find --annotators``: consensus and label issues against it, most suspicious first.

    Returns
    -------
    ConsensusTables
        ``consensus``: ``index``, ``CONSENSUS_COLUMNS``, then ``find_table``'s
        ``suggested_label, label_quality, is_label_issue, rank`` with the consensus
        as the given label, sorted by rank; ``annotators`` as :func:`consensus_tables`.
    """
    from cl_pipeline.audit.tables import find_table

    tables = consensus_tables(labels_multiannotator, pred_probs, annotators)
    issues_table = find_table(tables.consensus["consensus_label"].to_numpy(), pred_probs, issues)
    issues_table = issues_table.drop(columns="given_label").sort_values("index")
    merged = pd.concat(
        [
            issues_table[["index"]].reset_index(drop=True),
            tables.consensus,
            issues_table.drop(columns="index").reset_index(drop=True),
        ],
        axis=1,
    )
    return ConsensusTables(merged.sort_values("rank", ignore_index=True), tables.annotators)


# --- the audit: annotations of a snapshot -------------------------------------------------


def _annotator_columns(frame: pd.DataFrame, patterns: list[str]) -> list[str]:
    """The snapshot columns matching ``columns.annotations`` (globs), in snapshot order."""
    names = [str(c) for c in frame.columns]
    found: list[str] = []
    for pattern in patterns:
        matched = [c for c in names if fnmatch.fnmatchcase(c, pattern) and c not in found]
        if not matched:
            raise ConfigError(f"columns.annotations: no snapshot column matches {pattern!r} (columns: {names[:10]})")
        found += matched
    return [c for c in names if c in found]


def annotation_frame(frame: pd.DataFrame, config: AuditConfig, date: str) -> pd.DataFrame:
    """The annotations of a snapshot in the wide layout: one column per annotator, rows = snapshot rows.

    Parameters
    ----------
    frame : DataFrame
        The snapshot as read from the source (its id column is ``columns.id``).
    config : AuditConfig
        ``columns.annotations``: a long-table file or annotator columns.
    date : str
        Replaces ``{date}`` in a file path.

    Returns
    -------
    DataFrame, shape (n, m)
        Raw label values, missing = NaN/None.

    Raises
    ------
    ConfigError
        Missing file or columns, an id not in the snapshot, an annotator labeling an id twice.
    """
    cols = config.columns
    if cols is None or cols.annotations is None:
        raise ConfigError("columns.annotations is not set")
    if cols.id not in frame.columns:
        raise ConfigError(f"id column {cols.id!r} not in the snapshot")
    if isinstance(cols.annotations, list):
        wide = frame[_annotator_columns(frame, cols.annotations)].reset_index(drop=True)
        wide.columns = [str(c) for c in wide.columns]
        return wide
    path = cols.annotations.replace("{date}", date)
    long = read_array(path, f"columns.annotations ({path})")
    ids = pd.Index(frame[cols.id].reset_index(drop=True))
    return pivot_annotations(long, ids, f"columns.annotations ({path})").reset_index(drop=True)


def _cell_names(wide: pd.DataFrame) -> np.ndarray:
    """Class names of the cells (integral numbers as ``'3'``), None where missing."""
    out = np.full(wide.shape, None, dtype=object)
    for j, column in enumerate(wide.columns):
        values = wide[column]
        present = values.notna().to_numpy() & (values.astype(str).str.strip() != "").to_numpy()
        numeric = pd.to_numeric(values[present], errors="coerce")
        names = values[present].astype(str).str.strip().to_numpy(dtype=object)
        integral = numeric.notna().to_numpy() & (numeric == np.round(numeric)).to_numpy()
        names[integral] = numeric[integral].astype(np.int64).astype(str).to_numpy(dtype=object)
        out[present, j] = names
    return out


def encode_annotations(wide: pd.DataFrame, ids: pd.Series, classes: list[str] | None) -> tuple[np.ndarray, list[str]]:
    """Annotations as the core's ``(n, m)`` float matrix of class codes (NaN = none) and the class order.

    Parameters
    ----------
    wide : DataFrame, shape (n, m)
        From :func:`annotation_frame`.
    ids : Series, length n
        Example ids (named in errors).
    classes : list of str, optional
        ``columns.classes``; default: the sorted distinct annotations (numerically if all integers).

    Raises
    ------
    ConfigError
        An example with no annotation, an annotator with no label, a label not in ``classes``,
        fewer than 2 annotator columns.
    """
    names = _cell_names(wide)
    missing = pd.isna(names)
    if wide.shape[1] < 2:
        raise ConfigError(f"columns.annotations: {wide.shape[1]} annotator(s) {list(wide.columns)}; at least 2 needed")
    empty_rows = np.flatnonzero(missing.all(axis=1))
    if empty_rows.size:
        shown = [_plain(i) for i in ids.iloc[empty_rows[:5]]]
        raise ConfigError(
            f"columns.annotations: {empty_rows.size} example(s) have no annotation at all, e.g. id(s) {shown}"
        )
    empty_cols = [str(c) for c, e in zip(wide.columns, missing.all(axis=0), strict=True) if e]
    if empty_cols:
        raise ConfigError(f"columns.annotations: annotator(s) {empty_cols[:5]} gave no label at all")
    given = names[~missing]
    order = list(classes) if classes is not None else _class_order(given)
    codes = pd.Index(order, dtype=object).get_indexer(given)
    if (codes < 0).any():
        i, j = np.argwhere(~missing)[np.flatnonzero(codes < 0)[0]]
        raise ConfigError(
            f"columns.annotations: annotator {str(wide.columns[j])!r} labels id {_plain(ids.iloc[i])!r} "
            f"{names[i, j]!r}, not one of the classes {order}"
        )
    matrix = np.full(names.shape, np.nan)
    matrix[~missing] = codes
    return matrix, order


def _class_order(names: np.ndarray) -> list[str]:
    distinct = sorted(set(names.tolist()))
    try:
        return sorted(distinct, key=int)
    except ValueError:
        return distinct


def _plain(value: object) -> object:
    return value.item() if isinstance(value, np.generic) else value


def with_majority_vote(frame: pd.DataFrame, config: AuditConfig, date: str) -> tuple[pd.DataFrame, AuditConfig]:
    """Step 1 of the two-step: the snapshot with the majority vote as its label column.

    Returns
    -------
    frame : DataFrame
        ``frame`` plus ``columns.label`` = the majority vote's class name.
    config : AuditConfig
        ``config`` with ``columns.classes`` set to the annotations' classes (so a class no
        vote picked still counts), for validating this frame.

    Raises
    ------
    ConfigError
        The snapshot already has the label column, or the annotations are invalid.
    """
    cols = config.columns
    if cols is None:
        raise ConfigError("columns section missing")
    if cols.label in frame.columns:
        raise ConfigError(
            f"the snapshot has a label column {cols.label!r} and columns.annotations is set: the given label of "
            "an audit with annotators is their consensus; drop or rename that column (or set columns.label)"
        )
    wide = annotation_frame(frame, config, date)
    features = set(cols.numeric + cols.categorical + cols.text)
    overlap = [c for c in wide.columns if c in features]
    if overlap and isinstance(cols.annotations, list):
        raise ConfigError(f"columns.annotations {overlap} are also feature columns: a model would see the labels")
    matrix, classes = encode_annotations(wide, frame[cols.id].reset_index(drop=True), cols.classes)
    try:
        vote = majority_vote_labels(matrix, len(classes))
    except ValueError as exc:
        raise ConfigError(f"columns.annotations: {exc}") from None
    out = frame.copy()
    out[cols.label] = np.array(classes, dtype=object)[vote]
    columns = cols.model_copy(update={"classes": classes})
    return out, config.model_copy(update={"columns": columns})


def consensus_snapshot(store: PartitionStore, config: AuditConfig, date: str, snapshot: Snapshot) -> Snapshot:
    """Step 2: CROWDLAB with out-of-sample probabilities trained on the majority vote; the consensus as label.

    Writes the table ``consensus_labels`` of ``date`` (per example; the per-annotator rows in
    its metadata, ``annotators``, written as the table ``annotator_quality`` by its stage), and returns ``snapshot`` with the consensus as its label
    column, ``label_index`` and ``labels``, and the data version of those rows.
    """
    cols = config.columns
    if cols is None or cols.annotations is None:
        return snapshot
    frame = snapshot.frame.drop(columns=["label_index"])
    wide = annotation_frame(frame, config, date)
    matrix, _ = encode_annotations(wide, snapshot.ids, snapshot.classes)
    if snapshot.pred_probs is not None:
        probs = snapshot.pred_probs
    else:
        X, _ = encode_features(snapshot)
        probs, _ = out_of_fold_probs(snapshot, X, config.model, store.fold_cache(date), LOCAL)
    result = consensus_tables(matrix, probs, list(wide.columns))
    classes = np.array(snapshot.classes, dtype=object)
    per_example = _consensus_rows(snapshot, wide, result.consensus, classes)
    annotators = result.annotators.assign(worst_class=classes[result.annotators["worst_class"].to_numpy()])
    records = json.loads(annotators.to_json(orient="records", double_precision=15))
    store.write("consensus_labels", date, per_example, {"classes": snapshot.classes, "annotators": records})
    consensus = result.consensus["consensus_label"].to_numpy(dtype=np.int64)
    out = snapshot.frame.copy()
    out[cols.label] = classes[consensus]
    out["label_index"] = consensus
    stored = out.drop(columns=["label_index", BYO_COLUMN], errors="ignore")
    version = content_hash(stored_form(stored), snapshot.pred_probs if cols.probabilities_npy else None)
    return replace(snapshot, frame=out, labels=consensus, data_version=version)


def _consensus_rows(
    snapshot: Snapshot, wide: pd.DataFrame, consensus: pd.DataFrame, classes: np.ndarray
) -> pd.DataFrame:
    """The ``consensus_labels`` rows: id, consensus and vote as class names, scores, the annotations as JSON."""
    names = _cell_names(wide)
    annotations = [
        json.dumps({str(a): v for a, v in zip(wide.columns, row, strict=True) if v is not None}, sort_keys=True)
        for row in names
    ]
    return pd.DataFrame(
        {
            snapshot.id_column: snapshot.ids.to_numpy(),
            "consensus_label": classes[consensus["consensus_label"].to_numpy()],
            "majority_vote_label": classes[snapshot.labels],
            "consensus_quality_score": consensus["consensus_quality_score"].to_numpy(),
            "annotator_agreement": consensus["annotator_agreement"].to_numpy(),
            "num_annotations": consensus["num_annotations"].to_numpy(),
            "active_learning_score": consensus["active_learning_score"].to_numpy(),
            "annotations": annotations,
        }
    )
