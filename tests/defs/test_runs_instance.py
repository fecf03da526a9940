"""What ``cl-pipeline`` leaves in the Dagster instance (issue 10, items 3, 6, 17 and part of 19).

- item 17: CLI runs are runs of ``audit_job`` in the code location the UI loads, so the UI
  lists them under Overview/Jobs/audit_job (it filters a job's runs by the
  ``.dagster/repository`` tag of the run's remote origin);
- item 6: a SIGKILLed audit's run, left STARTED, is marked failed by the next command;
- item 3: commands starting at once on a new DAGSTER_HOME do not race on its SQLite schema;
- item 19: ``cl-pipeline ui`` does not print Dagster's ``dev_command is superseded`` warning.
"""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest
from pipeline_helpers import write_small

from cl_pipeline.defs import runs
from cl_pipeline.defs.runs import DAGSTER_YAML, ensure_dagster_home, mark_dead_runs_failed, ui_command

from .conftest import BLOCKED, PASSED, AuditedHome

REPO = Path(__file__).resolve().parents[2]


def _ui_label() -> str:
    """``repository@location`` of audit_job as the UI loads it (the repo's workspace.yaml), computed by Dagster."""
    from dagster._core.workspace.load_target import WorkspaceFileTarget

    from cl_pipeline.definitions import defs

    (origin,) = WorkspaceFileTarget(paths=[str(REPO / "workspace.yaml")]).create_origins()
    return f"{defs.get_repository_def().name}@{origin.location_name}"


def test_cli_runs_are_listed_under_audit_job_in_the_ui(audits: AuditedHome) -> None:
    from dagster._core.storage.tags import REPOSITORY_LABEL_TAG

    instance = dg.DagsterInstance.get()
    ui_query = dg.RunsFilter(job_name="audit_job", tags={REPOSITORY_LABEL_TAG: _ui_label()})  # the job page's
    listed = {run.tags["dagster/partition"] for run in instance.get_runs(ui_query)}
    assert {PASSED, BLOCKED} <= listed
    for run in instance.get_runs(ui_query):
        assert run.remote_job_origin is not None and run.job_code_origin is not None
        assert run.remote_job_origin.job_name == "audit_job"


# item 6 -------------------------------------------------------------------------------------------


def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("CL_PIPELINE_DATA_DIR", str(tmp_path / "data"))
    return home


@pytest.mark.slow
def test_a_sigkilled_audit_is_marked_failed_by_the_next_command(tmp_path: Path, monkeypatch) -> None:
    _home(tmp_path, monkeypatch)
    config = write_small(tmp_path / "in")
    argv = [sys.executable, "-m", "cl_pipeline.cli", "audit", "--config", str(config), "--date", "2025-04-01"]
    child = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        for line in child.stderr:  # the run is STARTED once its first step logs progress
            if line.strip().startswith("raw_labels"):
                break
        assert child.poll() is None, "the audit ended before it could be killed"
        with dg.DagsterInstance.get() as instance:
            (run,) = instance.get_runs()
            assert run.status == dg.DagsterRunStatus.STARTED
            assert mark_dead_runs_failed(instance) == []  # alive: left alone
        os.kill(child.pid, signal.SIGKILL)
    finally:
        if child.poll() is None:
            child.kill()
        child.wait(timeout=60)
    assert child.returncode == -signal.SIGKILL
    with dg.DagsterInstance.get() as instance:
        assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.STARTED  # what the issue saw
    ensure_dagster_home()  # what the next `cl-pipeline audit` or `ui` does first
    with dg.DagsterInstance.get() as instance:
        assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.FAILURE
        logs = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
        assert f"pid {child.pid}" in logs[-1].message and "is gone" in logs[-1].message


