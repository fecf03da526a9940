"""Running the audit job in this process (what ``cl-pipeline audit`` does), and the Dagster instance home.

The CLI calls :func:`run_audit` after :func:`cl_pipeline.audit.preflight`
accepted the input; the run goes through the same ``Definitions`` as the UI
and the schedule, so it is recorded in ``$DAGSTER_HOME`` like any other run.
"""

import os
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg

__all__ = [
    "DAGSTER_YAML",
    "UI_HOST",
    "CheckOutcome",
    "RunOutcome",
    "ensure_dagster_home",
    "run_audit",
    "ui_command",
]

#: The UI binds to loopback only: it can launch runs and has no authentication.
UI_HOST = "127.0.0.1"

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
    """``$DAGSTER_HOME`` (default ``./dagster_home``), created with a dagster.yaml if missing; sets the env var."""
    home = Path(os.environ.get("DAGSTER_HOME") or "dagster_home").resolve()
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():
        (home / "dagster.yaml").write_text(DAGSTER_YAML)
    os.environ["DAGSTER_HOME"] = str(home)
    return home


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


def run_audit(date: str, resource_config: dict[str, Any]) -> RunOutcome:
    """Materialize partition ``date`` of ``audit_job`` in this process, with its checks.

    Parameters
    ----------
    date : str
        The partition key (``YYYY-MM-DD``), already validated.
    resource_config : dict
        Config of the ``audit_config`` resource (``config_file``, ``settings``); may be empty.
    """
    warnings.filterwarnings("ignore", category=dg.PreviewWarning)
    warnings.filterwarnings("ignore", category=dg.BetaWarning)
    from cl_pipeline.definitions import defs

    run_config: dict[str, Any] = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
    if resource_config:
        run_config["resources"] = {"audit_config": {"config": resource_config}}
    job = defs.resolve_job_def("audit_job")
    result = job.execute_in_process(
        partition_key=date, instance=dg.DagsterInstance.get(), run_config=run_config, raise_on_error=False
    )
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
    """
    workspace = Path("workspace.yaml")
    target = ["-w", str(workspace.resolve())] if workspace.is_file() else ["-m", "cl_pipeline.definitions"]
    return [sys.executable, "-m", "dagster", "dev", "-h", UI_HOST, "-p", str(port), *target]
