"""README: "Calls use threads over row chunks and classes (``CL_PIPELINE_NUM_THREADS``,
default the CPU count, at most 8)". ``_parallel``: a positive integer in the variable
wins (any size); otherwise ``min(os.cpu_count(), 8)``, at least 1; results come back
in submission order and the first exception in that order is raised."""

import threading
import time

import numpy as np
import pytest

from cl_pipeline import core
from cl_pipeline.core import _parallel

ENV = "CL_PIPELINE_NUM_THREADS"


@pytest.mark.parametrize(
    "cpus,expected",
    [(1, 1), (2, 2), (7, 7), (8, 8), (9, 8), (64, 8), (None, 1)],
    ids=lambda v: f"{v}",
)
def test_default_is_the_cpu_count_at_most_8(monkeypatch, cpus, expected):
    monkeypatch.delenv(ENV, raising=False)
    monkeypatch.setattr(_parallel.os, "cpu_count", lambda: cpus)
    assert _parallel.num_threads() == expected


@pytest.mark.parametrize("value,expected", [("1", 1), ("3", 3), (" 5 ", 5), ("12", 12), ("", None)])
def test_the_variable_sets_the_count_even_above_8(monkeypatch, value, expected):
    monkeypatch.setattr(_parallel.os, "cpu_count", lambda: 4)
    monkeypatch.setenv(ENV, value)
    assert _parallel.num_threads() == (4 if expected is None else expected)


@pytest.mark.parametrize("value", ["0", "-2", "two", "1.5"])
def test_a_bad_value_is_an_error_naming_the_variable(monkeypatch, value):
    monkeypatch.setenv(ENV, value)
    with pytest.raises(ValueError, match=rf"{ENV} must be a positive integer, got '{value}'"):
        _parallel.num_threads()


def _concurrency(monkeypatch, threads, items):
    """Most calls running at once inside map_ordered, and the distinct threads used
    (``threads`` None: the variable unset)."""
    if threads is None:
        monkeypatch.delenv(ENV, raising=False)
    else:
        monkeypatch.setenv(ENV, str(threads))
    lock = threading.Lock()
    running, peak, names = [0], [0], set()

    def work(x):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
            names.add(threading.current_thread().name)
        time.sleep(0.05)
        with lock:
            running[0] -= 1
        return x * x

    out = _parallel.map_ordered(work, range(items))
    assert out == [x * x for x in range(items)], "results must come back in submission order"
    return peak[0], names


@pytest.mark.parametrize("threads,items,expected", [(1, 6, 1), (3, 12, 3), (4, 2, 2), (8, 16, 8)])
def test_map_ordered_runs_that_many_calls_at_once(monkeypatch, threads, items, expected):
    peak, names = _concurrency(monkeypatch, threads, items)
    assert peak == expected and len(names) == expected
    if threads == 1:
        assert names == {threading.current_thread().name}, "one thread means the caller's thread"


def test_the_default_count_is_used_when_the_variable_is_unset(monkeypatch):
    monkeypatch.setattr(_parallel.os, "cpu_count", lambda: 3)
    peak, names = _concurrency(monkeypatch, None, 9)
    assert peak == 3 and len(names) == 3


def test_the_first_error_in_submission_order_is_raised(monkeypatch):
    monkeypatch.setenv(ENV, "4")

    def work(x):
        if x == 5:
            time.sleep(0.05)  # finishes last, but comes first in order
            raise KeyError("five")
        if x == 7:
            raise IndexError("seven")
        return x

    with pytest.raises(KeyError, match="five"):
        _parallel.map_ordered(work, range(8))


def test_core_results_equal_for_one_and_many_threads(monkeypatch):
    """The README's promise, on an input spanning several chunks."""
    rng = np.random.default_rng(5)
    n, k = 300_000, 4  # float32: about 4.6 MB, two chunks
    probs = rng.dirichlet(np.full(k, 0.5), size=n).astype(np.float32)
    labels = rng.integers(0, k, n)
    results = []
    for threads in ("1", "8"):
        monkeypatch.setenv(ENV, threads)
        results.append((core.find_label_issues(labels, probs), core.compute_confident_joint(labels, probs)))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])
