"""Storage: atomic partition replacement, validated names, warehouse views."""

import os
import stat
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from cl_pipeline.storage import (
    Warehouse,
    atomic_write_bytes,
    list_partitions,
    read_metadata,
    validate_name,
    write_table,
)
from cl_pipeline.storage import parquet as parquet_module
from cl_pipeline.storage import warehouse as warehouse_module
from cl_pipeline.storage.parquet import current_umask


def test_partition_rewrite_replaces_rows(tmp_path: Path) -> None:
    wh = Warehouse(tmp_path)
    write_table(tmp_path, "scores", "2025-01-01", pd.DataFrame({"x": [1, 2]}), {"note": "first"})
    write_table(tmp_path, "scores", "2025-01-02", pd.DataFrame({"x": [3]}))
    wh.refresh_views(["scores"])
    write_table(tmp_path, "scores", "2025-01-01", pd.DataFrame({"x": [7, 8, 9]}), {"note": "second"})
    rows = wh.query("SELECT partition, x FROM scores ORDER BY x")
    assert rows.values.tolist() == [["2025-01-02", 3], ["2025-01-01", 7], ["2025-01-01", 8], ["2025-01-01", 9]]
    assert read_metadata(tmp_path, "scores", "2025-01-01") == {"note": "second"}
    assert list_partitions(tmp_path, "scores") == ["2025-01-01", "2025-01-02"]
    assert wh.query("SELECT count(*) FROM scores WHERE partition = ?", ["2025-01-01"]).iloc[0, 0] == 3


@pytest.mark.parametrize(("umask", "expected"), [(0o022, 0o644), (0o027, 0o640)])
def test_written_files_get_the_umask_mode(umask: int, expected: int, tmp_path: Path) -> None:
    previous = os.umask(umask)
    try:
        assert current_umask() == umask
        table = write_table(tmp_path, "scores", "2025-01-01", pd.DataFrame({"x": [1]}))
        picture = tmp_path / "artifacts" / "p.png"
        atomic_write_bytes(picture, lambda handle: handle.write(b"png"))
        atomic_write_bytes(picture, lambda handle: handle.write(b"png2"))  # replacing keeps the mode
    finally:
        os.umask(previous)
    assert stat.S_IMODE(table.stat().st_mode) == expected
    assert stat.S_IMODE(picture.stat().st_mode) == expected
    assert picture.read_bytes() == b"png2"
    assert not list(tmp_path.rglob("*.tmp"))


def test_a_large_write_is_flushed_to_disk_while_it_is_written(tmp_path: Path, monkeypatch) -> None:
    synced: list[int] = []
    real = os.fdatasync
    monkeypatch.setattr(parquet_module, "FLUSH_EVERY", 1 << 16)
    monkeypatch.setattr(os, "fdatasync", lambda fd: synced.append(os.fstat(fd).st_size) or real(fd))
    chunk = bytes(range(256)) * 1024  # 256 KiB

    def slow_write(handle) -> None:
        for _ in range(8):
            handle.write(chunk)
            handle.flush()
            time.sleep(0.06)  # longer than the flusher's 50 ms poll

    atomic_write_bytes(tmp_path / "big.bin", slow_write)
    assert (tmp_path / "big.bin").read_bytes() == chunk * 8
    assert synced and synced == sorted(synced) and synced[0] < len(chunk) * 8  # during, not only after
    assert not list(tmp_path.glob("*.tmp"))


def test_a_failed_write_stops_the_flusher_and_leaves_nothing(tmp_path: Path) -> None:
    def failing(handle) -> None:
        handle.write(b"partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write_bytes(tmp_path / "t.bin", failing)
    assert not list(tmp_path.iterdir())
    assert not [t for t in threading.enumerate() if t.name == "cl-pipeline-flush"]


def test_fresh_warehouse_gets_its_views(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(warehouse_module, "_KNOWN_VIEWS", set())
    wh = Warehouse(tmp_path)
    assert wh.ensure_views(["scores"]) == "current"  # no partition yet: nothing to create
    assert not wh.path.exists()
    write_table(tmp_path, "scores", "2025-01-01", pd.DataFrame({"x": [1, 2]}))
    assert wh.ensure_views(["scores"]) == "created"
    assert wh.views() == ["scores", "stage_timings"]
    assert wh.query("SELECT sum(x) FROM scores").iloc[0, 0] == 3
    monkeypatch.setattr(warehouse_module, "_KNOWN_VIEWS", set())  # as in a new process
    assert wh.ensure_views(["scores"]) == "current"


def test_changed_view_definition_is_recreated(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(warehouse_module, "_KNOWN_VIEWS", set())
    write_table(tmp_path, "scores", "2025-01-01", pd.DataFrame({"x": [5]}))
    wh = Warehouse(tmp_path)
    with wh.connect() as con:
        con.execute('CREATE VIEW "scores" AS SELECT 1 AS x')
    assert wh.ensure_views(["scores"]) == "created"
    assert wh.query("SELECT x FROM scores").iloc[0, 0] == 5


@pytest.mark.parametrize("name", ["a b", "x;DROP TABLE t", "1abc", "", "é", "a" * 80, '"q"'])
def test_unsafe_names_rejected(name: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="invalid"):
        validate_name(name)
    with pytest.raises(ValueError):
        write_table(tmp_path, name, "2025-01-01", pd.DataFrame({"x": [1]}))
    with pytest.raises(ValueError, match="invalid partition"):
        write_table(tmp_path, "ok", "../escape", pd.DataFrame({"x": [1]}))


def test_a_staged_partition_is_invisible_until_adopted(tmp_path: Path) -> None:
    import pyarrow as pa

    from cl_pipeline.storage import PartitionStore

    store = PartitionStore(tmp_path)
    schema = pa.schema([("x", pa.int64())])
    batch = pa.RecordBatch.from_arrays([pa.array([1, 2, 3])], schema=schema)
    assert store.staged_metadata("scores", "2025-01-01") is None
    assert store.write_staged("scores", "2025-01-01", schema, [batch], {"note": "staged"}) == 3
    assert list_partitions(tmp_path, "scores") == [] and not store.has("scores", "2025-01-01")
    assert store.staged_metadata("scores", "2025-01-01") == {"note": "staged"}
    assert store.adopt_staged("scores", "2025-01-01") == 3
    assert list_partitions(tmp_path, "scores") == ["2025-01-01"]
    assert store.metadata("scores", "2025-01-01") == {"note": "staged"}
    assert store.warehouse.query("SELECT sum(x) FROM scores").iloc[0, 0] == 6
    assert store.staged_metadata("scores", "2025-01-01") is None and not store.remove_staged("scores", "2025-01-01")
