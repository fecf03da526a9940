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

