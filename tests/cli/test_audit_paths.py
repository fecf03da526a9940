"""Audit behaviour on a small dataset: blocking checks, idempotent reruns, failures, diff/history."""

from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest
from pipeline_helpers import data_files, make_small_frame, write_small

from cl_pipeline.audit import streaming
from cl_pipeline.storage import Warehouse, list_partitions, read_table

DATE = "2025-02-01"


def test_a_failed_stage_is_said_and_wins_over_a_blocking_check(env: Path, run_cli, monkeypatch) -> None:
    from cl_pipeline.audit import stages

    def broken(*args, **kwargs):
        raise RuntimeError("disk full while scoring")

    monkeypatch.setattr(stages, "label_issues", broken)
    config = write_small(env.parent / "in")
    code, _, err = run_cli("audit", "--config", str(config), "--date", DATE, "--max-noise-rate", "0.001")
    assert "BLOCKED by check noise_rate_below_threshold" in err
    assert "step label_issues failed" in err and "disk full while scoring" in err
    assert code == 1
    assert list_partitions(env, "label_issues") == []


def test_blocking_check_stops_pruning_and_retraining(env: Path, run_cli) -> None:
    config = write_small(env.parent / "in")
    code, out, err = run_cli("audit", "--config", str(config), "--date", DATE, "--max-noise-rate", "0.001")
    assert code == 3
    assert "BLOCKED by check noise_rate_below_threshold" in err
    assert "threshold 0.0010" in err and "estimated noise rate" in err
    for table in ("label_issues", "calibrated_joint", "confident_joint", "audit_summary"):
        assert list_partitions(env, table) == [DATE], table
    for table in ("pruned_dataset", "retrained_model"):
        assert list_partitions(env, table) == [], table
    checks = Warehouse(env).query("SELECT check_name, passed, value, threshold FROM check_results")
    failed = checks.set_index("check_name").loc["noise_rate_below_threshold"]
    assert not failed["passed"] and failed["threshold"] == pytest.approx(0.001) and failed["value"] > 0.001
    with dg.DagsterInstance.get() as instance:
        assert instance.get_latest_materialization_event(dg.AssetKey("pruned_dataset")) is None
        assert instance.get_latest_materialization_event(dg.AssetKey("label_issues")) is not None


def _tables(data: Path) -> dict[str, pd.DataFrame]:
    tables = (
        "raw_labels",
        "oof_pred_probs",
        "confident_joint",
        "calibrated_joint",
        "label_issues",
        "pruned_dataset",
        "audit_summary",
    )
    drop = ["run_id", "created_at"]
    return {
        t: read_table(data, t, DATE).drop(columns=drop, errors="ignore").filter(regex="^(?!seconds)") for t in tables
    }


def test_rerun_is_idempotent_and_failure_keeps_state(fast_env: Path, run_cli, monkeypatch) -> None:
    config = write_small(fast_env.parent / "in")
    assert run_cli("audit", "--config", str(config), "--date", DATE)[0] == 0
    first = _tables(fast_env)
    counts = Warehouse(fast_env).query("SELECT count(*) AS n FROM label_issues").iloc[0, 0]

    real = streaming.label_issue_batches

    def broken(*args, **kwargs):  # fails after the first batch reached the file being written
        batches = real(*args, **kwargs)
        yield next(batches)
        raise RuntimeError("injected failure in label_issues")

    monkeypatch.setattr(streaming, "label_issue_batches", broken)
    code, _, err = run_cli("audit", "--config", str(config), "--date", DATE)
    assert code == 1 and "injected failure" in err
    assert not [f for f in data_files(fast_env) if f.endswith(".tmp")]
    for name, frame in _tables(fast_env).items():  # earlier state intact and readable
        pd.testing.assert_frame_equal(frame, first[name], obj=name)
    assert Warehouse(fast_env).query("SELECT count(*) FROM label_issues").iloc[0, 0] == counts

    monkeypatch.undo()
    assert run_cli("audit", "--config", str(config), "--date", DATE)[0] == 0
    for name, frame in _tables(fast_env).items():
        pd.testing.assert_frame_equal(frame, first[name], obj=name)
    wh = Warehouse(fast_env)
    assert wh.query("SELECT count(*) FROM label_issues").iloc[0, 0] == counts  # no duplicates
    assert wh.query("SELECT count(*) FROM audit_summary").iloc[0, 0] == 1
    assert wh.query("SELECT count(*) FROM check_results").iloc[0, 0] == 6  # 4 + annotators + noise_rate_vs_reference


