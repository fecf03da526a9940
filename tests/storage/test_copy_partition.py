"""``copy_partition``: the rows of one table's partition under another table, with new metadata."""

import os

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cl_pipeline.storage import PartitionStore
from cl_pipeline.storage.parquet import copy_partition, read_metadata, write_table, write_table_batches

DATE = "2026-01-15"


def _batches(rng, groups: int, rows: int):
    for g in range(groups):
        yield pa.RecordBatch.from_arrays(
            [
                pa.array(np.arange(g * rows, (g + 1) * rows)),
                pa.array(rng.choice(["cat", "dog", None], rows)),
                pa.array(rng.random(rows, dtype=np.float32)),
            ],
            names=["id", "label", "p"],
        )


@pytest.fixture
def source(tmp_path):
    rng = np.random.default_rng(0)
    schema = pa.schema([("id", pa.int64()), ("label", pa.string()), ("p", pa.float32())])
    write_table_batches(tmp_path, "raw_labels", DATE, schema, _batches(rng, 7, 1000), {"data_version": "abc"})
    return tmp_path


@pytest.mark.parametrize("kernel_copy", [True, False], ids=["copy_file_range", "user-space"])
@pytest.mark.parametrize("as_callable", [False, True], ids=["dict", "callable"])
def test_the_copy_has_the_same_rows_and_its_own_metadata(source, monkeypatch, kernel_copy, as_callable):
    if not kernel_copy:
        monkeypatch.delattr(os, "copy_file_range", raising=False)
    meta = {"data_version": "abc", "curation": {"parent_version": "abc"}}
    rows = copy_partition(source, "raw_labels", "curated_dataset", DATE, (lambda: meta) if as_callable else meta)
    raw, copy = (pq.read_table(source / t / f"{DATE}.parquet") for t in ("raw_labels", "curated_dataset"))
    assert rows == copy.num_rows == 7000
    assert copy.equals(raw)
    assert copy.schema.field("label").type == pa.string()
    assert read_metadata(source, "curated_dataset", DATE) == meta
    assert read_metadata(source, "raw_labels", DATE) == {"data_version": "abc"}
    footer = pq.read_metadata(source / "curated_dataset" / f"{DATE}.parquet")
    assert footer.num_row_groups == 7
    stats = footer.row_group(3).column(1).statistics  # column 0 is the partition key
    assert (stats.min, stats.max) == (3000, 3999)  # row groups and their statistics point at the copied bytes


def test_a_copy_failing_midway_through_falls_back_to_user_space(source, monkeypatch):
    calls = []

    def once_then_fail(src, dst, count, *args):
        calls.append(count)
        if len(calls) > 1:
            raise OSError(18, "Invalid cross-device link")
        return os.sendfile(dst, src, None, min(count, 4096))

    monkeypatch.setattr(os, "copy_file_range", once_then_fail)
    copy_partition(source, "raw_labels", "curated_dataset", DATE, {"x": 1})
    assert len(calls) == 2
    raw, copy = (pq.read_table(source / t / f"{DATE}.parquet") for t in ("raw_labels", "curated_dataset"))
    assert copy.equals(raw)


def test_a_pandas_written_partition_copies_too(tmp_path):
    frame = pd.DataFrame({"id": ["a", "b", "c"], "label": [1, 0, 1]})
    write_table(tmp_path, "raw_labels", DATE, frame, {"v": 1})
    copy_partition(tmp_path, "raw_labels", "curated_dataset", DATE, {"v": 2})
    copied = pq.read_table(tmp_path / "curated_dataset" / f"{DATE}.parquet").to_pandas()
    assert copied[["id", "label"]].equals(frame)
    assert read_metadata(tmp_path, "curated_dataset", DATE) == {"v": 2}


def test_a_missing_source_writes_nothing(tmp_path):
    with pytest.raises(FileNotFoundError, match="raw_labels has no partition 2026-01-15"):
        copy_partition(tmp_path, "raw_labels", "curated_dataset", DATE, {})
    assert not (tmp_path / "curated_dataset").exists()


def test_a_failed_copy_leaves_the_previous_file(source, monkeypatch):
    store = PartitionStore(source)
    store.copy("raw_labels", "curated_dataset", DATE, {"first": True})
    before = (source / "curated_dataset" / f"{DATE}.parquet").read_bytes()

    def boom():
        raise RuntimeError("killed while writing the footer")

    with pytest.raises(RuntimeError, match="killed"):
        store.copy("raw_labels", "curated_dataset", DATE, boom)
    assert (source / "curated_dataset" / f"{DATE}.parquet").read_bytes() == before
    assert [p.name for p in (source / "curated_dataset").iterdir()] == [f"{DATE}.parquet"]


def test_the_store_copy_makes_the_view(source):
    store = PartitionStore(source)
    store.copy("raw_labels", "curated_dataset", DATE, {})
    assert "curated_dataset" in store.warehouse.views()
    with store.warehouse.connect(read_only=True) as con:
        assert con.execute("SELECT count(*), count(DISTINCT id) FROM curated_dataset").fetchone() == (7000, 7000)
