"""Data labeled by several annotators: consensus, annotator quality, what to label next.

Same names, arguments and defaults as ``cleanlab.multiannotator`` (2.9.0), so
``from cl_pipeline.core import multiannotator`` replaces
``from cleanlab import multiannotator``; results are numpy arrays in frozen
dataclasses instead of pandas DataFrames (field names = cleanlab's column names).

- :func:`get_majority_vote_label`: majority vote with cleanlab's tie-breaks
  (model probabilities, then class frequency, then annotator agreement) and, last,
  the lowest class id (cleanlab: a random pick).
- :func:`get_label_quality_multiannotator`: CROWDLAB consensus labels and their
  quality, each annotation's quality, each annotator's quality.
- :func:`get_active_learning_scores`: ActiveLab scores of labeled and unlabeled
  examples (lower = label next).

``labels_multiannotator`` is an (n, m) array of class ids, NaN where annotator
``j`` did not label example ``i``. Where and why the results differ from
cleanlab's: docs/differences-from-cleanlab.md, "Multiple annotators".
"""

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from . import _validation as v
from ._multiannotator_annotators import (
    agreement_with_consensus,
    annotator_quality,
    detailed_quality,
    worst_class,
)
from ._multiannotator_crowdlab import (
    ConsensusStats,
    agreement_with_annotators,
    best_quality_consensus,
    consensus_stats,
)
from ._multiannotator_input import (
    Annotations,
    as_label_matrix,
    check_multiannotator_pred_probs,
    encode,
    warn_if_no_agreement,
)
from ._multiannotator_temperature import best_temperature, scale
from ._multiannotator_vote import majority_vote

CONSENSUS_METHODS = ("best_quality", "majority_vote")
QUALITY_METHODS = ("crowdlab", "agreement")

__all__ = [
    "CONSENSUS_METHODS",
    "QUALITY_METHODS",
    "MultiannotatorLabelQuality",
    "get_active_learning_scores",
    "get_label_quality_multiannotator",
    "get_majority_vote_label",
]


@dataclass(frozen=True)
class MultiannotatorLabelQuality:
    """Result of :func:`get_label_quality_multiannotator` (arrays are read-only).

    Per example (length n): ``consensus_label`` (int64), ``consensus_quality_score``,
    ``annotator_agreement`` (fraction of its annotators who gave the consensus),
    ``num_annotations`` (int64); ``detailed_label_quality`` (n, m): quality of each
    annotation, NaN where there is none (None unless ``return_detailed_quality``).

    Per annotator, in column order (length m; None unless ``return_annotator_stats``):
    ``annotator_quality``, ``agreement_with_consensus``, ``worst_class`` (int64),
    ``num_examples_labeled`` (int64). cleanlab sorts this table by quality; here
    row ``j`` is column ``j`` of ``labels_multiannotator``.

    ``model_weight`` (float) and ``annotator_weight`` (m,): CROWDLAB's weights
    (None unless ``return_weights``).
    """

    consensus_label: np.ndarray
    consensus_quality_score: np.ndarray
    annotator_agreement: np.ndarray
    num_annotations: np.ndarray
    detailed_label_quality: np.ndarray | None = None
    annotator_quality: np.ndarray | None = None
    agreement_with_consensus: np.ndarray | None = None
    worst_class: np.ndarray | None = None
    num_examples_labeled: np.ndarray | None = None
    model_weight: float | None = None
    annotator_weight: np.ndarray | None = None

    def __post_init__(self) -> None:
        for value in vars(self).values():
            if isinstance(value, np.ndarray):
                value.flags.writeable = False


def get_majority_vote_label(labels_multiannotator: ArrayLike, pred_probs: ArrayLike | None = None) -> np.ndarray:
    """Majority-vote label of each example.

    Parameters
    ----------
    labels_multiannotator : array_like, shape (n, m)
        Class ids ``0..K-1``, NaN where an annotator did not label an example; at
        least 2 annotators, every row and column with a label, some example
        labeled twice.
    pred_probs : array_like of float, shape (n, K), optional
        Model probabilities: break ties (highest probability first) and fix ``K``
        (otherwise ``K`` = largest label + 1).

    Returns
    -------
    ndarray of int64, shape (n,)
        Ties: highest ``pred_probs``, then the class given least often in the
        whole dataset, then the class whose annotators agree most with the vote
        elsewhere, then the lowest class id.
    """
    arr = as_label_matrix(labels_multiannotator)
    if pred_probs is None:
        ann = encode(arr, int(np.nanmax(arr)) + 1, "largest label + 1")
        probs = None
    else:
        probs = check_multiannotator_pred_probs(pred_probs, arr.shape[0])
        ann = encode(arr, probs.shape[1])
    warn_if_no_agreement(ann)
    vote = majority_vote(ann, probs)
    _warn_lost_classes(ann, vote, "majority_vote")
    return vote


