"""The audit on a real Dask cluster gives the local engine's tables, also when a worker dies mid-audit.

A ``LocalCluster`` (2 worker processes on 127.0.0.1) is started by the module fixture. The audit
runs in-process with small record batches, so its tables have many row groups and the passes,
the scoring of ``label_issues`` and the K folds are many tasks on the workers.
"""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
from pipeline_helpers import make_small_frame, write_small, write_supplied

from cl_pipeline.audit import streaming
from cl_pipeline.storage import read_table

distributed = pytest.importorskip("distributed")  # in the test extra: CI has it

DATE = "2025-04-02"
TABLES = (
    "raw_labels",
    "oof_pred_probs",
    "confident_joint",
    "calibrated_joint",
    "class_quality",
    "label_issues",
    "pruned_dataset",
)


@pytest.fixture(scope="module")
def cluster():
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
        ) as local,
        Client(local) as client,
    ):
        yield local, client


def _supplied_config(folder: Path) -> Path:
    """A snapshot of 600 rows with supplied float32 probabilities, noisy given labels and known truth."""
    return write_supplied(folder, 600, 5, "[compute]\nslice_rows = 50\n")


def _features_config(folder: Path, estimator: str, params: str) -> Path:
    """The small tabular snapshot, K-fold ``estimator`` on its features."""
    folder.mkdir(parents=True, exist_ok=True)
    make_small_frame(n=300, seed=2).to_csv(folder / "labels.csv", index=False)
    (folder / "audit.toml").write_text(
        '[source]\nkind = "file"\npath = "labels.csv"\n'
        '[columns]\nid = "id"\nlabel = "label"\ntrue_label = "true_label"\nnumeric = ["f*"]\ncategorical = ["colour"]\n'
        f'[model]\nestimator = "{estimator}"\nparams = {params}\nn_folds = 4\nn_jobs = 1\n'
        "[checks]\nmax_noise_rate = 0.9\nmax_class_noise_rate = 0.9\n[compute]\nslice_rows = 40\n"
    )
    return folder / "audit.toml"


def _tables(data: Path) -> dict[str, pd.DataFrame]:
    return {name: read_table(data, name, DATE) for name in TABLES}


def _audit(run_cli, monkeypatch, data: Path, config: Path, *extra: str) -> dict[str, pd.DataFrame]:
    monkeypatch.setenv("CL_PIPELINE_DATA_DIR", str(data))
    code, out, err = run_cli("audit", "--config", str(config), "--date", DATE, *extra)
    assert code in (0, 3), err
    return _tables(data)


def _task_kinds(cluster) -> set[str]:
    """Kinds of cl_pipeline tasks the scheduler has seen (``cl-<kind>-<token>-<i>``)."""
    keys = {str(entry[0]) for entry in cluster.scheduler.transition_log}
    return {key.split("-")[1] for key in keys if key.startswith("cl-")}


@pytest.fixture
def small_batches(monkeypatch):
    """Write the run's tables in batches of 7 rows: many row groups, so many slices."""
    monkeypatch.setattr(streaming, "MIN_BATCH_ROWS", 7)
    monkeypatch.setattr(streaming, "BATCH_BYTES", 1)


def test_audit_on_the_cluster_equals_the_local_engine(fast_env: Path, run_cli, monkeypatch, cluster, small_batches):
    """Supplied probabilities: the passes, label_issues and pruned_dataset run as tasks (the folds: next test)."""
    local, _ = cluster
    config = _supplied_config(fast_env.parent / "in")
    here = _audit(run_cli, monkeypatch, fast_env.parent / "local", config)
    there = _audit(run_cli, monkeypatch, fast_env.parent / "dask", config, "--dask-scheduler", local.scheduler_address)
    assert "CL_PIPELINE_DASK_SCHEDULER" not in os.environ  # the flag does not leak into the calling process
    kinds = _task_kinds(local)
    assert {"confident", "issue", "label", "pruned"} <= kinds
    assert not {"class", "thresholds"} & kinds  # the thresholds came with oof_pred_probs (its one sweep)
    assert here["label_issues"]["is_label_issue"].sum() > 0
    for name in TABLES:
        pd.testing.assert_frame_equal(there[name], here[name], obj=name)
    assert not any((fast_env.parent / "dask" / "_staging").glob("*")), "staging parts left behind"


def _kill_a_worker_running(local, client, prefix: str, killed: list[str], stop: threading.Event) -> None:
    """SIGKILL the worker process that is running a task whose key starts with ``prefix`` (once)."""
    pids = client.run(os.getpid)
    while not stop.is_set() and not killed:
        for key, task in list(local.scheduler.tasks.items()):
            if str(key).startswith(prefix) and task.state == "processing" and task.processing_on is not None:
                address = task.processing_on.address
                os.kill(pids[address], signal.SIGKILL)
                killed.append(str(key))
                return
        time.sleep(0.01)


