"""`cl-pipeline ui`: the `dagster dev` command it runs (no server is started)."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cl_pipeline import cli
from cl_pipeline.defs.runs import ui_command

REPO = Path(__file__).resolve().parents[2]


def _option(command: list[str], flag: str) -> str:
    """The value following ``flag`` in ``command``."""
    return command[command.index(flag) + 1]


@pytest.mark.parametrize(
    "in_repo, target",
    [(True, ["-w", str(REPO / "workspace.yaml")]), (False, ["-m", "cl_pipeline.definitions"])],
    ids=["repo-root-uses-workspace-yaml", "elsewhere-uses-definitions-module"],
)
def test_ui_command_binds_loopback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, in_repo: bool, target: list[str]
) -> None:
    monkeypatch.chdir(REPO if in_repo else tmp_path)
    command = ui_command(3123)
    assert command[0] == sys.executable and command[command.index("-m") :][:3] == ["-m", "dagster", "dev"]
    assert _option(command, "-h") == "127.0.0.1" and _option(command, "-p") == "3123"
    assert command[-2:] == target


def test_repo_workspace_loads_the_definitions_module() -> None:
    workspace = yaml.safe_load((REPO / "workspace.yaml").read_text())
    assert workspace == {"load_from": [{"python_module": "cl_pipeline.definitions"}]}


def test_dagster_dev_reads_dash_h_as_the_host() -> None:
    """``-h`` is ``--host`` (not ``--help``) for the installed ``dagster dev``."""
    command = ui_command(3000)
    help_text = subprocess.run(
        [*command[: command.index("dev") + 1], "--help"], capture_output=True, text=True, check=True
    )
    assert "-h, --host" in help_text.stdout


@pytest.mark.parametrize("child_code", [0, 5], ids=["server-exit-0", "server-exit-5"])
def test_cmd_ui_runs_the_command_and_returns_its_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run_cli, child_code: int
) -> None:
    calls: list[list[str]] = []
    monkeypatch.setattr(subprocess, "call", lambda command: calls.append(command) or child_code)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(REPO)
    code, stdout, _ = run_cli("ui", "--port", "3124")
    assert code == child_code and calls == [ui_command(3124)]
    assert "http://127.0.0.1:3124" in stdout and (tmp_path / "home" / "dagster.yaml").is_file()


@pytest.mark.parametrize("host", ["0.0.0.0", "::"], ids=["ipv4-any", "ipv6-any"])
def test_ui_rejects_a_host_option(capsys: pytest.CaptureFixture[str], host: str) -> None:
    """The UI launches runs without authentication: there is no option to bind it beyond loopback."""
    with pytest.raises(SystemExit) as exc:
        cli.build_parser().parse_args(["ui", "--host", host])
    assert exc.value.code == 2 and "unrecognized arguments: --host" in capsys.readouterr().err
