"""Speed and memory of ``cl_pipeline.core`` against cleanlab 2.9.0, in one run.

Run from the repository root (``make bench-core``)::

    .venv/bin/python -m benchmarks.core                 # full run, rewrites RESULTS.md
    .venv/bin/python -m benchmarks.core --quick         # smoke sizes, prints only
    .venv/bin/python -m benchmarks.core --sizes 100000x10,1000000x100 --dtypes float32

Data (seeded): true labels uniform over K; row i of ``pred_probs`` ~
Dirichlet(0.05 + 3 * onehot(true_i)); 20% of the labels (chosen without
replacement) flipped uniformly to one of the other K - 1 classes. One float64
array is generated per size; the float32 array is its cast. Both are saved to
temporary ``.npy`` files.

Measurement: every (size, dtype, operation, implementation) runs in a fresh
worker subprocess (this script with ``--worker``). The worker loads the inputs
with ``np.load`` (no mmap) and imports both libraries first; that is the
baseline and is not counted. It then makes one call to measure memory and
``--reps`` more calls to measure time (the reported time is their median).

Peak extra memory of the memory call = peak RSS of the worker during the call
minus its RSS just before it. The peak is exact: the kernel's high-water mark
``VmHWM`` is reset by writing ``5`` to ``/proc/self/clear_refs`` before the
call and read from ``/proc/self/status`` after it. Child processes (cleanlab's
default ``multiprocessing.Pool``) are sampled every few milliseconds by a
thread that sums their unique set size (Private_Clean + Private_Dirty of
``/proc/<pid>/smaps_rollup``): pages shared copy-on-write with the parent are
not counted twice. The children's peak is added to the parent's peak (an upper
bound: the two peaks need not coincide). ``RUSAGE_CHILDREN`` max RSS is
recorded in the JSON output as a cross-check; it overstates, since a forked
child's RSS includes every inherited page.

cleanlab is imported only in worker processes measuring cleanlab; the parent
process compares the saved outputs with numpy alone.
"""

import argparse
import datetime as dt
import gc
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
FULL_SIZES = "100000x10,1000000x10,1000000x100"
QUICK_SIZES = "20000x10,20000x50"
OPS = ("filter_default", "filter_both", "confident_joint", "quality_scores")
OP_LABELS = {
    "filter_default": "find_label_issues (default)",
    "filter_both": 'find_label_issues (filter_by="both")',
    "confident_joint": "compute_confident_joint",
    "quality_scores": "get_label_quality_scores",
}
MARK_START, MARK_END = "<!-- core:start -->", "<!-- core:end -->"
NOTES_START, NOTES_END = "<!-- core:notes:start -->", "<!-- core:notes:end -->"
NOTES_PLACEHOLDER = (
    "Notes (written by hand; the script keeps this block when it rewrites the section): why any target is missed."
)