def test_a_worker_killed_mid_audit_changes_nothing(fast_env: Path, run_cli, monkeypatch, cluster, small_batches):
    local, client = cluster
    # 300 trees: a fold task runs long enough for the killer (polling every 10 ms) to catch one
    # (with 100 it missed them once in a clean-clone run)
    config = _features_config(
        fast_env.parent / "in", "sklearn.ensemble.RandomForestClassifier", "{ n_estimators = 300, random_state = 0 }"
    )
    here = _audit(run_cli, monkeypatch, fast_env.parent / "local", config)
    killed: list[str] = []
    stop = threading.Event()
    killer = threading.Thread(target=_kill_a_worker_running, args=(local, client, "cl-fold-", killed, stop))
    killer.start()
    try:
        there = _audit(
            run_cli, monkeypatch, fast_env.parent / "dask", config, "--dask-scheduler", local.scheduler_address
        )
    finally:
        stop.set()
        killer.join()
    assert killed, "no fold task was caught running on a worker"
    assert {"fold", "confident", "issue", "label", "pruned"} <= _task_kinds(local)  # thresholds: with the folds
    for name in TABLES:
        pd.testing.assert_frame_equal(there[name], here[name], obj=name)
    client.wait_for_workers(2, timeout=60)  # the nanny restarted it: the next test has two workers again


@pytest.mark.parametrize(
    ("address", "message"),
    [("127.0.0.1:8786", "must look like 'tcp://HOST:PORT'"), ("tcp://127.0.0.1:99999", "tcp://127.0.0.1:99999")],
    ids=["no-scheme", "port-out-of-range"],
)
def test_a_bad_scheduler_flag_is_a_usage_error(fast_env: Path, run_cli, capsys, address: str, message: str) -> None:
    with pytest.raises(SystemExit) as exit_info:
        run_cli("audit", "--date", DATE, "--dask-scheduler", address)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--dask-scheduler" in err and message in err


@pytest.mark.parametrize(
    ("argv", "env_value", "message"),
    [
        ([], "localhost:8786", "CL_PIPELINE_DASK_SCHEDULER must look like 'tcp://HOST:PORT'"),
        (["--dask-scheduler", "tcp://127.0.0.1:9"], None, "cannot reach the Dask scheduler at tcp://127.0.0.1:9"),
    ],
    ids=["bad-env", "nobody-listening"],
)
def test_a_bad_or_unreachable_scheduler_is_exit_2_before_anything_is_written(
    fast_env: Path, run_cli, monkeypatch, argv: list[str], env_value: str | None, message: str
) -> None:
    config = _supplied_config(fast_env.parent / "in")
    if env_value is not None:
        monkeypatch.setenv("CL_PIPELINE_DASK_SCHEDULER", env_value)
    code, _, err = run_cli("audit", "--config", str(config), "--date", DATE, *argv)
    assert code == 2 and message in err
    assert not fast_env.exists() or not any(fast_env.rglob("*.parquet"))


def test_config_rejects_a_bad_scheduler_address(tmp_path: Path) -> None:
    from cl_pipeline.config import ConfigError, load_config

    with pytest.raises(ConfigError, match="dask_scheduler"):
        load_config({"compute": {"dask_scheduler": "scheduler:8786"}})
    assert load_config({"compute": {"dask_scheduler": "tcp://10.0.0.5:8786"}}).compute.dask_scheduler


def test_without_a_scheduler_dask_is_never_imported(tmp_path: Path) -> None:
    """A whole audit in a fresh interpreter. Of the small tabular dataset, not the digits: whether
    Dask is imported depends on the compute path (no scheduler), not on the data's size or kind."""
    config = write_small(tmp_path / "in")
    script = (
        "import sys\n"
        "from cl_pipeline import cli\n"
        f"code = cli.main(['audit', '--config', {str(config)!r}, '--date', '2025-04-03'])\n"
        "assert code == 0, code\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed'))\n"
        "print('loaded:', loaded)\n"
        "sys.exit(3 if loaded else 0)\n"
    )
    env = dict(os.environ, CL_PIPELINE_DATA_DIR=str(tmp_path / "data"), DAGSTER_HOME=str(tmp_path / "home"))
    env.pop("CL_PIPELINE_DASK_SCHEDULER", None)
    env.pop("CL_PIPELINE_CONFIG", None)
    done = subprocess.run([sys.executable, "-c", script], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_map_whose_shared_data_died_with_its_worker_is_started_again(tmp_path: Path) -> None:
    """One worker holds the only copy of the scattered ``shared``; it dies inside a task: the scheduler
    cannot recompute scattered data and cancels the tasks, so the engine scatters and maps again."""
    from distributed import LocalCluster

    from cl_pipeline.audit.compute import DaskEngine

    def die_once(item: int, shared: dict) -> int:
        marker = Path(shared["folder"]) / "died"
        if item == 0 and not marker.exists():
            marker.touch()
            os._exit(1)  # the worker process dies mid-task; its nanny starts a new one
        return item * shared["factor"]

    with LocalCluster(
        n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    ) as one:
        engine = DaskEngine(one.scheduler_address, timeout=30)
        try:
            assert engine.map(die_once, [0, 1, 2, 3], shared={"folder": str(tmp_path), "factor": 3}, name="t") == [
                0,
                3,
                6,
                9,
            ]
        finally:
            engine.close()
    assert (tmp_path / "died").exists()  # it did die once
