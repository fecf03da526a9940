"""Run the core with tiny row chunks and several threads (a test-side patch).

The core reads ``pred_probs`` in row chunks of ``_count.CHUNK_BYTES`` (4 MiB) and
runs chunks (and classes) on ``CL_PIPELINE_NUM_THREADS`` threads. Every input of
the hypothesis parity tests fits in one chunk, so without this patch the
multi-chunk, multi-thread path would only be exercised by large inputs.

:func:`chunked_core` replaces ``_count.chunk_rows`` (used by every chunked pass:
self-confidence, the confident pass, the quality scores) by a constant number of
rows, shrinks the validation chunks to match and sets the thread count. It
restores everything on exit. ``CL_CORE_CHUNK_ROWS=7 pytest tests/core`` runs the
whole core suite that way (``tests/core/conftest.py``).
"""

import contextlib
import os
from collections.abc import Iterator

import pytest

from cl_pipeline.core import _count, _validation

#: Environment variable read by ``tests/core/conftest.py`` (session-wide override).
ENV_CHUNK_ROWS = "CL_CORE_CHUNK_ROWS"
THREADS_ENV = "CL_PIPELINE_NUM_THREADS"


@contextlib.contextmanager
def chunked_core(rows: int, threads: int = 3) -> Iterator[None]:
    """Every chunked pass of the core uses ``rows`` rows per chunk, on ``threads`` threads."""
    if rows < 1 or threads < 1:
        raise ValueError(f"rows and threads must be >= 1, got {rows}, {threads}")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_count, "chunk_rows", lambda num_classes, itemsize=4: rows)
        # validation chunks: about ``rows`` rows of a 2-class float32 array, fewer for wider rows
        mp.setattr(_validation, "_CHUNK_BYTES", rows * 8)
        mp.setenv(THREADS_ENV, str(threads))
        yield


def rows_from_env() -> int | None:
    """The session-wide chunk size asked for in ``CL_CORE_CHUNK_ROWS``, if any."""
    value = os.environ.get(ENV_CHUNK_ROWS, "").strip()
    if not value:
        return None
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{ENV_CHUNK_ROWS} must be a positive integer, got {value!r}")
    return int(value)