def test_interrupted_write_leaves_previous_file(env: Path, monkeypatch) -> None:
    from cl_pipeline.storage import parquet

    frame = pd.DataFrame({"a": [1, 2, 3]})
    parquet.write_table(env, "t", DATE, frame)

    def crash(table, handle, **kwargs):
        handle.write(b"PAR1 partial")
        raise OSError("disk full")

    monkeypatch.setattr(parquet.pq, "write_table", crash)
    with pytest.raises(OSError, match="disk full"):
        parquet.write_table(env, "t", DATE, pd.DataFrame({"a": [9]}))
    assert read_table(env, "t", DATE)["a"].tolist() == [1, 2, 3]
    assert data_files(env) == [f"t/{DATE}.parquet"]


def test_folder_source_history_and_diff(fast_env: Path, run_cli) -> None:
    folder = fast_env.parent / "snapshots"
    day1 = make_small_frame()
    day2 = day1.copy()
    relabel = day2.index[(day2["label"] != day2["true_label"])][:5]
    day2.loc[relabel, "label"] = day2.loc[relabel, "true_label"]  # the annotators fixed 5 errors
    folder.mkdir()
    day1.to_csv(folder / "labels_2025-02-01.csv", index=False)
    day2.to_csv(folder / "labels_2025-02-02.csv", index=False)
    config = write_small(fast_env.parent / "cfg")
    config.write_text(
        config.read_text()
        .replace('kind = "file"', 'kind = "folder"')
        .replace('path = "labels.csv"', f'path = "{folder}"\npattern = "*.csv"')
    )
    assert run_cli("audit", "--config", str(config), "--date", "2025-02-01")[0] == 0
    code, _, err = run_cli("audit", "--config", str(config))  # default: latest snapshot
    assert code == 0 and "2025-02-02" in err
    code, out, _ = run_cli("history")
    assert code == 0 and "2025-02-01" in out and "2025-02-02" in out
    code, out, _ = run_cli("diff", "2025-02-01", "2025-02-02", "--limit", "50")
    assert code == 0 and "relabeled: 5" in out
    for example_id in day1.loc[relabel, "id"]:
        assert example_id in out
    from cl_pipeline.storage.queries import diff_tables

    parts = diff_tables(fast_env, "2025-02-01", "2025-02-02")
    flagged_1 = read_table(fast_env, "label_issues", "2025-02-01").set_index("id")["is_label_issue"]
    flagged_2 = read_table(fast_env, "label_issues", "2025-02-02").set_index("id")["is_label_issue"]
    assert set(parts["newly flagged"]["id"]) == set(flagged_2[flagged_2 & ~flagged_1].index)
    assert set(parts["no longer flagged"]["id"]) == set(flagged_1[flagged_1 & ~flagged_2].index)
    assert run_cli("diff", "2025-02-01", "2031-01-01")[0] == 2


def test_bring_your_own_probabilities_skip_folds(fast_env: Path, run_cli) -> None:
    source = make_small_frame()
    one_hot = pd.get_dummies(source["true_label"]).astype(float) * 0.8 + 0.2 / 3
    frame = pd.concat([source[["id", "label"]], one_hot.add_prefix("p_")], axis=1)
    folder = fast_env.parent / "byo"
    folder.mkdir()
    frame.to_parquet(folder / "probs.parquet")
    (folder / "audit.toml").write_text(
        '[source]\nkind = "file"\npath = "probs.parquet"\n'
        '[columns]\nprobabilities = ["p_cat", "p_dog", "p_emu"]\nclasses = ["cat", "dog", "emu"]\n'
    )
    code, out, _ = run_cli("audit", "--config", str(folder / "audit.toml"), "--date", DATE)
    assert code == 0
    oof = read_table(fast_env, "oof_pred_probs", DATE)
    assert (oof["fold"] == -1).all()
    issues = read_table(fast_env, "label_issues", DATE)
    flipped = set(source.loc[source["label"] != source["true_label"], "id"])
    assert set(issues.loc[issues["is_label_issue"], "id"]) == flipped  # perfect probabilities
    assert read_table(fast_env, "retrained_model", DATE).iloc[0]["status"].startswith("skipped")


