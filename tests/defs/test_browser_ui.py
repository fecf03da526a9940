"""The Dagster UI in a real headless browser (issue 10): what a user sees after a demo audit and a blocked one.

``dagster-webserver`` serves a DAGSTER_HOME holding a passing audit and a blocked one
(``tests/defs/conftest.py``); Debian's Chromium, driven by Playwright, opens the asset pages
and the blocked run. Checked: the ``calibrated_joint`` page shows Q as a table, the
``label_issues`` page the top issues, the blocked date says what blocked it (run, asset events,
check). Each page is saved as a PNG in ``build/screenshots/`` (env ``CL_PIPELINE_SCREENSHOTS``).

Needs Chromium (``make ui-browser`` installs it with apt-get, and Playwright into the venv;
``make test`` runs that first). Skipped, saying why, only where either cannot be found.
"""

import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import BLOCKED, PASSED, AuditedHome

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = Path(os.environ.get("CL_PIPELINE_SCREENSHOTS", ROOT / "build" / "screenshots"))
#: Where Chromium may be: env CL_PIPELINE_CHROMIUM, else Debian's package, else other usual names.
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def _chromium() -> str | None:
    explicit = os.environ.get("CL_PIPELINE_CHROMIUM")
    if explicit:
        return explicit if Path(explicit).is_file() else None
    return next((found for name in CHROMIUM_NAMES if (found := shutil.which(name))), None)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _graphql(base: str, query: str) -> dict:
    request = urllib.request.Request(
        f"{base}/graphql", data=json.dumps({"query": query}).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def _wait_until_loaded(base: str, server: subprocess.Popen, timeout: float = 150.0) -> None:
    """Until the webserver answers and its code location is loaded (else the assets look external)."""
    query = "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus } } } }"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"dagster-webserver exited with {server.returncode}")
        try:
            entries = _graphql(base, query)["data"]["workspaceOrError"]["locationEntries"]
            if entries and all(e["loadStatus"] == "LOADED" for e in entries):
                return
        except (OSError, KeyError, TypeError, ValueError):
            pass
        time.sleep(0.2)  # pure waiting for the server: poll often
    raise AssertionError(f"the UI at {base} did not load its code location in {timeout:.0f} s")


def _missing() -> str | None:
    """Why the test cannot run here, or None."""
    if importlib.util.find_spec("playwright") is None:
        return "Playwright is not installed (it is in the test extra: `make ui-browser`)"
    if _chromium() is None:
        return "Chromium not found (`make ui-browser` installs Debian's package as root; or set CL_PIPELINE_CHROMIUM)"
    return None


#: Decided before any fixture runs, so a machine without Chromium does not pay for the audits.
pytestmark = pytest.mark.skipif(_missing() is not None, reason=str(_missing()))


@pytest.fixture(scope="module")
def chromium() -> str:
    """The Chromium binary (present: see ``pytestmark``)."""
    return str(_chromium())


