"""Exact top-m selections with the reference's tie behaviour, in linear time.

The reference picks "the m smallest values" with a full ``numpy.argsort``
(introsort, not stable). When the m-th and (m+1)-th smallest values differ,
the picked *set* is unique, so an ``argpartition`` (O(n)) returns exactly the
same set. Only when they tie does the choice depend on the sort algorithm;
then, and only then, we run the same ``numpy.argsort`` on the same values in
the same order, which reproduces the reference's choice (same numpy build).
"""

from __future__ import annotations

import numpy as np


def smallest(values: np.ndarray, m: int) -> np.ndarray:
    """Positions of the ``m`` smallest ``values`` (the set ``argsort(values)[:m]``).

    Parameters
    ----------
    values : ndarray, shape (n,)
    m : int

    Returns
    -------
    ndarray of int, shape (min(m, n),), in no particular order
    """
    n = values.shape[0]
    if m <= 0:
        return np.empty(0, dtype=np.intp)
    if m >= n:
        return np.arange(n)
    part = np.argpartition(values, m)
    if values[part[:m]].max() < values[part[m]]:
        return part[:m]
    return np.argsort(values)[:m]


def smallest_per_column(
    neg: np.ndarray, need: np.ndarray, subset: np.ndarray
) -> np.ndarray:
    """Union over columns c of the ``need[c]`` smallest entries of ``neg[:, c]``.

    Exact, with reference tie behaviour per column. ``subset`` (row positions)
    is a sample used only to bound each column's cut: the (m+1)-th smallest
    value within any subset is >= the column's true (m+1)-th smallest, so
    every entry at or below that bound is a candidate and nothing else is.

    Parameters
    ----------
    neg : ndarray, shape (r, a)
        Sort keys (ascending = picked first).
    need : ndarray of int, shape (a,)
        ``0 < need[c] < r`` for every column.
    subset : ndarray of int, shape (s,)
        Row positions used to bound the cuts (any rows give a valid bound).

    Returns
    -------
    ndarray of bool, shape (r,)
    """
    rows, cols = neg.shape
    bound = _cut_bounds(neg[subset], need)
    cand_r, cand_c = np.nonzero(neg <= bound)
    vals = neg[cand_r, cand_c]
    order = np.lexsort((vals, cand_c))
    cand_r, cand_c, vals = cand_r[order], cand_c[order], vals[order]
    starts = np.searchsorted(cand_c, np.arange(cols))
    last = starts + need - 1
    tied = vals[last] == vals[last + 1]
    chosen = np.zeros(rows, dtype=bool)
    clean = np.flatnonzero(~tied)
    if clean.size:
        lengths = need[clean]
        offsets = np.repeat(starts[clean] - np.cumsum(lengths) + lengths, lengths)
        chosen[cand_r[offsets + np.arange(lengths.sum())]] = True
    for c in np.flatnonzero(tied):
        chosen[np.argsort(np.ascontiguousarray(neg[:, c]))[: need[c]]] = True
    return chosen


def _cut_bounds(sample: np.ndarray, need: np.ndarray) -> np.ndarray:
    """Per column, the (need+1)-th smallest value of ``sample`` (or +inf)."""
    s = sample.shape[0]
    bound = np.full(need.shape[0], np.inf)
    if s == 0:
        return bound
    top = min(int(need.max()), s - 1)
    head = np.partition(sample, top, axis=0)[: top + 1] if top < s - 1 else sample
    head = np.sort(head, axis=0)
    ok = need < head.shape[0]
    bound[ok] = head[need[ok], np.flatnonzero(ok)]
    return bound
