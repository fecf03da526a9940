"""Validation and encoding of multi-annotator labels (the boundary of ``multiannotator``).

``labels_multiannotator`` is an (n, m) array: row ``i`` is an example, column
``j`` an annotator, the entry the class id annotator ``j`` gave example ``i``
or NaN when ``j`` did not label it. It is validated once and encoded as
:class:`Annotations`, which every private helper trusts:

- ``codes``: (n, m), the class id, or ``K`` where the entry is missing (the
  smallest unsigned dtype that holds ``K``);
- ``counts``: (n, K) ``int64``, how many annotators gave each class to each example;
- ``num_annotations``: (n,) ``int64``;
- ``cells``: the labeled entries annotator by annotator (rows ascending), with
  ``bounds[j]:bounds[j + 1]`` the slice of annotator ``j``;
- ``slots``: the labeled entries by rank within their example: examples sorted by
  decreasing number of annotations (``order``), slot ``s`` holds the ``s``-th
  annotator (in column order) of the first ``size`` of them. Adding slot after
  slot adds every example's annotators in column order on contiguous prefixes.

Rules (cleanlab 2.9.0's, plus what it leaves unchecked; docs/differences-from-cleanlab.md):
a real (float or integer) 2-D array, at least one row; every entry NaN or a
finite integral value in ``0..K-1``; no row and no column without any label;
with ``min_annotators=2``: at least two columns and not every example labeled
once.
"""

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import _validation as v

NAME = "labels_multiannotator"


@dataclass(frozen=True)
class Annotations:
    """Validated, encoded multi-annotator labels (see module docstring)."""

    codes: np.ndarray
    missing: np.ndarray
    counts: np.ndarray
    num_annotations: np.ndarray
    num_classes: int
    cells: "Cells"
    order: np.ndarray
    slots: tuple["Slot", ...]

    @property
    def shape(self) -> tuple[int, int]:
        return self.codes.shape

    def rows_of(self, j: int) -> np.ndarray:
        """Rows annotator ``j`` labeled, ascending."""
        return self.cells.rows[self.cells.bounds[j] : self.cells.bounds[j + 1]]


@dataclass(frozen=True)
class Cells:
    """Labeled entries, annotator-major: rows, annotator columns, labels; ``bounds`` (m + 1,)."""

    rows: np.ndarray
    cols: np.ndarray
    labels: np.ndarray
    bounds: np.ndarray


@dataclass(frozen=True)
class Slot:
    """The ``s``-th annotation of the first ``size`` examples in ``Annotations.order``."""

    size: int
    cols: np.ndarray
    labels: np.ndarray


def as_label_matrix(labels_multiannotator: Any, *, min_annotators: int = 2) -> np.ndarray:
    """The labels as a 2-D float64 array with NaN for missing entries, structurally checked.

    Checks type, shape, finiteness, integrality, non-negativity, empty rows and
    columns, and (``min_annotators=2``) at least two columns and one example
    labeled twice. The upper bound ``K`` is checked by :func:`encode`.
    """
    if isinstance(labels_multiannotator, (str, bytes)) or labels_multiannotator is None:
        raise TypeError(
            f"{NAME} must be a 2-D array of class ids (NaN = no label), got {v._describe(labels_multiannotator)}"
        )
    arr = np.asarray(labels_multiannotator)
    if arr.dtype.kind not in "iuf":
        raise TypeError(
            f"{NAME} must be numeric (integer class ids, NaN for a missing label), got dtype {arr.dtype} "
            f"({v._describe(labels_multiannotator)}); encode string labels as integers 0..K-1 first"
        )
    if arr.ndim != 2:
        raise ValueError(f"{NAME} must be 2-D with shape (n examples, m annotators), got shape {arr.shape}")
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"{NAME} must have at least one row and one column, got shape {arr.shape}")
    arr = arr.astype(np.float64, copy=False)
    missing = np.isnan(arr)
    _check_values(arr, missing)
    _check_coverage(missing)
    if min_annotators > 1:
        _check_several_annotators(arr, missing)
    return arr


def _check_values(arr: np.ndarray, missing: np.ndarray) -> None:
    given = arr[~missing]  # row-major, like argwhere: the first bad value is the first bad entry
    rules = (
        (~np.isfinite(given), "must hold class ids or NaN"),
        (given != np.floor(given), "must hold integer class ids (or NaN)"),
        (given < 0, "must hold class ids >= 0 (or NaN)"),
    )
    for bad, rule in rules:
        if bad.any():
            i, j = np.argwhere(~missing)[np.flatnonzero(bad)[0]]
            raise ValueError(f"{NAME} {rule}; entry [{i}, {j}] is {arr[i, j]!r}")


