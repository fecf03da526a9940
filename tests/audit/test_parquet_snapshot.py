"""A Parquet snapshot with supplied probability columns is validated and stored batch by batch:
the same rules and exit codes as in memory, a data version that ignores how the file is split,
and an input check that catches a changed stored file."""

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pipeline_helpers import data_files

from cl_pipeline.audit import parquet_snapshot, verdicts
from cl_pipeline.storage import PartitionStore, read_metadata, read_table, write_table

DATE = "2025-07-01"


def _frame(n: int = 200, seed: int = 5) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.ones(3), n)
    frame = pd.DataFrame({"id": [f"r{i}" for i in range(n)], "label": rng.choice(["a", "b", "c"], n)})
    for j, name in enumerate("abc"):
        frame[f"p_{name}"] = probs[:, j]
    return frame


def _config(folder: Path, frame: pd.DataFrame, **write) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), folder / "snap.parquet", **write)
    config = folder / "audit.toml"
    config.write_text('[source]\nkind = "file"\npath = "snap.parquet"\n[columns]\nprobabilities = ["p_*"]\n')
    return config


def test_data_version_ignores_row_groups_and_sees_every_value(tmp_path: Path) -> None:
    frame = _frame()
    versions = []
    for name, groups in (("one", 10_000), ("many", 7)):
        path = tmp_path / f"{name}.parquet"
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path, row_group_size=groups)
        read = lambda columns, path=path: pq.ParquetFile(path).iter_batches(batch_size=13, columns=columns)  # noqa: E731
        versions.append(parquet_snapshot.stream_hash(read, list(frame.columns)))
    assert versions[0] == versions[1]
    changed = frame.copy()
    changed.loc[57, "label"] = "b" if changed.loc[57, "label"] != "b" else "a"
    path = tmp_path / "changed.parquet"
    pq.write_table(pa.Table.from_pandas(changed, preserve_index=False), path)
    read = lambda columns: pq.ParquetFile(path).iter_batches(columns=columns)  # noqa: E731
    assert parquet_snapshot.stream_hash(read, list(frame.columns)) != versions[0]


@pytest.mark.parametrize("batch_rows", [1, 13, 10_000], ids=lambda b: f"batches-of-{b}")
def test_stream_hash_fed_whole_batches_equals_column_by_column(tmp_path: Path, batch_rows: int) -> None:
    frame = _frame()
    frame["note"] = [None if i % 5 == 0 else f"n{i}" for i in range(len(frame))]  # strings with nulls
    path = tmp_path / "t.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path, row_group_size=50)
    names = pq.read_schema(path).names
    by_column = parquet_snapshot.stream_hash(lambda columns: pq.ParquetFile(path).iter_batches(columns=columns), names)
    state = parquet_snapshot.StreamHash(names)
    for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_rows):
        state.update(batch)
    assert state.hexdigest() == by_column


def _null_id(f):
    f["id"] = f["id"].astype(object)
    f.loc[3, "id"] = None
    return f


def _bad_row(f):
    f.loc[9, "p_a"] = 0.9
    return f


BAD = {
    "null id": (_null_id, "id column 'id' has null value"),
    "duplicated id": (lambda f: f.assign(id=["x"] * 2 + list(f["id"][2:])), "1 duplicated id(s), e.g. 'x'"),
    "null label": (lambda f: f.assign(label=[None] + list(f["label"][1:])), "label column 'label' has null"),
    "invalid probability row": (_bad_row, "row 9 (id 'r9') is not a probability vector"),
    "one class": (lambda f: f.assign(label="a"), "at least 2 are needed"),
    "reserved column": (lambda f: f.assign(label_index=0), "reserved name"),
    "text probabilities": (lambda f: f.assign(p_c=f["p_c"].astype(str)), "probability column 'p_c' is not numeric"),
}


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
def test_bad_snapshot_exits_2_and_writes_nothing(case: str, env: Path, run_cli) -> None:
    change, message = BAD[case]
    config = _config(env.parent / "in", change(_frame()))
    code, _, err = run_cli("audit", "--config", str(config), "--date", DATE)
    assert code == 2 and message in err, err
    assert data_files(env) == []


def test_streamed_snapshot_and_a_changed_stored_file(fast_env: Path, run_cli) -> None:
    config = _config(fast_env.parent / "in", _frame(), row_group_size=50)
    assert run_cli("audit", "--config", str(config), "--date", DATE)[0] in (0, 3)
    meta = read_metadata(fast_env, "raw_labels", DATE)
    assert (
        meta["hash_scheme"] == parquet_snapshot.HASH_SCHEME and meta["label_counts"] and meta["classes"] == list("abc")
    )
    stored = read_table(fast_env, "raw_labels", DATE)
    np.testing.assert_array_equal(stored["label_index"], stored["label"].map({"a": 0, "b": 1, "c": 2}))
    store = PartitionStore(fast_env)
    verdicts._LAST_INPUT_VERDICT.clear()
    assert verdicts.input_verdict(store, DATE).passed
    stored.loc[0, "p_a"] += 1e-9  # any value changed after the audit wrote the file
    write_table(fast_env, "raw_labels", DATE, stored.drop(columns=["partition"]), meta)
    verdict = verdicts.input_verdict(store, DATE)
    assert not verdict.passed and "changed after the audit wrote it" in verdict.message


def _validated(tmp_path: Path, frame: pd.DataFrame):
    from cl_pipeline.config import load_config

    config = load_config(str(_config(tmp_path / "in", frame, row_group_size=50)))
    path = tmp_path / "in" / "snap.parquet"
    return config, path, parquet_snapshot.validate_parquet_snapshot(path, config, DATE)


def test_the_copy_hashes_what_it_writes_and_the_input_check_reuses_it(tmp_path: Path, monkeypatch) -> None:
    from cl_pipeline.audit import stages

    config, _, snapshot = _validated(tmp_path, _frame())
    store = PartitionStore(tmp_path / "data")
    stages._raw_labels_streamed(store, config, DATE, snapshot, 0.0)
    monkeypatch.setattr(verdicts, "_input_verdict", lambda *a: pytest.fail("the written file was read back"))
    verdict = verdicts.input_verdict(store, DATE)
    assert verdict.passed and snapshot.data_version in verdict.message
    stored = read_table(store.root, "raw_labels", DATE)
    write_table(store.root, "raw_labels", DATE, stored.drop(columns=["partition"]), store.metadata("raw_labels", DATE))
    with pytest.raises(pytest.fail.Exception, match="read back"):  # a rewritten file is a new file: hashed again
        verdicts.input_verdict(store, DATE)


def test_a_snapshot_changed_between_validation_and_copy_writes_nothing(tmp_path: Path) -> None:
    from cl_pipeline.audit import stages
    from cl_pipeline.config import ConfigError

    frame = _frame()
    config, path, snapshot = _validated(tmp_path, frame)
    frame.loc[7, "label"] = "a" if frame.loc[7, "label"] != "a" else "b"  # same classes, one label changed
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path, row_group_size=50)
    store = PartitionStore(tmp_path / "data")
    with pytest.raises(ConfigError, match="changed while it was audited"):
        stages._raw_labels_streamed(store, config, DATE, snapshot, 0.0)
    assert not store.path("raw_labels", DATE).exists()
    assert list((tmp_path / "data" / "raw_labels").iterdir()) == []
