"""Running the audit job in this process (what ``cl-pipeline audit`` does), and the Dagster instance home.

The CLI calls :func:`run_audit` after :func:`cl_pipeline.audit.preflight`
accepted the input; the run goes through the same ``Definitions`` as the UI
and the schedule, so it is recorded in ``$DAGSTER_HOME`` like any other run:

- as a run of ``audit_job`` of the code location ``cl_pipeline.definitions`` (the
  location ``cl-pipeline ui`` loads), so the UI lists it under Overview/Jobs/audit_job;
- under the per-date lock ``<data dir>/_locks/audit-<date>.lock`` (an ``flock``: a
  second audit of the same date waits for the first, at most
  ``CL_PIPELINE_LOCK_TIMEOUT`` seconds, default 900, then stops with
  :class:`~cl_pipeline.storage.locks.LockTimeout`; a killed holder releases it);
- tagged with the pid, host and process start of the process that runs it, so a
  later command can tell that a run left ``STARTED`` belongs to a dead process
  (:func:`mark_dead_runs_failed`).

:func:`ensure_dagster_home` creates the instance's storage under a lock (two
commands starting at once on a new ``$DAGSTER_HOME`` would race on Dagster's
SQLite schema) and marks the runs of dead processes failed.
"""

import contextlib
import logging
import os
import signal
import socket
import sys
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg

from cl_pipeline.storage.locks import audit_lock_path, file_lock

__all__ = [
    "AUDIT_LOCK_TIMEOUT",
    "DAGSTER_YAML",
    "DEFINITIONS_MODULE",
    "LOCK_TIMEOUT_ENV",
    "QUIET_DEV",
    "UI_HOST",
    "CheckOutcome",
    "RunOutcome",
    "audit_job_origin",
    "ensure_dagster_home",
    "mark_dead_runs_failed",
    "run_audit",
    "ui_command",
]

log = logging.getLogger("cl_pipeline.progress")

#: The module the UI loads (``dagster dev -m``; ``workspace.yaml`` names the same module).
DEFINITIONS_MODULE = "cl_pipeline.definitions"

#: Seconds a second audit of a date waits for the first (env ``CL_PIPELINE_LOCK_TIMEOUT`` overrides).
AUDIT_LOCK_TIMEOUT = 900.0
LOCK_TIMEOUT_ENV = "CL_PIPELINE_LOCK_TIMEOUT"

#: Run tags identifying the process that executes a CLI run.
PID_TAG, HOST_TAG, START_TAG = "cl_pipeline/pid", "cl_pipeline/host", "cl_pipeline/process_start"

_SETUP_LOCK = ".cl_pipeline-setup.lock"
_READY = ".cl_pipeline-storage-ready"

#: The UI binds to loopback only: it can launch runs and has no authentication.
UI_HOST = "127.0.0.1"

#: Interpreter options of ``cl-pipeline ui``: silence the one warning ``dagster dev`` prints
#: about itself (a ``SupersessionWarning``; a message filter, so dagster is not imported early).
QUIET_DEV = ("-W", "ignore:Function `dev_command` is superseded")

#: ``dagster.yaml`` written into a new ``$DAGSTER_HOME``.
DAGSTER_YAML = """\
# Dagster instance settings for cl_pipeline (written by `cl-pipeline` if missing).
# Run history, event logs, schedules and compute logs all live under $DAGSTER_HOME.
storage:
  sqlite:
    base_dir:
      env: DAGSTER_HOME
local_artifact_storage:
  module: dagster._core.storage.root
  class: LocalArtifactStorage
  config:
    base_dir:
      env: DAGSTER_HOME
# One audit at a time on a 2-core machine (backfills queue up).
run_queue:
  max_concurrent_runs: 1
telemetry:
  enabled: false
"""


