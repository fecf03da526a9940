"""The probability stages stream record batches: their tables do not depend on the batch size,
supplied float32 probabilities stay float32, and the flags equal the in-memory core's."""

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pipeline_helpers import write_small, write_supplied

from cl_pipeline import core
from cl_pipeline.audit import streaming
from cl_pipeline.storage import PartitionStore, read_table

DATE = "2025-04-01"
TABLES = ("oof_pred_probs", "confident_joint", "calibrated_joint", "class_quality", "label_issues", "pruned_dataset")


def _supplied(folder: Path, dtype: str) -> Path:
    """A snapshot with noisy supplied probabilities (columns p_cat, p_dog, p_emu) of ``dtype``."""
    return write_supplied(folder, 300, 3, flip=0.1, truth_weight=0.5, dtype=dtype)


def _tables(data: Path) -> dict[str, pd.DataFrame]:
    return {name: read_table(data, name, DATE) for name in TABLES}


@pytest.mark.parametrize("source", ["supplied float32", "supplied float64", "k-fold features"])
def test_tables_do_not_depend_on_the_batch_size(fast_env: Path, run_cli, monkeypatch, source: str) -> None:
    if source.startswith("supplied"):
        config = _supplied(fast_env.parent / "in", source.split()[-1])
    else:
        config = write_small(fast_env.parent / "in")
    assert run_cli("audit", "--config", str(config), "--date", DATE)[0] in (0, 3)
    one_batch = _tables(fast_env)
    monkeypatch.setattr(streaming, "MIN_BATCH_ROWS", 7)
    monkeypatch.setattr(streaming, "BATCH_BYTES", 1)
    assert streaming.batch_rows(3) == 7
    assert run_cli("audit", "--config", str(config), "--date", DATE)[0] in (0, 3)
    many = _tables(fast_env)
    groups = pq.ParquetFile(fast_env / "label_issues" / f"{DATE}.parquet").metadata.num_row_groups
    assert groups > 10  # really written in many batches
    for name in TABLES:
        pd.testing.assert_frame_equal(many[name], one_batch[name], obj=name)


def test_supplied_float32_probabilities_keep_their_dtype_and_match_find(fast_env: Path, run_cli) -> None:
    config = _supplied(fast_env.parent / "in", "float32")
    assert run_cli("audit", "--config", str(config), "--date", DATE)[0] in (0, 3)
    oof = pq.read_table(fast_env / "oof_pred_probs" / f"{DATE}.parquet")
    kind = oof.schema.field("pred_probs").type
    assert isinstance(kind, pa.FixedSizeListType) and kind.list_size == 3 and kind.value_type == pa.float32()
    frame = pd.read_parquet(config.parent / "probs.parquet")
    probs = frame[["p_cat", "p_dog", "p_emu"]].to_numpy()
    assert probs.dtype == np.float32
    labels = frame["label"].map({"cat": 0, "dog": 1, "emu": 2}).to_numpy()
    issues = read_table(fast_env, "label_issues", DATE).sort_values("row")
    np.testing.assert_array_equal(issues["is_label_issue"], core.find_label_issues(labels, probs))
    np.testing.assert_array_equal(issues["label_quality"], core.get_label_quality_scores(labels, probs))
    thresholds = read_table(fast_env, "confident_joint", DATE).groupby("true_index")["threshold"].first()
    np.testing.assert_array_equal(thresholds.to_numpy(), core.get_confident_thresholds(labels, probs))


@pytest.mark.parametrize("source", ["supplied float32", "k-fold features"])
def test_the_thresholds_recorded_by_oof_pred_probs_equal_the_three_pass_ones(
    fast_env: Path, run_cli, monkeypatch, source: str
) -> None:
    """oof_pred_probs records t while it writes; a file without them gets the passes: same t, same joint."""
    config = (
        _supplied(fast_env.parent / "in", "float32")
        if source.startswith("supplied")
        else write_small(fast_env.parent / "in")
    )
    assert run_cli("audit", "--config", str(config), "--date", DATE)[0] in (0, 3)
    store = PartitionStore(fast_env)
    k = len(store.metadata("raw_labels", DATE)["classes"])
    recorded = streaming.stored_thresholds(store.metadata("oof_pred_probs", DATE), k)
    assert recorded is not None
    thresholds, joint = streaming.confident_joint_pass(store, DATE, k)
    monkeypatch.setattr(streaming, "stored_thresholds", lambda meta, k: None)  # an older file: three passes
    passes, joint_of_passes = streaming.confident_joint_pass(store, DATE, k)
    assert recorded.dtype == passes.dtype == thresholds.dtype
    np.testing.assert_array_equal(recorded, passes)
    np.testing.assert_array_equal(joint.calibrated, joint_of_passes.calibrated)
    np.testing.assert_array_equal(joint.raw, joint_of_passes.raw)


@pytest.mark.parametrize(
    "meta",
    [
        pytest.param({}, id="absent"),
        pytest.param({"confident_thresholds": [0.5, 0.5], "thresholds_dtype": "float32"}, id="wrong-K"),
        pytest.param({"confident_thresholds": [0.5, 0.5, 0.5], "thresholds_dtype": "int8"}, id="odd-dtype"),
    ],
)
def test_unusable_recorded_thresholds_are_ignored(meta: dict) -> None:
    assert streaming.stored_thresholds(meta, 3) is None


def test_recorded_thresholds_round_trip_exactly() -> None:
    values = np.array([0.1, 1 / 3, 2e-6], dtype=np.float32)
    back = streaming.stored_thresholds(streaming.thresholds_metadata(values), 3)
    assert back.dtype == np.float32 and np.array_equal(back, values)


def test_supplied_columns_of_a_csv_source_record_the_thresholds(fast_env: Path, run_cli) -> None:
    """A CSV snapshot is validated in memory (no label counts recorded): oof_pred_probs counts n_k itself."""
    config = _supplied(fast_env.parent / "in", "float64")
    frame = pd.read_parquet(config.parent / "probs.parquet")
    frame.to_csv(config.parent / "probs.csv", index=False)
    config.write_text(config.read_text().replace('path = "probs.parquet"', 'path = "probs.csv"'))
    assert run_cli("audit", "--config", str(config), "--date", DATE)[0] in (0, 3)
    store = PartitionStore(fast_env)
    assert "label_counts" not in store.metadata("raw_labels", DATE)
    recorded = streaming.stored_thresholds(store.metadata("oof_pred_probs", DATE), 3)
    labels = frame["label"].map({"cat": 0, "dog": 1, "emu": 2}).to_numpy()
    probs = frame[["p_cat", "p_dog", "p_emu"]].to_numpy()
    np.testing.assert_array_equal(recorded, core.get_confident_thresholds(labels, probs))
