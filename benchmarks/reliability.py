"""Reliability figures: hostile trials against ``cl-pipeline``, written to ``docs/reliability.md``.

Three kinds of trial:

1. **Bad inputs.** Every test of ``tests/cli/test_*bad_inputs.py`` and ``tests/cli/test_fuzz_inputs.py``
   runs under pytest with this module as a plugin, which counts each ``cl-pipeline`` call
   (``cli.main``) and its exit code. A *trial* is one call; a *kind* of bad input is one
   parametrized test case whose calls all exit 2 (one defect: the test also checks the message
   names the argument or key, that nothing was written and that no traceback escaped). The fuzz
   tests generate several inputs per kind (hypothesis, derandomized).
2. **Kills.** A real ``cl-pipeline audit`` of the embedded dataset in a subprocess is SIGKILLed
   when a stage's progress line appears (the next stage is then running), or after a random
   delay, on a fresh data directory or over a finished audit of the same date. Then: every
   Parquet file must read, every warehouse view must answer a query, and the rerun must exit 0,
   leave no temporary file and write tables identical to an uninterrupted audit (run ids,
   timestamps and timings aside). Every audit of a run imports a copy of ``cl_pipeline`` taken when
   the run starts, so a working tree edited meanwhile cannot make two audits differ.
3. **Reruns.** The same audit again over a finished one: identical tables.

Usage::

    python -m benchmarks.reliability [--quick] [--timed-kills 4] [--seed 0] [--out docs/reliability.md]

``make bench-reliability`` runs the full set (several minutes: each kill trial is two cold
audits); ``--quick`` is a smoke run (a few bad-input kinds, one kill).
"""

import argparse
import collections
import json
import os
import platform
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "reliability.md"
DATE = "2025-01-01"
BAD_INPUT_FILES = (
    "tests/cli/test_find_bad_inputs.py",
    "tests/cli/test_audit_bad_inputs.py",
    "tests/cli/test_bad_inputs.py",
    "tests/cli/test_fuzz_inputs.py",
)
#: The stages whose progress line triggers a kill (the audit prints one line as each finishes).
KILL_AFTER = (
    "raw_labels",
    "oof_pred_probs",
    "confident_joint",
    "calibrated_joint",
    "label_issues",
    "audit_summary",
    "pruned_dataset",
    "retrained_model",
)
#: Columns that differ between two runs of the same audit by design.
VOLATILE = {"run_id", "created_at", "seconds"}
_PROGRESS = re.compile(r"^\s{2}(\w+)\s")
_LOG_ENV = "CL_PIPELINE_RELIABILITY_LOG"


# ----------------------------------------------------------------- pytest plugin (bad-input trials)

_calls: list[int] = []


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """Count the ``cli.main`` calls of one test and their exit codes (argparse's SystemExit included)."""
    from cl_pipeline import cli

    original = cli.main

    def counted(argv: list[str] | None = None) -> int:
        try:
            code = original(argv)
        except SystemExit as exc:
            _calls.append(exc.code if isinstance(exc.code, int) else 2)
            raise
        _calls.append(int(code))
        return code

    _calls.clear()
    cli.main = counted
    try:
        return (yield)
    finally:
        cli.main = original


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """One JSON line per test case: its node id, outcome and the exit codes of its CLI calls."""
    path = os.environ.get(_LOG_ENV)
    if not path or (report.when != "call" and report.outcome != "failed" and not report.skipped):
        return
    with open(path, "a") as handle:
        handle.write(json.dumps({"nodeid": report.nodeid, "outcome": report.outcome, "codes": list(_calls)}) + "\n")


# ----------------------------------------------------------------- bad inputs


@dataclass
class CaseResult:
    """One parametrized test case of the bad-input files."""

    nodeid: str
    outcome: str
    codes: list[int]

    @property
    def group(self) -> str:
        """``find`` or ``audit, history, diff`` (by the test's file and name), for the table."""
        return "find" if "find" in self.nodeid else "audit, history, diff"

    @property
    def kind(self) -> str:
        """What the case tries: ``bad input`` (every call exits 2), ``valid input``, or ``validator`` (no CLI call)."""
        if not self.codes:
            return "validator"
        return "bad input" if set(self.codes) == {2} else "valid input"


def bad_input_trials(files: tuple[str, ...] = BAD_INPUT_FILES, select: str | None = None) -> list[CaseResult]:
    """Run the bad-input test files under pytest with this plugin; one :class:`CaseResult` per case."""
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "cases.jsonl"
        env = dict(os.environ, **{_LOG_ENV: str(log)})
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "benchmarks.reliability"]
        command += [*files, *(["-k", select] if select else [])]
        subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
        lines = log.read_text().splitlines() if log.exists() else []
    return [CaseResult(**json.loads(line)) for line in lines]


