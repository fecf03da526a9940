"""Exact "m smallest" selections with a tie rule that depends on the data alone.

**Tie rule.** Every selection of the core (``prune_by_class``: lowest
``p[:, k]``; ``prune_by_noise_rate``: largest margin ``p[:, j] - p[:, k]``,
i.e. smallest ``p[:, k] - p[:, j]``; ``low_*``: lowest score; the top-up of
``num_to_remove_per_class``) takes the ``m`` candidates with the smallest
``(key, row index)`` pairs in lexicographic order: among equal keys the
lower global row index is selected first. Keys compare as numbers
(``-0.0 == 0.0``).

The reference (cleanlab) takes ``argsort(key)[:m]`` with numpy's unstable
sort, whose order among equal keys depends on the CPU's SIMD sort kernel;
where the m-th and (m+1)-th smallest keys differ, the selected *set* is
unique and both rules agree. See ``docs/differences-from-cleanlab.md``.

:func:`smallest` is linear time (one ``argpartition``, plus one scan when
the cut is tied). :class:`GroupedSmallest` keeps, per group, the ``m[g]``
smallest ``(key, row)`` entries of a stream offered in any order and merged
in any order; memory is bounded by about twice the selected entries.
"""

from __future__ import annotations

import numpy as np


def smallest(values: np.ndarray, m: int) -> np.ndarray:
    """Positions of the ``m`` smallest ``values``, ties to the lower position.

    Parameters
    ----------
    values : ndarray, shape (n,)
        Keys, in row order (position = row order: the caller passes rows
        in increasing global index).
    m : int

    Returns
    -------
    ndarray of int, shape (min(max(m, 0), n),), in no particular order
    """
    n = values.shape[0]
    if m <= 0:
        return np.empty(0, dtype=np.intp)
    if m >= n:
        return np.arange(n)
    part = np.argpartition(values, m)
    head = part[:m]
    cut = values[head].max()
    if cut < values[part[m]]:
        return head
    below = head[values[head] < cut]  # every key below the cut lies in the head
    tied = np.flatnonzero(values == cut)
    return np.concatenate([below, tied[: m - below.shape[0]]])


def select_rows(keys: np.ndarray, rows: np.ndarray, groups: np.ndarray, capacity: np.ndarray) -> np.ndarray:
    """Per group, the ``capacity[g]`` entries with the smallest ``(key, row)``.

    Parameters
    ----------
    keys, rows, groups : ndarray, shape (s,)
        ``rows`` are global row indices (unique within a group).
    capacity : ndarray of int, shape (G,)

    Returns
    -------
    ndarray of int, shape (t,)
        Positions of the kept entries, sorted by ``(group, key, row)``.
    """
    order = np.lexsort((rows, keys, groups))
    sorted_groups = groups[order]
    first = np.searchsorted(sorted_groups, sorted_groups, side="left")
    rank = np.arange(order.shape[0]) - first
    return order[rank < capacity[sorted_groups]]


class GroupedSmallest:
    """Streaming, mergeable "``m[g]`` smallest ``(key, row)`` per group ``g``".

    Entries are ``(group, key, row)`` plus payload columns. Invariant: after
    any sequence of :meth:`offer` and :meth:`merge` calls, :meth:`selected`
    returns exactly the entries that :func:`select_rows` would keep from all
    entries ever offered; entries that can no longer be selected are
    dropped early (an entry is admitted only if ``(key, row)`` is below the
    group's current cut), and the buffer is compacted when it exceeds twice
    the total capacity (at least ``MIN_BUFFER`` entries).

    Parameters
    ----------
    capacity : ndarray of int, shape (G,)
        ``m[g]``; groups with 0 keep nothing.
    key_dtype : numpy dtype
    payload : dict of str to numpy dtype
        Extra columns stored with each entry.
    """

    MIN_BUFFER = 1 << 16

    def __init__(self, capacity: np.ndarray, key_dtype: np.dtype, payload: dict[str, np.dtype]):
        self.capacity = np.asarray(capacity, dtype=np.int64)
        self.key_dtype = np.dtype(key_dtype)
        self.payload_dtypes = {name: np.dtype(dt) for name, dt in payload.items()}
        num_groups = self.capacity.shape[0]
        self.cut_key = np.full(num_groups, np.inf, dtype=self.key_dtype)
        self.cut_key[self.capacity <= 0] = -np.inf
        self.cut_row = np.full(num_groups, np.iinfo(np.int64).max, dtype=np.int64)
        self.cut_row[self.capacity <= 0] = -1
        self.columns = self._empty()
        self.pending: list[dict[str, np.ndarray]] = []
        self.pending_size = 0

    def _empty(self) -> dict[str, np.ndarray]:
        cols = {"group": np.empty(0, np.int64), "key": np.empty(0, self.key_dtype), "row": np.empty(0, np.int64)}
        cols.update({name: np.empty(0, dt) for name, dt in self.payload_dtypes.items()})
        return cols

    def admits(self, group: np.ndarray, key: np.ndarray, row: np.ndarray) -> np.ndarray:
        """Entries that may still be selected, shape (s,) bool."""
        cut_key, cut_row = self.cut_key[group], self.cut_row[group]
        return (key < cut_key) | ((key == cut_key) & (row < cut_row))

    def offer(self, group: np.ndarray, key: np.ndarray, row: np.ndarray, **payload: np.ndarray) -> None:
        """Add entries (any order); rows must be new to their group."""
        keep = self.admits(group, key, row)
        if not keep.any():
            return
        entry = {"group": group[keep].astype(np.int64), "key": key[keep].astype(self.key_dtype, copy=False),
                 "row": row[keep].astype(np.int64)}
        entry.update({name: payload[name][keep].astype(dt, copy=False) for name, dt in self.payload_dtypes.items()})
        self.pending.append(entry)
        self.pending_size += entry["row"].shape[0]
        if self.pending_size > max(2 * int(self.capacity.sum()), self.MIN_BUFFER):
            self.compact()

    def merge(self, other: GroupedSmallest) -> GroupedSmallest:
        """Fold ``other``'s entries into this selection (in place; returns self)."""
        other.compact()
        self.pending.append(other.columns)
        self.pending_size += other.columns["row"].shape[0]
        self.compact()
        return self

    def compact(self) -> None:
        """Keep only the selected entries and tighten the cuts."""
        if not self.pending:
            return
        cols = {name: np.concatenate([self.columns[name]] + [p[name] for p in self.pending]) for name in self.columns}
        self.pending, self.pending_size = [], 0
        kept = select_rows(cols["key"], cols["row"], cols["group"], self.capacity)
        self.columns = {name: col[kept] for name, col in cols.items()}
        group = self.columns["group"]
        last = np.flatnonzero(np.r_[group[1:] != group[:-1], True]) if group.size else np.empty(0, np.intp)
        full = last[np.bincount(group, minlength=self.capacity.shape[0])[group[last]] >= self.capacity[group[last]]]
        self.cut_key[group[full]] = self.columns["key"][full]
        self.cut_row[group[full]] = self.columns["row"][full]

    def selected(self) -> dict[str, np.ndarray]:
        """The selected entries, columns sorted by ``(group, key, row)``."""
        self.compact()
        return self.columns

    def __getstate__(self) -> dict:
        self.compact()
        return self.__dict__.copy()
