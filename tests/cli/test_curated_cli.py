"""Issue 11 C/D end to end on the embedded digits (true labels known), and bad input of export-dataset / --from.

The loop (one module fixture, two real audits): ``audit --from curated`` before any decision
(the curated version is the raw one), ``review export --top 50``, decisions made from the
true labels (relabel the real errors, keep the rest), ``review import``, then the next
date's ``audit --from curated``. GaussianNB gives probabilities poor enough that the top 50
flags hold examples whose given label is right, so there are keeps to honour.
"""

import datetime
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cl_pipeline import cli
from cl_pipeline.audit.parquet_snapshot import stream_hash
from cl_pipeline.datasets import load_embedded
from cl_pipeline.storage import Warehouse, list_partitions, read_metadata, read_table
from cl_pipeline.storage.decisions import DECISION_SCHEMA, append_decisions, decision_id, read_decisions

FIRST, NEXT = "2024-01-02", "2024-01-03"
CONFIG = """
[source]
kind = "embedded"

[model]
estimator = "sklearn.naive_bayes.GaussianNB"
n_jobs = 1

[checks]
max_noise_rate = 0.6
max_class_noise_rate = 0.9
"""


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _decide_from_truth(queue: pd.DataFrame) -> pd.DataFrame:
    truth = load_embedded().set_index("id")["true_label"].astype(str)
    true = truth.loc[queue["id"]].to_numpy()
    error = true != queue["given_label"].to_numpy()
    filled = queue.copy()
    filled["decision"] = np.where(error, "relabel", "keep")
    filled["new_label"] = np.where(error, true, None)
    filled["true_label"] = true
    return filled


@pytest.fixture(scope="module")
def loop(tmp_path_factory: pytest.TempPathFactory, shared_dagster_home: Path):
    root = tmp_path_factory.mktemp("curated_loop")
    (root / "audit.toml").write_text(CONFIG)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.setenv("CL_PIPELINE_DATA_DIR", str(root / "data"))
        mp.setenv("DAGSTER_HOME", str(shared_dagster_home))
        mp.setenv("CL_PIPELINE_CONFIG", str(root / "audit.toml"))
        outputs = {}
        for step, argv in [
            ("first", ["audit", "--date", FIRST, "--from", "curated"]),
            ("export", ["review", "export", "--top", "50", "--out", str(root / "queue.csv")]),
        ]:
            outputs[step] = cli.main(argv)
        queue = pd.read_csv(root / "queue.csv", dtype=str)
        filled = _decide_from_truth(queue)
        filled.drop(columns=["true_label"]).to_csv(root / "filled.csv", index=False)
        outputs["import"] = cli.main(["review", "import", str(root / "filled.csv"), "--reviewer", "ann"])
        outputs["next"] = cli.main(["audit", "--date", NEXT, "--from", "curated"])
        yield SimpleNamespace(root=root, data=root / "data", filled=filled, codes=outputs)


def test_the_loop_runs(loop) -> None:
    assert loop.codes == {"first": 0, "export": 0, "import": 0, "next": 0}
    errors = loop.filled["decision"] == "relabel"
    assert 0 < errors.sum() < 50  # both kinds of decision are exercised


def test_review_metrics_precision_is_the_hand_computed_one(loop) -> None:
    filled = loop.filled.assign(rank=loop.filled["rank"].astype(int))
    confirmed = filled["decision"] == "relabel"
    row = Warehouse(loop.data).query("SELECT * FROM review_metrics WHERE date = ?", [FIRST]).iloc[0]
    assert (row["reviewed"], row["confirmed"], row["kept"]) == (50, confirmed.sum(), 50 - confirmed.sum())
    assert row["precision"] == pytest.approx(confirmed.mean())
    assert row["reviewed_top_10"] == 10 and row["precision_top_10"] == pytest.approx(
        confirmed[filled["rank"] <= 10].mean()
    )
    assert row["precision_top_100"] == pytest.approx(confirmed.mean()) and row["reviewed_top_1000"] == 50
    audited = read_table(loop.data, "audit_summary", FIRST)["created_at"].iloc[0]
    decided = read_decisions(loop.data).to_pandas()["decided_at"]
    hours = ((decided - audited).dt.total_seconds() / 3600).median()
    assert row["median_hours_to_decision"] == pytest.approx(hours)


def test_the_curated_version_is_in_dataset_versions_and_exports_to_its_hash(loop, tmp_path: Path, capsys) -> None:
    meta = read_metadata(loop.data, "curated_dataset", NEXT)
    version, raw_version = meta["data_version"], read_metadata(loop.data, "raw_labels", FIRST)["data_version"]
    assert read_metadata(loop.data, "raw_labels", NEXT)["data_version"] == version != raw_version
    rows = Warehouse(loop.data).query("SELECT * FROM dataset_versions WHERE version = ?", [version])
    assert len(rows) == 1
    row = rows.iloc[0]
    relabels = int((loop.filled["decision"] == "relabel").sum())
    assert (row["kind"], row["parent_version"], row["date"]) == ("curated", raw_version, NEXT)
    assert (row["decisions_applied"], row["relabeled"], row["kept"], row["dropped"]) == (50, relabels, 50 - relabels, 0)
    assert set(row["stored_in"].split(",")) == {"curated_dataset", "raw_labels"}
    out = tmp_path / "curated.parquet"
    code, stdout, _ = run(capsys, "export-dataset", "--version", version, "--out", str(out))
    assert code == 0 and f"curated version {version}" in stdout
    exported = pq.read_table(out)
    names = exported.schema.names
    assert stream_hash(lambda cols: pq.ParquetFile(out).iter_batches(columns=cols), names) == version
    labels = exported.to_pandas().set_index("id")["label"].astype(str)
    fixed = loop.filled[loop.filled["decision"] == "relabel"]
    assert len(labels) == 1797 and list(labels.loc[fixed["id"]]) == list(fixed["true_label"])


