"""The capped multiprocess executor really runs the audit (each step in its own process).

The audit is of the small tabular dataset (``pipeline_helpers.write_small``, 240 rows, given to
the step processes through env ``CL_PIPELINE_CONFIG``), not the embedded digits: what is tested
is the executor (every asset materialized, steps in child processes), which does not depend on
the data's size. The step processes are forked from a forkserver that preloaded the definitions
(Dagster's ``start_method`` option) instead of each being spawned as a fresh interpreter.
"""

from pathlib import Path

import duckdb
import pytest
from dagster import DagsterInstance, execute_job, reconstructable
from pipeline_helpers import write_small

from cl_pipeline.definitions import audit_job_definition
from cl_pipeline.defs.runs import DAGSTER_YAML


@pytest.mark.slow
def test_capped_multiprocess_run_materializes_every_asset(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CL_PIPELINE_CONFIG", str(write_small(env.parent / "in")))  # read by every step process
    home = env.parent / "dagster_home"  # the fixture's DAGSTER_HOME; Dagster needs it to exist
    home.mkdir()
    (home / "dagster.yaml").write_text(DAGSTER_YAML)
    # forkserver with the definitions preloaded: each step is still a child process of its own (asserted
    # below) but does not pay a fresh interpreter's Dagster + cl_pipeline imports (~5 s a step on 2 cores)
    forkserver = {"forkserver": {"preload_modules": ["cl_pipeline.definitions"]}}
    run_config = {"execution": {"config": {"multiprocess": {"max_concurrent": 2, "start_method": forkserver}}}}
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
