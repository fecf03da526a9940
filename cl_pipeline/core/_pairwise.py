"""numpy's pairwise summation, reproduced bit for bit, and mergeable over row ranges.

``numpy.mean`` of a contiguous float array sums it with a fixed tree whose
shape depends on the length ``n`` alone (numpy's ``pairwise_sum``, in the
array's dtype):

- ``n < 8``: a plain running sum ``((0 + v0) + v1) + ...``;
- ``8 <= n <= 128`` (a *leaf*): eight running sums ``r_j`` over the strides
  ``v[j], v[j + 8], ...`` up to the last full group of 8, combined as
  ``((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))``, then the remaining
  ``n % 8`` values added one by one;
- ``n > 128``: split at ``n2 = n // 2 - (n // 2) % 8`` and add the sums of
  the two halves (each summed by the same rule).

The mean is then ``dtype(sum / intp(n))`` (numpy's ``_mean``).

A *node* is a pair ``(start, length)`` of that tree over positions
``0..n-1``; its value is the pairwise sum of its values. A *piece* is what a
streaming state knows about a contiguous range ``[lo, hi)`` of positions:
the values of the maximal nodes inside the range and the raw values of the
leaves the range only partly covers (fewer than 128 at each edge). Two
adjacent pieces merge into the piece of their union, bit for bit what one
pass over the whole range gives, so per-class means can be computed over
row batches merged in any order (:class:`PieceSet`).

Invariants (tested): ``subtree_sums(v, [0], [n])[0] == numpy.add.reduce(v)``
bit for bit; a piece set holding ``[0, n)`` in any split and merge order has
the root value of the whole array.
"""

import bisect
from dataclasses import dataclass, field

import numpy as np

#: Largest node summed without splitting (numpy's PW_BLOCKSIZE).
LEAF = 128
#: Unroll factor of a leaf (eight running sums).
UNROLL = 8


def split_point(length: int | np.ndarray):
    """Length of the left child of a node of ``length > LEAF`` values."""
    half = length // 2
    return half - half % UNROLL


