"""Benchmark: multiple annotators and multi-label data, ours against cleanlab 2.9.0.

Speed and memory (each call in a fresh subprocess, inputs loaded first; outputs of the two
libraries compared field by field in the same run):

- ``get_label_quality_multiannotator`` (defaults: CROWDLAB, best-quality consensus, detailed
  quality and annotator statistics) at 100,000 examples x 50 annotators, K = 10: each
  annotator labels an example with probability 0.1 (about 5 labels per example, at least 1);
  annotator accuracies uniform in [0.5, 0.95]; ``pred_probs`` Dirichlet rows around the truth;
- multi-label ``find_label_issues`` (default filter) at 100,000 examples x 20 labels, labels
  given as lists of class ids (cleanlab's format) with 3% of the annotations flipped.

Evidence on data with a known truth: no public multi-annotator dataset ships with a package
reachable here (the crowd-kit and CIFAR-10H loaders download at run time), so annotators of
known accuracy are **simulated** on the embedded handwritten digits (scikit-learn's
``load_digits``, 1,797 images): 25 annotators with accuracies uniform in [0.35, 0.9], each
wrong label either the annotator's own fixed confusion for that digit or a uniform other
digit, 1 to 5 annotators per image; ``pred_probs`` are out-of-fold logistic-regression
probabilities trained on the majority vote (what one has before any consensus). We report
consensus accuracy against the truth for the majority vote, our CROWDLAB and cleanlab's,
and how well each annotator-quality score ranks the annotators' true accuracies.

Usage (from the repository root)::

    python -m benchmarks.multiannotator                # full run, rewrites its RESULTS.md section
    python -m benchmarks.multiannotator --n 20000 --no-write
"""

import argparse
import gc
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from benchmarks._grid_metrics import replace_section

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "RESULTS.md"
START, END = "<!-- multiannotator:start -->", "<!-- multiannotator:end -->"
#: The issue's target: at least this many times faster than cleanlab.
TARGET_SPEEDUP = 5.0
MA_FIELDS = ("consensus_label", "consensus_quality_score", "annotator_agreement", "num_annotations")
STAT_FIELDS = ("annotator_quality", "agreement_with_consensus", "worst_class", "num_examples_labeled")


# ------------------------------------------------------------------------------ data


