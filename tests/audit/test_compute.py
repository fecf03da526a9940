"""Slices of a stored table, row ranges across row groups, staging folders and the engines' contracts."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cl_pipeline.audit import compute


def _table(path: Path, groups: list[int]) -> Path:
    """A Parquet file whose row groups have the given sizes; column ``row`` = 0..n-1."""
    schema = pa.schema([("row", pa.int64())])
    with pq.ParquetWriter(path, schema) as writer:
        start = 0
        for size in groups:
            writer.write_table(pa.table({"row": np.arange(start, start + size)}, schema=schema))
            start += size
    return path


@pytest.mark.parametrize(
    ("groups", "target", "expected"),
    [
        ([5, 5, 5, 5], None, [(0, 4, 0, 20)]),
        ([5, 5, 5, 5], 10, [(0, 2, 0, 10), (2, 4, 10, 10)]),
        ([5, 5, 5, 5], 7, [(0, 2, 0, 10), (2, 4, 10, 10)]),
        ([5, 5, 5, 5], 1, [(0, 1, 0, 5), (1, 2, 5, 5), (2, 3, 10, 5), (3, 4, 15, 5)]),
        ([3, 9, 1], 4, [(0, 2, 0, 12), (2, 3, 12, 1)]),
        ([4], 100, [(0, 1, 0, 4)]),
    ],
    ids=["one-slice", "even", "cut-after-target", "one-group-each", "uneven", "small-file"],
)
def test_row_slices_cut_at_row_group_boundaries(tmp_path: Path, groups, target, expected) -> None:
    path = _table(tmp_path / "t.parquet", groups)
    slices = compute.row_slices(path, target)
    assert [(s.first, s.stop, s.offset, s.rows) for s in slices] == expected
    assert [s.index for s in slices] == list(range(len(slices)))
    rows = [b.column(0).to_numpy() for s in slices for b in compute.read_slice(s, ["row"], 3)]
    np.testing.assert_array_equal(np.concatenate(rows), np.arange(sum(groups)))


def test_an_empty_table_is_one_empty_slice(tmp_path: Path) -> None:
    path = tmp_path / "empty.parquet"
    pq.write_table(pa.table({"row": pa.array([], pa.int64())}), path)
    (only,) = compute.row_slices(path, 10)
    assert only.rows == 0 and list(compute.read_slice(only, ["row"], 3)) == []


@pytest.mark.parametrize(("lo", "hi"), [(0, 20), (3, 4), (4, 11), (9, 10), (19, 20), (7, 7)])
def test_read_rows_spans_row_groups(tmp_path: Path, lo: int, hi: int) -> None:
    path = _table(tmp_path / "t.parquet", [5, 5, 5, 5])
    got = compute.read_rows(str(path), ["row"], lo, hi).column(0).to_numpy()
    np.testing.assert_array_equal(got, np.arange(lo, hi))


def test_write_part_is_atomic_and_counts_rows(tmp_path: Path) -> None:
    schema = pa.schema([("x", pa.int64())])
    batches = (pa.record_batch([pa.array([i, i + 1])], schema=schema) for i in range(3))
    assert compute.write_part(tmp_path / "p.parquet", schema, batches) == 6
    assert pq.read_table(tmp_path / "p.parquet").num_rows == 6
    assert [p.name for p in tmp_path.iterdir()] == ["p.parquet"]


def _dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


def test_stale_staging_of_dead_processes_on_this_host_is_removed(tmp_path: Path) -> None:
    host = socket.gethostname()
    staging = tmp_path / "_staging"
    dead = staging / f"label_issues.{host}.{_dead_pid()}.aaaa"
    alive = staging / f"label_issues.{host}.{os.getpid()}.bbbb"
    elsewhere = staging / f"pruned_dataset.another-host.example.{_dead_pid()}.cccc"
    for folder in (dead, alive, elsewhere):
        folder.mkdir(parents=True)
        (folder / "part-000000.parquet").write_bytes(b"x")
    assert compute.remove_stale_staging(tmp_path) == [dead]
    assert not dead.exists() and alive.exists() and elsewhere.exists()
    fresh = compute.staging_dir(tmp_path, "label_issues")
    assert fresh.is_dir() and fresh.name.startswith(f"label_issues.{host}.{os.getpid()}.")


def test_local_engine_maps_in_order_with_shared() -> None:
    assert compute.LOCAL.map(lambda item, shared: item * shared, [3, 1, 2], shared=10) == [30, 10, 20]
    assert compute.LOCAL.slice_rows is None and not compute.LOCAL.distributed


@pytest.mark.parametrize("address", ["localhost:8786", "tcp://h:0", "tcp://h", "http://h:1", ""], ids=repr)
def test_dask_engine_refuses_a_bad_address_before_connecting(address: str) -> None:
    with pytest.raises(ValueError, match="tcp://HOST:PORT"):
        compute.DaskEngine(address)


def test_scheduler_reachable_names_the_address_when_nobody_listens() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound but not listening: connections are refused
        message = compute.scheduler_reachable(f"tcp://127.0.0.1:{port}", timeout=2)
    assert message is not None and f"tcp://127.0.0.1:{port}" in message


def _supplied_snapshot(folder: Path) -> Path:
    """600 rows of noisy supplied float32 probabilities, permissive checks (nothing is blocked)."""
    from pipeline_helpers import write_supplied

    return write_supplied(folder, 600, 8, "[checks]\nmax_noise_rate = 0.9\nmax_class_noise_rate = 0.9\n")


def test_threaded_slices_write_the_tables_of_one_slice(fast_env: Path, run_cli, monkeypatch) -> None:
    """The local engine's threads and slices change no table (states merge exactly, slices commit in order)."""
    from cl_pipeline.audit import parquet_snapshot, stages, streaming
    from cl_pipeline.config import load_config
    from cl_pipeline.storage import PartitionStore, read_table

    monkeypatch.setattr(streaming, "MIN_BATCH_ROWS", 7)
    monkeypatch.setattr(streaming, "BATCH_BYTES", 1)
    monkeypatch.setattr(parquet_snapshot, "BATCH_ROWS", 7)  # raw_labels in many row groups too
    monkeypatch.setattr(compute, "LOCAL_SLICE_ROWS", 1 << 30)  # the CLI's run: one slice
    config = _supplied_snapshot(fast_env.parent / "in")
    date = "2025-05-01"
    assert run_cli("audit", "--config", str(config), "--date", date)[0] == 0
    names = ("oof_pred_probs", "confident_joint", "label_issues", "pruned_dataset")
    before = {name: read_table(fast_env, name, date) for name in names}
    store = PartitionStore(fast_env)
    for table in ("raw_labels", "oof_pred_probs"):
        assert len(compute.row_slices(store.path(table, date), 40)) > 10
    for threads in (1, 2, 3):
        engine = compute.LocalEngine(threads=threads, slice_rows=40)
        stages.oof_pred_probs(store, load_config(config), date, engine)
        stages.confident_joint(store, date, engine)
        stages.label_issues(store, load_config(config), date, engine)
        stages.pruned_dataset(store, load_config(config), date, engine)
        for name in names:
            pd.testing.assert_frame_equal(
                read_table(fast_env, name, date), before[name], obj=f"{name}, {threads} threads"
            )
    assert before["label_issues"]["is_label_issue"].sum() > 0


