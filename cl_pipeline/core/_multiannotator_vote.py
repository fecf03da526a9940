"""Majority vote over annotators, with cleanlab's tie-breaks and a deterministic last rule.

For each example the candidates are the classes given by the most annotators.
While several remain:

1. (``pred_probs`` given) keep those with the highest ``pred_probs[i, k]``;
2. keep those given least often over the whole dataset (favours the minority class);
3. keep those whose annotators agree most with the vote elsewhere: each annotator's
   agreement is the fraction of the examples with a unique mode it labeled on
   which it gave the mode (annotators with no such example get the mean of the
   others); a class's score is the mean agreement of the annotators who gave it;
4. **the lowest class id** (cleanlab: ``np.random.choice``, unseeded, with a warning).

Steps 1 and 2 are vectorised over all tied examples at once; step 3 runs per
example on the (rare) rows still tied, with the same ``np.mean`` calls as the
reference so that its equality test sees the same floats.
"""

import numpy as np

from ._multiannotator_input import Annotations


def majority_vote(ann: Annotations, pred_probs: np.ndarray | None) -> np.ndarray:
    """Consensus by majority vote, shape (n,), int64 (see module docstring)."""
    counts = ann.counts
    cand = counts == counts.max(axis=1, keepdims=True)
    unique = cand.sum(axis=1) == 1
    vote = np.argmax(cand, axis=1)
    tied = np.flatnonzero(~unique)
    if tied.size:
        sub = cand[tied]
        if pred_probs is not None:
            sub = _keep_best(sub, pred_probs[tied], largest=True)
        sub = _keep_best(sub, np.broadcast_to(counts.sum(axis=0), sub.shape), largest=False)
        still = np.flatnonzero(sub.sum(axis=1) > 1)
        if still.size:
            agreement = _agreement_on_untied_rows(ann, vote, unique)
            for s in still:
                sub[s] = _keep_best_annotated(sub[s], ann.codes[tied[s]], agreement)
        vote[tied] = np.argmax(sub, axis=1)  # a unique candidate, or the lowest class id (rule 4)
    return vote.astype(np.int64)


def _keep_best(cand: np.ndarray, score: np.ndarray, *, largest: bool) -> np.ndarray:
    """Among each row's candidates keep those with the best ``score`` (exact equality)."""
    fill = -np.inf if largest else np.inf
    masked = np.where(cand, score, fill)
    best = masked.max(axis=1, keepdims=True) if largest else masked.min(axis=1, keepdims=True)
    return cand & (masked == best)


def _agreement_on_untied_rows(ann: Annotations, vote: np.ndarray, unique: np.ndarray) -> np.ndarray:
    """Per annotator: fraction of its labels on untied examples equal to the vote (NaN -> mean of others)."""
    cells, m = ann.cells, ann.shape[1]
    kept = unique[cells.rows]
    total = np.bincount(cells.cols[kept], minlength=m)
    agree = np.bincount(cells.cols[kept & (cells.labels == vote[cells.rows])], minlength=m)
    agreement = np.full(m, np.nan)
    np.divide(agree, total, out=agreement, where=total > 0)
    known = ~np.isnan(agreement)
    if known.any() and not known.all():
        agreement[~known] = np.mean(agreement[known])
    return agreement


def _keep_best_annotated(cand: np.ndarray, codes_row: np.ndarray, agreement: np.ndarray) -> np.ndarray:
    """Rule 3 for one example; unchanged when no candidate has a comparable score."""
    classes = np.flatnonzero(cand)
    scores = np.array([np.mean(agreement[np.flatnonzero(codes_row == k)]) for k in classes])
    if np.isnan(scores).all():
        return cand
    keep = classes[scores == np.nanmax(scores)]
    out = np.zeros_like(cand)
    out[keep] = True
    return out
