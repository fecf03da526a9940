"""The paper's synthetic-noise grid, sized for a 2-core CPU.

For each dataset (scikit-learn's digits, wine and breast cancer, and
``make_classification`` at 100,000 rows x 50 features), noise rate (0.1, 0.2,
0.4: trace of the noise matrix = K * (1 - rate)), sparsity
(``frac_zero_noise_rates`` 0, 0.4, 0.8) and seed (0, 1, 2):

1. split 70/30 (stratified, seeded); standardise with the training part;
2. draw a noise matrix with ``core.generate_noise_matrix_from_trace`` (prior =
   the training class frequencies) and noisy training labels with
   ``core.generate_noisy_labels``; the test labels stay clean;
3. fit (a) the base model on the noisy labels, (b) our ``ConfidentLearner``,
   (c) cleanlab's ``CleanLearning`` with the same base model and the same
   folds (StratifiedKFold, shuffled, seeded alike), (d) the base model on the
   clean labels (the ceiling);
4. score detection (precision / recall / F1 of our flags against the true
   flips), the estimated joint (RMSE of ``confident_joint_ / n`` against the
   realised joint of given and true labels), the estimated noise rate
   (``1 - trace`` of that joint minus the realised flip fraction), held-out
   accuracy of (a)-(d) on clean test labels, and the wall time of (b) and (c).

The base model is ``LogisticRegression(max_iter=1000)`` on standardised
features (no pipeline: a ``Pipeline`` hides ``sample_weight``, which would
switch off the noise-rate reweighting in both learners). Every process runs
BLAS single-threaded: on this 2-core VM OpenBLAS with 2 threads makes these
small fits 5-70x slower, which would flatter us (cleanlab fits sequentially
in the parent). Our folds run in 2 joblib (loky) worker processes; the pool is
started before timing.

Usage::

    make bench-grid                                   # full grid, rewrites RESULTS.md section
    .venv/bin/python -m benchmarks.noise_grid --quick # smoke: small sets, 1 seed, no write
"""

import argparse
import csv
import datetime as dt
import math
import os
import platform
import sys
import time
import warnings
import zlib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from benchmarks._grid_metrics import (
    detection_scores,
    empirical_joint,
    joint_rmse,
    noise_rate,
    not_worse_within_noise,
    replace_section,
)
from benchmarks._real_metrics import average_precision_tied

REPO = Path(__file__).resolve().parents[1]

DATASETS = ("digits", "wine", "breast_cancer", "synthetic_100k")
NOISE_RATES = (0.1, 0.2, 0.4)
SPARSITIES = (0.0, 0.4, 0.8)
SEEDS = (0, 1, 2)
MARK_START, MARK_END = "<!-- grid:start -->", "<!-- grid:end -->"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command line; ``--quick`` is a smoke run that writes nothing."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="digits/wine/breast_cancer, seed 0, no write")
    p.add_argument("--datasets", help=f"comma-separated subset of {DATASETS}")
    p.add_argument("--seeds", help="comma-separated ints (default 0,1,2)")
    p.add_argument("--n-jobs", type=int, default=-1, help="our fold parallelism (default all cores)")
    p.add_argument("--results", default=str(REPO / "benchmarks" / "RESULTS.md"))
    p.add_argument("--csv", default=str(REPO / "benchmarks" / "noise_grid.csv"), help="raw rows")
    p.add_argument("--no-write", dest="write", action="store_false", default=None)
    p.add_argument(
        "--from-csv",
        action="store_true",
        help="re-render the RESULTS.md section from --csv instead of running the grid",
    )
    args = p.parse_args(argv)
    default_sets = DATASETS[:3] if args.quick else DATASETS
    args.datasets = tuple(args.datasets.split(",")) if args.datasets else default_sets
    unknown = set(args.datasets) - set(DATASETS)
    if unknown:
        p.error(f"unknown datasets {sorted(unknown)}; choose from {DATASETS}")
    args.seeds = tuple(int(s) for s in args.seeds.split(",")) if args.seeds else ((0,) if args.quick else SEEDS)
    if args.write is None:
        args.write = not args.quick
    return args


# ------------------------------------------------------------------ data