def test_duckdb_source_with_text_feature_and_date_column(fast_env: Path, run_cli) -> None:
    import duckdb

    frames = []
    for day, seed in (("2025-02-01", 1), ("2025-02-02", 2)):
        frame = make_small_frame(seed=seed)
        words = {"cat": "whiskers purr", "dog": "bark fetch", "emu": "feathers run"}
        frame["comment"] = frame["true_label"].map(words) + " " + frame["colour"]
        frame["snapshot_date"] = pd.Timestamp(day)
        frames.append(frame)
    db = fast_env.parent / "source.duckdb"
    con = duckdb.connect(str(db))
    con.register("snapshots", pd.concat(frames, ignore_index=True))
    con.execute("CREATE TABLE labels AS SELECT * FROM snapshots")
    con.close()
    (fast_env.parent / "audit.toml").write_text(
        f'[source]\nkind = "duckdb"\npath = "{db}"\ntable = "labels"\ndate_column = "snapshot_date"\n'
        '[columns]\nnumeric = ["f0", "f1"]\ntext = ["comment"]\ntrue_label = "true_label"\n'
        "[model]\nn_folds = 3\n"
    )
    code, _, err = run_cli("audit", "--config", str(fast_env.parent / "audit.toml"), "--date", "2025-02-02")
    assert code == 0, err
    raw = read_table(fast_env, "raw_labels", "2025-02-02")
    assert len(raw) == len(frames[1]) and set(raw["id"]) == set(frames[1]["id"])
    assert "snapshot_date" not in raw.columns
    summary = read_table(fast_env, "audit_summary", "2025-02-02").iloc[0]
    assert list(summary["classes"]) == ["cat", "dog", "emu"]
    assert summary["recall"] > 0.5  # the text column makes the truth easy to see


def test_npy_probabilities_source(fast_env: Path, run_cli) -> None:
    frame = make_small_frame()[["id", "label", "true_label"]]
    probs = np.full((len(frame), 3), 0.1)
    probs[np.arange(len(frame)), frame["true_label"].map({"cat": 0, "dog": 1, "emu": 2})] = 0.8
    folder = fast_env.parent / "npy"
    folder.mkdir()
    frame.to_csv(folder / "labels.csv", index=False)
    np.save(folder / f"probs_{DATE}.npy", probs)
    (folder / "audit.toml").write_text(
        '[source]\nkind = "file"\npath = "labels.csv"\n'
        '[columns]\nprobabilities_npy = "probs_{date}.npy"\ntrue_label = "true_label"\n'
    )
    assert run_cli("audit", "--config", str(folder / "audit.toml"), "--date", DATE)[0] == 0
    issues = read_table(fast_env, "label_issues", DATE).set_index("id")
    wrong = frame.set_index("id")["label"] != frame.set_index("id")["true_label"]
    assert (issues["is_label_issue"] == wrong.loc[issues.index]).all()  # perfect probabilities find every flip
    oof = read_table(fast_env, "oof_pred_probs", DATE).sort_values("row")
    np.testing.assert_allclose(np.stack(oof["pred_probs"].to_numpy()), probs)


def test_configured_class_order_is_kept(fast_env: Path, run_cli) -> None:
    order = ["emu", "cat", "dog"]  # not sorted: every table must follow it
    config = write_small(fast_env.parent / "in")
    config.write_text(config.read_text().replace('label = "label"\n', f'label = "label"\nclasses = {order}\n'))
    assert run_cli("audit", "--config", str(config), "--date", DATE)[0] == 0
    summary = read_table(fast_env, "audit_summary", DATE).iloc[0]
    assert list(summary["classes"]) == order
    raw = read_table(fast_env, "raw_labels", DATE)
    np.testing.assert_array_equal(raw["label_index"], raw["label"].map(order.index))
    issues = read_table(fast_env, "label_issues", DATE)
    assert (issues["given_label"] == np.asarray(order, dtype=object)[issues["given_index"]]).all()
    joint = read_table(fast_env, "confident_joint", DATE)
    assert list(joint.loc[joint["given_index"] == 0, "true_label"]) == order
