"""pruned_dataset/retrained_model materialized alone follow the recorded verdicts (issue 10, item 1).

A date blocked by ``cl-pipeline audit --max-noise-rate 0.05`` must not be pruned by a UI
materialization of ``pruned_dataset`` alone with the default threshold (0.25): the files,
``check_results``, ``history`` and Dagster's check evaluations must keep saying the same thing.
"""

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from pipeline_helpers import write_small

from cl_pipeline.audit import verdicts
from cl_pipeline.config import ChecksConfig
from cl_pipeline.storage import PartitionStore, list_partitions, read_table, write_table
from cl_pipeline.storage.queries import history_table

PASSED, BLOCKED = "2025-03-01", "2025-03-02"
NOISE = "noise_rate_below_threshold"


@dataclass(frozen=True)
class Audited:
    data: Path
    home: Path
    config: Path


@pytest.fixture(scope="module")
def audited(tmp_path_factory: pytest.TempPathFactory) -> Audited:
    """One DAGSTER_HOME and data dir: PASSED audited with the defaults, BLOCKED with --max-noise-rate 0.05."""
    from cl_pipeline import cli

    root = tmp_path_factory.mktemp("recorded")
    data, home = root / "data", root / "home"
    saved = {k: os.environ.get(k) for k in ("CL_PIPELINE_DATA_DIR", "DAGSTER_HOME")}
    os.environ["CL_PIPELINE_DATA_DIR"], os.environ["DAGSTER_HOME"] = str(data), str(home)
    try:
        config = write_small(root / "in")
        assert cli.main(["audit", "--config", str(config), "--date", PASSED]) == 0
        assert cli.main(["audit", "--config", str(config), "--date", BLOCKED, "--max-noise-rate", "0.05"]) == 3
    finally:
        for key, value in saved.items():
            os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)
    return Audited(data, home, config)