@pytest.fixture(scope="module")
def ui(chromium: str, audited_home: AuditedHome, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``dagster-webserver`` on 127.0.0.1 and a free port over the audited home; yields its base URL."""
    port = _free_port()
    env = os.environ | {
        "DAGSTER_HOME": str(audited_home.home),
        "CL_PIPELINE_DATA_DIR": str(audited_home.data),
        "CL_PIPELINE_START_DATE": PASSED,  # a few partitions
        "CL_PIPELINE_CONFIG": str(audited_home.config),
    }
    log = (tmp_path_factory.mktemp("webserver") / "webserver.log").open("w")
    webserver = Path(sys.executable).parent / "dagster-webserver"
    command = [str(webserver), "-h", "127.0.0.1", "-p", str(port), "-m", "cl_pipeline.definitions"]
    server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_until_loaded(base, server)
        yield base
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=30)
        log.close()


@pytest.fixture(scope="module")
def browser(chromium: str, ui: str) -> Iterator[object]:
    """Headless Chromium (``--no-sandbox``: CI runs as root, where Chromium's sandbox refuses to start)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser, ui: str):
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, base_url=ui)
    page = context.new_page()
    page.set_default_timeout(45_000)
    yield page
    context.close()


def _open(page, path: str, *, wait_for: str) -> None:
    """Open ``path``, wait for ``wait_for`` to be visible, close Dagster's community pop-up if it shows."""
    page.goto(path)
    page.get_by_text(wait_for).first.wait_for(state="visible")
    skip = page.get_by_role("button", name="Skip")
    if skip.count():
        skip.first.click()
        skip.first.wait_for(state="hidden")


def _shoot(page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")
    return path


def _table_with(page, header: str):
    """The rendered table whose header has a cell ``header`` (a table metadata value of the page)."""
    cell = page.get_by_role("cell", name=header, exact=True).or_(
        page.get_by_role("columnheader", name=header, exact=True)
    )
    return cell.first.locator("xpath=ancestor::table[1]")


def _rows(table) -> list[list[str]]:
    return [[c.strip() for c in row.locator("th, td").all_inner_texts()] for row in table.locator("tr").all()]


def test_calibrated_joint_page_shows_q_as_a_table(page, audited_home: AuditedHome) -> None:
    from cl_pipeline.storage import read_table

    _open(page, f"/assets/calibrated_joint?view=partitions&partition={PASSED}", wait_for="estimated_noise_rate")
    _shoot(page, "calibrated_joint")
    rows = _rows(_table_with(page, "given \\ true"))
    assert rows[0] == ["given \\ true", "cat", "dog", "emu"], rows
    stored = read_table(audited_home.data, "calibrated_joint", PASSED)
    q = {(r.given_label, r.true_label): r.joint for r in stored.itertuples()}
    assert [row[0] for row in rows[1:]] == ["cat", "dog", "emu"]
    for given, *cells in rows[1:]:
        shown = dict(zip(["cat", "dog", "emu"], map(float, cells), strict=True))
        for true, value in shown.items():
            assert value == pytest.approx(q[(given, true)], rel=1e-3, abs=1e-12), (given, true)


def test_label_issues_page_shows_the_top_issues(page, audited_home: AuditedHome) -> None:
    from cl_pipeline.storage import read_table

    _open(page, f"/assets/label_issues?view=partitions&partition={PASSED}", wait_for="top_20_issues")
    _shoot(page, "label_issues")
    rows = _rows(_table_with(page, "suggested_label"))
    assert rows[0][:5] == ["rank", "id", "given_label", "suggested_label", "label_quality"], rows[0]
    issues = read_table(audited_home.data, "label_issues", PASSED)
    top = issues[issues["is_label_issue"]].sort_values("rank").head(20)
    assert [row[:2] for row in rows[1:]] == [[str(int(r)), i] for r, i in zip(top["rank"], top["id"], strict=True)]


def _blocked_run_id(base: str) -> str:
    partition = '{key: "dagster/partition", value: "' + BLOCKED + '"}'
    query = (
        '{ runsOrError(filter: {pipelineName: "audit_job", tags: [' + partition + "]}) "
        "{ ... on Runs { results { runId status } } } }"
    )
    runs = _graphql(base, query)["data"]["runsOrError"]["results"]
    assert [r["status"] for r in runs] == ["FAILURE"], runs
    return runs[0]["runId"]


def test_blocked_date_says_blocked(page, ui: str) -> None:
    said = "blocked by check noise_rate_below_threshold: estimated noise rate"
    _open(page, f"/runs/{_blocked_run_id(ui)}", wait_for=said)
    _shoot(page, "blocked_run")
    text = page.inner_text("body")
    assert "> threshold 0.0010; pruned_dataset, retrained_model not materialized for " + BLOCKED in text
    assert "DagsterAssetCheckFailedError" not in text

    _open(page, "/assets/pruned_dataset?view=events", wait_for=f"Partition {BLOCKED} observed")
    page.get_by_text(f"Partition {BLOCKED} observed").first.wait_for()
    _shoot(page, "blocked_pruned_dataset_events")
    assert said in page.inner_text("body")

    _open(page, "/assets/calibrated_joint?view=checks", wait_for="noise_rate_below_threshold")
    page.get_by_text("noise_rate_below_threshold").first.click()
    page.get_by_text("blocks_if_failed").first.wait_for()
    _shoot(page, "blocked_check")
    text = page.inner_text("body")
    assert "> threshold 0.0010" in text and "pruned_dataset, retrained_model" in text


def test_launch_dialog_from_a_partition_page_selects_that_date(page) -> None:
    """Dagster 1.13's "Materialize…" dialog opens with 0 partitions unless the page names one (docs/pipeline.md)."""
    _open(page, f"/assets/pruned_dataset?view=partitions&partition={PASSED}", wait_for="Materialize…")
    page.get_by_role("button", name="Materialize…").first.click()
    page.get_by_text("Partition selection").first.wait_for()
    _shoot(page, "launch_dialog_from_partition")
    assert page.get_by_text("1 partition", exact=True).count() >= 1
    page.keyboard.press("Escape")  # closes the dialog: nothing is launched
