"""Benchmark: the audit with supplied probabilities at 1M, 10M (and 100M) rows, against `find`.

For each size, seeded data is generated in row groups into a temporary folder
(a Parquet snapshot with ``id``, ``label`` and ten float32 probability columns,
plus the same arrays as ``.npy`` for ``find``), then, each in a fresh process:

- ``cl-pipeline audit`` of that snapshot (its DAGSTER_HOME set up beforehand, untimed,
  as a nightly audit finds it): wall time, seconds per stage (from the
  ``stage_timings`` view), rows per second, peak RSS;
- ``cl-pipeline find`` on the ``.npy`` files: wall time, peak RSS; its flags must be
  the audit's (the command fails otherwise);
- at 10M, cleanlab's ``find_label_issues_batched`` (its only large-data path, which
  approximates the ``low_self_confidence`` filter): time, peak RSS, and the Jaccard
  index of its flags with the exact default filter.

Peak RSS is the ``ru_maxrss`` of the measured process (the in-process executor runs
every stage in it). The temporary folder is removed at the end.

Usage (from the repository root)::

    python -m benchmarks.scale                      # 1M and 10M, rewrites its RESULTS.md section
    python -m benchmarks.scale --sizes 1000000 --no-write
    python -m benchmarks.scale --sizes 1000000,10000000,100000000
    python -m benchmarks.scale --sizes 100000000 --save rows.jsonl --no-write   # sizes run apart ...
    python -m benchmarks.scale --report-from rows.jsonl                          # ... reported together
"""

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks._grid_metrics import replace_section

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "RESULTS.md"
K = 10
ROW_GROUP = 1_000_000
DATE = "2026-01-15"
#: Targets of the scale issue on a 2-core machine: rows -> (seconds, GiB).
TARGETS = {10_000_000: (30.0, 1.0), 100_000_000: (300.0, 1.5)}
START, END = "<!-- scale:start -->", "<!-- scale:end -->"

_MEASURE = """
import json, resource, subprocess, sys, time
start = time.perf_counter()
proc = subprocess.run(sys.argv[1:], capture_output=True, text=True)
print(json.dumps({"seconds": time.perf_counter() - start, "code": proc.returncode,
                  "maxrss_kib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
                  "stderr": proc.stderr[-2000:], "stdout": proc.stdout[-2000:]}))
"""


def generate(folder: Path, n: int, seed: int = 0) -> None:
    """Write ``n`` rows in row groups: a Parquet snapshot and the same arrays as ``.npy``."""
    rng = np.random.default_rng(seed)
    snapshots = folder / "snapshots"
    snapshots.mkdir(parents=True)
    probs_npy = np.lib.format.open_memmap(folder / "pred_probs.npy", mode="w+", dtype=np.float32, shape=(n, K))
    labels_npy = np.lib.format.open_memmap(folder / "labels.npy", mode="w+", dtype=np.int64, shape=(n,))
    schema = pa.schema([("id", pa.int64()), ("label", pa.int64())] + [(f"p_{j}", pa.float32()) for j in range(K)])
    with pq.ParquetWriter(snapshots / f"snapshot-{DATE}.parquet", schema, compression="zstd") as writer:
        for lo in range(0, n, ROW_GROUP):
            b = min(ROW_GROUP, n - lo)
            true = rng.integers(0, K, b)
            logits = rng.normal(size=(b, K)) + 3.0 * np.eye(K)[true]
            probs = np.exp(logits - logits.max(axis=1, keepdims=True))
            probs = (probs / probs.sum(axis=1, keepdims=True)).astype(np.float32)
            noisy = rng.random(b) < 0.1
            labels = np.where(noisy, rng.integers(0, K, b), true)
            probs_npy[lo : lo + b], labels_npy[lo : lo + b] = probs, labels
            columns = [pa.array(np.arange(lo, lo + b)), pa.array(labels)] + [pa.array(probs[:, j]) for j in range(K)]
            writer.write_table(pa.Table.from_arrays(columns, schema=schema))
    probs_npy.flush(), labels_npy.flush()
    (folder / "audit.toml").write_text(
        '[source]\nkind = "folder"\npath = "snapshots"\npattern = "*.parquet"\n'
        f"[columns]\nprobabilities = [{', '.join(repr(f'p_{j}') for j in range(K))}]\n".replace("'", '"')
    )