def ensure_dagster_home() -> Path:
    """``$DAGSTER_HOME`` (default ``./dagster_home``), ready to use; sets the env var.

    Creates the folder and a ``dagster.yaml`` if missing, and the instance's SQLite
    storage once, under an ``flock`` of ``$DAGSTER_HOME/.cl_pipeline-setup.lock`` (two
    commands starting at once on a new home would otherwise race on Dagster's schema:
    ``table snapshots already exists``). Then marks the runs left ``STARTED`` by dead
    processes failed (:func:`mark_dead_runs_failed`).
    """
    home = Path(os.environ.get("DAGSTER_HOME") or "dagster_home").resolve()
    home.mkdir(parents=True, exist_ok=True)
    os.environ["DAGSTER_HOME"] = str(home)
    with file_lock(home / _SETUP_LOCK, timeout=300, what=f"the set-up of DAGSTER_HOME {home}"):
        if not (home / "dagster.yaml").exists():
            tmp = home / f".dagster.yaml.{os.getpid()}.tmp"
            tmp.write_text(DAGSTER_YAML)
            os.replace(tmp, home / "dagster.yaml")
        with dg.DagsterInstance.get() as instance:
            if not (home / _READY).exists():
                _create_storage(instance)
                (home / _READY).write_text("the instance's storage was created by cl-pipeline\n")
            mark_dead_runs_failed(instance)
    return home


def _create_storage(instance: dg.DagsterInstance) -> None:
    """Touch every storage of the instance, so each creates its SQLite schema now."""
    instance.get_runs(limit=1)
    instance.get_run_records(limit=1)
    instance.event_log_storage.get_asset_records()
    instance.all_instigator_state()


def _process_start(pid: int) -> str | None:
    """When process ``pid`` started (boot id and start time in clock ticks), or None if unknown or gone.

    Distinguishes a live process from a later one that reuses its pid (Linux ``/proc``).
    """
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return f"{boot}:{stat.rsplit(')', 1)[1].split()[19]}"


def _alive(pid: int, start: str | None) -> bool:
    """Whether the process that ran a run (pid and start tag) is still running."""
    if Path("/proc").is_dir() and start:
        return _process_start(pid) == start
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _run_tags() -> dict[str, str]:
    tags = {PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname()}
    start = _process_start(os.getpid())
    if start:
        tags[START_TAG] = start
    return tags


def mark_dead_runs_failed(instance: dg.DagsterInstance) -> list[str]:
    """Mark failed the runs started by ``cl-pipeline audit`` on this host whose process is gone.

    An audit killed with SIGKILL cannot record its end, so its run stays ``STARTED``
    (or ``NOT_STARTED``/``STARTING``) forever. Each CLI run is tagged with its pid,
    host and process start; a run of this host whose process no longer exists (or
    whose pid now belongs to a later process) gets a run failure event saying so.
    Runs launched by the UI or the schedule (no such tags) are left to Dagster.

    Returns
    -------
    list of str
        The run ids marked failed.
    """
    unfinished = [dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED]
    runs = instance.get_runs(filters=dg.RunsFilter(statuses=unfinished, tags={HOST_TAG: socket.gethostname()}))
    marked = []
    for run in runs:
        pid = run.tags.get(PID_TAG, "")
        if not pid.isdigit() or _alive(int(pid), run.tags.get(START_TAG)):
            continue
        message = (
            f"the process that ran this run (pid {pid} on {run.tags[HOST_TAG]}) is gone (killed or crashed) "
            "without recording its end; marked failed by cl-pipeline"
        )
        instance.report_run_failed(run, message)
        marked.append(run.run_id)
    return marked


@dataclass(frozen=True)
class CheckOutcome:
    """One check evaluation of the run."""

    name: str
    passed: bool
    severity: str
    description: str


@dataclass(frozen=True)
class RunOutcome:
    """What an in-process audit run did.

    Attributes
    ----------
    run_id : str
    success : bool
        Whether every step succeeded (a blocking check that failed skips steps, not a failure).
    checks : list of CheckOutcome
    step_failures : list of (step key, innermost error message)
    """

    run_id: str
    success: bool
    checks: list[CheckOutcome] = field(default_factory=list)
    step_failures: list[tuple[str, str]] = field(default_factory=list)


def _step_failures(result: Any) -> list[tuple[str, str]]:
    failures = []
    for event in result.all_events:
        if event.event_type_value == "STEP_FAILURE":
            error = event.event_specific_data.error
            while error.cause is not None:
                error = error.cause
            failures.append((event.step_key, error.message.strip()))
    return failures


def _lock_timeout() -> float:
    """``CL_PIPELINE_LOCK_TIMEOUT`` (seconds >= 0), else :data:`AUDIT_LOCK_TIMEOUT`."""
    text = os.environ.get(LOCK_TIMEOUT_ENV)
    if text is None:
        return AUDIT_LOCK_TIMEOUT
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if 0 <= value < float("inf"):
        return value
    log.warning("ignoring %s=%r (not a number of seconds >= 0): %s s", LOCK_TIMEOUT_ENV, text, AUDIT_LOCK_TIMEOUT)
    return AUDIT_LOCK_TIMEOUT


