"""The capped multiprocess executor really runs the audit (each step in its own process)."""

from pathlib import Path

import duckdb
import pytest
from dagster import DagsterInstance, execute_job, reconstructable

from cl_pipeline.definitions import audit_job_definition
from cl_pipeline.defs.runs import DAGSTER_YAML


@pytest.mark.slow
def test_capped_multiprocess_run_materializes_every_asset(env: Path) -> None:
    home = env.parent / "dagster_home"  # the fixture's DAGSTER_HOME; Dagster needs it to exist
    home.mkdir()
    (home / "dagster.yaml").write_text(DAGSTER_YAML)
    run_config = {"execution": {"config": {"multiprocess": {"max_concurrent": 2}}}}
    with DagsterInstance.get() as instance:
        result = execute_job(
            reconstructable(audit_job_definition),
            instance=instance,
            run_config=run_config,
            tags={"dagster/partition": "2026-01-15"},
        )
        assert result.success
        pids = {e.pid for e in result.all_events if e.step_key == "oof_pred_probs" and e.pid}
        parent = {e.pid for e in result.all_events if e.event_type_value == "RUN_START"}
        assert pids and pids.isdisjoint(parent)  # the step ran in a child process
    with duckdb.connect(str(env / "warehouse.duckdb"), read_only=True) as con:
        (rows,) = con.execute("SELECT count(*) FROM audit_summary WHERE partition = ?", ["2026-01-15"]).fetchone()
        (models,) = con.execute("SELECT count(*) FROM retrained_model").fetchone()
    assert rows == 1 and models >= 1
