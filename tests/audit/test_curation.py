"""Curated versions without Dagster: the stages on the small dataset, decisions appended as an import would.

Checks the rules of :mod:`cl_pipeline.audit.curation` (relabel, drop, keep; a changed given
label voids a decision; decisions made on later snapshots do not apply; the latest wins),
the data version (the ``arrow-1`` rule of raw Parquet snapshots, whatever the batching),
``raw_labels`` of a curated audit (its input check passes), and ``label_issues`` of a
curated audit (kept examples not flagged again, ranks renumbered, nothing hidden).
"""

import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pipeline_helpers import SMALL_CLASSES, make_small_frame, write_small

from cl_pipeline.audit import curation, parquet_snapshot, stages, verdicts
from cl_pipeline.audit.reviewed import review_label_issues
from cl_pipeline.config import ConfigError, load_config
from cl_pipeline.storage import PartitionStore
from cl_pipeline.storage.decisions import DECISION_SCHEMA, append_decisions, decision_id

DATE, LATER = "2024-02-01", "2024-02-02"
T0 = datetime.datetime(2024, 2, 3, 9, 0, tzinfo=datetime.UTC)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20240201)


def decide(store: PartitionStore, *rows: tuple, reviewer: str = "ann") -> list[str]:
    """Append decisions ``(id, date, decision, new_label, given_label, minutes after T0)``; returns their ids."""
    records = []
    for example, date, decision, new_label, given_label, minutes in rows:
        when = T0 + datetime.timedelta(minutes=minutes)
        key = decision_id(example, date, decision, new_label, given_label, reviewer, None, when.isoformat())
        records.append(
            {
                "decision_id": key,
                "id": example,
                "date": date,
                "decision": decision,
                "new_label": new_label,
                "given_label": given_label,
                "reviewer": reviewer,
                "note": None,
                "decided_at": when,
                "imported_at": when,
                "source_file": "test.csv",
                "source_sha256": "0" * 64,
                "source_format": "csv",
            }
        )
    for date in sorted({r["date"] for r in records}):
        append_decisions(store.root, pa.Table.from_pylist([r for r in records if r["date"] == date], DECISION_SCHEMA))
    return [r["decision_id"] for r in records]


@pytest.fixture
def small(tmp_path: Path) -> tuple[PartitionStore, object, pd.DataFrame]:
    """The small dataset (CSV: an in-memory snapshot), its config and its stored raw_labels of DATE."""
    frame = make_small_frame()
    config = load_config(write_small(tmp_path / "in", frame))
    store = PartitionStore(tmp_path / "data")
    stages.raw_labels(store, config, DATE)
    return store, config, frame


def _labels(store: PartitionStore, table: str, date: str = DATE) -> pd.Series:
    return store.read(table, date).set_index("id")["label"]


def test_relabel_drop_keep_apply_and_a_changed_label_voids(small) -> None:
    store, config, frame = small
    given = frame.set_index("id")["label"]
    other = {g: next(c for c in SMALL_CLASSES if c != g) for g in SMALL_CLASSES}
    applied = decide(
        store,
        ("ex-0000", DATE, "relabel", other[given["ex-0000"]], given["ex-0000"], 0),
        ("ex-0001", DATE, "drop", None, given["ex-0001"], 1),
        ("ex-0002", DATE, "keep", None, given["ex-0002"], 2),
    )
    decide(
        store,
        ("ex-0003", DATE, "relabel", given["ex-0003"], other[given["ex-0003"]], 3),  # made on another label: void
        ("ex-0004", LATER, "drop", None, given["ex-0004"], 4),  # made on a later snapshot: not applied to DATE
    )
    result = curation.curated_dataset(store, config, DATE)
    labels = _labels(store, "curated_dataset")
    assert result.row_count == len(frame) - 1 and "ex-0001" not in labels.index
    changed = labels[labels != given.loc[labels.index]]
    assert list(changed.index) == ["ex-0000"] and changed["ex-0000"] == other[given["ex-0000"]]
    stored = store.read("curated_dataset", DATE).set_index("id")
    assert stored.loc["ex-0000", "label_index"] == SMALL_CLASSES.index(other[given["ex-0000"]])
    curation_meta = store.metadata("curated_dataset", DATE)["curation"]
    raw_version = store.metadata("raw_labels", DATE)["data_version"]
    assert curation_meta["parent_version"] == raw_version
    assert (curation_meta["relabeled"], curation_meta["dropped"], curation_meta["kept"]) == (1, 1, 1)
    assert curation_meta["decisions_applied"] == 3
    assert curation_meta["decisions_hash"] == curation._digest(applied)