def parse_args(argv=None):
    """Parse the command line (the only module-level state of the script)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help=f"smoke run: sizes {QUICK_SIZES}, 1 timed rep, no write")
    p.add_argument("--sizes", help=f"comma-separated NxK (default {FULL_SIZES})")
    p.add_argument("--dtypes", default="float32,float64")
    p.add_argument("--ops", default=",".join(OPS))
    p.add_argument("--reps", type=int, help="timed calls per measurement (default 3)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--results", default=str(REPO / "benchmarks" / "RESULTS.md"))
    p.add_argument(
        "--write",
        dest="write",
        action="store_true",
        default=None,
        help="rewrite the core section of RESULTS.md (default unless --quick)",
    )
    p.add_argument("--no-write", dest="write", action="store_false")
    p.add_argument("--json", help="also save the raw results here")
    p.add_argument("--timeout", type=float, default=900.0, help="per worker, seconds")
    p.add_argument(
        "--render", metavar="JSON", help="re-render the section from a file saved by --json, without measuring"
    )
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.sizes = args.sizes or (QUICK_SIZES if args.quick else FULL_SIZES)
    args.reps = args.reps or (1 if args.quick else 3)
    if args.write is None:
        args.write = not args.quick
    return args


def parse_sizes(text):
    """Turn ``"100000x10,1000000x100"`` into ``[(100000, 10), (1000000, 100)]``."""
    out = []
    for item in text.split(","):
        n, k = item.lower().strip().split("x")
        out.append((int(float(n)), int(k)))
    return out


# --------------------------------------------------------------------------- data


def generate_dataset(n, k, seed, chunk=100_000):
    """Seeded synthetic (labels, float64 pred_probs) as described in the module doc."""
    rng = np.random.default_rng(seed)
    true = rng.integers(0, k, size=n)
    probs = np.empty((n, k), dtype=np.float64)
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        alpha = np.full((stop - start, k), 0.05)
        alpha[np.arange(stop - start), true[start:stop]] += 3.0
        draws = rng.standard_gamma(alpha)
        probs[start:stop] = draws / draws.sum(axis=1, keepdims=True)
    labels = true.copy()
    flip = rng.choice(n, size=int(round(0.2 * n)), replace=False)
    labels[flip] = (true[flip] + rng.integers(1, k, size=flip.size)) % k
    return labels, probs


def write_inputs(workdir, n, k, dtypes, seed):
    """Generate one size, save labels and each dtype's probabilities; return paths."""
    labels, probs = generate_dataset(n, k, seed)
    paths = {"labels": str(workdir / f"labels_{n}x{k}.npy")}
    np.save(paths["labels"], labels)
    for dtype in dtypes:
        paths[dtype] = str(workdir / f"probs_{n}x{k}_{dtype}.npy")
        np.save(paths[dtype], probs.astype(dtype, copy=False))
    return paths


# ----------------------------------------------------------------------- memory


def read_status_kib(field):
    """A ``VmXXX`` field of /proc/self/status in KiB."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def reset_peak_rss():
    """Reset this process's VmHWM to its current RSS; False if the kernel refuses."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def children_uss_kib():
    """Sum of the unique set size (private pages) of this process's live children."""
    total = 0
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/children") as fh:
                pids = fh.read().split()
        except OSError:
            continue
        for pid in pids:
            try:
                with open(f"/proc/{pid}/smaps_rollup") as fh:
                    total += sum(
                        int(line.split()[1]) for line in fh if line.startswith(("Private_Clean:", "Private_Dirty:"))
                    )
            except OSError:
                pass  # the child exited between the listing and the read
    return total


class PeakMemory:
    """Context manager measuring the peak extra memory of the code it wraps.

    Parent: exact, via VmHWM reset with clear_refs (falls back to sampling VmRSS).
    Children: peak of the sampled sum of their USS. Results in MiB as attributes.
    """

    def __init__(self, interval=0.004):
        self.interval = interval
        self.parent_mib = self.children_mib = 0.0
        self.method = "VmHWM"

    def _sample(self):
        """Sampler thread: track the children's peak USS and the parent's RSS."""
        while not self._stop.is_set():
            self._child_peak = max(self._child_peak, children_uss_kib())
            self._rss_peak = max(self._rss_peak, read_status_kib("VmRSS"))
            self._stop.wait(self.interval)

    def __enter__(self):
        gc.collect()
        self.method = "VmHWM" if reset_peak_rss() else "sampled VmRSS"
        self._base = read_status_kib("VmRSS")
        self._child_peak, self._rss_peak = 0, self._base
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        peak = read_status_kib("VmHWM") if self.method == "VmHWM" else self._rss_peak
        self.parent_mib = max(0, peak - self._base) / 1024.0
        self.children_mib = self._child_peak / 1024.0
        return False


# ----------------------------------------------------------------------- worker