def _check_coverage(missing: np.ndarray) -> None:
    empty_rows = np.flatnonzero(missing.all(axis=1))
    if empty_rows.size:
        raise ValueError(
            f"{NAME} has {empty_rows.size} example(s) with no label at all (every entry NaN), "
            f"rows {_first(empty_rows)}; drop them or score them with get_active_learning_scores(pred_probs_unlabeled=...)"
        )
    empty_cols = np.flatnonzero(missing.all(axis=0))
    if empty_cols.size:
        raise ValueError(
            f"{NAME} has {empty_cols.size} annotator column(s) with no label at all, columns {_first(empty_cols)}"
        )


def _check_several_annotators(arr: np.ndarray, missing: np.ndarray) -> None:
    if arr.shape[1] < 2:
        raise ValueError(
            f"{NAME} must have at least 2 annotator columns, got shape {arr.shape}; "
            "with one annotator use cl_pipeline.core.get_label_quality_scores"
        )
    if (missing.sum(axis=1) == arr.shape[1] - 1).all():
        raise ValueError(
            f"{NAME} has exactly one label per example (shape {arr.shape}); "
            "collapse it to a 1-D array and use cl_pipeline.core.get_label_quality_scores"
        )


def _first(indices: np.ndarray, limit: int = 10) -> str:
    shown = ", ".join(str(int(i)) for i in indices[:limit])
    return f"[{shown}{', ...' if indices.size > limit else ''}]"


def encode(arr: np.ndarray, num_classes: int, k_source: str = "columns of pred_probs") -> Annotations:
    """Encode a matrix from :func:`as_label_matrix`; every label must be below ``num_classes``."""
    missing = np.isnan(arr)
    top = np.where(missing, -1.0, arr).max()
    if top >= num_classes:
        i, j = np.argwhere(~missing & (arr >= num_classes))[0]
        raise ValueError(
            f"{NAME} must hold class ids in 0..{num_classes - 1} (K = {num_classes} {k_source}); "
            f"entry [{i}, {j}] is {int(arr[i, j])}"
        )
    n, m = arr.shape
    cols, rows = np.nonzero(~missing.T)
    cells = Cells(rows, cols, arr[rows, cols].astype(np.intp), np.searchsorted(cols, np.arange(m + 1)))
    codes = np.full((n, m), num_classes, dtype=np.min_scalar_type(num_classes))
    codes[rows, cols] = cells.labels
    counts = np.bincount(rows * num_classes + cells.labels, minlength=n * num_classes).reshape(n, num_classes)
    num_annotations = (m - missing.sum(axis=1)).astype(np.int64)
    order, slots = _slots(codes, missing, num_annotations)
    return Annotations(codes, missing, counts, num_annotations, num_classes, cells, order, slots)


def _slots(codes: np.ndarray, missing: np.ndarray, num: np.ndarray) -> tuple[np.ndarray, tuple[Slot, ...]]:
    order = np.argsort(-num, kind="stable")
    ranked = num[order]
    cols = np.nonzero(~missing[order])[1]
    start = np.concatenate([[0], np.cumsum(ranked)[:-1]])
    slots = []
    for s in range(int(ranked[0])):
        size = int(np.count_nonzero(ranked > s))
        picked = cols[start[:size] + s]
        slots.append(Slot(size, picked, codes[order[:size], picked].astype(np.intp)))
    return order, tuple(slots)


def warn_if_no_agreement(ann: Annotations) -> None:
    """cleanlab's warning when no example has two annotators agreeing."""
    if not (ann.counts > 1).any():
        warnings.warn("annotators do not agree on any example (no class given twice to one example)", stacklevel=3)


def check_multiannotator_pred_probs(pred_probs: Any, n: int, name: str = "pred_probs") -> np.ndarray:
    """Probabilities for the labeled examples: the core's row rules, and ``n`` rows."""
    probs = v.check_pred_probs(pred_probs, name)
    if probs.shape[0] != n:
        raise ValueError(
            f"{name} and {NAME} must have the same number of rows, got {name}.shape = {probs.shape} "
            f"and {n} rows of {NAME}"
        )
    return probs