def test_the_curated_version_is_the_arrow_hash_of_its_stored_columns(small) -> None:
    store, config, frame = small
    decide(store, ("ex-0010", DATE, "drop", None, frame.loc[10, "label"], 0))
    curation.curated_dataset(store, config, DATE)
    meta = store.metadata("curated_dataset", DATE)
    names = [n for n in store.schema("curated_dataset", DATE).names if n not in ("partition", "label_index")]
    recomputed = parquet_snapshot.stream_hash(lambda cols: store.iter_batches("curated_dataset", DATE, cols), names)
    assert meta["data_version"] == recomputed != meta["curation"]["parent_version"]
    assert meta["hash_scheme"] == parquet_snapshot.HASH_SCHEME


@pytest.mark.parametrize(
    ("decisions", "note"),
    [
        pytest.param([], "no review decisions yet", id="no-decisions"),
        pytest.param([("keep", None, 0)], "no review decision changes this snapshot (1 kept", id="keep-only"),
        pytest.param([("drop", None, 0), ("keep", None, 5)], "(1 kept", id="a-later-keep-wins"),
    ],
)
def test_without_a_change_the_curated_version_is_the_raw_one(small, decisions, note: str) -> None:
    store, config, frame = small
    decide(store, *[("ex-0005", DATE, d, new, frame.loc[5, "label"], m) for d, new, m in decisions])
    result = curation.curated_dataset(store, config, DATE)
    meta = store.metadata("curated_dataset", DATE)
    assert (
        meta["data_version"] == meta["curation"]["parent_version"] == store.metadata("raw_labels", DATE)["data_version"]
    )
    assert note in result.summary and result.row_count == len(frame)
    pd.testing.assert_series_equal(_labels(store, "curated_dataset"), _labels(store, "raw_labels"))
    counts = np.bincount(store.read("raw_labels", DATE)["label_index"], minlength=len(meta["classes"]))
    assert meta["label_counts"] == counts.tolist()


def _lookup(ids: list[str], actions: list[int], given: list[int], new: list[int]) -> curation.DecisionLookup:
    table = pa.table(
        {
            "id": ids,
            "new_label": [str(n) if a == curation.RELABEL else None for a, n in zip(actions, new, strict=True)],
            "decision_id": [f"d{i}" for i in range(len(ids))],
        }
    )
    return curation.DecisionLookup(
        pa.array(ids, pa.string()),
        np.asarray(actions, np.int8),
        np.asarray(given, np.int64),
        np.asarray(new, np.int64),
        table,
        None,
    )


