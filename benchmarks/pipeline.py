"""Benchmark: a cold `cl-pipeline audit` of the embedded default, split into imports and stages.

Each repetition runs ``python -m cl_pipeline.cli audit`` in a fresh subprocess with
an empty data directory and an empty DAGSTER_HOME (no fold cache, new Dagster
instance). The split comes from:

- imports: a separate fresh interpreter importing what the audit imports before
  its first step (the CLI, ``cl_pipeline.definitions`` with Dagster, scikit-learn);
- each stage: the Dagster step duration recorded in the run's event log, and the
  asset's own compute time (``seconds`` in its metadata);
- the rest: total wall time minus imports minus steps (interpreter start,
  instance creation, run bookkeeping, summary printing).

Usage::

    python -m benchmarks.pipeline [--repeat 3] [--no-write]

Writes its table between ``<!-- pipeline:start -->`` and ``<!-- pipeline:end -->``
in ``benchmarks/RESULTS.md`` (the other sections are left alone).
"""

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
START, END = "<!-- pipeline:start -->", "<!-- pipeline:end -->"
DATE = "2025-01-01"
TARGET_SECONDS = 60.0
#: What the CLI imports before the first step (later imports, such as matplotlib in
#: ``calibrated_joint``, are counted in the step that makes them).
IMPORTS = (
    "import time; t = time.perf_counter(); import cl_pipeline.cli, cl_pipeline.definitions, "
    "sklearn.datasets, sklearn.linear_model; print(time.perf_counter() - t)"
)


def _env(root: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(CL_PIPELINE_DATA_DIR=str(root / "data"), DAGSTER_HOME=str(root / "dagster_home"))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    return env


def _step_durations(home: Path) -> dict[str, float]:
    """Seconds per step of the only run in ``home`` (from the Dagster event log)."""
    import dagster as dg

    os.environ["DAGSTER_HOME"] = str(home)
    with dg.DagsterInstance.get() as instance:
        run = instance.get_runs(limit=1)[0]
        records = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_SUCCESS)
        return {r.step_key: r.dagster_event.event_specific_data.duration_ms / 1000 for r in records}


def _asset_seconds(data: Path) -> dict[str, float]:
    from cl_pipeline.audit.stages import STAGES
    from cl_pipeline.storage import read_metadata

    return {t: float(read_metadata(data, t, DATE).get("seconds", float("nan"))) for t in STAGES}


def run_once() -> dict[str, object]:
    """One cold audit; returns wall time, import time, step and asset timings."""
    with tempfile.TemporaryDirectory(prefix="clp-bench-") as tmp:
        root = Path(tmp)
        env = _env(root)
        load = os.getloadavg()[0]
        imports = float(
            subprocess.run([sys.executable, "-c", IMPORTS], env=env, check=True, capture_output=True, text=True).stdout
        )
        start = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "cl_pipeline.cli", "audit", "--date", DATE],
            env=env,
            cwd=root,
            capture_output=True,
            text=True,
        )
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            raise SystemExit(f"audit failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
        return {
            "wall": wall,
            "imports": imports,
            "load": load,
            "steps": _step_durations(root / "dagster_home"),
            "assets": _asset_seconds(root / "data"),
        }


def _median(runs: list[dict], *path: str) -> float:
    values = []
    for run in runs:
        value: object = run
        for key in path:
            value = value.get(key, 0.0) if isinstance(value, dict) else 0.0
        values.append(float(value))  # type: ignore[arg-type]
    return statistics.median(values)


def render(runs: list[dict]) -> str:
    """Markdown section with the median split over ``runs``."""
    steps = list(runs[0]["steps"])
    order = [
        "raw_labels",
        "raw_labels_input_valid",
        "oof_pred_probs",
        "confident_joint",
        "calibrated_joint",
        "calibrated_joint_noise_rate_below_threshold",
        "calibrated_joint_class_noise_below_threshold",
        "label_issues",
        "audit_summary",
        "pruned_dataset",
        "retrained_model",
        "retrained_model_retrained_not_worse_than_baseline",
    ]
    steps = [s for s in order if s in steps] + [s for s in steps if s not in order]
    wall, imports = _median(runs, "wall"), _median(runs, "imports")
    each = ", ".join(f"{r['wall']:.1f}" for r in runs)
    loads = ", ".join(f"{r['load']:.1f}" for r in runs)
    step_total = sum(_median(runs, "steps", s) for s in steps)
    lines = [
        "## Pipeline: cold `cl-pipeline audit` on the embedded default (digits + 10% noise)",
        "",
        f"`python -m benchmarks.pipeline` ({len(runs)} cold runs, median; {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, in-process executor, fresh data dir and DAGSTER_HOME; "
        f"1-minute load average before the runs: {loads}, "
        "i.e. other processes were competing for the 2 cores when this is above ~0.5).",
        "",
        "| part | seconds | asset compute (s) |",
        "|---|---:|---:|",
        f"| imports (fresh interpreter) | {imports:.2f} | |",
    ]
    for step in steps:
        asset = _median(runs, "assets", step) if step in runs[0]["assets"] else None
        lines.append(
            f"| step `{step}` | {_median(runs, 'steps', step):.2f} | {'' if asset is None else f'{asset:.2f}'} |"
        )
    lines += [
        f"| rest (interpreter start, Dagster instance, run bookkeeping, summary) | "
        f"{max(wall - imports - step_total, 0):.2f} | |",
        f"| **total wall time** | **{wall:.2f}** | |",
        "",
        f"Target: <= {TARGET_SECONDS:.0f} s on 2 cores: **{'met' if wall <= TARGET_SECONDS else 'MISSED'}**"
        f" (runs: {each} s).",
    ]
    return "\n".join(lines)


def write_section(text: str) -> None:
    """Replace the text between the pipeline markers of RESULTS.md (create them if absent)."""
    block = f"{START}\n{text}\n{END}"
    current = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    if START in current and END in current:
        head, rest = current.split(START, 1)
        updated = head + block + rest.split(END, 1)[1]
    else:
        updated = current.rstrip("\n") + "\n\n" + block + "\n"
    tmp = RESULTS.with_suffix(".md.tmp")
    tmp.write_text(updated)
    os.replace(tmp, RESULTS)


def main() -> None:
    """Run the benchmark and print (and by default record) the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    args = parser.parse_args()
    runs = []
    for i in range(args.repeat):
        runs.append(run_once())
        print(f"run {i + 1}: {runs[-1]['wall']:.1f} s", file=sys.stderr)
    text = render(runs)
    print(text)
    if not args.no_write:
        write_section(text)


if __name__ == "__main__":
    main()
