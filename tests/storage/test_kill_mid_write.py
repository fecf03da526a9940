"""A process killed in the middle of writing a large table (issue 10, item 7): the previous
version stays intact and readable, and the next write completes and clears the dead temp file."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from cl_pipeline.storage import read_metadata, read_table, write_table
from cl_pipeline.storage.parquet import write_table_batches

DATE = "2025-06-01"
SCHEMA = pa.schema([("row", pa.int64()), ("value", pa.float64())])

WRITER = """
import sys, time
from pathlib import Path
import numpy as np, pyarrow as pa
from cl_pipeline.storage.parquet import write_table_batches
root, ready = Path(sys.argv[1]), Path(sys.argv[2])
schema = pa.schema([("row", pa.int64()), ("value", pa.float64())])
def batches():
    for i in range(1000):
        rows = np.arange(i * 100_000, (i + 1) * 100_000)
        yield pa.RecordBatch.from_arrays([pa.array(rows), pa.array(rows * 0.5)], schema=schema)
        if i == 3:
            ready.touch()  # a large table, several row groups already in the temp file
            time.sleep(60)
write_table_batches(root, "big", sys.argv[3], schema, batches())
"""


def _batches(n: int) -> list[pa.RecordBatch]:
    rows = np.arange(n)
    return [pa.RecordBatch.from_arrays([pa.array(rows), pa.array(rows * 2.0)], schema=SCHEMA)]


def test_sigkill_inside_a_write_keeps_the_old_version(tmp_path: Path) -> None:
    write_table(tmp_path, "big", DATE, pd.DataFrame({"row": np.arange(10), "value": np.arange(10) * 3.0}))
    before = read_table(tmp_path, "big", DATE)
    ready = tmp_path / "ready"
    child = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), str(ready), DATE])
    try:
        deadline = time.monotonic() + 120
        while not ready.exists():
            assert child.poll() is None and time.monotonic() < deadline, "the writer never got going"
            time.sleep(0.05)
        temps = list((tmp_path / "big").glob(".*.tmp"))
        assert temps and temps[0].stat().st_size > 100_000  # row groups written: the kill lands inside the write
    finally:
        if child.poll() is None:
            os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=60)
    assert child.returncode == -signal.SIGKILL
    pd.testing.assert_frame_equal(read_table(tmp_path, "big", DATE), before)  # old version intact
    assert [p.name for p in (tmp_path / "big").glob("*.parquet")] == [f"{DATE}.parquet"]

    assert write_table_batches(tmp_path, "big", DATE, SCHEMA, _batches(500)) == 500  # the rerun completes
    after = read_table(tmp_path, "big", DATE)
    assert len(after) == 500 and after["value"].iloc[-1] == 998.0
    assert not list((tmp_path / "big").glob(".*.tmp"))  # the dead writer's temp file is gone


def test_a_live_writers_temp_file_is_left_alone(tmp_path: Path) -> None:
    folder = tmp_path / "big"
    folder.mkdir()
    mine = folder / f".{DATE}.parquet.{os.getpid()}.abc.tmp"  # this process is alive
    dead = folder / f".{DATE}.parquet.999999999.abc.tmp"  # no such pid
    mine.write_bytes(b"x")
    dead.write_bytes(b"x")
    write_table_batches(tmp_path, "big", DATE, SCHEMA, _batches(3))
    assert mine.exists() and not dead.exists()


def test_an_error_while_producing_batches_keeps_the_old_version(tmp_path: Path) -> None:
    """The batches are computed in a thread ahead of the writer: their error still reaches the caller."""
    write_table_batches(tmp_path, "big", DATE, SCHEMA, _batches(4), {"version": "old"})

    def failing():
        yield from _batches(10) * 3
        raise ValueError("bad row 31")

    try:
        write_table_batches(tmp_path, "big", DATE, SCHEMA, failing(), {"version": "new"})
    except ValueError as exc:
        assert "bad row 31" in str(exc)
    else:
        raise AssertionError("the producer's error was swallowed")
    assert len(read_table(tmp_path, "big", DATE)) == 4 and read_metadata(tmp_path, "big", DATE) == {"version": "old"}
    assert not list((tmp_path / "big").glob(".*.tmp"))


def test_batches_keep_their_order_and_late_metadata_is_written(tmp_path: Path) -> None:
    info: dict = {}

    def produced():
        for i in range(50):
            rows = np.arange(i * 7, (i + 1) * 7)
            yield pa.RecordBatch.from_arrays([pa.array(rows), pa.array(rows * 0.5)], schema=SCHEMA)
        info["total"] = 350  # known only after the last batch

    assert write_table_batches(tmp_path, "big", DATE, SCHEMA, produced(), info) == 350
    assert read_table(tmp_path, "big", DATE)["row"].tolist() == list(range(350))
    assert read_metadata(tmp_path, "big", DATE) == {"total": 350}