@settings(max_examples=25)
@given(st.integers(1, 40), st.integers(0, 2**32 - 1))
def test_batching_changes_neither_the_rows_nor_the_version(batch_rows: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, k = 60, 4
    labels = rng.integers(0, k, n)
    table = pa.table({"id": np.arange(n), "label": labels, "x": rng.random(n), "label_index": labels.astype(np.int64)})
    chosen = rng.choice(n, 20, replace=False)
    lookup = _lookup(
        [str(i) for i in chosen],
        rng.integers(0, 3, 20).tolist(),
        [int(labels[i]) if rng.random() < 0.8 else (int(labels[i]) + 1) % k for i in chosen],
        rng.integers(0, k, 20).tolist(),
    )

    def run(size: int) -> tuple[pa.Table, str, curation.Tally]:
        tally, versions = curation.Tally(), []
        batches = curation.curate_batches(iter(table.to_batches(size)), lookup, "id", "label", tally)
        out = list(curation._hashed(batches, table.schema, versions.append))
        return pa.Table.from_batches(out, table.schema), versions[0], tally

    whole, version, tally = run(n)
    split, split_version, split_tally = run(batch_rows)
    assert split.equals(whole) and split_version == version and split_tally.counts == tally.counts
    assert whole.column("label").to_pylist() == whole.column("label_index").to_pylist()
    assert whole.num_rows == n - tally.counts[curation.DROP]


def test_curated_raw_labels_passes_the_input_check(small) -> None:
    store, config, frame = small
    curated = config.model_copy(update={"audit": config.audit.model_copy(update={"start_from": "curated"})})
    raw_version = store.metadata("raw_labels", DATE)["data_version"]
    decide(
        store,
        ("ex-0007", DATE, "relabel", "emu" if frame.loc[7, "label"] != "emu" else "cat", frame.loc[7, "label"], 0),
    )
    result = stages.raw_labels(store, curated, DATE)
    meta = store.metadata("raw_labels", DATE)
    assert result.data_version == meta["data_version"] != raw_version
    assert meta["curation"]["parent_version"] == raw_version and meta["curation"]["relabeled"] == 1
    verdict = verdicts.input_verdict(store, DATE)
    assert verdict.passed, verdict.message
    assert (
        stages.load_stored_snapshot(store, DATE).labels.tolist()
        == store.read("raw_labels", DATE)["label_index"].tolist()
    )


def test_curated_dataset_of_a_curated_audit_reads_the_source_again(small) -> None:
    store, config, frame = small
    curated = config.model_copy(update={"audit": config.audit.model_copy(update={"start_from": "curated"})})
    decide(store, ("ex-0008", DATE, "drop", None, frame.loc[8, "label"], 0))
    stages.raw_labels(store, curated, DATE)
    curation.curated_dataset(store, curated, DATE)
    raw_meta, cur_meta = store.metadata("raw_labels", DATE), store.metadata("curated_dataset", DATE)
    assert cur_meta["data_version"] == raw_meta["data_version"]
    assert cur_meta["curation"]["parent_version"] == raw_meta["curation"]["parent_version"]
    assert cur_meta["curation"]["dropped"] == 1  # not 0: the decisions were applied to the raw rows, once


@pytest.mark.parametrize(
    ("drop_class", "n_folds", "message"),
    [
        pytest.param("emu", 3, "classes are too small for 3-fold", id="class-below-n-folds"),
        pytest.param(("emu", "dog"), 2, "at least 2 are needed", id="one-class-left"),
    ],
)
def test_decisions_that_leave_labels_unauditable_are_refused(small, drop_class, n_folds: int, message: str) -> None:
    store, config, frame = small
    model = config.model.model_copy(update={"n_folds": n_folds})
    curated = config.model_copy(
        update={"model": model, "audit": config.audit.model_copy(update={"start_from": "curated"})}
    )
    doomed = frame[frame["label"].isin(np.atleast_1d(drop_class))]
    decide(store, *[(i, DATE, "drop", None, label, 0) for i, label in zip(doomed["id"], doomed["label"], strict=True)])
    before = store.path("raw_labels", DATE).read_bytes()
    checked = stages.prevalidate(curated, DATE)
    with pytest.raises(ConfigError, match=message):
        curation.check_curated(store.root, curated, checked)
    with pytest.raises(ConfigError, match=message):
        stages.raw_labels(store, curated, DATE)
    assert store.path("raw_labels", DATE).read_bytes() == before  # nothing written


def _parquet_config(folder: Path, rng: np.random.Generator) -> object:
    """A Parquet snapshot with supplied probability columns (the streamed path), its config."""
    folder.mkdir(parents=True)
    n = 90
    labels = rng.integers(0, 3, n)
    probs = rng.dirichlet(np.ones(3), n)
    frame = pd.DataFrame({"id": np.arange(n), "label": labels})
    for k in range(3):
        frame[f"p{k}"] = probs[:, k]
    frame.to_parquet(folder / "snap.parquet", index=False)
    return load_config(
        {
            "source": {"kind": "file", "path": str(folder / "snap.parquet")},
            "columns": {"probabilities": ["p0", "p1", "p2"]},
        }
    )


def test_a_streamed_snapshot_hashes_by_the_same_rule(tmp_path: Path, rng: np.random.Generator) -> None:
    config = _parquet_config(tmp_path / "in", rng)
    store = PartitionStore(tmp_path / "data")
    stages.raw_labels(store, config, DATE)
    raw_version = store.metadata("raw_labels", DATE)["data_version"]
    curation.curated_dataset(store, config, DATE)  # no decision: unchanged rows
    names = [n for n in store.schema("curated_dataset", DATE).names if n not in ("partition", "label_index")]
    rehashed = parquet_snapshot.stream_hash(lambda cols: store.iter_batches("curated_dataset", DATE, cols), names)
    assert rehashed == raw_version == store.metadata("curated_dataset", DATE)["data_version"]
    counts = np.bincount(store.read("raw_labels", DATE)["label_index"], minlength=3)
    assert store.metadata("curated_dataset", DATE)["label_counts"] == counts.tolist()  # as raw_labels recorded them
    label = int(store.read("raw_labels", DATE).loc[0, "label"])
    decide(store, ("0", DATE, "relabel", str((label + 1) % 3), str(label), 0))
    curated = config.model_copy(update={"audit": config.audit.model_copy(update={"start_from": "curated"})})
    stages.raw_labels(store, curated, DATE)
    assert int(store.read("raw_labels", DATE).loc[0, "label"]) == (label + 1) % 3
    verdict = verdicts.input_verdict(store, DATE)
    assert verdict.passed, verdict.message


def _audited(store: PartitionStore, config: object) -> pd.DataFrame:
    for run in (stages.oof_pred_probs, stages.label_issues):
        run(store, config, DATE)
        if run is stages.oof_pred_probs:
            stages.confident_joint(store, DATE)
    return store.read("label_issues", DATE)


def test_kept_examples_are_not_flagged_again_and_ranks_close_up(small) -> None:
    store, config, _ = small
    before = _audited(store, config)
    flagged = before[before["is_label_issue"]].sort_values("rank")
    assert len(flagged) >= 5
    kept = flagged.iloc[[0, 2]]
    decide(store, *[(i, DATE, "keep", None, g, 0) for i, g in zip(kept["id"], kept["given_label"], strict=True)])
    info = dict(store.metadata("label_issues", DATE))
    assert review_label_issues(store, DATE, info) == 2
    after = store.read("label_issues", DATE).set_index("id")
    assert not after.loc[kept["id"], "is_label_issue"].any()
    assert after.loc[kept["id"], "rank"].isna().all() and after.loc[kept["id"], "cl_is_label_issue"].all()
    assert list(after.loc[kept["id"], "cl_rank"]) == list(kept["rank"])
    assert set(after.loc[kept["id"], "review_status"]) == {"kept by reviewer ann on 2024-02-03"}
    still = after[after["is_label_issue"]].sort_values("rank")
    assert list(still["rank"]) == list(range(1, len(flagged) - 1))
    assert list(still.index) == [i for i in flagged["id"] if i not in set(kept["id"])]  # same order
    meta = store.metadata("label_issues", DATE)
    assert meta["num_issues"] == len(flagged) - 2 == info["num_issues"]
    hits = int((still["true_label"] != still["given_label"]).sum())
    assert meta["precision"] == pytest.approx(hits / len(still))
    curated = config.model_copy(update={"audit": config.audit.model_copy(update={"start_from": "curated"})})
    summary = stages.audit_summary(store, curated, DATE, "run-1")
    assert summary.metadata["review_progress"] == f"2 reviewed (0 confirmed, 2 kept) of {len(flagged) - 2} flagged"
    row = store.read("audit_summary", DATE).iloc[0]
    assert (row["start_from"], row["reviewed"], row["kept"], row["decisions_applied"]) == ("curated", 2, 2, 0)


def test_without_decisions_label_issues_is_left_alone(small) -> None:
    store, config, _ = small
    _audited(store, config)
    before = store.path("label_issues", DATE).read_bytes()
    assert review_label_issues(store, DATE, dict(store.metadata("label_issues", DATE))) == 0
    assert store.path("label_issues", DATE).read_bytes() == before
    assert "review_status" not in pq.read_schema(store.path("label_issues", DATE)).names
