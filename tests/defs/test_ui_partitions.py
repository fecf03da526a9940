"""Partitions and the new-snapshot sensor (issue 10, item 18).

The daily partitions start at the first snapshot of a folder source (not 2024-01-01, which
showed ~1,000 "missing" days before the data), ``cl-pipeline audit`` checks dates against the
same start, and a sensor requests an audit when a snapshot file appears or changes.
"""

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from cl_pipeline.config import DEFAULT_START_DATE, ConfigError, first_snapshot_date, load_config, start_date
from cl_pipeline.definitions import defs
from cl_pipeline.defs.partitions import daily_partitions
from cl_pipeline.defs.resources import PipelineStorage
from cl_pipeline.defs.sensors import MAX_RUNS_PER_TICK, new_snapshot_sensor

FIRST, SECOND = "2025-03-04", "2025-03-09"
TODAY = dt.datetime.now(dt.UTC).date()


def _folder(tmp_path: Path, dates: list[str], pattern: str = "labels_*.csv") -> Path:
    """A folder source with one (tiny) snapshot per date, and its config file; returns the config."""
    folder = tmp_path / "snapshots"
    folder.mkdir(exist_ok=True)
    for date in dates:
        (folder / f"labels_{date}.csv").write_text("id,label\n1,a\n2,b\n")
    config = tmp_path / "audit.toml"
    columns = '[columns]\nid = "id"\nlabel = "label"\n'
    config.write_text(f'[source]\nkind = "folder"\npath = "{folder}"\npattern = "{pattern}"\n{columns}')
    return config