# ----------------------------------------------------------------- kills and reruns


#: A copy of the package made when the run starts: every audit of the run imports it, so all run
#: the same code (``code_version`` hashes the sources) even if the working tree changes meanwhile.
_frozen: Path | None = None


def freeze_sources(root: Path) -> Path:
    """Copy ``cl_pipeline`` under ``root/src`` and use it for the audits of this run; returns the copy."""
    global _frozen
    _frozen = root / "src"
    shutil.copytree(ROOT / "cl_pipeline", _frozen / "cl_pipeline", ignore=shutil.ignore_patterns("__pycache__"))
    return _frozen


def _env(home: Path) -> dict[str, str]:
    env = dict(os.environ, DAGSTER_HOME=str(home), PYTHONUNBUFFERED="1")
    env.pop("CL_PIPELINE_CONFIG", None)
    env.setdefault("CL_PIPELINE_START_DATE", "2024-01-01")
    if _frozen is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_frozen), env.get("PYTHONPATH", "")]))
    return env


def _cwd() -> Path | None:
    """Where the audits start: not the repository (``python -m`` would import its live sources first)."""
    return _frozen.parent if _frozen is not None else None


def _audit_command(data: Path) -> list[str]:
    return [sys.executable, "-m", "cl_pipeline.cli", "audit", "--date", DATE, "--data-dir", str(data)]


def run_audit(data: Path, home: Path) -> int:
    """A whole audit of the embedded dataset into ``data``; its exit code."""
    command = _audit_command(data)
    done = subprocess.run(command, env=_env(home), cwd=_cwd(), capture_output=True, text=True, check=False)
    return done.returncode


