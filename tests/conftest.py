"""Session-wide test setup, and the fixtures of the pipeline tests (isolated data dir and
DAGSTER_HOME, in-process CLI runner).

Hypothesis profiles (env ``HYPOTHESIS_PROFILE``), for every test in the repo:
  ci (default)  derandomized: the same examples on every run, so CI is deterministic
  dev           random examples, database on: explore, then pin what fails

The real label-error sets (MNIST, 20 Newsgroups test sets with human-confirmed
errors, from the public cleanlab/label-errors repository; provenance in
``tests/data/label-errors/README.md``) are vendored so that a clean clone is
self-sufficient. ``CL_LABEL_ERRORS_DIR`` still overrides the location.
"""

import os
from collections.abc import Iterator
from pathlib import Path

# scikit-learn's estimator checks include a numpy array-API input check that
# skips itself unless scipy runs with array-API support; enable it so the
# check runs instead of being skipped (set before scipy is first imported).
os.environ.setdefault("SCIPY_ARRAY_API", "1")

import signal  # noqa: E402
import warnings  # noqa: E402

import pytest  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

_SUPPRESS = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example]
settings.register_profile(
    "ci", derandomize=True, deadline=None, database=None, print_blob=True, suppress_health_check=_SUPPRESS
)
settings.register_profile("dev", deadline=None, print_blob=True, suppress_health_check=_SUPPRESS)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

os.environ.setdefault("CL_PIPELINE_START_DATE", "2024-01-01")

VENDORED_LABEL_ERRORS = Path(__file__).resolve().parent / "data" / "label-errors"
os.environ.setdefault("CL_LABEL_ERRORS_DIR", str(VENDORED_LABEL_ERRORS))


#: SIGTERM's handler when the session started (normally SIG_DFL: the kernel ends the process).
_SIGTERM_AT_START = signal.getsignal(signal.SIGTERM)


@pytest.fixture(autouse=True)
def _sigterm_as_found() -> Iterator[None]:
    """After each test, SIGTERM's handler is the session's again.

    An in-process Dagster run (``cli.main(["audit", ...])``) maps SIGTERM to SIGINT's handler
    for the whole process and leaves it so. A fork-started ``multiprocessing.Pool`` (cleanlab's
    oracle calls) then inherits a SIGTERM that raises KeyboardInterrupt instead of ending the
    worker, and ``Pool.terminate()`` can wait forever on a worker that swallowed it (seen: the
    suite hung 20 min in ``test_multilabel_audit_end_to_end``; reproduced with 300 small pools).
    """
    yield
    if signal.getsignal(signal.SIGTERM) is not _SIGTERM_AT_START:
        signal.signal(signal.SIGTERM, _SIGTERM_AT_START)


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
    from cl_pipeline.defs.runs import DAGSTER_YAML

    home = tmp_path_factory.mktemp("dagster_home")
    (home / "dagster.yaml").write_text(DAGSTER_YAML)
    return home


@pytest.fixture
def fast_env(env: Path, shared_dagster_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Like ``env`` but with the session's shared DAGSTER_HOME."""
    monkeypatch.setenv("DAGSTER_HOME", str(shared_dagster_home))
    return env


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]):
    """Call ``cl-pipeline`` in-process; return (exit code, stdout, stderr)."""

    from cl_pipeline import cli

    def run(*argv: str) -> tuple[int, str, str]:
        try:
            code = cli.main(list(argv))
        finally:
            signal.signal(signal.SIGTERM, _SIGTERM_AT_START)  # see _sigterm_as_found: not only between tests
        out, err = capsys.readouterr()
        return code, out, err

    return run
