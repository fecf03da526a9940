"""CROWDLAB (Goh, Tkachenko & Mueller, 2022): consensus quality and annotator weights.

Notation: ``n`` examples, ``m`` annotators, ``K`` classes; ``y`` the consensus
label; "multi" the examples with more than one annotation.

- ``agreement_i`` = fraction of example ``i``'s annotators who gave ``y_i``.
- ``c`` = mean ``agreement_i`` over multi examples (likelihood that an annotator
  gives the consensus); ``(1 - c) / (K - 1)`` for any other class.
- ``e`` = error of always predicting the most common consensus class on multi
  examples (floored at 1e-6).
- annotator weight ``a_j = max(1 - (1 - s_j) / e, 1e-6)``, ``s_j`` the agreement of
  annotator ``j`` with the other annotators of the same examples (weighted by
  their number); model weight ``w = max(1 - err / e, 1e-6) * sqrt(mean annotations)``,
  ``err`` the model's argmax error against ``y`` on multi examples.
- posterior ``P[i, k] = (w p[i, k] + sum_j a_j L_jk) / (w + sum_j a_j)`` over the
  annotators of example ``i``, ``L_jk = c`` if ``j`` gave ``k``, else ``(1 - c) / (K - 1)``.

Every float is produced by the same operations, in the same order, as cleanlab
2.9.0 (annotators are added one at a time, in column order, and entries of
annotators who did not label an example add an exact ``0.0``), so the outputs
are bit-identical to the reference's; only cleanlab's per-example Python loops
are replaced by passes over whole columns.
"""

from dataclasses import dataclass

import numpy as np

from ._multiannotator_input import Annotations

#: cleanlab's lower clipping bound for errors and weights.
CLIP = 1e-6


@dataclass(frozen=True)
class ConsensusStats:
    """Per-example statistics of one consensus labelling (weights None unless crowdlab)."""

    consensus_label: np.ndarray
    annotator_agreement: np.ndarray
    quality: np.ndarray
    posterior: np.ndarray
    model_weight: float | None
    annotator_weight: np.ndarray | None


def consensus_stats(
    ann: Annotations, pred_probs: np.ndarray, consensus: np.ndarray, method: str, overlap: np.ndarray
) -> ConsensusStats:
    """Agreement, posterior and quality of ``consensus`` (``overlap``: :func:`agreement_with_annotators`)."""
    n = consensus.shape[0]
    agreement = ann.counts[np.arange(n), consensus].astype(np.float64) / ann.num_annotations
    if method == "agreement":
        posterior = ann.counts.astype(np.float64) / ann.num_annotations.reshape(-1, 1)
        return ConsensusStats(consensus, agreement, agreement, posterior, None, None)
    posterior, model_weight, weights = _crowdlab_posterior(ann, pred_probs, consensus, agreement, overlap)
    quality = posterior[np.arange(n), consensus]
    return ConsensusStats(consensus, agreement, quality, posterior, model_weight, weights)


def _crowdlab_posterior(ann, pred_probs, consensus, agreement, overlap):
    k = ann.num_classes
    multi = ann.num_annotations != 1
    likelihood = np.mean(agreement[multi])
    other = (1 - likelihood) / (k - 1)
    sub = consensus[multi]
    baseline_error = np.clip(np.mean(sub != np.argmax(np.bincount(sub, minlength=k))), a_min=CLIP, a_max=None)
    weights = np.clip(1 - ((1 - overlap) / baseline_error), a_min=CLIP, a_max=None)
    model_error = np.mean(np.argmax(pred_probs[multi], axis=1) != sub)
    model_weight = np.max([(1 - (model_error / baseline_error)), CLIP]) * np.sqrt(np.mean(ann.num_annotations))

    m = weights.shape[0]
    table = np.empty((m, k, k))
    table[:] = (weights * other)[:, None, None]
    table[:, np.arange(k), np.arange(k)] = (weights * likelihood)[:, None]
    table = table.reshape(m * k, k)
    ranked = np.multiply(pred_probs[ann.order], model_weight, dtype=np.float64)
    total = np.zeros(consensus.shape[0])
    for slot in ann.slots:  # each example's annotators in column order, on contiguous prefixes
        ranked[: slot.size] += np.take(table, slot.cols * k + slot.labels, axis=0)
        total[: slot.size] += weights[slot.cols]
    ranked /= (total + model_weight)[:, None]
    posterior = np.empty_like(ranked)
    posterior[ann.order] = ranked
    return posterior, model_weight, weights


def agreement_with_annotators(ann: Annotations) -> np.ndarray:
    """``s_j``: agreement of each annotator with the others on the same examples, shape (m,).

    Per labeled example: (annotators giving the same class - 1) / (annotations - 1),
    averaged with weights ``annotations - 1``; an annotator who never shares an
    example gets the mean of the others.
    """
    cells = ann.cells
    w = ann.num_annotations[cells.rows] - 1
    same = ann.counts[cells.rows, cells.labels].astype(np.float64)
    per_example = np.zeros(w.shape[0])
    multi = w > 0
    per_example[multi] = (same[multi] - 1) / w[multi]
    products = np.multiply(per_example, w, dtype=np.float64)
    out = np.empty(cells.bounds.shape[0] - 1)
    for j, (lo, hi) in enumerate(zip(cells.bounds[:-1], cells.bounds[1:], strict=True)):
        if np.sum(w[lo:hi]) == 0:
            out[j] = np.nan
            continue
        out[j] = products[lo:hi].sum() / w[lo:hi].sum(dtype=np.float64)
    lonely = np.isnan(out)
    if lonely.any():
        out[lonely] = np.mean(out[~lonely])
    return out


def best_quality_consensus(posterior: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    """The posterior's argmax where it is unique, else ``fallback`` (the majority vote)."""
    top = posterior.max(axis=1, keepdims=True)
    unique = (posterior == top).sum(axis=1) == 1
    return np.where(unique, np.argmax(posterior, axis=1), fallback).astype(np.int64)
