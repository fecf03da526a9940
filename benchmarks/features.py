"""Benchmark: the feature path (K-fold LogisticRegression) at 1M rows x 50 numeric features, local and on Dask.

Seeded data (10 classes, Gaussian class means, 10% of labels flipped at random)
is written in row groups to a temporary folder as one Parquet snapshot. Then:

- ``cl-pipeline audit`` in a fresh process, folds in threads (``n_jobs = 2``);
- the same audit with ``--dask-scheduler`` on a ``LocalCluster`` of 2 worker
  processes (1 thread each) started by this benchmark on 127.0.0.1: the 5 folds
  are tasks on the workers.

Reported for both: wall time, seconds per stage, and the peak RSS of the whole
process tree (the audit process plus, on Dask, the scheduler-side nannies and
workers; sampled every 0.2 s with psutil) and of the largest worker. The two
audits must write identical ``oof_pred_probs`` and ``label_issues`` (the command
fails otherwise). The temporary folder is removed at the end.

Usage (from the repository root)::

    python -m benchmarks.features                 # 1M x 50, rewrites its RESULTS.md section
    python -m benchmarks.features --rows 200000 --no-write
"""

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks._grid_metrics import replace_section

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "RESULTS.md"
K, D, ROW_GROUP = 10, 50, 250_000
DATE = "2026-02-01"
START, END = "<!-- features:start -->", "<!-- features:end -->"
#: The stages whose seconds the table shows (the others take well under a second here).
SHOWN = ("oof_pred_probs", "retrained_model")


def generate(folder: Path, n: int, d: int = D, seed: int = 0) -> Path:
    """A Parquet snapshot of ``n`` rows: ``id``, ``label`` (10% flipped) and ``d`` float32 features; its config."""
    rng = np.random.default_rng(seed)
    means = rng.normal(scale=0.6, size=(K, d))
    schema = pa.schema([("id", pa.int64()), ("label", pa.int64())] + [(f"x{j:02d}", pa.float32()) for j in range(d)])
    folder.mkdir(parents=True)
    with pq.ParquetWriter(folder / "snapshot.parquet", schema, compression="zstd") as writer:
        for lo in range(0, n, ROW_GROUP):
            b = min(ROW_GROUP, n - lo)
            true = rng.integers(0, K, b)
            x = (means[true] + rng.normal(size=(b, d))).astype(np.float32)
            labels = np.where(rng.random(b) < 0.1, rng.integers(0, K, b), true)
            columns = [pa.array(np.arange(lo, lo + b)), pa.array(labels)] + [pa.array(x[:, j]) for j in range(d)]
            writer.write_table(pa.Table.from_arrays(columns, schema=schema))
    config = folder / "audit.toml"
    config.write_text(
        '[source]\nkind = "file"\npath = "snapshot.parquet"\n'
        '[columns]\nid = "id"\nlabel = "label"\nnumeric = ["x*"]\n'
        "[model]\nn_folds = 5\nn_jobs = 2\n"
        "[checks]\nmax_noise_rate = 0.9\nmax_class_noise_rate = 0.9\n"
    )
    return config