def get_label_quality_multiannotator(
    labels_multiannotator: ArrayLike,
    pred_probs: ArrayLike,
    *,
    consensus_method: str = "best_quality",
    quality_method: str = "crowdlab",
    calibrate_probs: bool = False,
    return_detailed_quality: bool = True,
    return_annotator_stats: bool = True,
    return_weights: bool = False,
) -> MultiannotatorLabelQuality:
    """Consensus label and quality per example, quality per annotation and per annotator (CROWDLAB).

    Parameters
    ----------
    labels_multiannotator : array_like, shape (n, m)
        As in :func:`get_majority_vote_label`.
    pred_probs : array_like of float, shape (n, K)
        Out-of-sample model probabilities (rows sum to 1).
    consensus_method : {"best_quality", "majority_vote"}
        ``best_quality``: the class with the highest CROWDLAB posterior (the
        majority vote where that maximum is tied).
    quality_method : {"crowdlab", "agreement"}
        ``crowdlab``: posterior probability of the label (model and annotators,
        weighted by their estimated accuracy); ``agreement``: fraction of
        annotators agreeing.
    calibrate_probs : bool
        Temperature-scale ``pred_probs`` to the annotators first.
    return_detailed_quality, return_annotator_stats, return_weights : bool
        Fill the per-annotation, per-annotator and weight fields (weights need
        ``quality_method="crowdlab"``).

    Returns
    -------
    MultiannotatorLabelQuality
    """
    flags = _check_options(
        consensus_method,
        quality_method,
        calibrate_probs,
        return_detailed_quality,
        return_annotator_stats,
        return_weights,
    )
    arr = as_label_matrix(labels_multiannotator)
    probs = check_multiannotator_pred_probs(pred_probs, arr.shape[0])
    ann = encode(arr, probs.shape[1])
    warn_if_no_agreement(ann)
    return _label_quality(ann, probs, consensus_method, quality_method, *flags)


def _check_options(consensus_method, quality_method, *flags) -> tuple[bool, ...]:
    if isinstance(consensus_method, (list, tuple)):
        raise TypeError(
            f"consensus_method must be one string of {list(CONSENSUS_METHODS)}, got {v._describe(consensus_method)}; "
            "call once per method to compare several"
        )
    v.check_choice(consensus_method, "consensus_method", CONSENSUS_METHODS)
    v.check_choice(quality_method, "quality_method", QUALITY_METHODS)
    names = ("calibrate_probs", "return_detailed_quality", "return_annotator_stats", "return_weights")
    checked = tuple(v.check_flag(value, name) for value, name in zip(flags, names, strict=True))
    if checked[3] and quality_method != "crowdlab":
        raise ValueError(f"return_weights=True needs quality_method='crowdlab', got quality_method={quality_method!r}")
    return checked


def _label_quality(ann, probs, consensus_method, quality_method, calibrate, detailed, annotators, weights):
    if calibrate:
        probs = scale(probs, best_temperature(ann.counts, ann.num_annotations, probs))
    overlap = agreement_with_annotators(ann) if quality_method == "crowdlab" else None
    vote = majority_vote(ann, probs)
    stats = consensus_stats(ann, probs, vote, quality_method, overlap)
    if consensus_method == "best_quality":
        stats = consensus_stats(ann, probs, best_quality_consensus(stats.posterior, vote), quality_method, overlap)
    _warn_lost_classes(ann, stats.consensus_label, consensus_method)
    fields: dict[str, Any] = {}
    per_annotation = detailed_quality(ann, stats.posterior) if detailed else None
    if detailed:
        fields["detailed_label_quality"] = per_annotation
    if annotators:
        fields.update(_annotator_fields(ann, stats, quality_method, per_annotation))
    if weights:
        fields.update(model_weight=float(stats.model_weight), annotator_weight=stats.annotator_weight)
    return MultiannotatorLabelQuality(
        consensus_label=stats.consensus_label,
        consensus_quality_score=stats.quality,
        annotator_agreement=stats.annotator_agreement,
        num_annotations=ann.num_annotations,
        **fields,
    )


def _annotator_fields(ann: Annotations, stats: ConsensusStats, method: str, per_annotation) -> dict[str, np.ndarray]:
    return {
        "annotator_quality": annotator_quality(ann, stats, method, per_annotation),
        "agreement_with_consensus": agreement_with_consensus(ann, stats.consensus_label),
        "worst_class": worst_class(ann, stats.consensus_label, stats.quality),
        "num_examples_labeled": (~ann.missing).sum(axis=0).astype(np.int64),
    }