def build_call(impl, op):
    """Import one implementation and return (callable(labels, pred_probs), pool log).

    For cleanlab, ``multiprocessing.Pool`` is wrapped so the worker can report how
    many processes cleanlab's default ``n_jobs`` started.
    """
    pools = []
    if impl == "ours":
        from cl_pipeline import core as lib_filter

        lib_count = lib_rank = lib_filter
    else:
        import multiprocessing

        import cleanlab.count as lib_count
        import cleanlab.filter as lib_filter
        import cleanlab.rank as lib_rank

        original = multiprocessing.Pool

        def recording_pool(processes=None, *a, **kw):
            pools.append(processes)
            return original(processes, *a, **kw)

        multiprocessing.Pool = recording_pool
    calls = {
        "filter_default": lambda y, p: lib_filter.find_label_issues(y, p),
        "filter_both": lambda y, p: lib_filter.find_label_issues(y, p, filter_by="both"),
        "confident_joint": lambda y, p: lib_count.compute_confident_joint(y, p),
        "quality_scores": lambda y, p: lib_rank.get_label_quality_scores(y, p),
    }
    return calls[op], pools


def cpu_seconds():
    """CPU time (user + system) of this process and of its reaped children."""
    import resource

    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def worker_main(spec):
    """Measure one (impl, op) on one input in this fresh process; print a RESULT line."""
    import resource

    labels = np.load(spec["labels"], mmap_mode=None)
    pred_probs = np.load(spec["probs"], mmap_mode=None)
    fn, pools = build_call(spec["impl"], spec["op"])
    with PeakMemory() as mem:
        t0 = time.perf_counter()
        out = fn(labels, pred_probs)
        first = time.perf_counter() - t0
    np.save(spec["out"], np.asarray(out))
    del out
    times, cpu = [], []
    for _ in range(spec["reps"]):
        gc.collect()
        c0, t0 = cpu_seconds(), time.perf_counter()
        fn(labels, pred_probs)
        times.append(time.perf_counter() - t0)
        cpu.append(cpu_seconds() - c0)
    result = {
        "time_s": statistics.median(times),
        "times_s": times,
        "first_call_s": first,
        "cpu_s": statistics.median(cpu),
        "parent_mib": mem.parent_mib,
        "children_mib": mem.children_mib,
        "extra_mib": mem.parent_mib + mem.children_mib,
        "mem_method": mem.method,
        "pool_processes": pools[:1],
        "rusage_children_maxrss_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0,
    }
    print("RESULT " + json.dumps(result), flush=True)


def run_worker(spec, timeout):
    """Run one measurement in a fresh subprocess; return its result dict (or an error)."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(spec)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=str(REPO))
    except subprocess.TimeoutExpired:
        return {"error": f"timeout after {timeout:.0f} s"}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
    return {"error": " | ".join(tail) or f"exit code {proc.returncode}"}


def core_available():
    """True when ``cl_pipeline.core`` imports in a subprocess (it may not exist yet)."""
    code = f"import sys; sys.path.insert(0, {str(REPO)!r}); import cl_pipeline.core as c; c.find_label_issues"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, cwd=str(REPO)).returncode == 0


# ------------------------------------------------------------------- comparison


def compare_outputs(op, ours_path, ref_path):
    """Compare our saved output with cleanlab's: (identical: bool, short description)."""
    a, b = np.load(ours_path), np.load(ref_path)
    if a.shape != b.shape:
        return False, f"shape {a.shape} vs {b.shape}"
    if op.startswith("filter"):
        diff = int(np.count_nonzero(a != b))
        if diff == 0:
            return True, f"mask equal ({int(a.sum()):,} flagged)"
        return False, f"{diff:,} rows differ ({int(a.sum()):,} vs {int(b.sum()):,} flagged)"
    if op == "confident_joint":
        if np.array_equal(a, b):
            return True, "array equal"
        return False, f"differs in {int(np.count_nonzero(a != b))} cells"
    if np.array_equal(a, b):
        return True, "bit-identical"
    gap = float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))))
    if np.allclose(a, b, rtol=1e-6, atol=1e-9):
        return True, f"allclose (max abs diff {gap:.1e})"
    return False, f"NOT close (max abs diff {gap:.1e})"