def test_the_raw_parent_no_table_holds_is_read_from_the_source(loop, tmp_path: Path, capsys) -> None:
    out = tmp_path / "raw.csv"
    code, stdout, _ = run(capsys, "export-dataset", "--date", NEXT, "--kind", "raw", "--out", str(out))
    assert code == 0 and "(from source)" in stdout
    exported = pd.read_csv(out)
    pd.testing.assert_series_equal(exported["label"], load_embedded()["label"], check_names=False)


def test_the_curated_audit_estimates_less_noise_and_honours_the_keeps(loop) -> None:
    first = read_table(loop.data, "audit_summary", FIRST).iloc[0]
    after = read_table(loop.data, "audit_summary", NEXT).iloc[0]
    assert after["estimated_noise_rate"] < first["estimated_noise_rate"]
    issues = read_table(loop.data, "label_issues", NEXT).set_index("id")
    kept = loop.filled.loc[loop.filled["decision"] == "keep", "id"]
    assert not issues.loc[kept, "is_label_issue"].any()
    day = read_decisions(loop.data).to_pandas()["decided_at"].dt.date.iloc[0].isoformat()
    assert set(issues.loc[kept, "review_status"]) == {f"kept by reviewer ann on {day}"}
    assert issues.loc[kept, "cl_is_label_issue"].any()  # confident learning still flags some: visible, not hidden
    flagged = issues[issues["is_label_issue"]]
    assert (
        sorted(flagged["rank"].astype(int)) == list(range(1, len(flagged) + 1)) and len(flagged) == after["num_issues"]
    )
    assert (after["start_from"], after["parent_version"], after["decisions_applied"]) == (
        "curated",
        first["data_version"],
        50,
    )


def test_a_curated_audit_before_any_decision_audits_the_raw_version(loop) -> None:
    first = read_table(loop.data, "audit_summary", FIRST).iloc[0]
    assert first["start_from"] == "curated" and first["parent_version"] is None and first["decisions_applied"] == 0
    assert first["reviewed"] == 0  # at audit time
    assert "curation" not in read_metadata(loop.data, "raw_labels", FIRST)
    curated = read_metadata(loop.data, "curated_dataset", FIRST)
    assert curated["data_version"] == first["data_version"]
    assert curated["curation"]["note"].startswith("no review decisions yet: the curated version is the raw snapshot")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        pytest.param(["--version", "0123456789abcdef"], "is not a dataset version", id="unknown-version"),
        pytest.param(["--date", "2024-13-01"], "is not a date YYYY-MM-DD", id="bad-date"),
        pytest.param(["--date", "2023-06-01"], "no curated version of 2023-06-01", id="date-never-audited"),
        pytest.param(["--date", "2023-06-01", "--kind", "raw"], "no raw version of 2023-06-01", id="no-raw-version"),
        pytest.param(["--date", FIRST, "--out-name", "x.txt"], "use a .csv or .parquet", id="bad-suffix"),
        pytest.param(["--date", FIRST, "--out-name", "missing/x.csv"], "does not exist", id="missing-folder"),
    ],
)
def test_export_dataset_bad_input_exits_2_and_writes_nothing(loop, tmp_path: Path, capsys, argv, message) -> None:
    name = argv[argv.index("--out-name") + 1] if "--out-name" in argv else "x.parquet"
    args = [a for i, a in enumerate(argv) if a != "--out-name" and (i == 0 or argv[i - 1] != "--out-name")]
    code, _, err = run(capsys, "export-dataset", *args, "--out", str(tmp_path / name), "--data-dir", str(loop.data))
    assert code == 2 and message in err
    assert list(tmp_path.rglob("*")) == []


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["export-dataset", "--out", "x.csv"], id="neither-date-nor-version"),
        pytest.param(["export-dataset", "--date", FIRST, "--version", "ab", "--out", "x.csv"], id="both"),
        pytest.param(["export-dataset", "--date", FIRST, "--kind", "cooked", "--out", "x.csv"], id="bad-kind"),
        pytest.param(["audit", "--from", "cooked"], id="bad-from"),
    ],
)
def test_bad_arguments_exit_2(argv: list[str], capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2


def test_a_bad_start_from_in_the_config_exits_2(fast_env: Path, run_cli) -> None:
    config = fast_env.parent / "bad.toml"
    config.write_text('[audit]\nstart_from = "cooked"\n')
    code, _, err = run_cli("audit", "--config", str(config), "--date", FIRST)
    assert code == 2 and "audit.start_from" in err
    assert not fast_env.exists()


def test_decisions_leaving_a_class_too_small_exit_2_before_anything_is_written(fast_env: Path, run_cli) -> None:
    frame = load_embedded()
    doomed = frame[frame["label"] == 3]
    when = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
    records = [
        {
            "decision_id": decision_id(i, FIRST, "drop", None, "3", "ann", None, when.isoformat()),
            "id": i,
            "date": FIRST,
            "decision": "drop",
            "new_label": None,
            "given_label": "3",
            "reviewer": "ann",
            "note": None,
            "decided_at": when,
            "imported_at": when,
            "source_file": "f.csv",
            "source_sha256": "0" * 64,
            "source_format": "csv",
        }
        for i in doomed["id"]
    ]
    append_decisions(fast_env, pa.Table.from_pylist(records, DECISION_SCHEMA))
    code, _, err = run_cli("audit", "--date", FIRST, "--from", "curated")
    assert code == 2 and "classes are too small for 5-fold" in err and "'3' has 0" in err
    assert [p.name for p in fast_env.iterdir()] == ["review_decisions"]
    assert list_partitions(fast_env, "raw_labels") == []