def audit_job_origin() -> Any:
    """The remote origin of ``audit_job`` in the code location the UI loads (``-m cl_pipeline.definitions``).

    Runs created with it carry the tag ``.dagster/repository`` =
    ``__repository__@cl_pipeline.definitions`` by which the UI lists a job's runs.
    """
    from dagster._core.definitions.repository_definition import SINGLETON_REPOSITORY_NAME
    from dagster._core.remote_origin import RemoteRepositoryOrigin
    from dagster._core.workspace.load_target import ModuleTarget

    (location,) = ModuleTarget(DEFINITIONS_MODULE, None, os.getcwd(), None).create_origins()
    return RemoteRepositoryOrigin(location, SINGLETON_REPOSITORY_NAME).get_job_origin("audit_job")


@contextlib.contextmanager
def _sigterm_kept() -> Iterator[None]:
    """SIGTERM's handler is the caller's again after the block.

    An in-process Dagster run maps SIGTERM to SIGINT's handler for the whole process and
    leaves it so; a process that goes on after the run (a notebook, a service, the tests)
    would then turn a later SIGTERM into KeyboardInterrupt, which a fork-started
    ``multiprocessing.Pool`` worker swallows, so ``Pool.terminate()`` waits forever.
    """
    main = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGTERM) if main else None
    try:
        yield
    finally:
        if main and previous is not None and signal.getsignal(signal.SIGTERM) is not previous:
            signal.signal(signal.SIGTERM, previous)


def run_audit(date: str, resource_config: dict[str, Any]) -> RunOutcome:
    """Materialize partition ``date`` of ``audit_job`` in this process, with its checks.

    Parameters
    ----------
    date : str
        The partition key (``YYYY-MM-DD``), already validated.
    resource_config : dict
        Config of the ``audit_config`` resource (``config_file``, ``settings``); may be empty.

    Raises
    ------
    cl_pipeline.storage.locks.LockTimeout
        If another audit of ``date`` in the same data directory held the lock for
        ``CL_PIPELINE_LOCK_TIMEOUT`` seconds (nothing was run).
    """
    from dagster._core.execution.api import execute_run

    from cl_pipeline.config import data_dir
    from cl_pipeline.definitions import audit_job_definition

    warnings.filterwarnings("ignore", category=dg.PreviewWarning)
    warnings.filterwarnings("ignore", category=dg.BetaWarning)
    run_config: dict[str, Any] = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
    if resource_config:
        run_config["resources"] = {"audit_config": {"config": resource_config}}

    def waiting(holder: str) -> None:
        log.warning("waiting for the other audit of %s to finish (%s)", date, holder)

    with file_lock(audit_lock_path(data_dir(), date), _lock_timeout(), f"the audit of {date}", waiting):
        instance = dg.DagsterInstance.get()
        job = dg.reconstructable(audit_job_definition)
        run = instance.create_run_for_job(
            job_def=job.get_definition(),
            run_config=run_config,
            tags={"dagster/partition": date, **_run_tags()},
            remote_job_origin=audit_job_origin(),
            job_code_origin=job.get_python_origin(),
        )
        with _sigterm_kept():
            result = execute_run(job, run, instance)
    checks = [
        CheckOutcome(e.check_name, e.passed, e.severity.value, e.description or "")
        for e in result.get_asset_check_evaluations()
    ]
    return RunOutcome(result.run_id, result.success, checks, _step_failures(result))


def ui_command(port: int) -> list[str]:
    """The ``dagster dev`` argv of ``cl-pipeline ui``.

    Parameters
    ----------
    port : int
        Port of the web server, which always binds to ``UI_HOST`` (127.0.0.1).

    Returns
    -------
    list of str
        Loads ``./workspace.yaml`` (absolute path) if the working directory has one
        (the repository root does), else the module ``cl_pipeline.definitions``.
        The interpreter ignores Dagster's ``dev_command is superseded ... Use 'dg dev'``
        warning (:data:`QUIET_DEV`): ``dg`` is not installed, ``dagster dev`` is what we run.
    """
    workspace = Path("workspace.yaml")
    target = ["-w", str(workspace.resolve())] if workspace.is_file() else ["-m", DEFINITIONS_MODULE]
    return [sys.executable, *QUIET_DEV, "-m", "dagster", "dev", "-h", UI_HOST, "-p", str(port), *target]