@pytest.mark.parametrize(
    "tags, marked",
    [
        ({runs.PID_TAG: "self", runs.START_TAG: "another-boot:1"}, True),  # the pid was reused by this process
        ({runs.PID_TAG: "self", runs.START_TAG: "own"}, False),
        ({runs.PID_TAG: "self", runs.HOST_TAG: "some-other-host"}, False),  # another machine's run
        ({}, False),  # UI- or schedule-launched: Dagster's business
    ],
    ids=["pid-reused", "own-live-run", "other-host", "no-tags"],
)
def test_only_runs_of_dead_processes_of_this_host_are_marked(tmp_path: Path, monkeypatch, tags, marked) -> None:
    home = _home(tmp_path, monkeypatch)
    home.mkdir()
    (home / "dagster.yaml").write_text(DAGSTER_YAML)
    own = runs._process_start(os.getpid())
    tags = {runs.HOST_TAG: socket.gethostname(), **tags} if tags else {}
    tags = {k: str(os.getpid()) if v == "self" else (own if v == "own" else v) for k, v in tags.items()}
    from cl_pipeline.definitions import audit_job_definition

    with dg.DagsterInstance.get() as instance:
        run = instance.create_run_for_job(
            audit_job_definition(), tags=tags, status=dg.DagsterRunStatus.STARTED, run_config={}
        )
        assert (mark_dead_runs_failed(instance) == [run.run_id]) is marked
        expected = dg.DagsterRunStatus.FAILURE if marked else dg.DagsterRunStatus.STARTED
        assert instance.get_run_by_id(run.run_id).status == expected


# item 3 -------------------------------------------------------------------------------------------

_SETUP = """
import sys, time
from pathlib import Path
import dagster as dg
from cl_pipeline.defs.runs import ensure_dagster_home
Path(sys.argv[1]).touch()
while not Path(sys.argv[2]).exists():
    time.sleep(0.01)
ensure_dagster_home()
with dg.DagsterInstance.get() as instance:
    instance.get_runs(limit=1)
print("ok")
"""


def test_commands_starting_at_once_on_a_new_home_do_not_race(tmp_path: Path) -> None:
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "home")}
    go = tmp_path / "go"
    children = [
        subprocess.Popen(
            [sys.executable, "-c", _SETUP, str(tmp_path / f"ready{i}"), str(go)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(4)
    ]
    deadline = time.monotonic() + 240
    while not all((tmp_path / f"ready{i}").exists() for i in range(4)):  # all imported: start together
        assert time.monotonic() < deadline and all(c.poll() is None for c in children)
        time.sleep(0.05)
    go.touch()
    results = [c.communicate(timeout=240) for c in children]
    failures = [err.strip().splitlines()[-1] for c, (_, err) in zip(children, results, strict=True) if c.returncode]
    assert failures == []


# item 19 (part) -----------------------------------------------------------------------------------

_DEV = """
from dagster._cli.dev import dev_command
try:
    dev_command.callback()  # emits the warning, then lacks its arguments
except TypeError:
    pass
"""


def test_ui_command_silences_the_dev_command_superseded_warning() -> None:
    command = ui_command(3000)
    interpreter_options = command[1 : command.index("-m")]
    control = subprocess.run([sys.executable, "-c", _DEV], capture_output=True, text=True, timeout=300)
    assert "`dev_command` is superseded" in control.stderr  # the warning is real
    quiet = subprocess.run(
        [sys.executable, *interpreter_options, "-c", _DEV], capture_output=True, text=True, timeout=300
    )
    assert "superseded" not in quiet.stderr and quiet.returncode == 0


def test_the_callers_sigterm_handler_is_back_after_a_run() -> None:
    """Dagster's in-process run remaps SIGTERM; run_audit puts the caller's handler back (see _sigterm_kept)."""
    import signal

    from cl_pipeline.defs.runs import _sigterm_kept

    def mine(signum, frame) -> None:  # pragma: no cover - never delivered
        pass

    before = signal.signal(signal.SIGTERM, mine)
    try:
        with _sigterm_kept():
            signal.signal(signal.SIGTERM, signal.default_int_handler)  # what the run does
        assert signal.getsignal(signal.SIGTERM) is mine
    finally:
        signal.signal(signal.SIGTERM, before)
