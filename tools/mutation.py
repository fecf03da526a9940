"""Mutation testing of ``cl_pipeline.core`` against ``tests/core`` (``make mutation``).

Not part of ``make test`` or CI: a run takes about an hour on 2 cores.

What it does:

1. copies the package, ``tests/`` and ``pyproject.toml`` (of the working tree,
   or of a commit with ``--rev``) into a scratch folder (``build/mutation/``,
   git-ignored), so the working tree never gets mutmut's ``mutants/`` folder and
   edits made during a run do not disturb it;
2. appends mutmut's settings to that copy of ``pyproject.toml``: mutate the
   core's counting, filters, selections and scores (``MUTATE``; ``--wide`` adds
   the public API, estimation, health and latent estimates; the input
   validation, the noise generators and the streaming engine, with its tests,
   are left out), run ``tests/core`` less its slowest tests (``DESELECT``) with
   a small hypothesis budget (profile ``mutation``, added to the scratch copy
   of ``tests/conftest.py``: ``PROFILE_EXAMPLES`` examples, explicit budgets
   scaled by ``HYPOTHESIS_SCALE``), so that a run takes about an hour on 2
   cores; the tests that re-import the package in a subprocess are skipped
   (mutmut's switch between mutants does not reach there);
3. runs ``mutmut run`` there (or resumes it: results already in the scratch
   folder are kept unless ``--fresh``), then prints the score
   ``killed / (killed + survived)`` overall and per file, and the surviving
   mutants (``--show`` prints their diffs). ``--json PATH`` writes the summary.

The score and the triage of the survivors are in ``docs/mutation-testing.md``.

Usage: ``python tools/mutation.py [--fresh] [--rev REV] [--wide] [--max-children N] [--show] [--json PATH] [MUTANT_GLOB ...]``
"""

import argparse
import collections
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRATCH = REPO / "build" / "mutation"

#: Hypothesis example budgets are scaled by this (tests/core/_kit.py ``examples``).
HYPOTHESIS_SCALE = "0.15"
#: Examples per hypothesis test without an explicit budget (profile ``mutation``).
PROFILE_EXAMPLES = 8

#: The files mutated by default (a run of about an hour on 2 cores): counting, thresholds,
#: calibration (``_count``), the prune filters (``_filter``), the selections (``_select``),
#: the scores and rankings (``_rank``) and the threads (``_parallel``).
MUTATE = [
    "cl_pipeline/core/_count.py",
    "cl_pipeline/core/_filter.py",
    "cl_pipeline/core/_select.py",
    "cl_pipeline/core/_rank.py",
    "cl_pipeline/core/_parallel.py",
]
#: Added by ``--wide`` (about twice as long): the public API, estimation, health, latent estimates.
WIDE = [
    "cl_pipeline/core/_issues.py",
    "cl_pipeline/core/_estimation.py",
    "cl_pipeline/core/_health.py",
    "cl_pipeline/core/_latent.py",
]

#: Lines (regexes) not mutated; a matching ``class``/``def`` line skips the whole definition.
#: These are the streaming engine's selection structures, which live in ``_select.py``.
SKIP = [r"^class GroupedSmallest\b", r"^def smallest_pairs\b", r"^def group_order\b"]

#: Appended to the scratch copy of tests/conftest.py (after it loads the ``ci`` profile).
PROFILE = f"""

# --- added by tools/mutation.py (scratch copy only): a small hypothesis budget
settings.register_profile("mutation", parent=settings.get_profile("ci"), max_examples={PROFILE_EXAMPLES})
settings.load_profile("mutation")
"""

#: Tests that start a fresh interpreter on the package: mutmut's switch between mutants
#: lives in the parent process, so there they would only see the unmutated code.
DESELECT = [
    "tests/core/test_import_boundary.py",
    # the streaming engine's tests (that engine is not mutated here; see MUTATE)
    "tests/core/test_streaming.py",
    # the slowest tests (5 to 15 s each; every mutant of a chunked pass would run them):
    # 200k-300k-row inputs and the real data sets. Their paths are covered by faster tests
    # (tiny chunks on threads, the hypothesis parity suite).
    "tests/core/test_real_label_errors.py",
    "tests/core/test_chunked_parity.py::test_200k_rows_full_parity",
    "tests/core/test_threads.py::test_core_results_equal_for_one_and_many_threads",
    "tests/core/test_properties.py::test_first_bad_chunk_in_row_order_is_reported_with_threads",
    "tests/core/test_properties.py::test_threads_do_not_change_results",
    "tests/core/test_differences.py::test_entropy_ranking_on_mnist_puts_confirmed_errors_first",
    "tests/core/test_validation.py::test_validation_does_not_rely_on_assert",
]

