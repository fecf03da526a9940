"""One audit of a date at a time (issue 10, item 2): a per-date flock in the data dir.

Two audits of the same date started together with different thresholds run one after the
other (the second says it waits), and leave files, views and records of the last one; an
audit that cannot get the lock within ``CL_PIPELINE_LOCK_TIMEOUT`` exits 2 naming the holder,
having run nothing.
"""

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
from pipeline_helpers import write_small

from cl_pipeline.storage import PartitionStore, Warehouse, list_partitions, read_table
from cl_pipeline.storage.locks import audit_lock_path, file_lock

NOISE = "noise_rate_below_threshold"


def test_an_audit_of_a_locked_date_exits_2_naming_the_holder(env: Path, run_cli, monkeypatch) -> None:
    date = "2025-07-01"
    config = write_small(env.parent / "in")
    monkeypatch.setenv("CL_PIPELINE_LOCK_TIMEOUT", "0.5")
    with file_lock(audit_lock_path(env, date), timeout=0, what="test"):
        code, _, err = run_cli("audit", "--config", str(config), "--date", date)
    assert code == 2
    assert f"the audit of {date} is locked by another process (pid {os.getpid()}" in err
    assert list_partitions(env, "raw_labels") == []  # nothing ran
    runs = dg.DagsterInstance.get().get_runs(dg.RunsFilter(tags={"dagster/partition": date}))
    assert runs == []


@pytest.mark.slow
def test_two_audits_of_a_date_at_once_run_one_after_the_other(tmp_path: Path, monkeypatch) -> None:
    date = "2025-07-02"
    data, config = tmp_path / "data", write_small(tmp_path / "in")
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "home"), "CL_PIPELINE_DATA_DIR": str(data)}
    base = [sys.executable, "-m", "cl_pipeline.cli", "audit", "--config", str(config), "--date", date]
    children = {
        threshold: subprocess.Popen(
            [*base, "--max-noise-rate", threshold], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for threshold in ("0.9", "0.05")
    }
    outputs = {t: child.communicate(timeout=600) for t, child in children.items()}
    codes = {t: child.returncode for t, child in children.items()}
    assert codes == {"0.9": 0, "0.05": 3}, outputs
    assert sum("waiting for the other audit" in err for _, err in outputs.values()) == 1

    monkeypatch.setenv("DAGSTER_HOME", env["DAGSTER_HOME"])
    with dg.DagsterInstance.get() as instance:
        records = sorted(instance.get_run_records(), key=lambda r: r.start_time)
    assert len(records) == 2
    first, last = records
    assert first.end_time <= last.start_time, "the two runs overlapped"
    last_threshold = last.dagster_run.run_config["resources"]["audit_config"]["config"]["settings"]["checks"]
    recorded = read_table(data, "check_results", f"{date}.{NOISE}").iloc[0]
    assert recorded["threshold"] == last_threshold["max_noise_rate"]  # the record is the last audit's
    pruned = list_partitions(data, "pruned_dataset") == [date]
    assert pruned == bool(recorded["passed"])  # the files agree with it
    views = set(Warehouse(data).views())
    tables = {p.name for p in data.iterdir() if p.is_dir() and any(p.glob("*.parquet"))}
    assert tables <= views, sorted(tables - views)  # every table with files has its view
    assert PartitionStore(data).warehouse.query("SELECT count(*) AS n FROM label_issues")["n"].iloc[0] == 240