def make_multiannotator(n: int, m: int, k: int, seed: int, density: float = 0.1):
    """(labels (n, m) float with NaN, pred_probs (n, k), truth (n,)), seeded."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, k, n)
    probs = rng.dirichlet(np.full(k, 0.5), n)
    probs[np.arange(n), truth] += rng.uniform(0.2, 1.5, n)
    probs /= probs.sum(axis=1, keepdims=True)
    accuracy = rng.uniform(0.5, 0.95, m)
    labels = np.where(rng.random((n, m)) < accuracy, truth[:, None], rng.integers(0, k, (n, m))).astype(float)
    labels[rng.random((n, m)) >= density] = np.nan
    empty = np.flatnonzero(np.isnan(labels).all(axis=1))
    labels[empty, rng.integers(0, m, empty.size)] = truth[empty]
    return labels, probs, truth


def make_multilabel(n: int, k: int, seed: int, flip: float = 0.03):
    """(labels as lists of class ids, pred_probs (n, k)), seeded."""
    rng = np.random.default_rng(seed)
    truth = (rng.random((n, k)) < rng.uniform(0.05, 0.3, k)).astype(np.int64)
    probs = np.clip(truth * rng.uniform(0.4, 0.9, k) + rng.normal(0.1, 0.15, (n, k)), 0, 1)
    given = np.where(rng.random((n, k)) < flip, 1 - truth, truth)
    return [np.flatnonzero(row).tolist() for row in given], probs


# ---------------------------------------------------------------------------- worker


def _call(task: str, impl: str):
    """The measured call and a function turning its result into a dict of arrays."""
    if task == "multiannotator":
        if impl == "ours":
            from cl_pipeline.core.multiannotator import get_label_quality_multiannotator

            return get_label_quality_multiannotator, _ours_fields
        from cleanlab.multiannotator import get_label_quality_multiannotator as ref

        return (lambda labels, probs: ref(labels, probs, verbose=False)), _cleanlab_fields
    if impl == "ours":
        from cl_pipeline.core.multilabel import find_label_issues

        return find_label_issues, lambda mask: {"mask": mask}
    from cleanlab.multilabel_classification.filter import find_label_issues as ref_ml

    return ref_ml, lambda mask: {"mask": mask}


def _ours_fields(result) -> dict:
    names = MA_FIELDS + ("detailed_label_quality",) + STAT_FIELDS
    return {name: np.asarray(getattr(result, name)) for name in names}


def _cleanlab_fields(result) -> dict:
    out = {name: result["label_quality"][name].to_numpy() for name in MA_FIELDS}
    out["detailed_label_quality"] = result["detailed_label_quality"].to_numpy()
    stats = result["annotator_stats"].sort_index()  # cleanlab sorts annotators by quality
    out.update({name: stats[name].to_numpy() for name in STAT_FIELDS})
    return out


def _load(task: str, folder: Path):
    probs = np.load(folder / "probs.npy")
    if task == "multiannotator":
        return np.load(folder / "labels.npy"), probs
    return json.loads((folder / "labels.json").read_text()), probs


def worker_main(spec: dict) -> None:
    """One (task, impl) measured in this fresh process; prints a RESULT line."""
    from benchmarks.core import PeakMemory, cpu_seconds

    warnings.simplefilter("ignore")
    labels, probs = _load(spec["task"], Path(spec["folder"]))
    fn, fields = _call(spec["task"], spec["impl"])
    with PeakMemory() as mem:
        t0 = time.perf_counter()
        out = fn(labels, probs)
        first = time.perf_counter() - t0
    np.savez(spec["out"], **fields(out))
    del out
    times, cpu = [first], []
    for _ in range(spec["reps"] - 1):
        gc.collect()
        c0, t0 = cpu_seconds(), time.perf_counter()
        fn(labels, probs)
        times.append(time.perf_counter() - t0)
        cpu.append(cpu_seconds() - c0)
    print(
        "RESULT "
        + json.dumps(
            {"time_s": statistics.median(times), "times_s": times, "extra_mib": mem.parent_mib + mem.children_mib}
        ),
        flush=True,
    )


def run_worker(spec: dict, timeout: float = 1800) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.multiannotator", "--worker", json.dumps(spec)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=str(REPO))
    except subprocess.TimeoutExpired:
        return {"error": f"timeout after {timeout:.0f} s"}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
    return {"error": " | ".join(tail) or f"exit code {proc.returncode}"}


def compare(ours: Path, ref: Path) -> tuple[bool, str]:
    """Field by field: bit-identical (NaN = NaN), else the largest difference."""
    a, b = np.load(ours), np.load(ref)
    worst = []
    for name in a.files:
        x, y = a[name], b[name]
        if x.shape != y.shape:
            return False, f"{name}: shape {x.shape} vs {y.shape}"
        if not np.array_equal(x, y, equal_nan=x.dtype.kind == "f"):
            gap = np.nanmax(np.abs(x.astype(float) - y.astype(float)))
            worst.append(f"{name} (max diff {gap:.3g}, {np.count_nonzero(x != y)} entries)")
    return (not worst), ("all fields bit-identical" if not worst else "; ".join(worst))


# ------------------------------------------------------------------------ speed runs


def measure(task: str, size: dict, folder: Path, reps: int, cleanlab: bool) -> dict:
    """Write one input, time ours (and cleanlab), compare outputs."""
    folder.mkdir(parents=True, exist_ok=True)
    if task == "multiannotator":
        labels, probs, _ = make_multiannotator(size["n"], size["m"], size["k"], seed=0)
        np.save(folder / "labels.npy", labels)
        size = {**size, "annotations": int(np.count_nonzero(~np.isnan(labels)))}
    else:
        labels, probs = make_multilabel(size["n"], size["k"], seed=0)
        (folder / "labels.json").write_text(json.dumps(labels))
    np.save(folder / "probs.npy", probs)
    row = {"task": task, "size": size}
    impls = ("ours", "cleanlab") if cleanlab else ("ours",)
    for impl in impls:
        spec = {
            "task": task,
            "impl": impl,
            "folder": str(folder),
            "out": str(folder / f"{impl}.npz"),
            "reps": reps if impl == "ours" else 1,
        }
        row[impl] = run_worker(spec)
    if cleanlab and "error" not in row["ours"] and "error" not in row["cleanlab"]:
        row["identical"], row["comparison"] = compare(folder / "ours.npz", folder / "cleanlab.npz")
        row["speedup"] = row["cleanlab"]["time_s"] / row["ours"]["time_s"]
    return row


# ------------------------------------------------------------------- digits evidence


def simulate_digits(seed: int, num_annotators: int = 25):
    """Simulated annotators of known accuracy on sklearn's digits (see module docstring)."""
    from sklearn.datasets import load_digits

    x, truth = load_digits(return_X_y=True)
    rng = np.random.default_rng(seed)
    n, k = truth.shape[0], 10
    accuracy = rng.uniform(0.35, 0.9, num_annotators)
    confusion = (np.arange(k)[None, :] + rng.integers(1, k, (num_annotators, k))) % k  # never the digit itself
    labels = np.full((n, num_annotators), np.nan)
    per_example = rng.choice([1, 2, 3, 4, 5], size=n, p=[0.2, 0.25, 0.25, 0.15, 0.15])
    for i in range(n):
        for j in rng.choice(num_annotators, size=per_example[i], replace=False):
            if rng.random() < accuracy[j]:
                labels[i, j] = truth[i]
            elif rng.random() < 0.5:
                labels[i, j] = confusion[j, truth[i]]
            else:
                labels[i, j] = rng.choice(np.delete(np.arange(k), truth[i]))
    labels = labels[:, ~np.isnan(labels).all(axis=0)]
    return x / 16.0, truth, labels, accuracy[: labels.shape[1]], per_example