def leaf_sums(values: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Pairwise sums of leaves ``values[s:s + L]`` (every ``L <= LEAF``), shape (len(starts),)."""
    out = np.empty(starts.shape[0], dtype=values.dtype)
    for length in np.unique(lengths):
        which = np.flatnonzero(lengths == length)
        block = values[starts[which][:, None] + np.arange(length)]
        out[which] = _leaf_block(block)
    return out


def _leaf_block(block: np.ndarray) -> np.ndarray:
    """numpy's leaf loop, vectorised over the rows of ``block`` (shape (c, L))."""
    length = block.shape[1]
    if length < UNROLL:
        total = np.zeros(block.shape[0], dtype=block.dtype)
        for i in range(length):
            total = total + block[:, i]
        return total
    full = length - length % UNROLL
    r = block[:, :UNROLL].copy()
    for i in range(UNROLL, full, UNROLL):
        r += block[:, i : i + UNROLL]
    total = ((r[:, 0] + r[:, 1]) + (r[:, 2] + r[:, 3])) + ((r[:, 4] + r[:, 5]) + (r[:, 6] + r[:, 7]))
    for i in range(full, length):
        total = total + block[:, i]
    return total


def subtree_sums(values: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Pairwise sums of ``values[s:s + L]`` for every node, vectorised over nodes and levels.

    Parameters
    ----------
    values : ndarray of float, shape (n,)
    starts, lengths : ndarray of int, shape (c,)
        Disjoint or not, each within ``values``; a length may be 0 (sum 0).

    Returns
    -------
    ndarray, shape (c,), dtype of ``values``
    """
    levels = [(np.asarray(starts, dtype=np.int64), np.asarray(lengths, dtype=np.int64))]
    while True:
        s, n = levels[-1]
        inner = n > LEAF
        if not inner.any():
            break
        n2 = split_point(n[inner])
        levels.append(
            (np.stack([s[inner], s[inner] + n2], axis=1).ravel(), np.stack([n2, n[inner] - n2], axis=1).ravel())
        )
    below = None
    for s, n in reversed(levels):
        inner = n > LEAF
        sums = np.empty(s.shape[0], dtype=values.dtype)
        sums[~inner] = leaf_sums(values, s[~inner], n[~inner])
        if below is not None:
            sums[inner] = below[0::2] + below[1::2]
        below = sums
    return below


def cover(n: int, lo: int, hi: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """The maximal nodes inside ``[lo, hi)`` and the leaves it only partly covers.

    Both lists are in increasing ``start`` order; ``O(depth)`` nodes each.
    """
    full, partial = [], []
    stack = [(0, n)]
    while stack:
        start, length = stack.pop()
        stop = start + length
        if stop <= lo or start >= hi or length == 0:
            continue
        if lo <= start and stop <= hi:
            full.append((start, length))
        elif length <= LEAF:
            partial.append((start, length))
        else:
            n2 = int(split_point(length))
            stack.append((start + n2, length - n2))
            stack.append((start, n2))
    return full, partial


@dataclass
class Piece:
    """What is known about positions ``[lo, hi)`` of one class (see module docstring).

    Attributes
    ----------
    lo, hi : int
    nodes : dict of (start, length) to float scalar
        Values of the maximal nodes inside ``[lo, hi)``.
    raw_pos : ndarray of int64, shape (r,)
        Positions in partly covered leaves, increasing (r < 2 * LEAF).
    raw_val : ndarray of float, shape (r,)
    """

    lo: int
    hi: int
    nodes: dict
    raw_pos: np.ndarray
    raw_val: np.ndarray


def piece_from_values(n: int, lo: int, values: np.ndarray) -> Piece:
    """The piece of positions ``[lo, lo + len(values))`` of a class of ``n`` values."""
    return pieces_from_runs(values, [(n, lo, 0, values.shape[0])])[0]


def pieces_from_runs(values: np.ndarray, runs: list[tuple[int, int, int, int]]) -> list[Piece]:
    """Pieces of several classes at once (one vectorised tree evaluation).

    Parameters
    ----------
    values : ndarray of float, shape (v,)
    runs : list of (n, lo, at, length)
        ``values[at:at + length]`` are positions ``[lo, lo + length)`` of a
        class of ``n`` values.
    """
    covers = [cover(n, lo, lo + length) for n, lo, _, length in runs]
    starts = [s - lo + at for (_, lo, at, _), (full, _) in zip(runs, covers, strict=True) for s, _ in full]
    lengths = [length for full, _ in covers for _, length in full]
    sums = subtree_sums(values, np.array(starts, np.int64), np.array(lengths, np.int64)) if starts else values[:0]
    pieces, used = [], 0
    for (_, lo, at, length), (full, partial) in zip(runs, covers, strict=True):
        nodes = {node: sums[used + i] for i, node in enumerate(full)}
        used += len(full)
        raw_pos = _partial_positions(partial, lo, lo + length)
        pieces.append(Piece(lo, lo + length, nodes, raw_pos, values[raw_pos - lo + at]))
    return pieces


def _partial_positions(partial: list[tuple[int, int]], lo: int, hi: int) -> np.ndarray:
    ranges = [np.arange(max(s, lo), min(s + length, hi)) for s, length in partial]
    return np.concatenate(ranges).astype(np.int64) if ranges else np.empty(0, np.int64)


def join(n: int, left: Piece, right: Piece) -> Piece:
    """The piece of ``[left.lo, right.hi)`` from two adjacent pieces (``left.hi == right.lo``)."""
    known = {**left.nodes, **right.nodes}
    raw_pos = np.concatenate([left.raw_pos, right.raw_pos])
    raw_val = np.concatenate([left.raw_val, right.raw_val])
    lo, hi = left.lo, right.hi
    full, partial = cover(n, lo, hi)
    nodes = {node: _value(node, known, raw_pos, raw_val) for node in full}
    keep = np.isin(raw_pos, _partial_positions(partial, lo, hi))
    return Piece(lo, hi, nodes, raw_pos[keep], raw_val[keep])


def _value(node: tuple[int, int], known: dict, raw_pos: np.ndarray, raw_val: np.ndarray):
    """Value of a node inside the joined range: stored, a leaf of raw values, or its children's sum."""
    if node in known:
        return known[node]
    start, length = node
    if length <= LEAF:
        at = int(np.searchsorted(raw_pos, start))
        return leaf_sums(raw_val[at : at + length], np.zeros(1, np.int64), np.array([length]))[0]
    n2 = int(split_point(length))
    left = _value((start, n2), known, raw_pos, raw_val)
    return left + _value((start + n2, length - n2), known, raw_pos, raw_val)


@dataclass
class PieceSet:
    """Disjoint pieces of one class of ``n`` values; adjacent pieces are joined on insertion."""

    n: int
    pieces: list[Piece] = field(default_factory=list)

    def add(self, piece: Piece) -> None:
        """Insert a piece; raises ValueError when it overlaps one already held."""
        at = bisect.bisect_left(self.pieces, piece.lo, key=lambda p: p.lo)
        before = self.pieces[at - 1] if at > 0 else None
        after = self.pieces[at] if at < len(self.pieces) else None
        if (before is not None and before.hi > piece.lo) or (after is not None and after.lo < piece.hi):
            raise ValueError(f"positions [{piece.lo}, {piece.hi}) of a class were given twice")
        if after is not None and after.lo == piece.hi:
            piece = join(self.n, piece, self.pieces.pop(at))
        if before is not None and before.hi == piece.lo:
            piece = join(self.n, self.pieces.pop(at - 1), piece)
            at -= 1
        self.pieces.insert(at, piece)

    def total(self):
        """The pairwise sum of all ``n`` values, or None until every position is held."""
        if len(self.pieces) != 1 or self.pieces[0].lo != 0 or self.pieces[0].hi != self.n:
            return None
        return self.pieces[0].nodes[(0, self.n)]