def measure(argv: list[str], env: dict[str, str]) -> dict:
    """Run ``argv`` in a fresh process (through a wrapper reading its peak RSS)."""
    out = subprocess.run(
        [sys.executable, "-c", _MEASURE, *argv], env=env, capture_output=True, text=True, check=True
    ).stdout
    result = json.loads(out.strip().splitlines()[-1])
    result["peak_gib"] = result["maxrss_kib"] / 2**20
    return result


def stage_seconds(data: Path) -> dict[str, float]:
    """Seconds of each stage of the audited date, from the metadata of its files."""
    from cl_pipeline.audit.stages import STAGES
    from cl_pipeline.storage import read_metadata

    return {t: float(read_metadata(data, t, DATE).get("seconds", float("nan"))) for t in STAGES if (data / t).is_dir()}


def _set_up_home(env: dict[str, str]) -> None:
    """Create the Dagster instance's storage before the timed audit, as a nightly audit finds it (set up once)."""
    code = "from cl_pipeline.defs.runs import ensure_dagster_home; ensure_dagster_home()"
    subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True)


def run_size(n: int, workdir: Path, cleanlab: bool) -> dict:
    """Generate, audit, find (and cleanlab at 10M) for ``n`` rows; return the measurements."""
    folder = workdir / f"n{n}"
    started = time.perf_counter()
    generate(folder, n)
    row: dict = {"n": n, "generate_s": time.perf_counter() - started}
    env = {**os.environ, "CL_PIPELINE_DATA_DIR": str(folder / "data"), "DAGSTER_HOME": str(folder / "dagster_home")}
    env["CL_PIPELINE_START_DATE"] = "2026-01-01"
    cli = [sys.executable, "-m", "cl_pipeline.cli"]
    _set_up_home(env)
    audit = measure([*cli, "audit", "--config", str(folder / "audit.toml"), "--date", DATE], env)
    if audit["code"] not in (0, 3):
        raise RuntimeError(f"audit failed at n={n}: {audit['stderr']}")
    row["audit"] = audit | {"stages": stage_seconds(folder / "data")}
    out = folder / "find.parquet"
    find = [*cli, "find", str(folder / "pred_probs.npy"), str(folder / "labels.npy"), "--out", str(out)]
    row["find"] = measure(find, env)
    found = pq.read_table(out, columns=["index", "is_label_issue"]).to_pandas().sort_values("index")
    audited = pq.read_table(folder / "data" / "label_issues" / f"{DATE}.parquet", columns=["row", "is_label_issue"])
    audited = audited.to_pandas().sort_values("row")
    row["flags_identical"] = bool(
        np.array_equal(found["is_label_issue"].to_numpy(), audited["is_label_issue"].to_numpy())
    )
    if not row["flags_identical"]:
        raise RuntimeError(f"the audit's flags differ from find's at n={n}")
    row["num_issues"] = int(found["is_label_issue"].sum())
    if cleanlab:
        row["cleanlab_batched"] = _cleanlab_batched(folder, found["is_label_issue"].to_numpy(), env)
    return row


_CLEANLAB = """
import json, sys, numpy as np
from cleanlab.experimental.label_issues_batched import find_label_issues_batched
idx = find_label_issues_batched(labels_file=sys.argv[1], pred_probs_file=sys.argv[2], batch_size=1_000_000, n_jobs=2)
np.save(sys.argv[3], idx)
"""


def _cleanlab_batched(folder: Path, exact: np.ndarray, env: dict[str, str]) -> dict:
    out = folder / "cleanlab_idx.npy"
    argv = [sys.executable, "-c", _CLEANLAB, str(folder / "labels.npy"), str(folder / "pred_probs.npy"), str(out)]
    result = measure(argv, env)
    if result["code"] != 0:
        return {"error": result["stderr"][-300:]}
    theirs = np.zeros(exact.size, dtype=bool)
    theirs[np.load(out)] = True
    union = int((theirs | exact).sum())
    result["jaccard_with_exact_default"] = int((theirs & exact).sum()) / max(union, 1)
    result["num_issues"] = int(theirs.sum())
    return result


