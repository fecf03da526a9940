"""Real label errors: our filters and rankings against cleanlab's, side by side.

For every folder of ``label-errors`` (``--data-dir``, else env
``CL_LABEL_ERRORS_DIR``, else ``../shared/data/label-errors`` when present,
else the copy vendored in ``tests/data/label-errors``) holding ``pred_probs.npy``,
``labels.npy``, ``mturk_checked.csv`` and ``confirmed.json``:

- each filter method, ours and cleanlab 2.9.0's in the same run: flagged,
  confirmed among flagged, precision over all flagged (a lower bound: the
  unreviewed count as correct) and over the reviewed flagged, recall of the
  confirmed set;
- each ranking score: average precision and precision@k (k = number
  confirmed), over all examples and over the reviewed ones;
- the recommended setting against cleanlab's default.

Writes the tables into ``benchmarks/RESULTS.md`` between the markers
``<!-- real:start -->`` / ``<!-- real:end -->`` and ``<!-- recommended:start -->``
/ ``<!-- recommended:end -->``. Run: ``make bench-real``.
"""

import argparse
import csv
import json
import os
import warnings
from pathlib import Path

import numpy as np

import cl_pipeline.core as core
from benchmarks import _real_metrics
from benchmarks._grid_metrics import replace_section

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "RESULTS.md"
SHARED_DATA = HERE.parents[1] / "shared" / "data" / "label-errors"
VENDORED_DATA = HERE.parent / "tests" / "data" / "label-errors"
DEFAULT_DATA = SHARED_DATA if SHARED_DATA.is_dir() else VENDORED_DATA
REQUIRED = ("pred_probs.npy", "labels.npy", "mturk_checked.csv", "confirmed.json")
SCORES = [
    ("self_confidence", False),
    ("self_confidence", True),
    ("normalized_margin", False),
    ("normalized_margin", True),
    ("confidence_weighted_entropy", False),
    ("confidence_margin", False),
    ("confidence_then_margin", False),
]
#: Scores only we have (cleanlab's get_label_quality_scores does not know them).
OURS_ONLY = ("confidence_margin", "confidence_then_margin")


metrics = _real_metrics


def load_dataset(folder: Path) -> dict:
    """Arrays and ground truth of one folder."""
    with open(folder / "mturk_checked.csv", newline="") as fh:
        reviewed = np.array(sorted({int(row["index"]) for row in csv.DictReader(fh)}), dtype=np.int64)
    meta = json.loads((folder / "confirmed.json").read_text())
    return {
        "name": folder.name,
        "pred_probs": np.load(folder / "pred_probs.npy"),
        "labels": np.load(folder / "labels.npy"),
        "reviewed": reviewed,
        "confirmed": np.array(sorted(meta["indices"]), dtype=np.int64),
    }


def datasets(data_dir: Path) -> list[Path]:
    """Every sub-folder with the four required files, sorted by name."""
    if not data_dir.is_dir():
        raise SystemExit(f"label-error data not found at {data_dir} (set --data-dir or CL_LABEL_ERRORS_DIR)")
    return sorted(p for p in data_dir.iterdir() if p.is_dir() and all((p / f).exists() for f in REQUIRED))


def _fmt(x: float) -> str:
    return "–" if x != x else f"{x:.3f}"


def filter_rows(d: dict) -> list[str]:
    """One Markdown row per (filter, implementation)."""
    import cleanlab.filter

    rows = []
    for method in core.FILTER_METHODS:
        impls = [("ours", lambda m=method: core.find_label_issues(d["labels"], d["pred_probs"], filter_by=m))]
        if method in core.CLEANLAB_FILTER_METHODS:
            impls.append(
                (
                    "cleanlab",
                    lambda m=method: cleanlab.filter.find_label_issues(
                        d["labels"], d["pred_probs"], filter_by=m, n_jobs=1
                    ),
                )
            )
        for impl, run in impls:
            s = metrics.flag_scores(run(), d["confirmed"], d["reviewed"])
            rows.append(
                f"| {d['name']} | {method} | {impl} | {s.flagged} | {s.confirmed_flagged} | "
                f"{_fmt(s.precision_all)} | {_fmt(s.precision_reviewed)} | {_fmt(s.recall)} |"
            )
    return rows


def score_arrays(d: dict) -> dict:
    """``(method, adjusted) -> {"ours": scores, "cleanlab": scores}``."""
    import cleanlab.rank

    out = {}
    for method, adjust in SCORES:
        kwargs = dict(method=method, adjust_pred_probs=adjust)
        out[(method, adjust)] = {"ours": core.get_label_quality_scores(d["labels"], d["pred_probs"], **kwargs)}
        if method not in OURS_ONLY:
            out[(method, adjust)]["cleanlab"] = cleanlab.rank.get_label_quality_scores(
                d["labels"], d["pred_probs"], **kwargs
            )
    return out


def ranking_quality(scores: np.ndarray, d: dict) -> tuple[float, float, float, float]:
    """AP and P@k over all examples, then over the reviewed ones (ties taken together)."""
    k = d["confirmed"].size
    return (
        metrics.average_precision_tied(scores, d["confirmed"]),
        metrics.precision_at_k_tied(scores, d["confirmed"], k),
        metrics.average_precision_tied(scores, d["confirmed"], d["reviewed"]),
        metrics.precision_at_k_tied(scores, d["confirmed"], k, d["reviewed"]),
    )