def load_dataset(name: str) -> tuple[np.ndarray, np.ndarray]:
    """Features (n, d) float64 and labels (n,) int64 in ``0..K-1``."""
    from sklearn import datasets

    if name == "synthetic_100k":
        X, y = datasets.make_classification(
            n_samples=100_000,
            n_features=50,
            n_informative=20,
            n_redundant=10,
            n_classes=4,
            n_clusters_per_class=1,
            flip_y=0.0,
            random_state=0,
        )
    else:
        loader = {
            "digits": datasets.load_digits,
            "wine": datasets.load_wine,
            "breast_cancer": datasets.load_breast_cancer,
        }[name]
        X, y = loader(return_X_y=True)
    return np.asarray(X, dtype=np.float64), np.asarray(y, dtype=np.int64)


@dataclass
class Split:
    """A seeded, standardised 70/30 split of one dataset."""

    X_train: np.ndarray
    X_test: np.ndarray
    y_train: np.ndarray
    y_test: np.ndarray
    clean_accuracy: float = math.nan


def make_split(X: np.ndarray, y: np.ndarray, seed: int) -> Split:
    """Stratified 70/30 split, features standardised with the training part."""
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.3, stratify=y, random_state=seed)
    scaler = StandardScaler().fit(X_tr)
    return Split(scaler.transform(X_tr), scaler.transform(X_te), y_tr, y_te)


def base_model():
    """The base classifier shared by every arm of the grid."""
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=1000)


def cell_seed(*parts: object) -> int:
    """A stable 32-bit seed from the cell coordinates (no global RNG)."""
    return zlib.crc32("|".join(map(str, parts)).encode())


# ------------------------------------------------------------------ one cell


@dataclass
class Row:
    """Raw results of one (dataset, noise rate, sparsity, seed) run."""

    dataset: str
    noise: float
    sparsity: float
    seed: int
    n_train: int
    K: int
    true_noise: float = math.nan
    precision: float = math.nan
    recall: float = math.nan
    f1: float = math.nan
    joint_rmse: float = math.nan
    noise_err: float = math.nan
    acc_noisy: float = math.nan
    acc_ours: float = math.nan
    acc_cleanlab: float = math.nan
    acc_clean: float = math.nan
    same_flags: bool = False
    time_ours: float = math.nan
    time_cleanlab: float = math.nan
    # find_label_issues on the same out-of-sample probabilities, defaults vs
    # the recommended setting, against the true flips (issue 4 C evidence)
    prec_default: float = math.nan
    rec_default: float = math.nan
    prec_recommended: float = math.nan
    rec_recommended: float = math.nan
    ap_self_confidence: float = math.nan
    ap_recommended: float = math.nan
    error: str = field(default="")


def run_cell(name: str, split: Split, rate: float, sparsity: float, seed: int, n_jobs: int) -> Row:
    """Noise one training set and measure every arm on it."""
    from sklearn.base import clone

    from cl_pipeline import core
    from cl_pipeline.learning import ConfidentLearner

    y_tr = split.y_train
    k = int(y_tr.max()) + 1
    row = Row(name, rate, sparsity, seed, y_tr.size, k, acc_clean=split.clean_accuracy)
    prior = np.bincount(y_tr, minlength=k) / y_tr.size
    nm = core.generate_noise_matrix_from_trace(
        k,
        k * (1 - rate),
        py=prior,
        frac_zero_noise_rates=sparsity,
        seed=cell_seed(name, rate, sparsity, seed, "matrix"),
    )
    noisy = core.generate_noisy_labels(y_tr, nm, seed=cell_seed(name, rate, sparsity, seed, "labels"))
    flipped = noisy != y_tr
    row.true_noise = float(flipped.mean())
    row.acc_noisy = clone(base_model()).fit(split.X_train, noisy).score(split.X_test, split.y_test)

    t0 = time.perf_counter()
    ours = ConfidentLearner(base_model(), cv_n_folds=5, random_state=seed, n_jobs=n_jobs)
    ours.fit(split.X_train, noisy)
    row.time_ours = time.perf_counter() - t0
    row.acc_ours = ours.score(split.X_test, split.y_test)
    flags = ours.label_issues_["is_label_issue"].to_numpy()
    row.precision, row.recall, row.f1 = detection_scores(flags, flipped)
    est_joint = ours.confident_joint_ / ours.confident_joint_.sum()
    row.joint_rmse = joint_rmse(est_joint, empirical_joint(noisy, y_tr, k))
    row.noise_err = noise_rate(est_joint) - row.true_noise

    score_settings(row, noisy, ours.pred_probs_, flipped)

    row.time_cleanlab, row.acc_cleanlab, theirs = _run_cleanlab(split, noisy, seed)
    row.same_flags = bool(np.array_equal(flags, theirs))
    return row