# ------------------------------------------------------------------------ runs


def measure_size(n, k, args, workdir, have_core):
    """All measurements for one size: generate inputs, run workers, compare outputs."""
    dtypes = args.dtypes.split(",")
    t0 = time.perf_counter()
    paths = write_inputs(workdir, n, k, dtypes, args.seed)
    print(f"[{n:,} x {k}] data generated in {time.perf_counter() - t0:.1f} s", flush=True)
    rows = []
    impls = ("ours", "cleanlab") if have_core else ("cleanlab",)
    for dtype in dtypes:
        for op in args.ops.split(","):
            row = {"n": n, "k": k, "dtype": dtype, "op": op}
            for impl in impls:
                spec = {
                    "impl": impl,
                    "op": op,
                    "labels": paths["labels"],
                    "probs": paths[dtype],
                    "reps": args.reps,
                    "out": str(workdir / f"out_{impl}.npy"),
                }
                row[impl] = run_worker(spec, args.timeout)
            finish_row(row, workdir, have_core)
            rows.append(row)
            print_row(row)
    for path in paths.values():
        os.remove(path)
    return rows


def finish_row(row, workdir, have_core):
    """Add speedup and output check to a measured row (in place)."""
    ours, ref = row.get("ours", {"error": "core not available"}), row["cleanlab"]
    row.setdefault("ours", ours)
    row["speedup"] = row["identical"] = None
    row["check"] = "n/a"
    if "error" in ours or "error" in ref:
        return
    row["speedup"] = ref["time_s"] / max(ours["time_s"], 1e-9)
    row["identical"], row["check"] = compare_outputs(row["op"], workdir / "out_ours.npy", workdir / "out_cleanlab.npy")


def print_row(row):
    """One progress line per measured row."""

    def fmt(r):
        if "error" in r:
            return f"ERROR {r['error'][:120]}"
        return f"{r['time_s']:.3f}s (cpu {r['cpu_s']:.3f}s) {r['extra_mib']:.0f}MiB"

    sp = f"{row['speedup']:.1f}x" if row["speedup"] else "-"
    print(
        f"  {row['dtype']:7s} {row['op']:16s} ours {fmt(row['ours'])} | cleanlab "
        f"{fmt(row['cleanlab'])} | {sp} | {row['check']}",
        flush=True,
    )


def find_row(rows, n, k, dtype, op):
    """The measured row for one cell, or None."""
    for row in rows:
        if (row["n"], row["k"], row["dtype"], row["op"]) == (n, k, dtype, op):
            return row
    return None


def evaluate_targets(rows):
    """The issue's targets at 1M x 100 float32: list of (target, measured, status)."""
    out = []
    flt = find_row(rows, 1_000_000, 100, "float32", "filter_default")
    cj = find_row(rows, 1_000_000, 100, "float32", "confident_joint")
    measured = flt and flt["speedup"] is not None
    out.append(
        (
            "default filter >= 10x faster than cleanlab",
            f"{flt['speedup']:.1f}x" if measured else "not measured",
            status(measured and flt["speedup"] >= 10, measured),
        )
    )
    out.append(
        (
            "default filter: mask identical to cleanlab's",
            flt["check"] if measured else "not measured",
            status(measured and flt["identical"], measured),
        )
    )
    out.append(
        (
            "default filter: <= 40 MiB extra memory",
            f"{flt['ours']['extra_mib']:.1f} MiB" if measured else "not measured",
            status(measured and flt["ours"]["extra_mib"] <= 40, measured),
        )
    )
    measured = cj and cj["speedup"] is not None
    out.append(
        (
            "compute_confident_joint >= 3x faster than cleanlab",
            f"{cj['speedup']:.1f}x" if measured else "not measured",
            status(measured and cj["speedup"] >= 3, measured),
        )
    )
    return out