def _fmt_stages(stages: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.1f}" for k, v in stages.items() if v == v)


def report(rows: list[dict]) -> str:
    """The Markdown section of RESULTS.md."""
    lines = [
        f"`python -m benchmarks.scale` ({os.cpu_count()} cores, Python {platform.python_version()}; seeded data, "
        f"{K} float32 classes, folder source of Parquet snapshots with `columns.probabilities`; each command in a "
        "fresh process, the audit's DAGSTER_HOME set up once before it as a nightly audit finds it; peak RSS = "
        "ru_maxrss of that process).",
        "",
        "| rows | audit s | rows/s | audit peak GiB | target | find s | find peak GiB | flags = find | issues |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        a, f = r["audit"], r["find"]
        target = TARGETS.get(r["n"])
        verdict = "-"
        if target:
            said = {True: "met", False: "MISSED"}
            verdict = (
                f"{target[0]:.0f} s: {said[a['seconds'] <= target[0]]}; "
                f"{target[1]} GiB: {said[a['peak_gib'] <= target[1]]}"
            )
        lines.append(
            f"| {r['n']:,} | {a['seconds']:.1f} | {r['n'] / a['seconds']:,.0f} | {a['peak_gib']:.2f} | {verdict} | "
            f"{f['seconds']:.1f} | {f['peak_gib']:.2f} | {r['flags_identical']} | {r['num_issues']:,} |"
        )
    lines += ["", "Seconds per stage (from each file's metadata):", ""]
    lines += [f"- {r['n']:,} rows: {_fmt_stages(r['audit']['stages'])}" for r in rows]
    for r in rows:
        c = r.get("cleanlab_batched")
        if c and "error" not in c:
            lines += [
                "",
                f"cleanlab 2.9.0 `find_label_issues_batched` at {r['n']:,} rows (batch 1M, n_jobs 2): "
                f"{c['seconds']:.1f} s, peak {c['peak_gib']:.2f} GiB, {c['num_issues']:,} flagged; Jaccard with the "
                f"exact default filter {c['jaccard_with_exact_default']:.3f} (it approximates `low_self_confidence`).",
            ]
    return "\n".join(lines)


def _run_sizes(sizes: list[int], cleanlab: bool, save: Path | None) -> list[dict]:
    """Measure every size in a temporary folder (removed at the end); append each row to ``save``."""
    workdir = Path(tempfile.mkdtemp(prefix="cl_scale_"))
    rows = []
    try:
        for n in sizes:
            rows.append(run_size(n, workdir, cleanlab=cleanlab and n == 10_000_000))
            print(json.dumps(rows[-1], default=str)[:2000], flush=True)
            if save is not None:
                with save.open("a") as handle:
                    handle.write(json.dumps(rows[-1], default=str) + "\n")
            shutil.rmtree(workdir / f"n{n}", ignore_errors=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000000,10000000", help="comma-separated row counts")
    parser.add_argument("--no-cleanlab", action="store_true", help="skip cleanlab's batched finder")
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    parser.add_argument("--save", type=Path, help="also append each size's measurements to this JSON-lines file")
    parser.add_argument(
        "--report-from", type=Path, help="no run: rewrite the section from measurements saved with --save"
    )
    args = parser.parse_args(argv)
    if args.report_from:
        rows = [json.loads(line) for line in args.report_from.read_text().splitlines() if line.strip()]
    else:
        rows = _run_sizes([int(s) for s in args.sizes.split(",")], not args.no_cleanlab, args.save)
    text = report(sorted(rows, key=lambda r: r["n"]))
    print(text)
    if not args.no_write:
        section = "### Scale: the audit with supplied probabilities, 1M to 100M rows\n\n" + text + "\n"
        RESULTS.write_text(replace_section(RESULTS.read_text(), START, END, section))
    return 0


if __name__ == "__main__":
    sys.exit(main())