def score_settings(row: Row, labels: np.ndarray, pred_probs: np.ndarray, flipped: np.ndarray) -> None:
    """cleanlab's default vs the recommended setting on one run's probabilities.

    Flags: ``find_label_issues`` with its defaults (``prune_by_noise_rate``)
    and with ``filter_by="recommended"``; rankings: average precision of the
    true flips when all examples are ordered by ``self_confidence`` and by
    the recommended ranking ``core.RECOMMENDED_RANK_BY`` (lowest first, equal
    scores taken together).
    """
    from cl_pipeline import core

    true_idx = np.flatnonzero(flipped)
    for name, method in (("default", "prune_by_noise_rate"), ("recommended", "recommended")):
        mask = core.find_label_issues(labels, pred_probs, filter_by=method)
        prec, rec, _ = detection_scores(mask, flipped)
        setattr(row, f"prec_{name}", prec)
        setattr(row, f"rec_{name}", rec)
    for name, method in (("self_confidence", "self_confidence"), ("recommended", core.RECOMMENDED_RANK_BY)):
        scores = core.get_label_quality_scores(labels, pred_probs, method=method)
        setattr(row, f"ap_{name}", average_precision_tied(scores, true_idx))


def _run_cleanlab(split: Split, noisy: np.ndarray, seed: int) -> tuple[float, float, np.ndarray]:
    """Time cleanlab's CleanLearning with the same base model and folds."""
    from cleanlab.classification import CleanLearning

    t0 = time.perf_counter()
    theirs = CleanLearning(clf=base_model(), seed=seed, cv_n_folds=5).fit(split.X_train, noisy)
    elapsed = time.perf_counter() - t0
    flags = theirs.get_label_issues()["is_label_issue"].to_numpy()
    return elapsed, theirs.score(split.X_test, split.y_test), flags


# ------------------------------------------------------------------ report


def _fmt(values: list[float], digits: int = 3, spread: bool = True) -> str:
    vals = np.asarray([v for v in values if not math.isnan(v)], dtype=float)
    if vals.size == 0:
        return "n/a"
    mean = f"{vals.mean():.{digits}f}"
    return f"{mean} ± {vals.std(ddof=1):.{digits}f}" if spread and vals.size > 1 else mean


def _geomean(values: list[float]) -> float:
    vals = np.asarray([v for v in values if v > 0 and not math.isnan(v)], dtype=float)
    return float(np.exp(np.log(vals).mean())) if vals.size else math.nan


def group_rows(rows: list[Row]) -> dict[tuple[str, float, float], list[Row]]:
    """Rows keyed by (dataset, noise, sparsity), in grid order."""
    groups: dict[tuple[str, float, float], list[Row]] = {}
    for r in rows:
        groups.setdefault((r.dataset, r.noise, r.sparsity), []).append(r)
    return groups


def render_cells(rows: list[Row]) -> list[str]:
    """The per-cell markdown table (means ± sd over seeds)."""
    head = (
        "| dataset | noise | sparsity | realised noise | precision | recall | F1 | joint RMSE "
        "| noise-rate err | (a) noisy | (b) ours | (c) cleanlab | (d) clean | b ≥ c | same flags "
        "| ours s | cleanlab s | cleanlab / ours |"
    )
    out = [head, "|" + "---|" * (head.count("|") - 1)]
    for (name, rate, sp), rs in group_rows(rows).items():
        ok = [r for r in rs if not r.error]
        if not ok:
            out.append(f"| {name} | {rate} | {sp} | error: {rs[0].error} |" + " |" * 14)
            continue
        col = lambda a: [getattr(r, a) for r in ok]  # noqa: E731
        ratio = [c / o for c, o in zip(col("time_cleanlab"), col("time_ours"), strict=True)]
        b_ge_c = not_worse_within_noise(col("acc_ours"), col("acc_cleanlab"))
        out.append(
            f"| {name} | {rate} | {sp} | {_fmt(col('true_noise'), 3, False)} "
            f"| {_fmt(col('precision'))} | {_fmt(col('recall'))} | {_fmt(col('f1'))} "
            f"| {_fmt(col('joint_rmse'), 4)} | {_fmt([abs(v) for v in col('noise_err')], 3)} "
            f"| {_fmt(col('acc_noisy'))} | {_fmt(col('acc_ours'))} | {_fmt(col('acc_cleanlab'))} "
            f"| {_fmt(col('acc_clean'))} | {'yes' if b_ge_c else '**no**'} "
            f"| {sum(col('same_flags'))}/{len(ok)} | {_fmt(col('time_ours'), 2, False)} "
            f"| {_fmt(col('time_cleanlab'), 2, False)} | {_geomean(ratio):.2f}x |"
        )
    return out


