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
in any order; memory is bounded by about 1.5 times the selected entries (the
kept ones plus half as many admitted since the last compaction), plus one
column's copy while compacting.
"""

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


def smallest_pairs(keys: np.ndarray, rows: np.ndarray, m: int) -> tuple[np.ndarray, object, int]:
    """The ``m`` smallest ``(key, row)`` pairs, ``0 < m < len(keys)``, rows distinct.

    Returns
    -------
    positions : ndarray of int, shape (m,), in no particular order
    cut_key, cut_row
        The largest selected pair.
    """
    cut = keys[np.argpartition(keys, m - 1)[m - 1]]
    below = np.flatnonzero(keys < cut)
    tied = np.flatnonzero(keys == cut)
    slack = m - below.shape[0]
    if tied.shape[0] > slack:
        tied = tied[np.argpartition(rows[tied], slack - 1)[:slack]]
    return np.concatenate([below, tied]), cut, int(rows[tied].max())


def group_order(groups: np.ndarray, num_groups: int) -> np.ndarray:
    """Stable order of entries by group (a radix sort when ids fit in 16 bits)."""
    small = np.uint16 if num_groups <= np.iinfo(np.uint16).max else np.int64
    return np.argsort(groups.astype(small, copy=False), kind="stable")


class GroupedSmallest:
    """Streaming, mergeable "``m[g]`` smallest ``(key, row)`` per group ``g``".

    Entries are ``(group, key, row)`` plus payload columns. Invariant: after
    any sequence of :meth:`offer` and :meth:`merge` calls, :meth:`selected`
    returns exactly the ``m[g]`` smallest ``(key, row)`` pairs of each group
    among all entries ever offered. Entries that can no longer be selected
    are dropped early: an entry is admitted only if its pair is below the
    group's cut (the largest pair kept once the group is full), and the
    buffer is compacted (linear time: per overfull group, one partition)
    when the entries admitted since the last compaction exceed half the total
    capacity (at least ``MIN_BUFFER``). Rows must be distinct within a group.

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
        self.group_dtype = np.int32 if num_groups < np.iinfo(np.int32).max else np.int64
        self.cut_key = np.full(num_groups, np.inf, dtype=self.key_dtype)
        self.cut_key[self.capacity <= 0] = -np.inf
        self.cut_row = np.full(num_groups, np.iinfo(np.int64).max, dtype=np.int64)
        self.cut_row[self.capacity <= 0] = -1
        self.columns = self._empty()
        self.pending: list[dict[str, np.ndarray]] = []
        self.pending_size = 0

    def _empty(self) -> dict[str, np.ndarray]:
        cols = {
            "group": np.empty(0, self.group_dtype),
            "key": np.empty(0, self.key_dtype),
            "row": np.empty(0, np.int64),
        }
        cols.update({name: np.empty(0, dt) for name, dt in self.payload_dtypes.items()})
        return cols

    def admits(self, group: np.ndarray, key: np.ndarray, row: np.ndarray) -> np.ndarray:
        """Entries that may still be selected (shapes broadcast), bool."""
        cut_key, cut_row = self.cut_key[group], self.cut_row[group]
        return (key < cut_key) | ((key == cut_key) & (row < cut_row))

    def offer(self, group: np.ndarray, key: np.ndarray, row: np.ndarray, **payload: np.ndarray) -> None:
        """Add entries (any order), shape (s,) each; rows must be new to their group."""
        keep = self.admits(group, key, row)
        if not keep.any():
            return
        entry = {
            "group": group[keep].astype(self.group_dtype),
            "key": key[keep].astype(self.key_dtype),
            "row": row[keep].astype(np.int64),
        }
        entry.update({name: payload[name][keep].astype(dt) for name, dt in self.payload_dtypes.items()})
        self.pending.append(entry)
        self.pending_size += entry["row"].shape[0]
        if self.pending_size > max(int(self.capacity.sum()) // 2, self.MIN_BUFFER):
            self.compact()

    def merge(self, other: "GroupedSmallest") -> "GroupedSmallest":
        """Fold ``other``'s entries into this selection (in place; returns self)."""
        if other.key_dtype != self.key_dtype or not np.array_equal(other.capacity, self.capacity):
            raise ValueError("cannot merge selections with different capacities or key dtypes")
        other.compact()
        tighter = (other.cut_key < self.cut_key) | ((other.cut_key == self.cut_key) & (other.cut_row < self.cut_row))
        self.cut_key[tighter], self.cut_row[tighter] = other.cut_key[tighter], other.cut_row[tighter]
        self.pending.append(other.columns)
        self.pending_size += other.columns["row"].shape[0]
        self.compact()
        return self

    def compact(self) -> None:
        """Keep only the entries that can still be selected and tighten the cuts."""
        if not self.pending:
            return
        cols = {}
        for name in self.columns:  # one column at a time: its parts are freed before the next is joined
            cols[name] = np.concatenate([self.columns[name]] + [p.pop(name) for p in self.pending])
            self.columns[name] = np.empty(0, cols[name].dtype)
        self.pending, self.pending_size = [], 0
        kept = self._kept(cols["group"], cols["key"], cols["row"])
        if kept is not None:
            for name in cols:  # filtered in place: one column's copy at a time
                cols[name] = cols[name][kept]
        self.columns = cols

    def _kept(self, groups: np.ndarray, keys: np.ndarray, rows: np.ndarray) -> np.ndarray | None:
        """Which entries stay (None: all); tightens the cuts of the groups that overflow."""
        num_groups = self.capacity.shape[0]
        counts = np.bincount(groups, minlength=num_groups)
        over = np.flatnonzero(counts > self.capacity)
        if not over.size:
            return None
        order = group_order(groups, num_groups)
        bounds = np.concatenate([[0], np.cumsum(counts)])
        kept = np.ones(groups.shape[0], dtype=bool)
        for g in over:
            seg = order[bounds[g] : bounds[g + 1]]
            kept[seg] = False
            if self.capacity[g] > 0:
                chosen, self.cut_key[g], self.cut_row[g] = smallest_pairs(keys[seg], rows[seg], int(self.capacity[g]))
                kept[seg[chosen]] = True
        return kept

    def selected(self, *, ordered: bool = False) -> dict[str, np.ndarray]:
        """The selected entries; with ``ordered``, columns sorted by ``(group, key, row)``."""
        self.compact()
        cols = self.columns
        if not ordered:
            return dict(cols)
        order = np.lexsort((cols["row"], cols["key"], cols["group"]))
        return {name: col[order] for name, col in cols.items()}

    def __getstate__(self) -> dict:
        self.compact()
        return self.__dict__.copy()
