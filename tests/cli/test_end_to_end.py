"""End to end: `cl-pipeline audit` on the embedded digits dataset, asserted on the warehouse."""

from pathlib import Path

import dagster as dg
import joblib
import numpy as np
import pytest

from cl_pipeline import cli, core
from cl_pipeline.storage import TABLES, Warehouse, read_table

DATE = "2025-03-01"


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory):
    """One full audit of the embedded default in a temporary data dir and DAGSTER_HOME."""
    root = tmp_path_factory.mktemp("embedded")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.setenv("CL_PIPELINE_DATA_DIR", str(root / "data"))
        mp.setenv("DAGSTER_HOME", str(root / "dagster_home"))
        mp.delenv("CL_PIPELINE_CONFIG", raising=False)
        code = cli.main(["audit", "--date", DATE])
        yield code, root / "data", root / "dagster_home"


def test_audit_exits_zero_and_writes_every_table(embedded) -> None:
    code, data, _ = embedded
    assert code == 0
    views = set(Warehouse(data).views())
    assert set(TABLES) <= views


def test_audit_summary_row(embedded) -> None:
    _, data, _ = embedded
    summary = Warehouse(data).query("SELECT * FROM audit_summary WHERE partition = ?", [DATE])
    assert len(summary) == 1
    row = summary.iloc[0]
    assert (row["n"], row["k"]) == (1797, 10)
    assert 0.03 < row["estimated_noise_rate"] < 0.2
    assert row["num_issues"] > 50
    assert len(row["thresholds"]) == 10 and row["seconds_oof_pred_probs"] > 0
    # the flags find the injected flips
    assert row["precision"] > 0.7 and row["recall"] > 0.7


def test_label_issues_equal_core_on_stored_probabilities(embedded) -> None:
    _, data, _ = embedded
    oof = read_table(data, "oof_pred_probs", DATE).sort_values("row")
    probs = np.stack(oof["pred_probs"].to_numpy())
    labels = read_table(data, "raw_labels", DATE)["label_index"].to_numpy()
    expected = core.find_label_issues(labels, probs)
    issues = read_table(data, "label_issues", DATE).sort_values("row")
    np.testing.assert_array_equal(issues["is_label_issue"].to_numpy(), expected)
    np.testing.assert_array_equal(issues["label_quality"], core.get_label_quality_scores(labels, probs))
    flagged = issues[issues["is_label_issue"]].sort_values("rank")
    np.testing.assert_array_equal(flagged["row"], core.order_label_issues(expected, labels, probs))
    assert flagged["rank"].tolist() == list(range(1, int(expected.sum()) + 1))  # 1..m over the flagged rows
    assert issues.loc[~issues["is_label_issue"], "rank"].isna().all()  # the others are not ranked
    np.testing.assert_array_equal(issues["suggested_index"], probs.argmax(axis=1))


def test_q_and_noise_matrix_consistent(embedded) -> None:
    _, data, _ = embedded
    joint = read_table(data, "calibrated_joint", DATE)
    assert joint["joint"].sum() == pytest.approx(1.0)
    per_true = joint.groupby("true_index")["noise_rate"].sum()
    np.testing.assert_allclose(per_true, 1.0)
    summary = Warehouse(data).query("SELECT estimated_noise_rate FROM audit_summary")
    diag = joint.loc[joint["given_index"] == joint["true_index"], "joint"].sum()
    assert summary.iloc[0, 0] == pytest.approx(1 - diag)


def test_check_results_recorded(embedded) -> None:
    _, data, home = embedded
    checks = Warehouse(data).query("SELECT check_name, passed FROM check_results WHERE partition = ?", [DATE])
    assert set(checks["check_name"]) == {
        "input_valid",
        "noise_rate_below_threshold",
        "class_noise_below_threshold",
        "retrained_not_worse_than_baseline",
        "annotators_above_min_quality",
        "noise_rate_vs_reference",  # passes: monitoring off
    }
    assert checks.set_index("check_name").loc["noise_rate_below_threshold", "passed"]
    with dg.DagsterInstance.from_config(str(home)) as instance:
        key = dg.AssetCheckKey(dg.AssetKey("calibrated_joint"), "noise_rate_below_threshold")
        record = instance.event_log_storage.get_latest_asset_check_execution_by_key([key])[key]
        assert record.status.value == "SUCCEEDED"
        materialized = instance.get_latest_materialization_event(dg.AssetKey("retrained_model"))
        assert materialized is not None and materialized.dagster_event.partition == DATE


def test_retrained_model_artifact(embedded) -> None:
    _, data, _ = embedded
    row = read_table(data, "retrained_model", DATE).iloc[0]
    assert row["status"] == "trained"
    assert 0.5 < row["retrained_accuracy"] <= 1 and 0.5 < row["baseline_accuracy"] <= 1
    artifact = joblib.load(Path(row["artifact"]))
    raw = read_table(data, "raw_labels", DATE).head(20)
    predictions = artifact["model"].predict(raw)
    assert predictions.shape == (20,) and set(predictions) <= set(range(10))


def test_pruned_dataset_drops_exactly_the_flags(embedded) -> None:
    _, data, _ = embedded
    issues = read_table(data, "label_issues", DATE)
    pruned = read_table(data, "pruned_dataset", DATE)
    assert set(pruned["id"]) == set(issues.loc[~issues["is_label_issue"], "id"])


def test_history_lists_the_audit(embedded, capsys: pytest.CaptureFixture[str]) -> None:
    _, data, _ = embedded
    assert cli.main(["history", "--data-dir", str(data)]) == 0
    out = capsys.readouterr().out
    assert DATE in out and "1797" in out