def render_summary(rows: list[Row]) -> list[str]:
    """Per-dataset means over all cells and seeds, and the two verdicts."""
    out = [
        "| dataset | cells | (a) noisy | (b) ours | (c) cleanlab | (d) clean | b ≥ c (cells) "
        "| b > a (cells) | F1 | ours s (total) | cleanlab s (total) | cleanlab / ours |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    groups = group_rows([r for r in rows if not r.error])
    for name in dict.fromkeys(r.dataset for r in rows):
        cells = [rs for (d, _, _), rs in groups.items() if d == name]
        flat = [r for rs in cells for r in rs]
        if not flat:
            continue
        mean = lambda a: float(np.nanmean([getattr(r, a) for r in flat]))  # noqa: E731
        ge = sum(not_worse_within_noise([r.acc_ours for r in rs], [r.acc_cleanlab for r in rs]) for rs in cells)
        gt = sum(np.mean([r.acc_ours - r.acc_noisy for r in rs]) > 0 for rs in cells)
        t_o, t_c = sum(r.time_ours for r in flat), sum(r.time_cleanlab for r in flat)
        out.append(
            f"| {name} | {len(cells)} | {mean('acc_noisy'):.3f} | {mean('acc_ours'):.3f} "
            f"| {mean('acc_cleanlab'):.3f} | {mean('acc_clean'):.3f} | {ge}/{len(cells)} "
            f"| {gt}/{len(cells)} | {mean('f1'):.3f} | {t_o:.1f} | {t_c:.1f} | {t_c / t_o:.2f}x |"
        )
    return out


def render_settings(rows: list[Row]) -> list[str]:
    """Recommended setting vs cleanlab's default, per dataset and noise rate."""
    ok = [r for r in rows if not r.error]
    cells = group_rows(ok).values()
    mean = lambda rs, a: float(np.nanmean([getattr(r, a) for r in rs]))  # noqa: E731
    prec_wins = sum(mean(rs, "prec_recommended") >= mean(rs, "prec_default") for rs in cells)
    ap_wins = sum(round(mean(rs, "ap_recommended"), 3) >= round(mean(rs, "ap_self_confidence"), 3) for rs in cells)
    ap_gap = max((abs(r.ap_recommended - r.ap_self_confidence) for r in ok), default=math.nan)
    out = [
        "### Recommended setting vs cleanlab's default on the grid",
        "",
        "The same out-of-sample probabilities as above (`ConfidentLearner.pred_probs_`), scored "
        "against the true flips: flags of `find_label_issues` with its defaults "
        '(`prune_by_noise_rate`) and with `filter_by="recommended"`; average precision of the '
        "flips when every example is ranked by `self_confidence` (cleanlab's default) and by "
        "the recommended ranking (`confidence_then_margin`: self-confidence, ties broken by the "
        "margin). Means over sparsities and seeds.",
        "",
        f"Cells (dataset, noise, sparsity; seed means) where the recommended filter's precision "
        f">= the default's: **{prec_wins}/{len(cells)}**; where the recommended ranking's AP >= "
        f"`self_confidence`'s (3 decimals): **{ap_wins}/{len(cells)}**; largest AP difference in "
        f"one run: {ap_gap:.1e} (these models give no tied probabilities, so the margin only "
        "reorders self-confidences closer than 1e-6).",
        "",
        "| dataset | noise | precision default | precision recommended | recall default "
        "| recall recommended | AP self_confidence | AP recommended |",
        "|---|---|---|---|---|---|---|---|",
    ]
    by_rate: dict[tuple[str, float], list[Row]] = {}
    for r in ok:
        by_rate.setdefault((r.dataset, r.noise), []).append(r)
    for (name, rate), rs in by_rate.items():
        out.append(
            f"| {name} | {rate} | {mean(rs, 'prec_default'):.3f} | {mean(rs, 'prec_recommended'):.3f} "
            f"| {mean(rs, 'rec_default'):.3f} | {mean(rs, 'rec_recommended'):.3f} "
            f"| {mean(rs, 'ap_self_confidence'):.3f} | {mean(rs, 'ap_recommended'):.3f} |"
        )
    return out


def render_section(rows: list[Row], args: argparse.Namespace, wall: float, load: tuple, when: str | None = None) -> str:
    """The whole markdown section placed between the grid markers."""
    errors = [r for r in rows if r.error]
    ok = [r for r in rows if not r.error]
    all_ge = all(
        not_worse_within_noise([r.acc_ours for r in rs], [r.acc_cleanlab for r in rs]) for rs in group_rows(ok).values()
    )
    t_o, t_c = sum(r.time_ours for r in ok), sum(r.time_cleanlab for r in ok)
    slower = sum(_geomean([r.time_cleanlab / r.time_ours for r in rs]) < 1 for rs in group_rows(ok).values())
    lines = [
        "## Synthetic-noise grid (issue 4 D)",
        "",
        f"Command: `make bench-grid` (`python -m benchmarks.noise_grid`), run "
        f"{when or dt.datetime.now().strftime('%Y-%m-%d %H:%M')} on {os.cpu_count()} cores "
        f"({platform.machine()}, Python {platform.python_version()}), load average before "
        f"{load[0]:.1f}; whole grid {wall / 60:.1f} min. Raw rows: `benchmarks/noise_grid.csv`.",
        "",
        "Protocol: 70/30 stratified split per seed, features standardised on the training part; "
        "noise matrix from `core.generate_noise_matrix_from_trace(K, K * (1 - noise), "
        "py=train prior, frac_zero_noise_rates=sparsity)`, labels from "
        "`core.generate_noisy_labels`; test labels clean. Base model "
        "`LogisticRegression(max_iter=1000)`; 5 stratified folds seeded by the seed, identical "
        "for ours and cleanlab. BLAS single-threaded everywhere; our folds in "
        f"{args.n_jobs if args.n_jobs > 0 else os.cpu_count()} loky workers (pool warmed "
        "before timing), cleanlab's sequential. Seeds: "
        f"{', '.join(map(str, args.seeds))}. Cells: mean ± sd over seeds.",
        "",
        "Columns: precision / recall / F1 of our flags against the true flips; joint RMSE = "
        "RMSE over the K x K entries of `confident_joint_ / n` against the realised joint of "
        "(given, true); noise-rate err = |(1 - trace of that estimate) - realised flip "
        "fraction|; (a)-(d) held-out accuracy on clean labels of the base model on noisy "
        "labels, `ConfidentLearner`, cleanlab `CleanLearning`, the base model on clean "
        "labels; b ≥ c: mean paired (by seed) difference ≥ -2 standard errors; same flags: "
        "seeds where our mask equals cleanlab's; times are `fit` wall seconds (mean), ratio "
        "the geometric mean over seeds.",
        "",
        f"**Verdict.** Ours ≥ cleanlab within seed noise in every cell: "
        f"{'**yes**' if all_ge else '**no**'}; our flags equal cleanlab's in "
        f"{sum(r.same_flags for r in ok)}/{len(ok)} runs (same folds, same model, parity "
        f"core), so the accuracies match and the difference is speed. Total fit time ours "
        f"{t_o:.1f} s vs cleanlab {t_c:.1f} s: {t_c / t_o:.2f}x; ours was slower in "
        f"{slower}/{len(group_rows(ok))} cells (the small sets, where one fit takes ~0.1 s and "
        "dispatching folds to the pool costs about as much). Ours ran with `n_jobs=-1`; "
        "`ConfidentLearner`'s default `n_jobs=None` trains the folds one after another, "
        "like cleanlab."
        + (
            f" {len(errors)} runs failed: "
            + "; ".join(f"{r.dataset}/{r.noise}/{r.sparsity}/{r.seed}: {r.error}" for r in errors[:5])
            if errors
            else ""
        ),
        "",
        *render_summary(rows),
        "",
        *render_cells(rows),
        "",
        *render_settings(rows),
    ]
    return "\n".join(lines)


# ------------------------------------------------------------------ main


def warm_pool(n_jobs: int) -> None:
    """Start the loky workers (and their imports) outside the timed region."""
    from cl_pipeline.learning import out_of_sample_pred_probs

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(40, 3)), np.arange(40) % 2
    out_of_sample_pred_probs(base_model(), X, y, n_folds=2, n_jobs=n_jobs)