MUTMUT_CONFIG = """
[tool.mutmut]
source_paths = ["cl_pipeline"]
only_mutate = [{mutate}]
do_not_mutate_patterns = [{skip}]
pytest_add_cli_args_test_selection = ["tests/core"]
pytest_add_cli_args = [{args}]
use_git_change_detection = false
"""


def _prepare(fresh: bool, rev: str | None, mutate: list[str]) -> None:
    if fresh and SCRATCH.exists():
        shutil.rmtree(SCRATCH)
    SCRATCH.mkdir(parents=True, exist_ok=True)
    for name in ("cl_pipeline", "tests"):
        if (SCRATCH / name).exists():
            shutil.rmtree(SCRATCH / name)
    if rev:
        archive = subprocess.run(
            ["git", "archive", rev, "cl_pipeline", "tests", "pyproject.toml"], cwd=REPO, capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(SCRATCH)], input=archive, check=True)
        pyproject = (SCRATCH / "pyproject.toml").read_text()
    else:
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", ".hypothesis")
        for name in ("cl_pipeline", "tests"):
            shutil.copytree(REPO / name, SCRATCH / name, ignore=ignore)
        pyproject = (REPO / "pyproject.toml").read_text()
    with (SCRATCH / "tests" / "conftest.py").open("a") as conftest:
        conftest.write(PROFILE)
    args = ["-p", "no:cacheprovider", "-q"]
    for path in DESELECT:
        args += ["--deselect", path] if "::" in path else ["--ignore", path]
    config = pyproject + MUTMUT_CONFIG.format(
        args=", ".join(json.dumps(a) for a in args),
        mutate=", ".join(json.dumps(m) for m in mutate),
        skip=", ".join(json.dumps(p) for p in SKIP),
    )
    (SCRATCH / "pyproject.toml").write_text(config)


def _results() -> dict[str, str]:
    out = subprocess.run(
        [str(Path(sys.executable).with_name("mutmut")), "results", "--all", "true"],
        cwd=SCRATCH,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    status = {}
    for line in out.splitlines():
        name, _, verdict = line.strip().rpartition(": ")
        if name:
            status[name] = verdict
    return status


def _summary(status: dict[str, str]) -> dict:
    by_file: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for name, verdict in status.items():
        module = name.split(".x", 1)[0]  # cl_pipeline.core._count.x_calibrate__mutmut_3 -> ..._count
        by_file[module][verdict] += 1
    total = collections.Counter(status.values())

    def score(c):
        tested = c["killed"] + c["survived"] + c["timeout"]
        return round(100.0 * (c["killed"] + c["timeout"]) / tested, 1) if tested else None

    return {
        "total": dict(total),
        "score_percent": score(total),
        "by_file": {f: {**dict(c), "score_percent": score(c)} for f, c in sorted(by_file.items())},
        "survived": sorted(n for n, v in status.items() if v == "survived"),
        "other": sorted(f"{n}: {v}" for n, v in status.items() if v not in ("killed", "survived", "timeout")),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fresh", action="store_true", help="discard earlier results in build/mutation")
    parser.add_argument("--rev", help="mutate and test this commit (git archive) instead of the working tree")
    parser.add_argument("--wide", action="store_true", help="also mutate " + ", ".join(Path(f).name for f in WIDE))
    parser.add_argument("--max-children", type=int, default=2)
    parser.add_argument("--show", action="store_true", help="print the diff of every surviving mutant")
    parser.add_argument("--json", type=Path, help="write the summary to this file")
    parser.add_argument("--report-only", action="store_true", help="do not run, only summarise earlier results")
    parser.add_argument("mutants", nargs="*", help="only these mutants (mutmut globs)")
    opts = parser.parse_args()
    mutmut = str(Path(sys.executable).with_name("mutmut"))
    env = {**os.environ, "CL_HYPOTHESIS_SCALE": HYPOTHESIS_SCALE, "HYPOTHESIS_PROFILE": "ci"}
    if not opts.report_only:
        _prepare(opts.fresh, opts.rev, MUTATE + (WIDE if opts.wide else []))
        cmd = [mutmut, "run", "--max-children", str(opts.max_children), *opts.mutants]
        code = subprocess.run(cmd, cwd=SCRATCH, env=env).returncode
        if code != 0:
            print(f"mutmut run exited with {code}", file=sys.stderr)
            return code
    summary = _summary(_results())
    print(json.dumps({k: v for k, v in summary.items() if k != "survived"}, indent=2))
    print(f"\n{len(summary['survived'])} surviving mutants:")
    for name in summary["survived"]:
        print(" ", name)
        if opts.show:
            diff = subprocess.run([mutmut, "show", name], cwd=SCRATCH, capture_output=True, text=True).stdout
            print("\n".join("      " + line for line in diff.splitlines()))
    if opts.json:
        opts.json.write_text(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
