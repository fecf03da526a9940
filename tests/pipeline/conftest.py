"""Fixtures of the pipeline tests: isolated data dir and DAGSTER_HOME, CLI runner."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import pytest

from cl_pipeline import cli

os.environ.setdefault("CL_PIPELINE_START_DATE", "2024-01-01")


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh working folder with its own data dir and DAGSTER_HOME (returned: the data dir)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CL_PIPELINE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    monkeypatch.delenv("CL_PIPELINE_CONFIG", raising=False)
    warnings.filterwarnings("ignore", message=".*partitions_def on an AssetCheckSpec.*")
    return tmp_path / "data"


@pytest.fixture(scope="session")
def shared_dagster_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One DAGSTER_HOME for the tests that do not inspect the instance (creating one costs seconds)."""
    home = tmp_path_factory.mktemp("dagster_home")
    (home / "dagster.yaml").write_text(cli._DAGSTER_YAML)
    return home


@pytest.fixture
def fast_env(env: Path, shared_dagster_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Like ``env`` but with the session's shared DAGSTER_HOME."""
    monkeypatch.setenv("DAGSTER_HOME", str(shared_dagster_home))
    return env


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]):
    """Call ``cl-pipeline`` in-process; return (exit code, stdout, stderr)."""

    def run(*argv: str) -> tuple[int, str, str]:
        code = cli.main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return run
