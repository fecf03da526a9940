"""What the Dagster record says about an audit (issue 10, items 16 and 19), read back from the instance.

Item 16: a blocked date says "blocked by check X: value > threshold" where the user looks (the
run's failure, the stopped assets' events, a run tag, the check's metadata), not only
``DagsterAssetCheckFailedError``; and it still stops pruning and retraining.
Item 19: ``audit_summary`` shows every field the docs promise; the K x K tables do not call
their class pairs "rows"; hold-out scores say which labels they are measured against.
"""

import re

import dagster as dg
import pytest

from cl_pipeline.audit.render import significant
from cl_pipeline.storage import list_partitions, read_table

from .conftest import BLOCKED, PASSED, AuditedHome

DATE = PASSED
NOISE = "noise_rate_below_threshold"


def _materialization(asset: str, partition: str) -> dict:
    instance = dg.DagsterInstance.get()
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[partition]), limit=1
    ).records
    assert records, (asset, partition)
    return dict(records[0].asset_materialization.metadata)


def _run_of(partition: str) -> dg.DagsterRun:
    runs = dg.DagsterInstance.get().get_runs(dg.RunsFilter(job_name="audit_job", tags={"dagster/partition": partition}))
    assert len(runs) == 1, partition
    return runs[0]


def test_exit_codes(audits: AuditedHome) -> None:
    assert audits.codes == (0, 3)


# item 19 ------------------------------------------------------------------------------------------


def test_audit_summary_shows_every_column_of_its_table(audits: AuditedHome) -> None:
    columns = set(read_table(audits.data, "audit_summary", DATE).columns) - {"partition"}
    metadata = _materialization("audit_summary", DATE)
    assert len(columns) > 7
    assert columns <= set(metadata), sorted(columns - set(metadata))
    assert metadata["thresholds"].value.keys() == {"cat", "dog", "emu"}
    assert metadata["precision"].value == significant(metadata["precision"].value)


@pytest.mark.parametrize("asset", ["confident_joint", "calibrated_joint"])
def test_class_pair_tables_do_not_call_pairs_rows(audits: AuditedHome, asset: str) -> None:
    metadata = _materialization(asset, DATE)
    assert "dagster/row_count" not in metadata  # the UI's "Row count" would be K x K = 9
    assert metadata["classes"].value == 3 and metadata["class_pairs"].value == 9


@pytest.mark.parametrize("asset", ["raw_labels", "label_issues"])
def test_example_tables_keep_their_row_count(audits: AuditedHome, asset: str) -> None:
    assert _materialization(asset, DATE)["dagster/row_count"].value == 240


def test_holdout_scores_say_which_labels_they_are_measured_against(audits: AuditedHome) -> None:
    metadata = _materialization("retrained_model", DATE)
    for labels in ("given", "true"):
        for model in ("baseline", "retrained"):
            assert f"holdout accuracy vs {labels} labels: {model}" in metadata
    assert "baseline_accuracy" not in metadata and "retrained_true_accuracy" not in metadata


def test_summary_and_check_report_the_same_scores(audits: AuditedHome) -> None:
    """The CLI summary marks the scores the retrain check compares, and they are the check's numbers."""
    from cl_pipeline.audit.render import report_text
    from cl_pipeline.storage.queries import audit_report

    text = report_text(DATE, audit_report(audits.data, DATE))
    checked = [line for line in text.splitlines() if "checked by retrained_not_worse_than_baseline" in line]
    assert len(checked) == 1 and "vs the true labels" in checked[0], text
    baseline, retrained = re.findall(r"baseline (\d\.\d+), retrained (\d\.\d+)", checked[0])[0]
    evaluation = next(e for e in _check_evaluations(DATE) if e.check_name == "retrained_not_worse_than_baseline")
    assert f"retrained {retrained} vs baseline {baseline}" in evaluation.description
    assert "vs the given labels" in text  # both measures are printed, each named


# item 16 ------------------------------------------------------------------------------------------


def _check_evaluations(partition: str) -> list:
    records = dg.DagsterInstance.get().all_logs(
        _run_of(partition).run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
    )
    return [r.dagster_event.event_specific_data for r in records]


def test_blocked_run_fails_with_the_check_value_and_threshold(audits: AuditedHome) -> None:
    instance = dg.DagsterInstance.get()
    run = _run_of(BLOCKED)
    logs = instance.all_logs(run.run_id)
    failures = [
        e for e in logs if e.dagster_event and e.dagster_event.event_type_value in ("STEP_FAILURE", "RUN_FAILURE")
    ]
    assert failures
    said = re.compile(
        rf"blocked by check {NOISE}: estimated noise rate 0\.\d{{4}} > threshold 0\.0010; "
        rf"pruned_dataset, retrained_model not materialized for {BLOCKED}"
    )
    for event in failures:
        error = event.dagster_event.event_specific_data.error
        assert error is not None and said.search(error.message), error
        assert error.cls_name == "Failure"
    assert not any(
        "DagsterAssetCheckFailedError" in (e.dagster_event.event_specific_data.error.message) for e in failures
    )
    assert run.tags["cl_pipeline/blocked_by"] == NOISE


def test_blocked_assets_record_why_for_their_partition(audits: AuditedHome) -> None:
    for asset in ("pruned_dataset", "retrained_model"):
        observations = _observations(asset, BLOCKED)
        assert observations, asset
        observation = observations[-1]  # the audit's (a later test adds one)
        assert observation.description.startswith(f"blocked by check {NOISE}: estimated noise rate")
        assert observation.metadata["status"].value == "blocked (not materialized)"
        assert observation.metadata["blocked_by"].value == NOISE


def test_blocking_still_stops_pruning_and_retraining(audits: AuditedHome) -> None:
    instance = dg.DagsterInstance.get()
    for asset in ("pruned_dataset", "retrained_model"):
        assert list_partitions(audits.data, asset) == [DATE], asset
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[BLOCKED]), limit=1
        ).records
        assert not records, asset


def test_failed_check_metadata_is_rounded_and_names_what_it_blocks(audits: AuditedHome) -> None:
    evaluation = next(e for e in _check_evaluations(BLOCKED) if e.check_name == NOISE)
    assert not evaluation.passed
    value = evaluation.metadata["value"].value
    assert value == significant(value) and evaluation.metadata["threshold"].value == 0.001
    assert evaluation.metadata["blocks_if_failed"].value == "pruned_dataset, retrained_model"


def _observations(asset: str, partition: str) -> list:
    records = dg.DagsterInstance.get().fetch_observations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[partition]), limit=100
    )
    return [r.asset_observation for r in records.records]  # newest first


def test_pruned_dataset_alone_for_a_blocked_date_says_why(audits: AuditedHome) -> None:
    from cl_pipeline.definitions import defs

    before = len(_observations("pruned_dataset", BLOCKED))
    settings = {"checks": {"max_noise_rate": 0.001}}
    config = {"config_file": str(audits.config), "settings": settings}
    result = dg.materialize(
        [defs.get_assets_def("pruned_dataset")],
        partition_key=BLOCKED,
        instance=dg.DagsterInstance.get(),
        run_config={"resources": {"audit_config": {"config": config}}},
        raise_on_error=False,
        resources=defs.resources,
    )
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert failure.event_specific_data.error.message.count(f"blocked by check {NOISE}: estimated noise rate") == 1
    observations = _observations("pruned_dataset", BLOCKED)
    assert len(observations) == before + 1
    assert observations[0].description.startswith(f"blocked by check {NOISE}: estimated noise rate")
    assert list_partitions(audits.data, "pruned_dataset") == [DATE]