@pytest.fixture
def source_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No CL_PIPELINE_START_DATE (the suite sets one), the config of a two-snapshot folder as CL_PIPELINE_CONFIG."""
    monkeypatch.delenv("CL_PIPELINE_START_DATE", raising=False)
    config = _folder(tmp_path, [SECOND, FIRST])
    monkeypatch.setenv("CL_PIPELINE_CONFIG", str(config))
    return config


def test_partitions_start_at_the_first_snapshot(source_env: Path) -> None:
    assert start_date() == FIRST
    keys = daily_partitions().get_partition_keys()
    assert keys[0] == FIRST and SECOND in keys
    assert len(keys) == (TODAY - dt.date.fromisoformat(FIRST)).days + 1  # to today (end_offset=1)


def test_the_loaded_definitions_start_there_too(source_env: Path) -> None:
    """As the UI's code server loads them (a fresh process reading the environment)."""
    code = (
        "from cl_pipeline.definitions import defs\n"
        "print(defs.resolve_job_def('audit_job').partitions_def.get_partition_keys()[0])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180, env=os.environ)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == FIRST


def test_the_audit_checks_dates_against_the_same_start(source_env: Path) -> None:
    from cl_pipeline.audit.preflight import audit_date

    config = load_config(str(source_env))
    assert audit_date(FIRST, config) == FIRST
    with pytest.raises(ConfigError, match=f"outside the daily partitions \\({FIRST} "):
        audit_date("2025-03-03", config)


@pytest.mark.parametrize(
    "names, expected",
    [
        (["labels_2025-13-40.csv", "labels_2025-06-01.csv"], "2025-06-01"),  # not a real day: ignored
        (["labels_2099-01-01.csv"], TODAY.isoformat()),  # only future files: start today
        (["notes.csv"], None),  # no dated file
    ],
    ids=["impossible date ignored", "future file", "no dated file"],
)
def test_first_snapshot_date(tmp_path: Path, names: list[str], expected: str | None) -> None:
    (tmp_path / "s").mkdir()
    for name in names:
        (tmp_path / "s" / name).write_text("id,label\n")
    folder = {"kind": "folder", "path": str(tmp_path / "s"), "pattern": "*.csv"}
    config = load_config(overrides={"source": folder, "columns": {"id": "id", "label": "label"}})
    assert first_snapshot_date(config.source) == expected


@pytest.mark.parametrize(
    "setting, expected",
    [("env", "2025-01-02"), ("embedded", DEFAULT_START_DATE), ("broken config", DEFAULT_START_DATE)],
    ids=["CL_PIPELINE_START_DATE wins", "no dated snapshots", "config that does not load"],
)
def test_start_date_fallbacks(source_env: Path, monkeypatch: pytest.MonkeyPatch, setting: str, expected: str) -> None:
    if setting == "env":
        monkeypatch.setenv("CL_PIPELINE_START_DATE", expected)
    elif setting == "embedded":
        monkeypatch.delenv("CL_PIPELINE_CONFIG")
    else:
        source_env.write_text("[source\nkind = ")
    assert start_date() == expected


# the sensor ---------------------------------------------------------------------------------------


def _tick(config: Path, data: Path) -> Any:
    """One evaluation of the sensor, with ``config`` as CL_PIPELINE_CONFIG (what the launched runs read)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CL_PIPELINE_CONFIG", str(config))
        resources = {"storage": PipelineStorage(data_dir=str(data))}
        with dg.build_sensor_context(resources=resources, repository_def=defs.get_repository_def()) as context:
            return new_snapshot_sensor.evaluate_tick(context)


def _audited(data: Path, date: str, after: Path) -> None:
    """A stand-in ``audit_summary`` file of ``date`` written after the snapshot file ``after``."""
    summary = data / "audit_summary" / f"{date}.parquet"
    summary.parent.mkdir(parents=True, exist_ok=True)
    summary.write_bytes(b"")
    later = after.stat().st_mtime_ns + 1_000_000_000
    os.utime(summary, ns=(later, later))


def test_sensor_requests_the_snapshots_newer_than_their_audit(tmp_path: Path) -> None:
    config, data = _folder(tmp_path, [FIRST, SECOND]), tmp_path / "data"
    snapshots = tmp_path / "snapshots"
    tick = _tick(config, data)
    assert [r.partition_key for r in tick.run_requests] == [FIRST, SECOND]  # never audited, oldest first
    assert all(r.run_key.startswith(f"{r.partition_key}@") for r in tick.run_requests)

    _audited(data, FIRST, snapshots / f"labels_{FIRST}.csv")
    _audited(data, SECOND, snapshots / f"labels_{SECOND}.csv")
    tick = _tick(config, data)
    assert not tick.run_requests and "every snapshot" in tick.skip_message

    third = "2025-03-10"
    _folder(tmp_path, [third])  # a new snapshot appears
    changed = snapshots / f"labels_{FIRST}.csv"
    changed.write_text("id,label\n1,b\n2,b\n")  # and one is rewritten after its audit
    later = (data / "audit_summary" / f"{FIRST}.parquet").stat().st_mtime_ns + 1_000_000_000
    os.utime(changed, ns=(later, later))
    requests = _tick(config, data).run_requests
    assert [r.partition_key for r in requests] == [FIRST, third]
    assert requests[0].run_key != f"{FIRST}@" and requests[0].run_key.endswith(f"-{changed.stat().st_size}")


def test_sensor_caps_the_runs_per_tick(tmp_path: Path) -> None:
    dates = [f"2025-04-{day:02d}" for day in range(1, MAX_RUNS_PER_TICK + 4)]
    requests = _tick(_folder(tmp_path, dates), tmp_path / "data").run_requests
    assert [r.partition_key for r in requests] == dates[:MAX_RUNS_PER_TICK]


@pytest.mark.parametrize("kind", ["embedded", "broken"], ids=["not a folder source", "config does not load"])
def test_sensor_skips_saying_why(tmp_path: Path, kind: str) -> None:
    config = tmp_path / "audit.toml"
    config.write_text('[source]\nkind = "embedded"\n' if kind == "embedded" else "[source]\nkind = 'folder'\n")
    tick = _tick(config, tmp_path / "data")
    assert not tick.run_requests
    expected = "only a folder source" if kind == "embedded" else "source.path is required"
    assert expected in tick.skip_message


def test_sensor_is_registered_and_targets_the_audit_job() -> None:
    sensor = defs.resolve_sensor_def("new_snapshot_sensor")
    assert sensor.job_name == "audit_job"
    assert sensor.default_status == dg.DefaultSensorStatus.STOPPED