def status(ok, measured):
    """'met' / 'MISSED' / 'not measured'."""
    if not measured:
        return "not measured"
    return "met" if ok else "**MISSED**"


# -------------------------------------------------------------------- report


def machine_info(command, load_before):
    """Facts about the machine and the run, for the report header."""
    import importlib.util
    from importlib import metadata

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {
        "date": dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "cores": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "cleanlab": metadata.version("cleanlab"),
        "psutil": importlib.util.find_spec("psutil") is not None,
        "load_before": load_before,
        "load_after": os.getloadavg(),
        "command": command,
    }


def fmt_mem(res):
    """Extra memory cell: parent peak, plus the worker processes' peak when any."""
    if "error" in res:
        return "-" if res["error"] == "core not available" else "error"
    if res["children_mib"] > 0.5:
        return f"{res['extra_mib']:.0f} ({res['parent_mib']:.0f} + {res['children_mib']:.0f} workers)"
    return f"{res['parent_mib']:.1f}"


def fmt_time(res):
    """Time cell (median seconds) or the error."""
    if "error" in res:
        return "-" if res["error"] == "core not available" else "error"
    return f"{res['time_s']:.3f}"


def render_table(rows):
    """The main results table in Markdown."""
    lines = [
        "| n x K | dtype | operation | ours (s) | cleanlab (s) | speedup | CPU-time ratio "
        "| same output | ours extra MiB | cleanlab extra MiB |",
        "|---|---|---|---:|---:|---:|---:|---|---:|---:|",
    ]
    for r in rows:
        sp = f"**{r['speedup']:.1f}x**" if r["speedup"] else "-"
        if r["speedup"] and r["ours"].get("cpu_s"):
            sp += f" | {r['cleanlab']['cpu_s'] / max(r['ours']['cpu_s'], 1e-9):.1f}x"
        else:
            sp += " | -"
        same = "n/a" if r["identical"] is None else f"{'yes' if r['identical'] else '**NO**'}: {r['check']}"
        lines.append(
            f"| {r['n']:,} x {r['k']} | {r['dtype']} | {OP_LABELS[r['op']]} | "
            f"{fmt_time(r['ours'])} | {fmt_time(r['cleanlab'])} | {sp} | "
            f"{same} | {fmt_mem(r['ours'])} | {fmt_mem(r['cleanlab'])} |"
        )
    return lines


def pool_note(rows, info):
    """How many processes cleanlab's default n_jobs used, as a sentence."""
    seen = sorted(
        {
            p
            for r in rows
            if r["op"].startswith("filter") and "error" not in r["cleanlab"]
            for p in r["cleanlab"]["pool_processes"]
        }
    )
    why = (
        "psutil is installed: physical cores"
        if info["psutil"]
        else "psutil is not installed, so cleanlab falls back to multiprocessing.cpu_count()"
    )
    if not seen:
        return "cleanlab's `find_label_issues` (default `n_jobs=None`) started no process pool."
    return (
        f"cleanlab's `find_label_issues` was called with its defaults (`n_jobs=None`); it "
        f"resolved to n_jobs = {', '.join(map(str, seen))} ({why}) and ran a "
        f"`multiprocessing.Pool` of that many forked workers; their memory is included."
    )