def run_grid(args: argparse.Namespace) -> list[Row]:
    """Every cell of the grid, in order, with progress on stderr."""
    from sklearn.base import clone

    rows: list[Row] = []
    for name in args.datasets:
        X, y = load_dataset(name)
        for seed in args.seeds:
            split = make_split(X, y, seed)
            model = clone(base_model()).fit(split.X_train, split.y_train)
            split.clean_accuracy = model.score(split.X_test, split.y_test)
            for rate in NOISE_RATES:
                for sparsity in SPARSITIES:
                    t0 = time.perf_counter()
                    try:
                        row = run_cell(name, split, rate, sparsity, seed, args.n_jobs)
                    except Exception as exc:  # record and go on: one bad cell must not sink the grid
                        row = Row(
                            name,
                            rate,
                            sparsity,
                            seed,
                            split.y_train.size,
                            int(y.max()) + 1,
                            error=f"{type(exc).__name__}: {exc}"[:200],
                        )
                    rows.append(row)
                    print(
                        f"{name:>15} noise={rate} sparsity={sparsity} seed={seed}: "
                        f"a={row.acc_noisy:.3f} b={row.acc_ours:.3f} c={row.acc_cleanlab:.3f} "
                        f"d={row.acc_clean:.3f} F1={row.f1:.3f} ours={row.time_ours:.2f}s "
                        f"cleanlab={row.time_cleanlab:.2f}s ({time.perf_counter() - t0:.1f}s)"
                        + (f" ERROR {row.error}" if row.error else ""),
                        file=sys.stderr,
                        flush=True,
                    )
    return rows


