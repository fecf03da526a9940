"""Round trip of the review loop through a real Label Studio (``make check-label-studio``).

Not part of ``make test`` or CI: Label Studio is a large install. What it does:

1. audits the embedded digits for one date in a scratch data folder (``cl-pipeline audit``,
   with one display column, ``pixel_36``) and exports the top ``--top`` flags as Label Studio
   tasks (``cl-pipeline review export --format label-studio``), with the labeling config;
2. starts Label Studio (its own virtual environment, ``--label-studio``) on 127.0.0.1, on a
   free port, with a scratch data folder, a known user and a legacy API token
   (``LABEL_STUDIO_USERNAME``/``PASSWORD``/``USER_TOKEN`` and
   ``LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN``: recent versions turn personal access tokens on
   and legacy tokens off for new organizations);
3. through its HTTP API: creates a project with our labeling config, imports our tasks
   (with their predictions), annotates them from the known true labels (relabel the real
   errors, keep the rest; one drop with a note, one keep of a flag the reviewer disagrees
   with, one task left open, one annotation cancelled, one task annotated twice: the later
   annotation counts), and exports the
   project as JSON (every task, annotated or not);
4. runs ``cl-pipeline review import`` on the export and checks that the latest decision of
   each id is the expected one, and that importing the export again writes nothing;
5. with ``--capture DIR``, writes the tasks, the labeling config, the export and the
   expected decisions there (``tests/fixtures/label_studio/``: the normal test suite
   imports them without Label Studio).

Usage: ``python tools/label_studio_roundtrip.py --label-studio PATH/bin/label-studio [--capture DIR] [--top N]``
Exit 0 when every check passed, 1 otherwise.
"""

import argparse
import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DATE = "2024-01-02"
USER = "reviewer@example.com"
#: The embedded digits with one display column (a pixel: shown as text in Label Studio).
CONFIG = """
[source]
kind = "embedded"

[columns]
id = "id"
label = "label"
true_label = "true_label"
numeric = ["pixel_*"]
display = ["pixel_36"]
"""
#: The object our labeling config's controls refer to: the first display column.
OBJECT = "show_pixel_36"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _cli(data_dir: Path, *args: str) -> str:
    env = dict(os.environ, CL_PIPELINE_DATA_DIR=str(data_dir), DAGSTER_HOME=str(data_dir.parent / "dagster_home"))
    env.pop("CL_PIPELINE_CONFIG", None)
    done = subprocess.run(
        [sys.executable, "-m", "cl_pipeline.cli", *args], env=env, capture_output=True, text=True, cwd=data_dir.parent
    )
    if done.returncode != 0:
        raise RuntimeError(f"cl-pipeline {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return done.stdout


class Api:
    """The Label Studio HTTP API with a legacy token (``Authorization: Token ...``)."""

    def __init__(self, base: str, token: str) -> None:
        self.base, self.token = base, token

    def call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method)
        request.add_header("Authorization", f"Token {self.token}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                text = response.read().decode()
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"{method} {path}: HTTP {exc.code}: {exc.read().decode()[:2000]}") from None
        return json.loads(text) if text else None


@contextlib.contextmanager
def label_studio(binary: Path, workdir: Path, token: str) -> Iterator[tuple[str, str]]:
    """A Label Studio server on 127.0.0.1 (yields its URL and version); stopped on exit."""
    port = _free_port()
    env = dict(
        os.environ,
        LABEL_STUDIO_USERNAME=USER,
        LABEL_STUDIO_PASSWORD=secrets.token_hex(12),
        LABEL_STUDIO_USER_TOKEN=token,
        LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN="true",
        LABEL_STUDIO_BASE_DATA_DIR=str(workdir / "ls-data"),
        LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK="true",
    )
    command = [str(binary), "start", "--no-browser", "--internal-host", "127.0.0.1", "--port", str(port)]
    command += ["--data-dir", str(workdir / "ls-data"), "--enable-legacy-api-token"]
    log = open(workdir / "label-studio.log", "wb")  # noqa: SIM115 (closed below)
    server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        version = _wait_until_up(base, server, workdir / "label-studio.log")
        yield base, version
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()


