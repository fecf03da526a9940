"""Streaming reads hold one batch, not the file read so far (``open_parquet``).

With pyarrow 26's default reader (``pre_buffer=True``) the growth asserted below is about the
whole 80 MB file.
"""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cl_pipeline.storage.parquet import iter_table_batches, open_parquet, partition_path

ROW_GROUPS, GROUP_ROWS = 40, 50_000  # 40 row groups of 50k rows x 10 float32: 80 MB of data


@pytest.fixture(scope="module")
def big_table(tmp_path_factory):
    data = tmp_path_factory.mktemp("data")
    path = partition_path(data, "oof_pred_probs", "2026-01-01")
    path.parent.mkdir(parents=True)
    rng = np.random.default_rng(0)
    schema = pa.schema([(f"p_{j}", pa.float32()) for j in range(10)])
    with pq.ParquetWriter(path, schema, compression="none") as writer:
        for _ in range(ROW_GROUPS):
            block = rng.random((GROUP_ROWS, 10), dtype=np.float32)
            writer.write_table(pa.table([block[:, j] for j in range(10)], schema=schema))
    return data, path


def _growth(batches) -> int:
    """Arrow bytes still allocated after the last batch, above those after the first."""
    first = None
    for batch in batches:
        del batch
        now = pa.total_allocated_bytes()
        first = now if first is None else first
    return now - first


@pytest.mark.parametrize("reader", ["open_parquet", "iter_table_batches"])
def test_a_pass_over_a_file_does_not_keep_what_it_read(big_table, reader):
    data, path = big_table
    batches = (
        open_parquet(path).iter_batches(batch_size=GROUP_ROWS)
        if reader == "open_parquet"
        else iter_table_batches(data, "oof_pred_probs", "2026-01-01", batch_rows=GROUP_ROWS)
    )
    assert _growth(batches) < 8 * 2**20  # one row group is 2 MB; the file is 80 MB