class TreeMemory:
    """Samples the RSS of every descendant of this process every 0.2 s.

    ``peak_total`` is the largest sum over the tree, ``peaks`` the largest RSS of each
    process, ``roots`` the pids whose subtree is "the audit" (set after it starts).
    """

    def __init__(self) -> None:
        import psutil

        self._me = psutil.Process()
        self.peak_total = 0
        self.peaks: dict[int, int] = {}
        self.audit_pids: set[int] = set()
        self.audit_root: int | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import psutil

        while not self._stop.is_set():
            total = 0
            for child in self._me.children(recursive=True):
                try:
                    rss = child.memory_info().rss
                    if self.audit_root is not None and (
                        child.pid == self.audit_root or self.audit_root in [p.pid for p in child.parents()]
                    ):
                        self.audit_pids.add(child.pid)
                except psutil.Error:
                    continue
                total += rss
                self.peaks[child.pid] = max(self.peaks.get(child.pid, 0), rss)
            self.peak_total = max(self.peak_total, total)
            time.sleep(0.2)

    def audit_peak(self) -> int:
        """Largest RSS of a process of the audit's subtree."""
        return max((self.peaks.get(pid, 0) for pid in self.audit_pids), default=0)

    def other_peak(self) -> int:
        """Largest RSS of any other descendant (the Dask nannies and workers)."""
        return max((rss for pid, rss in self.peaks.items() if pid not in self.audit_pids), default=0)

    def __enter__(self) -> "TreeMemory":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def audit(folder: Path, config: Path, data: Path, scheduler: str | None) -> dict:
    """One audit in a fresh process; wall time, stage seconds and memory of the process tree."""
    env = {**os.environ, "CL_PIPELINE_DATA_DIR": str(data), "DAGSTER_HOME": str(folder / "dagster_home")}
    env["CL_PIPELINE_START_DATE"] = "2026-01-01"
    argv = [sys.executable, "-m", "cl_pipeline.cli", "audit", "--config", str(config), "--date", DATE]
    argv += ["--dask-scheduler", scheduler] if scheduler else []
    with TreeMemory() as memory:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        memory.audit_root = proc.pid
        _, stderr = proc.communicate()
        seconds = time.perf_counter() - started
    if proc.returncode not in (0, 3):
        raise RuntimeError(f"audit failed ({proc.returncode}): {stderr[-3000:]}")
    from cl_pipeline.storage import read_metadata

    stages = {t: float(read_metadata(data, t, DATE).get("seconds", "nan")) for t in SHOWN if (data / t).is_dir()}
    return {
        "seconds": seconds,
        "stages": stages,
        "peak_tree_gib": memory.peak_total / 2**30,
        "peak_audit_gib": memory.audit_peak() / 2**30,
        "peak_worker_gib": memory.other_peak() / 2**30,
    }


def same_tables(a: Path, b: Path) -> bool:
    """Whether two data dirs hold the same ``oof_pred_probs`` and ``label_issues`` of the date."""
    for table, columns in (("oof_pred_probs", ["row", "fold", "pred_probs"]), ("label_issues", None)):
        left = pq.read_table(a / table / f"{DATE}.parquet", columns=columns)
        right = pq.read_table(b / table / f"{DATE}.parquet", columns=columns)
        if not left.equals(right):
            return False
    return True


def run(n: int, workdir: Path) -> dict:
    """Generate, audit locally, audit on a 2-worker LocalCluster; return the measurements."""
    from distributed import LocalCluster

    folder = workdir / f"n{n}"
    config = generate(folder, n)
    row: dict = {"n": n, "local": audit(folder, config, folder / "data-local", None)}
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None, memory_limit=0
    ) as cluster:
        row["dask"] = audit(folder, config, folder / "data-dask", cluster.scheduler_address)
    row["identical"] = same_tables(folder / "data-local", folder / "data-dask")
    if not row["identical"]:
        raise RuntimeError("the Dask audit's tables differ from the local audit's")
    return row


def report(row: dict) -> str:
    """The Markdown section of RESULTS.md."""
    lines = [
        f"`python -m benchmarks.features` ({os.cpu_count()} cores, Python {platform.python_version()}): "
        f"{row['n']:,} rows x {D} float32 features, {K} classes, 5-fold LogisticRegression (the default "
        "estimator), then the whole audit including `retrained_model`. Peak RSS is the sum over the process "
        "tree (audit process, Dask nannies and workers), sampled every 0.2 s.",
        "",
        "| engine | audit s | oof_pred_probs s | retrained_model s | tree peak GiB | audit process GiB | largest worker GiB |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, label in (("local", "local (folds in 2 threads)"), ("dask", "LocalCluster, 2 workers x 1 thread")):
        r = row[name]
        s = r["stages"]
        worker = f"{r['peak_worker_gib']:.2f}" if name == "dask" else "-"
        lines.append(
            f"| {label} | {r['seconds']:.1f} | {s.get('oof_pred_probs', float('nan')):.1f} | "
            f"{s.get('retrained_model', float('nan')):.1f} | {r['peak_tree_gib']:.2f} | "
            f"{r['peak_audit_gib']:.2f} | {worker} |"
        )
    lines += [
        "",
        f"`oof_pred_probs` and `label_issues` identical on both engines: {row['identical']}. The audit process "
        "loads the snapshot and its features in memory (the feature path is not streamed: scikit-learn fits "
        "in memory) and fits `retrained_model`; on Dask each worker holds the scattered features and fits "
        "one fold at a time.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="cl_features_"))
    try:
        row = run(args.rows, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    text = report(row)
    print(text)
    if not args.no_write:
        section = "### Feature path: K-fold LogisticRegression at 1M x 50, local and on Dask\n\n" + text + "\n"
        RESULTS.write_text(replace_section(RESULTS.read_text(), START, END, section))
    return 0


if __name__ == "__main__":
    sys.exit(main())