def timed_audit(data: Path, home: Path) -> tuple[int, float]:
    """A whole audit; (exit code, seconds from its first progress line to its end: the stages' span)."""
    process = subprocess.Popen(
        _audit_command(data), env=_env(home), cwd=_cwd(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    assert process.stderr is not None
    first = None
    for line in process.stderr:
        if first is None and _PROGRESS.match(line):
            first = time.perf_counter()
    code = process.wait()
    return code, time.perf_counter() - (first or time.perf_counter())


def killed_audit(data: Path, home: Path, after: str | None, delay: float | None) -> str | None:
    """Start an audit; SIGKILL it when stage ``after`` reports, or ``delay`` s after its first stage reports.

    Returns the stage being run when the kill landed (the last progress line's successor is
    running), ``None`` if the audit finished first.
    """
    process = subprocess.Popen(
        _audit_command(data), env=_env(home), cwd=_cwd(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    seen: list[str] = []
    timer = threading.Timer(delay, process.send_signal, [signal.SIGKILL]) if delay is not None else None
    assert process.stderr is not None
    started = False
    for line in process.stderr:
        match = _PROGRESS.match(line)
        if match and timer is not None and not started:
            timer.start()  # the delay counts from the first stage's line: the kill lands inside the stages
            started = True
        if match and match.group(1) != "check":
            seen.append(match.group(1))
        if after is not None and seen and seen[-1] == after:
            process.send_signal(signal.SIGKILL)
            break
    code = process.wait()
    if timer is not None:
        timer.cancel()
    if code != -signal.SIGKILL:
        return None
    return f"after {seen[-1]}" if seen else "before the first stage finished"


def inspect_data_dir(data: Path) -> dict[str, list[str]]:
    """What a reader finds in ``data``: unreadable Parquet files, temporary files, views that fail a query."""
    import duckdb
    import pyarrow.parquet as pq

    found: dict[str, list[str]] = {"unreadable": [], "temp_files": [], "failing_views": []}
    for path in sorted(data.rglob("*.parquet")):
        try:
            pq.read_table(path)
        except Exception as exc:  # noqa: BLE001 - any reader error is the finding
            found["unreadable"].append(f"{path.relative_to(data)}: {exc}")
    found["temp_files"] = [str(p.relative_to(data)) for p in sorted(data.rglob("*.tmp"))]
    warehouse = data / "warehouse.duckdb"
    if warehouse.exists():
        try:
            with duckdb.connect(str(warehouse), read_only=True) as con:
                views = [
                    r[0] for r in con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()
                ]
                for view in views:
                    try:
                        con.execute(f'SELECT count(*) FROM "{view}"').fetchall()
                    except duckdb.Error as exc:
                        found["failing_views"].append(f"{view}: {exc}")
        except duckdb.Error as exc:
            found["failing_views"].append(f"warehouse.duckdb: {exc}")
    return found


def tables(data: Path) -> dict[str, Any]:
    """Every table file of ``DATE`` in ``data`` as a DataFrame, without the columns that differ by design."""
    import pandas as pd

    frames = {}
    for path in sorted(data.glob(f"*/{DATE}*.parquet")):
        frame = pd.read_parquet(path)
        drop = [c for c in frame.columns if c in VOLATILE or c.startswith("seconds_")]
        frame = frame.drop(columns=drop).reset_index(drop=True)
        if "artifact" in frame.columns:  # an absolute path into the data dir: compare it relative
            frame["artifact"] = frame["artifact"].str.replace(str(data.resolve()), "<data>", regex=False)
        frames[str(path.relative_to(data))] = frame
    return frames


def differences(reference: dict[str, Any], other: dict[str, Any]) -> list[str]:
    """The tables that are missing, extra or different in ``other``."""
    found = [f"missing {name}" for name in reference.keys() - other.keys()]
    found += [f"extra {name}" for name in other.keys() - reference.keys()]
    found += [
        f"different {name}" for name in reference.keys() & other.keys() if not reference[name].equals(other[name])
    ]
    return sorted(found)


@dataclass
class KillResult:
    """One SIGKILL trial."""

    trigger: str
    start: str  # "fresh" data dir, or "overwrite" (a finished audit of the same date)
    landed: str | None  # where the kill landed; None: the audit finished first
    after_kill: dict[str, list[str]] = field(default_factory=dict)
    rerun_exit: int | None = None
    after_rerun: dict[str, list[str]] = field(default_factory=dict)
    rerun_differences: list[str] = field(default_factory=list)

    @property
    def survived(self) -> bool:
        """Readable files and queryable views after the kill; rerun exit 0, no temp file, identical tables."""
        clean_kill = not self.after_kill["unreadable"] and not self.after_kill["failing_views"]
        clean_rerun = not any(self.after_rerun.values()) and not self.rerun_differences
        return clean_kill and self.rerun_exit == 0 and clean_rerun


def kill_trial(root: Path, reference: Path, home: Path, trigger: str, delay: float | None, start: str) -> KillResult:
    """Kill an audit (``trigger``: a stage name, or ``timed``), inspect, rerun, compare with ``reference``."""
    data = Path(tempfile.mkdtemp(prefix=f"kill-{trigger}-{start}-", dir=root)) / "data"
    if start == "overwrite":
        shutil.copytree(reference, data)
    landed = killed_audit(data, home, None if trigger == "timed" else trigger, delay)
    result = KillResult(trigger if delay is None else f"timed {delay:.1f} s", start, landed)
    result.after_kill = inspect_data_dir(data)
    result.rerun_exit = run_audit(data, home)
    result.after_rerun = inspect_data_dir(data)
    result.rerun_differences = differences(tables(reference), tables(data))
    shutil.rmtree(data.parent, ignore_errors=True)
    return result


# ----------------------------------------------------------------- report


def _markdown(
    cases: list[CaseResult], kills: list[KillResult], reruns: list[list[str]], seconds: float, quick: bool
) -> str:
    lines = [
        "# Reliability figures",
        "",
        "Produced by `make bench-reliability` (`python -m benchmarks.reliability"
        + (" --quick" if quick else "")
        + f"`) on {platform.machine()} with {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"in {seconds / 60:.1f} min. Rewritten by each run; the method is in the module's docstring.",
        "",
        "## Bad inputs",
        "",
        "Every test case of `tests/cli/test_*bad_inputs.py` and `tests/cli/test_fuzz_inputs.py`; a trial is one",
        "`cl-pipeline` call, a kind of bad input one test case whose calls all exit 2 (message naming the",
        "argument or key and the value, nothing written, no traceback: checked by the test).",
        "",
        "| command | kinds of bad input | trials | kinds passed | valid-input cases (trials) | validator cases | failed cases |",
        "|---|---|---|---|---|---|---|",
    ]
    by_group: dict[str, list[CaseResult]] = collections.defaultdict(list)
    for case in cases:
        by_group[case.group].append(case)
    for group in ("find", "audit, history, diff"):
        group_cases = by_group.get(group, [])
        bad = [c for c in group_cases if c.kind == "bad input"]
        valid = [c for c in group_cases if c.kind == "valid input"]
        lines.append(
            f"| {group} | {len(bad)} | {sum(len(c.codes) for c in bad)} | {sum(c.outcome == 'passed' for c in bad)} "
            f"| {len(valid)} ({sum(len(c.codes) for c in valid)}) | {sum(c.kind == 'validator' for c in group_cases)} "
            f"| {sum(c.outcome == 'failed' for c in group_cases)} |"
        )
    codes = collections.Counter(code for case in cases for code in case.codes)
    lines += ["", "Exit codes over all trials: " + ", ".join(f"{k}: {v}" for k, v in sorted(codes.items())) + "."]
    failed = [c.nodeid for c in cases if c.outcome == "failed"]
    lines += ["", "Failed cases: " + (", ".join(f"`{f}`" for f in failed) if failed else "none") + "."]
    landed = [k for k in kills if k.landed is not None]
    lines += [
        "",
        "## Kills",
        "",
        f"`cl-pipeline audit` of the embedded dataset, SIGKILLed {len(landed)} times ({len(kills) - len(landed)} more "
        "attempts finished before the kill): on a progress line (the next stage running) or after a random delay; "
        "the random delays count from the first stage's line, within the stages' span of an uninterrupted audit; "
        "`fresh` = empty data directory, `overwrite` = over a finished audit of the date. Survived = every Parquet file "
        "reads and every warehouse view answers after the kill, and the rerun exits 0, leaves no temporary file and "
        "writes tables identical to an uninterrupted audit.",
        "",
        "| kill | data dir | landed | unreadable files | failing views | temp files after kill | rerun exit | "
        "temp files after rerun | tables differing | survived |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for k in kills:
        lines.append(
            f"| {k.trigger} | {k.start} | {k.landed or 'finished first'} | {len(k.after_kill['unreadable'])} "
            f"| {len(k.after_kill['failing_views'])} | {len(k.after_kill['temp_files'])} | {k.rerun_exit} "
            f"| {len(k.after_rerun['temp_files'])} | {len(k.rerun_differences)} | {'yes' if k.survived else '**no**'} |"
        )
    lines += [
        "",
        f"**Kills survived: {sum(k.survived for k in landed)} of {len(landed)}.**",
        "",
        "## Reruns",
        "",
        f"The same audit rerun over a finished one: {sum(not r for r in reruns)} of {len(reruns)} identical"
        + ("." if all(not r for r in reruns) else f" (differences: {reruns})."),
        "",
        "## Totals",
        "",
        f"- trials: {sum(len(c.codes) or 1 for c in cases) + len(kills) + len(reruns)} "
        f"({sum(len(c.codes) for c in cases)} CLI calls over {len(cases)} test cases, {len(kills)} kill attempts, "
        f"{len(reruns)} reruns)",
        f"- kinds of bad input: {sum(c.kind == 'bad input' for c in cases)}",
        f"- kills survived: {sum(k.survived for k in landed)} of {len(landed)}",
        f"- failures: {len(failed) + sum(not k.survived for k in landed) + sum(bool(r) for r in reruns)}",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the trials and write the figures; exit 1 if any trial failed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: a few bad-input kinds, one kill, one rerun")
    parser.add_argument("--timed-kills", type=int, default=4, help="kills after a random delay (besides one per stage)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random delays")
    parser.add_argument("--out", type=Path, default=OUT, help="the Markdown file to write")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    select = "nan or zero or 20261120" if args.quick else None
    cases = bad_input_trials(BAD_INPUT_FILES[:2] if args.quick else BAD_INPUT_FILES, select)
    print(f"bad inputs: {len(cases)} cases, {sum(len(c.codes) for c in cases)} CLI calls", file=sys.stderr)
    rng = random.Random(args.seed)
    kills: list[KillResult] = []
    reruns: list[list[str]] = []
    with tempfile.TemporaryDirectory(prefix="cl-reliability-") as tmp:
        root, home = Path(tmp), Path(tmp) / "dagster_home"
        freeze_sources(root)
        reference = root / "reference" / "data"
        code, span = timed_audit(reference, home)
        if code != 0:
            raise SystemExit("the reference audit failed")
        rerun = root / "rerun"
        shutil.copytree(reference, rerun)
        reruns.append(differences(tables(reference), tables(rerun)) if run_audit(rerun, home) == 0 else ["exit != 0"])
        plan = [(stage, None, "fresh" if i % 2 == 0 else "overwrite") for i, stage in enumerate(KILL_AFTER)]
        plan += [
            ("timed", rng.uniform(0.02, 0.98) * span, rng.choice(["fresh", "overwrite"]))
            for _ in range(args.timed_kills)
        ]
        for trigger, delay, start in plan[:1] if args.quick else plan:
            kills.append(kill_trial(root, reference, home, trigger, delay, start))
            outcome = "survived" if kills[-1].survived else f"NOT survived: {asdict(kills[-1])}"
            print(f"kill {kills[-1].trigger} ({kills[-1].start}): {outcome}", file=sys.stderr)
    text = _markdown(cases, kills, reruns, time.perf_counter() - started, args.quick)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(f"wrote {args.out}", file=sys.stderr)
    bad = any(c.outcome == "failed" for c in cases) or any(k.landed and not k.survived for k in kills) or any(reruns)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