def test_imap_keeps_order_and_bounds_the_tasks_ahead() -> None:
    import threading

    running, peak, lock = [0], [0], threading.Lock()

    def task(item: int, shared: int) -> int:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.01 * (item % 3))
        with lock:
            running[0] -= 1
        return item * shared

    engine = compute.LocalEngine(threads=3)
    assert list(engine.imap(task, list(range(12)), 2)) == [2 * i for i in range(12)]
    assert peak[0] <= 3


@pytest.mark.parametrize("count", [0, 1, 7, 100], ids=lambda c: f"{c}-items")
@pytest.mark.parametrize("depth", [1, 2, 5], ids=lambda d: f"depth-{d}")
def test_read_ahead_keeps_the_order(count, depth):
    assert list(compute.read_ahead(iter(range(count)), depth)) == list(range(count))


def test_read_ahead_raises_the_producers_error_in_its_place():
    def items():
        yield from (0, 1, 2)
        raise OSError("disk gone at item 3")

    seen = []
    with pytest.raises(OSError, match="disk gone at item 3"):
        for item in compute.read_ahead(items()):
            seen.append(item)
    assert seen == [0, 1, 2]


def test_closing_read_ahead_early_stops_its_thread():
    import threading

    produced = []

    def items():
        for i in range(10_000):
            produced.append(i)
            yield i

    reader = compute.read_ahead(items(), depth=2)
    assert [next(reader) for _ in range(3)] == [0, 1, 2]
    reader.close()
    assert not any(t.name == "cl-read-ahead" and t.is_alive() for t in threading.enumerate())
    assert len(produced) <= 3 + 2 + 2  # what was read, the queue, one in the producer's hand