def _wait_until_up(base: str, server: subprocess.Popen, log: Path, timeout: float = 600) -> str:
    """Poll ``/api/version`` until it answers (first start runs the migrations: a minute or more)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"Label Studio exited {server.returncode}:\n{log.read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(base + "/api/version", timeout=5) as response:
                info = json.loads(response.read().decode())
            return str(info.get("release") or info.get("label-studio-os-package", {}).get("version"))
        except (urllib.error.URLError, ConnectionError, TimeoutError, json.JSONDecodeError):
            time.sleep(2)
    raise RuntimeError(f"Label Studio did not answer within {timeout} s:\n{log.read_text()[-4000:]}")


def _choice(label: str) -> list[dict[str, Any]]:
    return [{"from_name": "label", "to_name": OBJECT, "type": "choices", "value": {"choices": [label]}}]


def _note(text: str) -> list[dict[str, Any]]:
    return [{"from_name": "note", "to_name": OBJECT, "type": "textarea", "value": {"text": [text]}}]


def annotate(api: Api, tasks: list[dict[str, Any]], truth: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Annotate the project's tasks; returns the expected decision per id (ids left open are absent)."""
    expected: dict[str, dict[str, Any]] = {}
    tasks = sorted(tasks, key=lambda t: t["data"]["rank"])
    for i, task in enumerate(tasks):
        data = task["data"]
        true, given = truth[data["id"]], data["given_label"]
        path = f"/api/tasks/{task['id']}/annotations/"
        if i == 1:
            continue  # left open: not reviewed yet
        if i == 3:
            api.call("POST", path, {"result": [], "was_cancelled": True})  # skipped by the reviewer
            continue
        if i == 0:
            api.call("POST", path, {"result": _choice("(drop this example)") + _note("unreadable scan")})
            expected[data["id"]] = {"decision": "drop", "new_label": None, "note": "unreadable scan"}
            continue
        if i == 4:  # the reviewer disagrees with the flag: choosing the given label is a keep
            api.call("POST", path, {"result": _choice(given) + _note("looks right to me")})
            expected[data["id"]] = {"decision": "keep", "new_label": None, "note": "looks right to me"}
            continue
        if i == 2:
            wrong = next(c for c in "0123456789" if c not in (true, given))
            api.call("POST", path, {"result": _choice(wrong)})
            time.sleep(1.1)  # the later annotation has the later updated_at
        api.call("POST", path, {"result": _choice(true)})
        decision = (
            {"decision": "keep", "new_label": None} if true == given else {"decision": "relabel", "new_label": true}
        )
        expected[data["id"]] = decision | {"note": None}
    return expected


def _check_import(data_dir: Path, export: Path, expected: dict[str, dict[str, Any]]) -> list[str]:
    """Import the export twice; the problems found (empty: all good)."""
    from cl_pipeline.storage.decisions import read_decisions

    first = _cli(data_dir, "review", "import", str(export))
    second = _cli(data_dir, "review", "import", str(export))
    print(first, second, sep="", end="")
    latest = {r["id"]: r for r in read_decisions(data_dir, latest_only=True).to_pylist()}
    problems = []
    if set(latest) != set(expected):
        problems.append(f"decided ids {sorted(latest)} != expected {sorted(expected)}")
    for key, want in expected.items():
        got = latest.get(key)
        if got is not None and {k: got[k] for k in want} != want:
            problems.append(f"{key}: stored { ({k: got[k] for k in want}) } != expected {want}")
    if "nothing written" not in second:
        problems.append(f"the second import wrote something: {second}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--label-studio", required=True, type=Path, help="the label-studio executable")
    parser.add_argument("--capture", type=Path, help="write the fixtures of the test suite to this folder")
    parser.add_argument("--top", type=int, default=12, help="flags exported (default 12)")
    args = parser.parse_args(argv)
    import pyarrow.parquet as pq

    with tempfile.TemporaryDirectory(prefix="cl-ls-roundtrip-") as scratch:
        work = Path(scratch)
        data_dir = work / "data"
        print(f"auditing the embedded digits for {DATE} in {data_dir}", flush=True)
        config_file = work / "digits.toml"
        config_file.write_text(CONFIG)
        _cli(data_dir, "audit", "--config", str(config_file), "--date", DATE)
        tasks_file = work / "tasks.json"
        export = ["review", "export", "--config", str(config_file), "--top", str(args.top), "--format", "label-studio"]
        print(_cli(data_dir, *export, "--out", str(tasks_file)))
        raw = pq.read_table(data_dir / "raw_labels" / f"{DATE}.parquet", columns=["id", "true_label"]).to_pylist()
        truth = {r["id"]: str(r["true_label"]) for r in raw}
        token = secrets.token_hex(20)
        with label_studio(args.label_studio, work, token) as (base, version):
            print(f"Label Studio {version} on {base}", flush=True)
            api = Api(base, token)
            config = (work / "tasks.label_config.xml").read_text()
            project = api.call("POST", "/api/projects/", {"title": "cl_pipeline review", "label_config": config})
            api.call("POST", f"/api/projects/{project['id']}/import", json.loads(tasks_file.read_text()))
            listed = api.call("GET", f"/api/tasks/?project={project['id']}&page_size=1000")
            tasks = listed["tasks"] if isinstance(listed, dict) else listed
            expected = annotate(api, tasks, truth)
            exported = api.call("GET", f"/api/projects/{project['id']}/export?exportType=JSON&download_all_tasks=true")
        export_file = work / "export.json"
        export_file.write_text(json.dumps(exported, indent=1, sort_keys=True) + "\n")
        problems = _check_import(data_dir, export_file, expected)
        if args.capture:
            _capture(args.capture, work, export_file, expected, version, len(tasks))
    for problem in problems:
        print(f"FAILED: {problem}", file=sys.stderr)
    print("round trip passed" if not problems else f"round trip FAILED ({len(problems)} problems)")
    return 1 if problems else 0


def _capture(folder: Path, work: Path, export: Path, expected: dict[str, Any], version: str, n_tasks: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tasks.json").write_text((work / "tasks.json").read_text())
    (folder / "label_config.xml").write_text((work / "tasks.label_config.xml").read_text())
    (folder / "export.json").write_text(export.read_text())
    about = {"label_studio_version": version, "date": DATE, "tasks": n_tasks, "expected": expected}
    (folder / "expected.json").write_text(json.dumps(about, indent=1, sort_keys=True) + "\n")
    print(f"fixtures written to {folder}")


if __name__ == "__main__":
    sys.exit(main())
