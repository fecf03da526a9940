"""benchmarks/reliability.py: its pieces on small inputs (the full run, ``make bench-reliability``, takes minutes).

The inspection must find what a kill could leave (a torn file, a temp file, a view that fails),
the comparison must find a changed table and ignore run ids and timings, the pytest plugin must
count real CLI calls and their exit codes, and the report must add them up.
"""

from pathlib import Path

import duckdb
import pandas as pd
import pytest

from benchmarks import reliability
from benchmarks.reliability import DATE, CaseResult, KillResult


def _data_dir(root: Path, value: float = 0.5, run_id: str = "r1") -> Path:
    """Two tables of DATE and a warehouse with one view over each."""
    data = root / "data"
    for table, frame in {
        "label_issues": pd.DataFrame({"id": ["a", "b"], "label_quality": [value, 0.9]}),
        "audit_summary": pd.DataFrame({"n": [2], "run_id": [run_id], "seconds_raw_labels": [0.1]}),
    }.items():
        (data / table).mkdir(parents=True, exist_ok=True)
        frame.to_parquet(data / table / f"{DATE}.parquet")
    with duckdb.connect(str(data / "warehouse.duckdb")) as con:
        for table in ("label_issues", "audit_summary"):
            con.execute(f"CREATE VIEW {table} AS SELECT * FROM read_parquet('{data / table}/*.parquet')")
    return data


def test_inspection_finds_torn_files_temp_files_and_failing_views(tmp_path: Path) -> None:
    data = _data_dir(tmp_path)
    assert reliability.inspect_data_dir(data) == {"unreadable": [], "temp_files": [], "failing_views": []}
    torn = data / "label_issues" / f"{DATE}.parquet"
    torn.write_bytes(torn.read_bytes()[:20])
    (data / "audit_summary" / f".{DATE}.parquet.123.x.tmp").write_bytes(b"half")
    found = reliability.inspect_data_dir(data)
    assert [f.split(":")[0] for f in found["unreadable"]] == [f"label_issues/{DATE}.parquet"]
    assert found["temp_files"] == [f"audit_summary/.{DATE}.parquet.123.x.tmp"]
    assert [f.split(":")[0] for f in found["failing_views"]] == ["label_issues"]


def test_tables_differ_only_where_results_do(tmp_path: Path) -> None:
    reference = reliability.tables(_data_dir(tmp_path / "a"))
    assert reliability.differences(reference, reliability.tables(_data_dir(tmp_path / "b", run_id="r2"))) == []
    changed = reliability.tables(_data_dir(tmp_path / "c", value=0.25))
    assert reliability.differences(reference, changed) == [f"different label_issues/{DATE}.parquet"]
    (tmp_path / "c" / "data" / "audit_summary" / f"{DATE}.parquet").unlink()
    assert f"missing audit_summary/{DATE}.parquet" in reliability.differences(
        reference, reliability.tables(tmp_path / "c" / "data")
    )


@pytest.mark.parametrize(
    "line, stage",
    [
        ("  raw_labels       240 rows (0.1 s)\n", "raw_labels"),
        ("  check            input_valid: passed\n", "check"),
        ("auditing partition\n", None),
    ],
    ids=["stage", "check", "other"],
)
def test_progress_lines_name_the_stage(line: str, stage: str | None) -> None:
    match = reliability._PROGRESS.match(line)
    assert (match.group(1) if match else None) == stage


def test_plugin_counts_the_cli_calls_of_real_bad_input_cases() -> None:
    cases = reliability.bad_input_trials(("tests/cli/test_find_bad_inputs.py",), "max and nan")
    assert cases, "no case ran"
    for case in cases:
        assert case.outcome == "passed" and case.codes == [2] and case.kind == "bad input", case
        assert case.group == "find"


def test_report_adds_up() -> None:
    cases = [
        CaseResult("tests/cli/test_find_bad_inputs.py::t[nan]", "passed", [2]),
        CaseResult("tests/cli/test_fuzz_inputs.py::test_audit_bad[x]", "passed", [2, 2, 2]),
        CaseResult("tests/cli/test_fuzz_inputs.py::test_audit_valid", "passed", [0, 3]),
        CaseResult("tests/cli/test_bad_inputs.py::test_validator", "failed", []),
    ]
    clean = {"unreadable": [], "temp_files": [], "failing_views": []}
    survived = KillResult("raw_labels", "fresh", "after raw_labels", clean | {"temp_files": ["x.tmp"]}, 0, clean, [])
    lost = KillResult("label_issues", "overwrite", "after label_issues", clean, 0, clean, ["different t"])
    finished = KillResult("timed 99.0 s", "fresh", None, clean, 0, clean, [])
    text = reliability._markdown(cases, [survived, lost, finished], [[]], 61.0, quick=True)
    assert "- kinds of bad input: 2" in text
    assert "- kills survived: 1 of 2" in text and "**Kills survived: 1 of 2.**" in text
    assert "| find | 1 | 1 | 1 |" in text and "| audit, history, diff | 1 | 3 | 1 | 1 (2) | 1 | 1 |" in text
    assert "Failed cases: `tests/cli/test_bad_inputs.py::test_validator`" in text
    assert "- failures: 2" in text