def render_section(rows, info, reps):
    """The whole Markdown section between the core markers."""
    la, lb = info["load_before"], info["load_after"]
    out = [
        MARK_START,
        "## Core: speed and memory against cleanlab",
        "",
        f"- Command: `{info['command']}` (run from the repository root; `make bench-core`)",
        f"- Machine: {info['cores']} cores ({info['cpu']}), Python {info['python']}, "
        f"numpy {info['numpy']}, cleanlab {info['cleanlab']}; run {info['date']}; "
        f"load average before/after: {la[0]:.2f} / {lb[0]:.2f}",
        "- Data: seeded; true labels uniform over K, rows ~ Dirichlet(0.05 + 3 onehot(true)), "
        "20% of labels flipped uniformly to another class; float32 is the cast of the float64 array.",
        f"- Time: median of {reps} call{'s' if reps > 1 else ''} in a fresh subprocess, after one untimed call; input "
        "loading (`np.load`) and imports are not counted. Speedup = cleanlab / ours (wall time). "
        "CPU-time ratio = the same with user + system CPU time, cleanlab's pool workers included: "
        "less sensitive to other load on the machine than wall time.",
        "- Extra memory: peak RSS during one call minus RSS before it, in that fresh subprocess "
        "(exact: `VmHWM` reset via `/proc/self/clear_refs`); cleanlab's pool workers add the "
        "sampled peak of their private memory (USS; shared copy-on-write pages not double counted).",
        f"- {pool_note(rows, info)}",
        "",
    ]
    out += render_table(rows)
    out += ["", "**Targets (1M x 100, float32)**", "", "| target | measured | status |", "|---|---|---|"]
    out += [f"| {t} | {m} | {s} |" for t, m, s in evaluate_targets(rows)]
    if max(la[0], lb[0]) > 0.5 * info["cores"]:
        out += [
            "",
            f"Warning: the machine was busy during this run (load average up to "
            f"{max(la[0], lb[0]):.1f} on {info['cores']} cores): times and ratios are noisy.",
        ]
    out += ["", NOTES_START, NOTES_PLACEHOLDER, NOTES_END, "", MARK_END]
    return "\n".join(out)


def update_results(path, section):
    """Replace (or append) the core marker section of RESULTS.md, leaving others alone."""
    path = Path(path)
    text = (
        path.read_text()
        if path.exists()
        else ("# Benchmark results\n\nEach section is rewritten by the script that owns it.\n")
    )
    if MARK_START in text and MARK_END in text:
        head, rest = text.split(MARK_START, 1)
        old, tail = rest.split(MARK_END, 1)
        if NOTES_START in old and NOTES_END in old:
            notes = old.split(NOTES_START, 1)[1].split(NOTES_END, 1)[0]
            section = section.replace(NOTES_START + "\n" + NOTES_PLACEHOLDER + "\n", NOTES_START + notes, 1)
        text = head + section + tail
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text)


# ----------------------------------------------------------------------- main


def main():
    """Run every size, print progress, and write the report."""
    args = parse_args()
    if args.worker:
        worker_main(json.loads(args.worker))
        return
    if args.render:
        saved = json.loads(Path(args.render).read_text())
        write_report(saved["rows"], saved["info"], saved.get("reps", args.reps), args)
        return
    command = " ".join([".venv/bin/python", "-m", "benchmarks.core"] + [shlex.quote(a) for a in sys.argv[1:]])
    load_before = os.getloadavg()
    have_core = core_available()
    if not have_core:
        print("cl_pipeline.core is not importable: measuring cleanlab only", flush=True)
    workdir = Path(tempfile.mkdtemp(prefix="clbench-"))
    rows = []
    try:
        for n, k in parse_sizes(args.sizes):
            rows += measure_size(n, k, args, workdir, have_core)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    info = machine_info(command, load_before)
    if args.json:
        Path(args.json).write_text(json.dumps({"info": info, "rows": rows, "reps": args.reps}, indent=1))
    write_report(rows, info, args.reps, args)


def write_report(rows, info, reps, args):
    """Print the Markdown section and, when asked, put it into RESULTS.md."""
    section = render_section(rows, info, reps)
    print("\n" + section)
    if args.write:
        update_results(args.results, section)
        print(f"\nwrote {args.results}")


if __name__ == "__main__":
    main()