def ranking_rows(d: dict, scores: dict) -> list[str]:
    rows = []
    for (method, adjust), by_impl in scores.items():
        for impl, s in by_impl.items():
            q = ranking_quality(s, d)
            name = method + (" (adjusted)" if adjust else "")
            rows.append(f"| {d['name']} | {name} | {impl} | " + " | ".join(_fmt(x) for x in q) + " |")
    return rows


def recommended_rows(d: dict, scores: dict) -> tuple[list[str], dict]:
    """Cleanlab's default vs our recommended setting; returns rows and the numbers."""
    import cleanlab.filter

    default_mask = cleanlab.filter.find_label_issues(d["labels"], d["pred_probs"], n_jobs=1)
    ours_mask = core.find_label_issues(d["labels"], d["pred_probs"], filter_by="recommended")
    settings = {
        "cleanlab default (prune_by_noise_rate, self_confidence)": (
            default_mask,
            scores[("self_confidence", False)]["cleanlab"],
        ),
        f"recommended ({core.RECOMMENDED_FILTER}, {core.RECOMMENDED_RANK_BY})": (
            ours_mask,
            scores[(core.RECOMMENDED_RANK_BY, False)]["ours"],
        ),
    }
    rows, numbers = [], {}
    for name, (mask, s) in settings.items():
        f = metrics.flag_scores(mask, d["confirmed"], d["reviewed"])
        ap_all, _, ap_rev, _ = ranking_quality(s, d)
        numbers[name] = (f.precision_reviewed, ap_all, ap_rev)
        rows.append(
            f"| {d['name']} | {name} | {f.flagged} | {f.confirmed_flagged} | {_fmt(f.precision_reviewed)} | "
            f"{_fmt(f.recall)} | {_fmt(ap_all)} | {_fmt(ap_rev)} |"
        )
    return rows, numbers


def verdict(numbers_by_set: dict) -> str:
    """Whether the recommendation matches or beats the default everywhere and clearly somewhere."""
    lines, everywhere, clearly = [], True, False
    for name, numbers in numbers_by_set.items():
        (default, rec) = list(numbers.values())
        deltas = [r - b for r, b in zip(rec, default, strict=True)]
        everywhere &= all(x >= -1e-9 for x in deltas)
        clearly |= any(x >= 0.02 for x in deltas)
        lines.append(
            f"- {name}: precision among reviewed {deltas[0]:+.3f}, AP (all) {deltas[1]:+.3f}, AP (reviewed) {deltas[2]:+.3f}"
        )
    head = (
        "matches or beats the default on every set and metric"
        if everywhere
        else "does NOT match the default everywhere"
    )
    head += "; beats it clearly (>= 0.02) on at least one" if clearly else "; no clear win"
    return f"Verdict: the recommended setting {head}.\n\n" + "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get("CL_LABEL_ERRORS_DIR", DEFAULT_DATA)))
    parser.add_argument("--no-write", action="store_true", help="print the tables, leave RESULTS.md alone")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    frows, rrows, crows, numbers = [], [], [], {}
    for folder in datasets(args.data_dir):
        d = load_dataset(folder)
        scores = score_arrays(d)
        frows += filter_rows(d)
        rrows += ranking_rows(d, scores)
        rows, numbers[d["name"]] = recommended_rows(d, scores)
        crows += rows
    real = "\n".join(
        [
            "### Real label errors: filters (ours and cleanlab 2.9.0, same run)",
            "",
            "Command: `make bench-real`. Precision (all) counts unreviewed flags as correct labels (a lower bound);",
            "precision (reviewed) uses only flagged examples that humans reviewed.",
            "",
            "| set | filter_by | impl | flagged | confirmed flagged | precision (all) | precision (reviewed) | recall |",
            "|---|---|---|---|---|---|---|---|",
            *frows,
            "",
            "### Real label errors: rankings (lower score = more suspicious)",
            "",
            "AP is scikit-learn's step-wise average precision: examples with equal scores are taken",
            "together (one threshold), so no arbitrary order among ties counts (20news has 61 examples",
            "whose given label has probability exactly 0). P@k (k = number confirmed) is its expectation",
            "when ties are ordered at random.",
            "",
            "| set | score | impl | AP (all) | P@k (all) | AP (reviewed) | P@k (reviewed) |",
            "|---|---|---|---|---|---|---|",
            *rrows,
        ]
    )
    rec = "\n".join(
        [
            "### Recommended setting vs cleanlab's default",
            "",
            "| set | setting | flagged | confirmed flagged | precision (reviewed) | recall | AP (all) | AP (reviewed) |",
            "|---|---|---|---|---|---|---|---|",
            *crows,
            "",
            verdict(numbers),
        ]
    )
    print(real + "\n\n" + rec)
    if not args.no_write:
        text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
        text = replace_section(text, "<!-- real:start -->", "<!-- real:end -->", real)
        text = replace_section(text, "<!-- recommended:start -->", "<!-- recommended:end -->", rec)
        tmp = RESULTS.with_suffix(".md.tmp")
        tmp.write_text(text)
        os.replace(tmp, RESULTS)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
