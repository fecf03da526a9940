"""``cl-pipeline review export|import`` after a real audit, and import racing an audit in real processes."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from pipeline_helpers import SMALL_CONFIG, make_small_frame

from cl_pipeline import cli
from cl_pipeline.storage.decisions import decision_files, read_decisions
from cl_pipeline.storage.warehouse import Warehouse

DATE, OTHER = "2024-02-01", "2024-02-02"


def _config(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    make_small_frame().to_csv(folder / "labels.csv", index=False)
    text = SMALL_CONFIG.format(path="labels.csv").replace(
        'categorical = ["colour"]', 'categorical = ["colour"]\ndisplay = ["colour"]'
    )
    (folder / "audit.toml").write_text(text)
    return folder / "audit.toml"


@pytest.fixture(scope="module")
def audited(tmp_path_factory: pytest.TempPathFactory, shared_dagster_home: Path):
    """One real audit of the small dataset (display column ``colour``); yields (config, data dir)."""
    root = tmp_path_factory.mktemp("review_cli")
    config = _config(root)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.setenv("CL_PIPELINE_DATA_DIR", str(root / "data"))
        mp.setenv("DAGSTER_HOME", str(shared_dagster_home))
        mp.setenv("CL_PIPELINE_CONFIG", str(config))
        assert cli.main(["audit", "--date", DATE]) == 0
        yield config, root / "data"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_export_import_and_the_queue_shrinks(audited, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    config, data = audited
    capsys.readouterr()
    queue_file = tmp_path / "queue.csv"
    code, out, _ = run(capsys, "review", "export", "--top", "6", "--out", str(queue_file), "--data-dir", str(data))
    assert code == 0 and f"wrote 6 flagged examples of {DATE} not yet decided" in out
    queue = pd.read_csv(queue_file, dtype=str)
    assert list(queue.columns[:6]) == ["id", "date", "rank", "given_label", "suggested_label", "label_quality"]
    frame = make_small_frame().set_index("id")
    assert list(queue["colour"]) == list(frame.loc[queue["id"], "colour"])
    queue["decision"] = ["relabel", "keep", "drop", None, None, None]
    queue.loc[0, "new_label"] = queue.loc[0, "suggested_label"]
    filled = tmp_path / "filled.csv"
    queue.to_csv(filled, index=False)
    args = ("review", "import", str(filled), "--reviewer", "eve", "--data-dir", str(data))
    code, out, _ = run(capsys, *args)
    assert code == 0 and "imported 3 new decisions" in out and "3 rows without a decision skipped" in out
    code, out, _ = run(capsys, *args)
    assert code == 0 and "all already imported, nothing written" in out
    latest = read_decisions(data, latest_only=True).to_pandas().set_index("id")
    assert list(latest.loc[queue["id"][:3], "decision"]) == ["relabel", "keep", "drop"]
    assert (latest["reviewer"] == "eve").all()
    code, out, _ = run(
        capsys, "review", "export", "--top", "6", "--out", str(tmp_path / "q2.csv"), "--data-dir", str(data)
    )
    after = pd.read_csv(tmp_path / "q2.csv", dtype=str)
    assert list(after["id"][:3]) == list(queue["id"][3:]) and not set(after["id"]) & set(queue["id"][:3])


def test_label_studio_export_prints_the_labeling_config(audited, tmp_path: Path, capsys):
    _, data = audited
    capsys.readouterr()
    out_file = tmp_path / "tasks.json"
    code, out, _ = run(
        capsys, "review", "export", "--format", "label-studio", "--out", str(out_file), "--data-dir", str(data)
    )
    assert code == 0 and "<Choices" in out and '<Choice value="emu"/>' in out
    assert (tmp_path / "tasks.label_config.xml").read_text() in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["review", "export", "--top", "0", "--out", "q.csv"], "--top: must be an integer >= 1"),
        (["review", "export", "--format", "xml", "--out", "q.csv"], "invalid choice: 'xml'"),
        (["review", "export"], "the following arguments are required: --out"),
    ],
    ids=["top-zero", "format", "no-out"],
)
def test_bad_export_arguments_exit_2(audited, capsys, argv, message):
    with pytest.raises(SystemExit) as exited:
        cli.main(argv)
    assert exited.value.code == 2 and message in capsys.readouterr().err


def test_a_bad_decision_file_exits_2_naming_the_row_and_writes_nothing(audited, tmp_path, capsys):
    _, data = audited
    capsys.readouterr()
    before = sorted(decision_files(data))
    bad = tmp_path / "bad.csv"
    bad.write_text("id,decision,new_label\nex-0000,keep,\nex-0001,relabel,yak\n")
    code, out, err = run(capsys, "review", "import", str(bad), "--data-dir", str(data))
    assert code == 2 and out == ""
    assert "error:" in err and "row 2: new_label 'yak' is not a class (cat, dog, emu)" in err
    assert sorted(decision_files(data)) == before


def test_export_with_nothing_audited_exits_2(tmp_path, capsys):
    code, _, err = run(capsys, "review", "export", "--out", str(tmp_path / "q.csv"), "--data-dir", str(tmp_path / "d"))
    assert code == 2 and "no audited date" in err and not (tmp_path / "q.csv").exists()


def _env(data: Path, home: Path, config: Path) -> dict[str, str]:
    return dict(os.environ, CL_PIPELINE_DATA_DIR=str(data), DAGSTER_HOME=str(home), CL_PIPELINE_CONFIG=str(config))


@pytest.mark.slow
def test_imports_racing_an_audit_lose_no_decision(audited, tmp_path: Path, shared_dagster_home: Path):
    """An audit of another date runs in one process while three imports run in three others."""
    config, data = audited
    flagged = pd.read_parquet(data / "label_issues" / f"{DATE}.parquet").query("is_label_issue").sort_values("rank")
    ids = list(flagged["id"])[6:18]  # not the ones the test above decided
    files = []
    for k in range(3):
        rows = pd.DataFrame({"id": ids[4 * k : 4 * k + 4], "decision": "drop", "note": f"batch {k}"})
        files.append(tmp_path / f"d{k}.csv")
        rows.to_csv(files[-1], index=False)
    env = _env(data, shared_dagster_home, config)
    before = {r["decision_id"] for r in read_decisions(data).to_pylist()}
    audit = subprocess.Popen(
        [sys.executable, "-m", "cl_pipeline.cli", "audit", "--date", OTHER],
        env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while not (data / "raw_labels" / f"{OTHER}.parquet").exists() and audit.poll() is None:
        assert time.monotonic() < deadline, "the audit did not start writing"
        time.sleep(0.05)
    imports = [
        subprocess.Popen(
            [sys.executable, "-m", "cl_pipeline.cli", "review", "import", str(f), "--reviewer", f"r{k}"],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
        for k, f in enumerate(files)
    ]
    outputs = [p.communicate(timeout=300)[0] for p in imports]
    audit_output = audit.communicate(timeout=300)[0]
    assert all(p.returncode == 0 for p in imports), outputs
    assert audit.returncode == 0, audit_output
    assert (data / "audit_summary" / f"{OTHER}.parquet").exists()
    new = [r for r in read_decisions(data).to_pylist() if r["decision_id"] not in before]
    assert sorted(r["id"] for r in new) == sorted(ids)
    assert {r["id"]: r["reviewer"] for r in new} == {i: f"r{ids.index(i) // 4}" for i in ids}
    Warehouse(data).reconcile(["review_decisions"])
    in_view = Warehouse(data).query("SELECT id FROM review_decisions WHERE date = ? AND decision = 'drop'", [DATE])
    assert set(ids) <= set(in_view["id"])
