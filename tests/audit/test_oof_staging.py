"""oof_pred_probs written while raw_labels is copied (audit.oof_staging): adopted only when it is
exactly the table the stage would write from the stored raw_labels; never a reason for raw_labels to fail."""

import shutil
from pathlib import Path

import pandas as pd
import pytest
from pipeline_helpers import write_supplied

from cl_pipeline.audit import oof_staging, parquet_snapshot, stages, streaming
from cl_pipeline.config import ConfigError, load_config
from cl_pipeline.storage import PartitionStore, read_table
from cl_pipeline.storage.parquet import staged_path

DATE = "2025-05-02"
TABLE = "oof_pred_probs"


@pytest.fixture
def snapshot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A supplied-probability snapshot (3 classes, float32), its config and an empty store."""
    config_path = write_supplied(tmp_path / "in", 240, 5, flip=0.15, dtype="float32")
    monkeypatch.chdir(config_path.parent)
    monkeypatch.setattr(streaming, "MIN_BATCH_ROWS", 7)  # many batches through both writers
    monkeypatch.setattr(streaming, "BATCH_BYTES", 1)
    monkeypatch.setattr(parquet_snapshot, "BATCH_ROWS", 11)
    return load_config(config_path), PartitionStore(tmp_path / "data")


def _computed_by_the_stage(store: PartitionStore, config) -> tuple[pd.DataFrame, dict]:
    """The table and footer the oof stage writes from raw_labels alone (no staged file)."""
    store.remove_staged(TABLE, DATE)
    result = stages.oof_pred_probs(store, config, DATE)
    assert "written with raw_labels" not in result.summary
    return read_table(store.root, TABLE, DATE), store.metadata(TABLE, DATE)


def test_the_staged_table_is_the_one_the_stage_computes(snapshot) -> None:
    config, store = snapshot
    stages.raw_labels(store, config, DATE)
    assert staged_path(store.root, TABLE, DATE).is_file() and not store.has(TABLE, DATE)
    adopted = stages.oof_pred_probs(store, config, DATE)
    assert "written with raw_labels" in adopted.summary and adopted.row_count == 240
    assert not staged_path(store.root, TABLE, DATE).exists()  # renamed into the table
    staged_rows, staged_meta = read_table(store.root, TABLE, DATE), store.metadata(TABLE, DATE)
    computed_rows, computed_meta = _computed_by_the_stage(store, config)
    pd.testing.assert_frame_equal(staged_rows, computed_rows)
    assert staged_meta["confident_thresholds"] == computed_meta["confident_thresholds"]
    assert staged_meta["thresholds_dtype"] == computed_meta["thresholds_dtype"] == "float32"
    assert staged_meta["seconds"] == 0.0 and staged_meta["staged_seconds"] > 0  # counted in raw_labels' time
    assert adopted.metadata["accuracy_vs_given_labels"] == pytest.approx(
        stages.oof_pred_probs(store, config, DATE).metadata["accuracy_vs_given_labels"]
    )


def test_a_staged_file_of_other_rows_is_removed_not_adopted(snapshot, tmp_path: Path) -> None:
    config, store = snapshot
    stages.raw_labels(store, config, DATE)
    old = tmp_path / "old.staged"
    shutil.copy(staged_path(store.root, TABLE, DATE), old)
    other = write_supplied(tmp_path / "other", 240, 6, flip=0.15, dtype="float32")  # other rows, same layout
    shutil.copy(other.parent / "probs.parquet", Path.cwd() / "probs.parquet")
    stages.raw_labels(store, config, DATE)
    shutil.copy(old, staged_path(store.root, TABLE, DATE))  # the first snapshot's staged file is back
    result = stages.oof_pred_probs(store, config, DATE)
    assert "written with raw_labels" not in result.summary
    assert not staged_path(store.root, TABLE, DATE).exists()
    table = read_table(store.root, TABLE, DATE)
    raw = read_table(store.root, "raw_labels", DATE)
    assert table["id"].tolist() == raw["id"].tolist()
    assert table["pred_probs"].map(lambda p: float(p[0])).tolist() == raw["p_cat"].tolist()


def test_a_failure_while_staging_does_not_fail_raw_labels(snapshot, monkeypatch: pytest.MonkeyPatch) -> None:
    config, store = snapshot
    real, calls = streaming.oof_batch_from_raw, []

    def broken(batch, offset, meta, schema):
        calls.append(offset)
        if len(calls) == 3:
            raise MemoryError("no room for the staged batch")
        return real(batch, offset, meta, schema)

    monkeypatch.setattr(streaming, "oof_batch_from_raw", broken)
    result = stages.raw_labels(store, config, DATE)
    assert result.row_count == 240 and len(read_table(store.root, "raw_labels", DATE)) == 240
    assert not staged_path(store.root, TABLE, DATE).exists()
    assert not list((store.root / TABLE).glob(".*.tmp"))
    monkeypatch.setattr(streaming, "oof_batch_from_raw", real)
    assert "written with raw_labels" not in stages.oof_pred_probs(store, config, DATE).summary


def test_a_copy_that_fails_stages_nothing(snapshot, monkeypatch: pytest.MonkeyPatch) -> None:
    config, store = snapshot
    real = parquet_snapshot.raw_label_batches

    def changed_underneath(snap, verify=False):
        yield from real(snap, verify=verify)
        raise ConfigError("snapshot changed while it was audited")

    monkeypatch.setattr(parquet_snapshot, "raw_label_batches", changed_underneath)
    with pytest.raises(ConfigError, match="changed while it was audited"):
        stages.raw_labels(store, config, DATE)
    assert not store.has("raw_labels", DATE)
    assert not staged_path(store.root, TABLE, DATE).exists()
    folder = store.root / TABLE
    assert not folder.exists() or not list(folder.glob(".*"))  # no staged file, no temp file


def test_the_key_holds_what_the_reshape_reads() -> None:
    meta = {
        "data_version": "abc",
        "classes": ["a", "b"],
        "probability_columns": ["pa", "pb"],
        "id_column": "id",
        "label_column": "label",
        "true_label_column": None,
        "seconds": 1.5,
    }
    key = oof_staging.staging_key(meta)
    assert "seconds" not in key and key["data_version"] == "abc"
    for name, value in [("data_version", "abd"), ("probability_columns", ["pb", "pa"]), ("classes", ["b", "a"])]:
        assert oof_staging.staging_key(meta | {name: value}) != key, name
