"""Fixtures and the tie-frequency report for the core tests.

The hypothesis profiles live in ``tests/conftest.py`` (whole suite).
Scale every test's example budget with ``CL_HYPOTHESIS_SCALE`` (e.g. 5 for a long soak).
"""

import numpy as np
import pytest

from ._chunking import chunked_core, rows_from_env
from ._kit import TIE_STATS, tie_stats_json


@pytest.fixture(autouse=True, scope="session")
def _chunk_rows_from_env():
    """``CL_CORE_CHUNK_ROWS=7 pytest tests/core``: every core test with 7-row chunks on 3 threads
    (``_chunking.chunked_core``); unset (the default), the core's own chunk size."""
    rows = rows_from_env()
    if rows is None:
        yield
        return
    with chunked_core(rows):
        yield


@pytest.fixture
def rng(request) -> np.random.Generator:
    """A generator seeded from the test's node id: stable across runs, distinct per test."""
    seed = sum(ord(c) * (i + 1) for i, c in enumerate(request.node.nodeid)) % (2**32)
    return np.random.default_rng(seed)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not TIE_STATS:
        return
    tr = terminalreporter
    tr.section("cl_pipeline.core parity: ties at selection cuts")
    tr.write_line(f"{'check':<66}{'cases':>7}{'tied':>7}{'tied %':>8}  other")
    for cat, d in sorted(TIE_STATS.items()):
        n, t = d.get("cases", 0), d.get("tied", 0)
        other = ", ".join(f"{k}={v}" for k, v in sorted(d.items()) if k not in ("cases", "tied"))
        tr.write_line(f"{cat:<66}{n:>7}{t:>7}{(100.0 * t / n if n else 0):>7.1f}%  {other}")
    path = config.rootpath / ".pytest_cache" / "cl_core_tie_stats.json"
    tr.write_line(f"(written to {path})")


def pytest_sessionfinish(session, exitstatus):
    if not TIE_STATS:
        return
    path = session.config.rootpath / ".pytest_cache" / "cl_core_tie_stats.json"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(tie_stats_json() + "\n")
    except OSError:  # read-only checkout: the terminal summary still has the numbers
        pass
