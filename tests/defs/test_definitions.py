"""The Definitions load; the schedule targets the audit job; executor and checks as documented."""

import datetime as dt
from pathlib import Path

import dagster as dg

from cl_pipeline.audit.stages import STAGES
from cl_pipeline.definitions import defs
from cl_pipeline.defs.runs import DAGSTER_YAML

ASSETS = set(STAGES) | {"monitor_scores"}
CHECKS = {
    "input_valid",
    "noise_rate_below_threshold",
    "class_noise_below_threshold",
    "retrained_not_worse_than_baseline",
    "annotators_above_min_quality",
    "noise_rate_vs_reference",
}


def test_definitions_load_with_fixed_asset_keys() -> None:
    defs.validate_loadable(defs)
    job = defs.resolve_job_def("audit_job")
    keys = {key.to_user_string() for key in job.asset_layer.asset_graph.get_all_asset_keys()}
    assert keys == ASSETS
    assert job.executor_def.name == "in_process_or_capped_multiprocess"
    assert job.partitions_def is not None and job.partitions_def.get_partition_keys()[0] == "2024-01-01"


def test_the_whole_definitions_resolve() -> None:
    """Everything the code location holds, as the UI and the daemon load it."""
    repo = defs.get_repository_def()
    assert {key.to_user_string() for key in repo.asset_graph.get_all_asset_keys()} == ASSETS
    assert {key.name for key in repo.asset_graph.asset_check_keys} == CHECKS
    assert "audit_job" in {job.name for job in repo.get_all_jobs()}
    assert [schedule.name for schedule in repo.schedule_defs] == ["nightly_audit"]
    assert set(repo.get_top_level_resources()) == {"audit_config", "storage", "compute"}


def test_schedule_targets_audit_job_and_previous_day() -> None:
    schedule = defs.resolve_schedule_def("nightly_audit")
    assert schedule.job_name == "audit_job"
    assert schedule.cron_schedule == "0 2 * * *"
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    context = dg.build_schedule_context(scheduled_execution_time=dt.datetime(2025, 3, 2, 2, 0, tzinfo=dt.UTC))
    request = schedule(context)
    assert request.partition_key == "2025-03-01"


def test_blocking_checks_guard_pruning() -> None:
    graph = defs.resolve_asset_graph()
    blocking = {key.name for key in graph.asset_check_keys if graph.get_check_spec(key).blocking}
    assert blocking == {"input_valid", "noise_rate_below_threshold", "class_noise_below_threshold"}
    upstream = graph.get(dg.AssetKey("label_issues")).parent_keys
    assert dg.AssetKey("calibrated_joint") not in upstream  # so a failed check on Q keeps label_issues
    assert dg.AssetKey("calibrated_joint") in graph.get(dg.AssetKey("pruned_dataset")).parent_keys


def test_multiprocess_executor_selectable() -> None:
    job = defs.resolve_job_def("audit_job")
    config = {"execution": {"config": {"multiprocess": {"max_concurrent": 2}}}}
    assert dg.validate_run_config(job, config) is not None


def test_dagster_yaml_matches_cli_default() -> None:
    shipped = (Path(__file__).parents[2] / "dagster_home" / "dagster.yaml").read_text()
    assert shipped == DAGSTER_YAML
    assert "telemetry:\n  enabled: false" in shipped