def write_csv(rows: list[Row], path: str) -> None:
    """Raw per-seed rows."""
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(asdict(rows[0])))
        writer.writeheader()
        writer.writerows(asdict(r) for r in rows)


def read_csv_rows(path: str) -> list[Row]:
    """Rows written by :func:`write_csv`, typed as the dataclass declares."""
    kinds = {f.name: f.type for f in fields(Row)}
    convert = {str: str, int: int, float: float, bool: lambda v: v == "True"}
    with open(path, newline="") as handle:
        return [Row(**{k: convert[kinds[k]](v) for k, v in rec.items()}) for rec in csv.DictReader(handle)]


def render_from_csv(args: argparse.Namespace) -> int:
    """Rewrite the RESULTS.md section from the raw rows (no model is fitted)."""
    rows = read_csv_rows(args.csv)
    path = Path(args.results)
    old = path.read_text()
    grid = old[old.index(MARK_START) :]
    wall = float(grid.split("whole grid ", 1)[1].split(" min", 1)[0]) * 60
    load = (float(grid.split("load average before ", 1)[1].split(";", 1)[0]),)
    when = grid.split("`), run ", 1)[1].split(" on ", 1)[0]
    section = render_section(rows, args, wall, load, when=when)
    print(section)
    path.write_text(replace_section(old, MARK_START, MARK_END, section))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the grid and (unless ``--quick``/``--no-write``) rewrite the RESULTS.md section."""
    from threadpoolctl import threadpool_limits

    args = parse_args(argv)
    if args.from_csv:
        return render_from_csv(args)
    load = os.getloadavg()
    t0 = time.perf_counter()
    with threadpool_limits(limits=1, user_api="blas"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        warm_pool(args.n_jobs)
        rows = run_grid(args)
    wall = time.perf_counter() - t0
    section = render_section(rows, args, wall, load)
    print(section)
    if args.write:
        write_csv(rows, args.csv)
        path = Path(args.results)
        text = (
            path.read_text()
            if path.exists()
            else ("# Benchmark results\n\nEach section is rewritten by the script that owns it.\n")
        )
        path.write_text(replace_section(text, MARK_START, MARK_END, section))
        print(f"wrote {path} and {args.csv}", file=sys.stderr)
    return 1 if any(r.error for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