def _out_of_fold_probs(x, y, seed):
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=seed)
    return cross_val_predict(LogisticRegression(max_iter=2000), x, y, cv=folds, method="predict_proba")


def _spearman(a, b) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def digits_evidence(seed: int, cleanlab: bool) -> dict:
    from cl_pipeline.core import multiannotator as ma

    x, truth, labels, accuracy, per_example = simulate_digits(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        vote = ma.get_majority_vote_label(labels)
        probs = _out_of_fold_probs(x, vote, seed)
        ours = ma.get_label_quality_multiannotator(labels, probs)
    true_acc = np.array(
        [np.mean(labels[~np.isnan(labels[:, j]), j] == truth[~np.isnan(labels[:, j])]) for j in range(labels.shape[1])]
    )
    row = {
        "seed": seed,
        "n": int(labels.shape[0]),
        "annotators": int(labels.shape[1]),
        "annotations_per_example": float(per_example.mean()),
        "single_annotation": float(np.mean(per_example == 1)),
        "acc_majority_vote": float(np.mean(vote == truth)),
        "acc_model_alone": float(np.mean(probs.argmax(axis=1) == truth)),
        "acc_crowdlab_ours": float(np.mean(ours.consensus_label == truth)),
        "rank_quality_ours": _spearman(ours.annotator_quality, true_acc),
        "rank_agreement": _spearman(ours.agreement_with_consensus, true_acc),
    }
    if cleanlab:
        from cleanlab.multiannotator import get_label_quality_multiannotator as ref

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            theirs = ref(labels, probs, verbose=False)
        consensus = theirs["label_quality"]["consensus_label"].to_numpy()
        quality = theirs["annotator_stats"].sort_index()["annotator_quality"].to_numpy()
        row["acc_crowdlab_cleanlab"] = float(np.mean(consensus == truth))
        row["same_as_cleanlab"] = bool(
            np.array_equal(consensus, ours.consensus_label) and np.array_equal(quality, ours.annotator_quality)
        )
    return row


# --------------------------------------------------------------------------- report


def _fmt_run(r: dict) -> str:
    if "error" in r:
        return f"error: {r['error']}"
    return f"{r['time_s']:.2f} s, {r['extra_mib']:.0f} MiB"


def report(rows: list[dict], digits: list[dict]) -> str:
    """The Markdown section of RESULTS.md."""
    lines = [
        "## Multiple annotators and multi-label data (issue 12 C)",
        "",
        f"`python -m benchmarks.multiannotator` ({platform.machine()}, Python {platform.python_version()}; "
        "each call in a fresh subprocess after loading its inputs; time = median of the calls made, "
        "memory = peak extra RSS during the first call, cleanlab's worker processes included; "
        "outputs of both libraries compared field by field in the same run).",
        "",
        "| call | input | ours | cleanlab 2.9.0 | speed-up | target | outputs |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        size = row["size"]
        if row["task"] == "multiannotator":
            call = "`get_label_quality_multiannotator`"
            what = f"{size['n']:,} x {size['m']} annotators, K = {size['k']} ({size['annotations']:,} labels)"
        else:
            call = "multilabel `find_label_issues`"
            what = f"{size['n']:,} x {size['k']} labels"
        ref = row.get("cleanlab")
        speed = f"{row['speedup']:.1f}x" if "speedup" in row else "-"
        target = ("met" if row["speedup"] >= TARGET_SPEEDUP else "MISSED") if "speedup" in row else "-"
        same = row.get("comparison", "not compared")
        lines.append(
            f"| {call} | {what} | {_fmt_run(row['ours'])} | {_fmt_run(ref) if ref else '-'} | {speed} | >= {TARGET_SPEEDUP:.0f}x: {target} | {same} |"
        )
    if digits:
        lines += [
            "",
            "Consensus on the embedded digits with **simulated** annotators (no public multi-annotator data "
            "ships with a package reachable here; see the module docstring for the simulation): accuracy of "
            "the consensus against the true digit, and Spearman correlation of each annotator score with the "
            "annotators' true accuracy.",
            "",
            "| seed | examples | annotators | labels/example | single-label examples | model alone | majority vote | CROWDLAB ours | CROWDLAB cleanlab | same as cleanlab | rank: annotator_quality | rank: agreement_with_consensus |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for d in digits:
            lines.append(
                f"| {d['seed']} | {d['n']:,} | {d['annotators']} | {d['annotations_per_example']:.2f} | "
                f"{d['single_annotation']:.0%} | {d['acc_model_alone']:.3f} | {d['acc_majority_vote']:.3f} | "
                f"{d['acc_crowdlab_ours']:.3f} | {d.get('acc_crowdlab_cleanlab', float('nan')):.3f} | "
                f"{d.get('same_as_cleanlab', '-')} | {d['rank_quality_ours']:.2f} | {d['rank_agreement']:.2f} |"
            )
    return "\n".join(lines) + "\n"


def run(args) -> tuple[list[dict], list[dict]]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-ma-") as tmp:
        rows.append(
            measure(
                "multiannotator",
                {"n": args.n, "m": args.m, "k": args.k},
                Path(tmp) / "ma",
                args.reps,
                not args.no_cleanlab,
            )
        )
        rows.append(
            measure("multilabel", {"n": args.n, "k": args.labels}, Path(tmp) / "ml", args.reps, not args.no_cleanlab)
        )
    digits = [digits_evidence(seed, not args.no_cleanlab) for seed in range(args.seeds)]
    return rows, digits


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100_000, help="examples (both tasks)")
    parser.add_argument("--m", type=int, default=50, help="annotators")
    parser.add_argument("--k", type=int, default=10, help="classes (multi-annotator)")
    parser.add_argument("--labels", type=int, default=20, help="labels (multi-label)")
    parser.add_argument("--reps", type=int, default=3, help="calls of ours per measurement (cleanlab: 1)")
    parser.add_argument("--seeds", type=int, default=3, help="digits simulations")
    parser.add_argument("--no-cleanlab", action="store_true", help="skip cleanlab (no comparison)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker_main(json.loads(args.worker))
        return 0
    rows, digits = run(args)
    text = report(rows, digits)
    print(text)
    if not args.no_write:
        RESULTS.write_text(replace_section(RESULTS.read_text(), START, END, text))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
