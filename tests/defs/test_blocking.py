"""Blocking checks across runs: stale downstream removed, per-partition records, no bypass."""

from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from pipeline_helpers import write_small

from cl_pipeline.audit import verdicts
from cl_pipeline.audit.stages import STAGES
from cl_pipeline.defs.runs import DAGSTER_YAML
from cl_pipeline.storage import (
    PartitionStore,
    Warehouse,
    list_partitions,
    read_metadata,
    read_table,
    write_table,
)

DATE, OTHER = "2025-02-01", "2025-02-02"


def _check_rows(data: Path, date: str) -> pd.DataFrame:
    return Warehouse(data).query(
        "SELECT check_name, passed FROM check_results WHERE partition = ? ORDER BY check_name", [date]
    )


def test_blocked_rerun_removes_the_earlier_runs_pruned_set_and_model(env: Path, run_cli) -> None:
    config = write_small(env.parent / "in")
    assert run_cli("audit", "--config", str(config), "--date", DATE)[0] == 0
    model = env / "artifacts" / "retrained_model" / f"{DATE}.joblib"
    assert model.is_file() and list_partitions(env, "pruned_dataset") == [DATE]
    assert "retrained_not_worse_than_baseline" in set(_check_rows(env, DATE)["check_name"])
    timed = Warehouse(env).query("SELECT stage, seconds FROM stage_timings WHERE partition = ?", [DATE])
    assert set(timed["stage"]) == set(STAGES)
    assert (timed["seconds"] > 0).all()

    code, out, err = run_cli("audit", "--config", str(config), "--date", DATE, "--max-noise-rate", "0.001")
    assert code == 3 and "BLOCKED by check noise_rate_below_threshold" in err
    for table in verdicts.BLOCKED_BY_Q:
        assert list_partitions(env, table) == [], table
    assert not model.exists()
    assert "hold-out accuracy" not in out  # nothing reported from the earlier run's model
    checks = _check_rows(env, DATE).set_index("check_name")["passed"]
    assert "retrained_not_worse_than_baseline" not in checks.index
    assert not checks["noise_rate_below_threshold"]
    assert list_partitions(env, "label_issues") == [DATE]  # issues and Q stay
    views = Warehouse(env).views()  # a view over no files would fail every query: dropped
    assert "pruned_dataset" not in views and "label_issues" in views
    timed = Warehouse(env).query("SELECT stage FROM stage_timings WHERE partition = ?", [DATE])
    assert "retrained_model" not in set(timed["stage"])


def _job_run(date: str, max_noise_rate: float, config: Path) -> dg.ExecuteInProcessResult:
    from cl_pipeline.definitions import defs

    settings = {"checks": {"max_noise_rate": max_noise_rate}}
    run_config = {"resources": {"audit_config": {"config": {"config_file": str(config), "settings": settings}}}}
    return defs.resolve_job_def("audit_job").execute_in_process(
        partition_key=date, instance=dg.DagsterInstance.get(), run_config=run_config, raise_on_error=False
    )


@pytest.mark.slow
def test_dagster_runs_record_checks_per_partition_and_cannot_bypass_a_block(env: Path) -> None:
    home = env.parent / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(DAGSTER_YAML)
    config = write_small(env.parent / "in")
    _job_run(DATE, 0.001, config)
    passed = _job_run(OTHER, 0.9, config)
    assert passed.success
    assert list_partitions(env, "pruned_dataset") == [OTHER]
    with dg.DagsterInstance.get() as instance:
        key = dg.AssetCheckKey(dg.AssetKey("calibrated_joint"), "noise_rate_below_threshold")
        records = instance.event_log_storage.get_asset_check_execution_history(key, limit=10)
        evaluations = [
            r.event.dagster_event.event_specific_data
            for r in records
            if r.event and r.event.dagster_event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION
        ]
        by_date = {e.partition: e.passed for e in evaluations}
    assert by_date == {DATE: False, OTHER: True}

    # materializing pruned_dataset alone (no checks in the run) for the blocked date must fail
    from cl_pipeline.definitions import defs

    settings = {"checks": {"max_noise_rate": 0.001}}
    run_config = {"resources": {"audit_config": {"config": {"config_file": str(config), "settings": settings}}}}
    for asset in ("pruned_dataset", "retrained_model"):
        alone = dg.materialize(
            [defs.get_assets_def(asset)],
            partition_key=DATE,
            instance=dg.DagsterInstance.get(),
            run_config=run_config,
            raise_on_error=False,
            resources=defs.resources,
        )
        assert not alone.success, asset
        failure = next(e for e in alone.all_events if e.event_type_value == "STEP_FAILURE")
        assert "blocked by check noise_rate_below_threshold" in failure.event_specific_data.error.message
    assert list_partitions(env, "pruned_dataset") == [OTHER]
    assert list_partitions(env, "retrained_model") == [OTHER]


