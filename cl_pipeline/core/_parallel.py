"""Threads for the chunked passes.

numpy releases the GIL inside its loops (comparisons, reductions, argmax,
partition, take), so independent chunks or classes run in parallel on
threads: no processes, no pickling, no module-global pool. Results are
collected in submission order and the first exception *in that order* is
raised, so output and errors do not depend on scheduling.

The number of threads is ``os.cpu_count()`` (at most 8), or the positive
integer in the environment variable ``CL_PIPELINE_NUM_THREADS``.
"""

import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

ENV_VAR = "CL_PIPELINE_NUM_THREADS"
MAX_DEFAULT_THREADS = 8

T = TypeVar("T")
R = TypeVar("R")


def num_threads() -> int:
    """Threads to use (see module docstring)."""
    value = os.environ.get(ENV_VAR, "").strip()
    if not value:
        return max(1, min(os.cpu_count() or 1, MAX_DEFAULT_THREADS))
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{ENV_VAR} must be a positive integer, got {value!r}")
    return int(value)


def map_ordered(fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
    """``[fn(x) for x in items]``, on threads when there are several items."""
    items = list(items)
    workers = min(num_threads(), len(items))
    if workers <= 1:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cl_pipeline") as pool:
        return list(pool.map(fn, items))