@pytest.fixture
def copy(audited: Audited, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Audited:
    """A private copy of the audited data dir and DAGSTER_HOME, used as this test's."""
    data, home = tmp_path / "data", tmp_path / "home"
    shutil.copytree(audited.data, data)
    shutil.copytree(audited.home, home)
    (data / "warehouse.duckdb").unlink()  # its views point at the original: rebuilt on first use
    monkeypatch.setenv("CL_PIPELINE_DATA_DIR", str(data))
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return Audited(data, home, audited.config)


def _alone(asset: str, date: str, config: Path, settings: dict) -> dg.ExecuteInProcessResult:
    """Materialize one asset of ``date`` alone (no checks in the run), as the UI's "Materialize selected"."""
    from cl_pipeline.definitions import defs

    resource = {"config_file": str(config), "settings": settings}
    return dg.materialize(
        [defs.get_assets_def(asset)],
        partition_key=date,
        instance=dg.DagsterInstance.get(),
        run_config={"resources": {"audit_config": {"config": resource}}},
        raise_on_error=False,
        resources=defs.resources,
    )


def _failure(result: dg.ExecuteInProcessResult) -> str:
    return next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE").event_specific_data.error.message


def _recorded(data: Path, date: str) -> pd.Series:
    return read_table(data, "check_results", f"{date}.{NOISE}").iloc[0]


def _dagster_evaluations(date: str) -> list[bool]:
    """Dagster's evaluations of the noise check for ``date``, newest first (what the UI shows)."""
    key = dg.AssetCheckKey(dg.AssetKey("calibrated_joint"), NOISE)
    records = dg.DagsterInstance.get().event_log_storage.get_asset_check_execution_history(key, limit=20)
    data = [r.event.dagster_event.event_specific_data for r in records if r.event and r.event.dagster_event]
    return [e.passed for e in data if getattr(e, "partition", None) == date]


@pytest.mark.slow
def test_a_date_blocked_by_a_stricter_threshold_is_not_pruned_by_the_default_one(copy: Audited) -> None:
    noise = float(_recorded(copy.data, BLOCKED)["value"])
    assert 0.05 < noise <= ChecksConfig().max_noise_rate  # the default threshold would pass it
    for asset in ("pruned_dataset", "retrained_model"):
        result = _alone(asset, BLOCKED, copy.config, settings={})  # the UI's default configuration: 0.25
        assert not result.success, asset
        message = _failure(result)
        assert f"blocked by check {NOISE}" in message and "threshold 0.0500" in message, message
    for table in ("pruned_dataset", "retrained_model"):
        assert list_partitions(copy.data, table) == [PASSED], table
    recorded = _recorded(copy.data, BLOCKED)  # the record still says: failed at 0.05
    assert not recorded["passed"] and recorded["threshold"] == 0.05
    assert NOISE in history_table(copy.data).set_index("date").loc[BLOCKED, "failed_checks"]
    assert _dagster_evaluations(BLOCKED) == [False]  # the UI: one evaluation, failed


@pytest.mark.slow
def test_a_passed_date_is_not_unpruned_by_a_stricter_run_and_is_repruned_by_an_equal_one(copy: Audited) -> None:
    pruned = PartitionStore(copy.data).path("pruned_dataset", PASSED)
    before = pruned.stat().st_mtime_ns

    stricter = _alone("pruned_dataset", PASSED, copy.config, settings={"checks": {"max_noise_rate": 0.05}})
    assert not stricter.success
    message = _failure(stricter)
    assert "with this run's configuration; the recorded verdict stands" in message, message
    assert pruned.stat().st_mtime_ns == before  # nothing removed: the record says passed
    assert _recorded(copy.data, PASSED)["passed"] and _dagster_evaluations(PASSED) == [True]
    assert NOISE not in history_table(copy.data).set_index("date").loc[PASSED, "failed_checks"]

    same = _alone("pruned_dataset", PASSED, copy.config, settings={})
    assert same.success
    assert pruned.stat().st_mtime_ns > before


@pytest.mark.parametrize(
    "tamper, expected",
    [
        (lambda store: store.remove("check_results", PASSED, key=f"{PASSED}.{NOISE}"), "no verdict of"),
        (lambda store: _set_value(store, 0.5), "is about another Q"),
        (lambda store: _set_value(store, None, passed=False), "is about another Q"),
    ],
    ids=["no-recorded-verdict", "verdict-about-another-Q", "verdict-without-value"],
)
def test_guard_refuses_without_a_current_recorded_verdict(copy: Audited, tamper, expected: str) -> None:
    store = PartitionStore(copy.data)
    assert verdicts.guard(store, PASSED, ChecksConfig()) == []
    tamper(store)
    failed = verdicts.guard(store, PASSED, ChecksConfig())
    assert [v.name for v in failed] == [NOISE] and expected in failed[0].message
    assert list_partitions(copy.data, "pruned_dataset") == [PASSED]  # refused, nothing removed


def _set_value(store: PartitionStore, value: float | None, passed: bool = True) -> None:
    row = store.read("check_results", f"{PASSED}.{NOISE}").drop(columns=["partition"])
    row["value"], row["passed"] = value, passed
    write_table(store.root, "check_results", PASSED, row, key=f"{PASSED}.{NOISE}")


def test_a_recorded_failure_retracts_stale_outputs(copy: Audited) -> None:
    store = PartitionStore(copy.data)
    row = store.read("check_results", f"{PASSED}.{NOISE}").drop(columns=["partition"])
    row["passed"], row["threshold"] = False, 0.01
    write_table(store.root, "check_results", PASSED, row, key=f"{PASSED}.{NOISE}")  # as a crash after the check
    failed = verdicts.guard(store, PASSED, ChecksConfig())
    assert [v.name for v in failed] == [NOISE]
    assert list_partitions(copy.data, "pruned_dataset") == [] and list_partitions(copy.data, "retrained_model") == []