def test_input_check_fails_when_the_stored_snapshot_changed(fast_env: Path, run_cli) -> None:
    config_path = write_small(fast_env.parent / "in")
    assert run_cli("audit", "--config", str(config_path), "--date", DATE)[0] == 0
    store = PartitionStore(fast_env)
    assert verdicts.input_verdict(store, DATE).passed

    stored, meta = read_table(fast_env, "raw_labels", DATE), read_metadata(fast_env, "raw_labels", DATE)
    other = stored["label"].iloc[1] if stored["label"].iloc[1] != stored["label"].iloc[0] else "emu"
    stored.loc[0, "label"] = other  # a relabel after the audit, label_index left as it was
    write_table(fast_env, "raw_labels", DATE, stored.drop(columns=["partition"]), meta)
    verdict = verdicts.input_verdict(store, DATE)
    assert not verdict.passed and "changed after the audit wrote it" in verdict.message


def _duckdb_frame() -> pd.DataFrame:
    import duckdb

    with duckdb.connect() as con:  # NULL booleans/ints: DuckDB leaves arbitrary bytes under the mask
        return con.execute(
            "SELECT i, CASE WHEN i % 3 = 0 THEN NULL ELSE i % 2 = 0 END AS b, "
            "CASE WHEN i % 4 = 0 THEN NULL ELSE i END AS n, 'x' || i AS s, "
            "TIMESTAMP '2024-01-01' + i * INTERVAL 1 HOUR AS t FROM range(30) t(i)"
        ).df()


FRAMES = {
    "duckdb nullable columns": _duckdb_frame,
    "nullable boolean": lambda: pd.DataFrame({"b": pd.array([True, None, False], dtype="boolean")}),
    "nullable int": lambda: pd.DataFrame({"x": pd.array([1, None, 3], dtype="Int64")}),
    "object strings": lambda: pd.DataFrame({"s": pd.Series(["a", "b", None], dtype=object)}),
    "categorical": lambda: pd.DataFrame({"c": pd.Categorical(["a", "b", "a"])}),
    "tz timestamps": lambda: pd.DataFrame({"t": pd.date_range("2024-01-01", periods=3, tz="UTC")}),
    "second timestamps": lambda: pd.DataFrame(
        {"t": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-03"]).astype("datetime64[s]")}
    ),  # stored as milliseconds
    "list cells": lambda: pd.DataFrame({"l": [[1, 2], [3], None]}),
    "dict cells, different keys": lambda: pd.DataFrame({"d": [{"a": 1}, {"b": 2}, None]}),  # one struct in Arrow
}


@pytest.mark.parametrize("kind", sorted(FRAMES))
def test_content_hash_survives_the_parquet_round_trip(kind: str, tmp_path: Path) -> None:
    from cl_pipeline.audit.snapshot import content_hash, stored_form

    frame = FRAMES[kind]()
    write_table(tmp_path, "t", DATE, frame)
    stored = read_table(tmp_path, "t", DATE).drop(columns=["partition"])
    # the data version is the hash of the stored form: else input_valid would fail on a clean run
    assert content_hash(stored) == content_hash(stored_form(frame))
    changed = frame.iloc[[1, *range(1, len(frame))]].reset_index(drop=True)  # row 0 := row 1 (they differ)
    assert content_hash(stored_form(changed)) != content_hash(stored_form(frame))


def _materialize_alone(asset: str, date: str, config: Path, settings: dict) -> dg.ExecuteInProcessResult:
    from cl_pipeline.definitions import defs

    run_config = {"resources": {"audit_config": {"config": {"config_file": str(config), "settings": settings}}}}
    return dg.materialize(
        [defs.get_assets_def(asset)],
        partition_key=date,
        instance=dg.DagsterInstance.get(),
        run_config=run_config,
        raise_on_error=False,
        resources=defs.resources,
    )


def _failure_message(result: dg.ExecuteInProcessResult) -> str:
    return next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE").event_specific_data.error.message


@pytest.mark.slow
def test_refusal_also_removes_stale_outputs_and_covers_the_input_check(env: Path, run_cli) -> None:
    config = write_small(env.parent / "in")
    assert run_cli("audit", "--config", str(config), "--date", DATE)[0] == 0
    model = env / "artifacts" / "retrained_model" / f"{DATE}.joblib"
    assert model.is_file()

    # a stricter threshold, only pruned_dataset materialized: refused; the recorded verdict (passed)
    # stands, so the outputs it allowed stay (issue 10, item 1: files and records agree)
    result = _materialize_alone("pruned_dataset", DATE, config, {"checks": {"max_noise_rate": 0.01}})
    assert not result.success and "blocked by check noise_rate_below_threshold" in _failure_message(result)
    assert list_partitions(env, "pruned_dataset") == list_partitions(env, "retrained_model") == [DATE]
    assert model.exists()

    # the stored snapshot changed after the audit: no pruning from it either
    stored, meta = read_table(env, "raw_labels", DATE), read_metadata(env, "raw_labels", DATE)
    stored.loc[0, "f0"] = stored.loc[0, "f0"] + 1.0
    write_table(env, "raw_labels", DATE, stored.drop(columns=["partition"]), meta)
    result = _materialize_alone("pruned_dataset", DATE, config, {})
    assert not result.success and "blocked by check input_valid" in _failure_message(result)
    assert list_partitions(env, "pruned_dataset") == list_partitions(env, "retrained_model") == []
    assert not model.exists()  # outputs derived from the changed snapshot go
