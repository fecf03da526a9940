"""Fixtures of the UI tests: one DAGSTER_HOME holding a passing and a blocked audit, made once per session.

Read by ``test_ui_record.py`` (the instance's record), ``test_ui_metadata.py`` (the passing date's
materialization metadata) and ``test_browser_ui.py`` (the
Dagster UI in a headless browser), so the two audits are paid for once.
"""

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pipeline_helpers import write_small

#: The audited dates: PASSED passes every check, BLOCKED fails noise_rate_below_threshold.
PASSED, BLOCKED = "2025-05-01", "2025-05-02"


@dataclass(frozen=True)
class AuditedHome:
    """Where the two audits were written, and their exit codes."""

    data: Path
    home: Path
    config: Path
    codes: tuple[int, int]


@pytest.fixture(scope="session")
def audited_home(tmp_path_factory: pytest.TempPathFactory) -> AuditedHome:
    """``cl-pipeline audit`` of PASSED, then of BLOCKED with ``--max-noise-rate 0.001``."""
    from cl_pipeline import cli

    root = tmp_path_factory.mktemp("audited")
    data, home = root / "data", root / "home"
    saved = {k: os.environ.get(k) for k in ("CL_PIPELINE_DATA_DIR", "DAGSTER_HOME")}
    os.environ["CL_PIPELINE_DATA_DIR"], os.environ["DAGSTER_HOME"] = str(data), str(home)
    try:
        config = write_small(root / "in")
        passed = cli.main(["audit", "--config", str(config), "--date", PASSED])
        blocked = cli.main(["audit", "--config", str(config), "--date", BLOCKED, "--max-noise-rate", "0.001"])
    finally:
        for key, value in saved.items():
            os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)
    return AuditedHome(data, home, config, (passed, blocked))


@pytest.fixture
def audits(audited_home: AuditedHome, monkeypatch: pytest.MonkeyPatch) -> Iterator[AuditedHome]:
    """The audited home as this test's DAGSTER_HOME and data dir."""
    monkeypatch.setenv("CL_PIPELINE_DATA_DIR", str(audited_home.data))
    monkeypatch.setenv("DAGSTER_HOME", str(audited_home.home))
    yield audited_home