def _warn_lost_classes(ann: Annotations, consensus: np.ndarray, method: str) -> None:
    given = np.flatnonzero(ann.counts.sum(axis=0) > 0)
    lost = np.setdiff1d(given, consensus)
    if lost.size:
        warnings.warn(
            f"classes {lost.tolist()} are given by some annotator but are no example's consensus label "
            f"(consensus_method={method!r}); a classifier trained on the consensus labels never sees them",
            stacklevel=3,
        )


def get_active_learning_scores(
    labels_multiannotator: ArrayLike | None = None,
    pred_probs: ArrayLike | None = None,
    pred_probs_unlabeled: ArrayLike | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """ActiveLab scores: which examples to (re)label next (lowest score first).

    Parameters
    ----------
    labels_multiannotator : array_like, shape (n, m), optional
        Labels of the labeled examples (one annotator or several; every row and
        column with a label). Required with ``pred_probs``, refused without it.
    pred_probs : array_like of float, shape (n, K), optional
        Model probabilities of the labeled examples.
    pred_probs_unlabeled : array_like of float, shape (u, K), optional
        Model probabilities of examples with no label yet.

    Returns
    -------
    scores : ndarray of float64, shape (n,)
        Empty when no labeled data is given.
    scores_unlabeled : ndarray of float64, shape (u,)
        Empty when no unlabeled data is given; comparable with ``scores``.
    """
    if pred_probs is None and pred_probs_unlabeled is None:
        raise ValueError("pred_probs and pred_probs_unlabeled are both None: give at least one of them")
    if pred_probs is None and labels_multiannotator is not None:
        raise ValueError("labels_multiannotator is given without pred_probs: give the labeled examples' pred_probs")
    temperature, model_weight, mean_weight = 1.0, 1.0, 1.0
    scores = np.array([])
    if pred_probs is not None:
        if labels_multiannotator is None:
            raise ValueError("pred_probs is given without labels_multiannotator: give the labels of those examples")
        arr = as_label_matrix(labels_multiannotator, min_annotators=1)
        probs = check_multiannotator_pred_probs(pred_probs, arr.shape[0])
        ann = encode(arr, probs.shape[1])
        scores, temperature, model_weight, mean_weight = _labeled_scores(ann, probs)
    if pred_probs_unlabeled is None:
        return scores, np.array([])
    unlabeled = v.check_pred_probs(pred_probs_unlabeled, "pred_probs_unlabeled")
    if pred_probs is not None and unlabeled.shape[1] != probs.shape[1]:
        raise ValueError(
            f"pred_probs and pred_probs_unlabeled must have the same number of classes, got "
            f"{probs.shape[1]} and {unlabeled.shape[1]}"
        )
    return scores, _unlabeled_scores(unlabeled, temperature, model_weight, mean_weight)


def _labeled_scores(ann: Annotations, probs: np.ndarray):
    k = probs.shape[1]
    rows = np.arange(probs.shape[0])
    if (ann.num_annotations == 1).all():
        vote = majority_vote(ann, probs)
        quality, temperature, model_weight = probs[rows, vote], 1.0, 1
        weights = np.ones(ann.shape[1])
    else:
        warn_if_no_agreement(ann)
        temperature = best_temperature(ann.counts, ann.num_annotations, probs)
        probs = scale(probs, temperature)
        result = _label_quality(ann, probs, "best_quality", "crowdlab", False, False, False, True)
        quality, model_weight, weights = result.consensus_quality_score, result.model_weight, result.annotator_weight
    mean_weight = np.mean(weights)
    w_labels = _row_sums_of_labeled(ann, weights) + model_weight
    scores = (quality.astype(np.float64) * w_labels + (1 / k) * mean_weight) / (w_labels + mean_weight)
    return scores, temperature, model_weight, mean_weight


def _row_sums_of_labeled(ann: Annotations, weights: np.ndarray) -> np.ndarray:
    """Per example, ``np.sum`` of the weights of its annotators in column order (same rounding)."""
    out = np.empty(ann.shape[0])
    labeled = ~ann.missing
    for count in np.unique(ann.num_annotations):
        rows = np.flatnonzero(ann.num_annotations == count)
        cols = np.nonzero(labeled[rows])[1].reshape(rows.size, count)
        out[rows] = weights[cols].sum(axis=1)
    return out


def _unlabeled_scores(unlabeled: np.ndarray, temperature, model_weight, mean_weight) -> np.ndarray:
    k = unlabeled.shape[1]
    quality = np.max(scale(unlabeled, temperature), axis=1).astype(np.float64)
    return (quality * model_weight + (1 / k) * mean_weight) / (model_weight + mean_weight)
