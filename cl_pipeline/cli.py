"""The ``cl-pipeline`` command line.

Exit codes: 0 ok; 1 unexpected failure; 2 bad input (arguments, configuration, data);
3 estimated label noise above the threshold (a blocking check failed).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cl_pipeline.config import FILTER_METHODS, RANK_METHODS, ConfigError, default_rank_by

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_NOISY = 0, 1, 2, 3

_DAGSTER_YAML = """\
# Dagster instance settings for cl_pipeline (written by `cl-pipeline` if missing).
# Run history, event logs, schedules and compute logs all live under $DAGSTER_HOME.
storage:
  sqlite:
    base_dir:
      env: DAGSTER_HOME
local_artifact_storage:
  module: dagster._core.storage.root
  class: LocalArtifactStorage
  config:
    base_dir:
      env: DAGSTER_HOME
# One audit at a time on a 2-core machine (backfills queue up).
run_queue:
  max_concurrent_runs: 1
telemetry:
  enabled: false
"""


def _fail(message: str, code: int = EXIT_BAD_INPUT) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code


# ---------------------------------------------------------------- find


def _as_probabilities(data: np.ndarray | pd.DataFrame) -> np.ndarray:
    if isinstance(data, np.ndarray):
        return data
    if data.shape[1] == 1 and data.iloc[:, 0].map(lambda v: hasattr(v, "__len__")).all():
        return np.stack(data.iloc[:, 0].to_numpy())
    non_numeric = [c for c in data.columns if not pd.api.types.is_numeric_dtype(data[c])]
    if non_numeric:
        raise ConfigError(f"pred_probs: column {non_numeric[0]!r} is not numeric")
    return data.to_numpy()


def _as_labels(data: np.ndarray | pd.DataFrame) -> np.ndarray:
    if isinstance(data, pd.DataFrame):
        named = [c for c in data.columns if str(c).lower() in ("label", "labels", "given_label")]
        if data.shape[1] != 1 and not named:
            raise ConfigError(f"labels: expected one column or a column named 'label', got {list(data.columns)}")
        data = data[named[0] if named else data.columns[0]].to_numpy()
    if data.dtype.kind == "f" and np.all(np.isfinite(data)) and np.all(data == np.round(data)):
        data = data.astype(np.int64)
    return data


CSV_HEADER_MODES = ("auto", "yes", "no")
_CSV_HEADER_HELP = """\
whether the first row of a CSV input is a header (default auto; yes/no apply to every CSV input).
auto: a first row is a header if any cell is not a number, or if it is pandas' names of unnamed
columns: exactly 0,1,...,K-1 (integers) in pred_probs; exactly 0 in a one-column labels file that
has one row more than pred_probs has examples. Use no for a first data row like 0,1 with K=2"""


def _is_number(text: str) -> bool:
    """Whether ``text`` parses as a float (``"1"``, ``"0.25"``, ``"1e-3"``, ``"nan"``)."""
    try:
        float(text)
    except ValueError:
        return False
    return True


def _csv_first_row(path: str, what: str) -> list[str]:
    """The raw text cells of the first row of the CSV file ``path`` (``what`` names it in errors).

    Raises
    ------
    ConfigError
        If the file is empty or not CSV.
    """
    try:
        first = pd.read_csv(path, header=None, nrows=1, dtype=str, keep_default_na=False)
    except (OSError, ValueError) as exc:  # pandas' EmptyDataError and ParserError are ValueErrors
        raise ConfigError(f"{what}: cannot read {path}: {exc}") from exc
    return [cell.strip() for cell in first.iloc[0]]


def _read_csv(path: str, what: str, header: bool) -> pd.DataFrame:
    """The whole CSV file, its first row taken as the header or as data."""
    try:
        return pd.read_csv(path, header=0 if header else None)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{what}: cannot read {path}: {exc}") from exc


def _read_probs_csv(path: str, mode: str) -> pd.DataFrame:
    """A probability CSV, its header decided by ``mode`` (see ``--csv-header``)."""
    if mode != "auto":
        return _read_csv(path, "pred_probs", mode == "yes")
    cells = _csv_first_row(path, "pred_probs")
    pandas_names = cells == [str(i) for i in range(len(cells))]
    return _read_csv(path, "pred_probs", pandas_names or not all(map(_is_number, cells)))


def _read_labels_csv(path: str, mode: str, n_examples: int) -> pd.DataFrame:
    """A labels CSV, its header decided by ``mode`` and (auto, first row ``0``) the row count."""
    if mode != "auto":
        return _read_csv(path, "labels", mode == "yes")
    cells = _csv_first_row(path, "labels")
    if not all(map(_is_number, cells)):
        return _read_csv(path, "labels", header=True)
    data = _read_csv(path, "labels", header=False)
    if cells == ["0"] and len(data) == n_examples + 1:  # the header of pd.Series(labels).to_csv
        print(f"note: {path}: first row '0' read as a header (the file has one row more than "
              "pred_probs); pass --csv-header no if it is a label", file=sys.stderr)  # fmt: skip
        data = data.iloc[1:].reset_index(drop=True)
    return data


def read_find_inputs(pred_probs: str, labels: str, csv_header: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """The probabilities and labels given to ``cl-pipeline find``.

    Parameters
    ----------
    pred_probs, labels : str
        ``.npy``, ``.csv`` or ``.parquet`` files: ``(n, K)`` probabilities and ``n`` labels.
    csv_header : {"auto", "yes", "no"}
        Whether the first row of a CSV input is a header; ``auto`` decides as described in
        ``cl-pipeline find --help``.

    Returns
    -------
    tuple of numpy.ndarray
        ``(pred_probs, labels)``.

    Raises
    ------
    ConfigError
        If a file is missing or unreadable, or the two do not have the same number of examples.
    """
    from cl_pipeline.storage.sources import read_array

    for path, what in ((pred_probs, "pred_probs"), (labels, "labels")):
        if not Path(path).is_file():
            raise ConfigError(f"{what}: file not found: {path}")
    is_csv = [Path(p).suffix.lower() == ".csv" for p in (pred_probs, labels)]
    probs = _as_probabilities(_read_probs_csv(pred_probs, csv_header) if is_csv[0]
                              else read_array(pred_probs, "pred_probs"))  # fmt: skip
    n = probs.shape[0] if probs.ndim else 0  # other shape errors are reported by rank_examples
    given = _as_labels(_read_labels_csv(labels, csv_header, n) if is_csv[1]
                       else read_array(labels, "labels"))  # fmt: skip
    if probs.ndim == 2 and given.ndim == 1 and len(given) != n:
        hint = " (is the first row of a CSV a header? see --csv-header)" if any(is_csv) else ""
        raise ConfigError(f"labels: {len(given)} labels but pred_probs has {n} rows{hint}")
    return probs, given


def find_table(labels: np.ndarray, pred_probs: np.ndarray, filter_by: str, rank_by: str) -> pd.DataFrame:
    """One row per example, most suspicious first (the output of ``cl-pipeline find``)."""
    from cl_pipeline.config import IssuesConfig
    from cl_pipeline.defs.stages import rank_examples

    mask, quality, rank = rank_examples(labels, pred_probs, IssuesConfig(filter_by=filter_by, rank_by=rank_by))
    table = pd.DataFrame({
        "index": np.arange(labels.size), "given_label": labels,
        "suggested_label": np.asarray(pred_probs).argmax(axis=1), "label_quality": quality,
        "is_label_issue": mask, "rank": rank,
    })  # fmt: skip
    return table.sort_values("rank", ignore_index=True)


def _write_output(table: pd.DataFrame, out: str) -> None:
    from cl_pipeline.storage import atomic_write_bytes

    suffix = Path(out).suffix.lower()
    if suffix == ".csv":
        atomic_write_bytes(Path(out), lambda f: f.write(table.to_csv(index=False).encode()))
    elif suffix == ".parquet":
        atomic_write_bytes(Path(out), lambda f: table.to_parquet(f, index=False))
    else:
        raise ConfigError(f"--out {out}: use a .csv or .parquet file name")


def cmd_find(args: argparse.Namespace) -> int:
    """``cl-pipeline find``: flag label issues in given probabilities and labels."""
    from cl_pipeline import core

    try:
        pred_probs, labels = read_find_inputs(args.pred_probs, args.labels, args.csv_header)
        if args.out and Path(args.out).suffix.lower() not in (".csv", ".parquet"):
            raise ConfigError(f"--out {args.out}: use a .csv or .parquet file name")
        rank_by = args.rank_by or default_rank_by(args.filter_by)
        table = find_table(labels, pred_probs, args.filter_by, rank_by)
        noise = float(1.0 - np.trace(core.estimate_joint(labels, pred_probs)))
    except (ConfigError, ValueError, TypeError) as exc:
        return _fail(str(exc))
    flagged = table[table["is_label_issue"]]
    print(f"{len(table)} examples, {pred_probs.shape[1]} classes: {len(flagged)} label issues "
          f"({args.filter_by}), estimated noise rate {noise:.4f}")  # fmt: skip
    if args.out:
        _write_output(table, args.out)
        print(f"wrote {args.out}")
    elif flagged.empty:
        print(f"no label issues found among {len(table)} examples")
    else:
        print(flagged.head(args.top).to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    if args.max_noise_rate is not None and noise > args.max_noise_rate:
        print(f"estimated noise rate {noise:.4f} is above --max-noise-rate {args.max_noise_rate}",
              file=sys.stderr)  # fmt: skip
        return EXIT_NOISY
    return EXIT_OK


# ---------------------------------------------------------------- audit


def ensure_dagster_home() -> Path:
    """``$DAGSTER_HOME`` (default ``./dagster_home``), created with a dagster.yaml if missing."""
    home = Path(os.environ.get("DAGSTER_HOME") or "dagster_home").resolve()
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():
        (home / "dagster.yaml").write_text(_DAGSTER_YAML)
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def _audit_date(args: argparse.Namespace, config: Any) -> str:
    from cl_pipeline.storage.sources import snapshot_dates

    if args.date:
        try:
            return pd.Timestamp(args.date).strftime("%Y-%m-%d")
        except ValueError:
            raise ConfigError(f"--date {args.date!r} is not a date (YYYY-MM-DD)") from None
    dates = snapshot_dates(config.source)
    return dates[-1] if dates else pd.Timestamp.now(tz="UTC").strftime("%Y-%m-%d")


def _prevalidate(args: argparse.Namespace) -> tuple[Any, str, dict[str, Any]]:
    """Load the configuration and the snapshot and validate both, before anything is written."""
    from cl_pipeline.config import load_config
    from cl_pipeline.defs.snapshot import validate_snapshot
    from cl_pipeline.defs.stages import check_trainable
    from cl_pipeline.storage.sources import load_snapshot

    overrides: dict[str, Any] = {}
    if args.max_noise_rate is not None:
        overrides["checks"] = {"max_noise_rate": args.max_noise_rate}
    config_file = args.config or os.environ.get("CL_PIPELINE_CONFIG") or None
    config = load_config(config_file, overrides=overrides)
    date = _audit_date(args, config)
    start = pd.Timestamp(os.environ.get("CL_PIPELINE_START_DATE", "2024-01-01"))
    if not start <= pd.Timestamp(date) <= pd.Timestamp.now() + pd.Timedelta(days=1):
        raise ConfigError(f"--date {date} is outside the daily partitions ({start:%Y-%m-%d} .. today)")
    snapshot = validate_snapshot(load_snapshot(config.source, date), config, date)
    if snapshot.pred_probs is None:
        check_trainable(snapshot, config.model)
    settings = {"config_file": str(Path(config_file).resolve())} if config_file else {}
    if overrides:
        settings["settings"] = overrides
    return config, date, settings


class _Progress(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        print(f"  {record.getMessage()}", file=sys.stderr, flush=True)


def _run_audit(date: str, resource_config: dict[str, Any]) -> Any:
    import warnings

    import dagster as dg

    warnings.filterwarnings("ignore", category=dg.PreviewWarning)
    warnings.filterwarnings("ignore", category=dg.BetaWarning)
    from cl_pipeline.definitions import defs

    progress = logging.getLogger("cl_pipeline.progress")
    progress.setLevel(logging.INFO)
    if not any(isinstance(h, _Progress) for h in progress.handlers):
        progress.addHandler(_Progress())
    progress.propagate = False
    run_config: dict[str, Any] = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
    if resource_config:
        run_config["resources"] = {"audit_config": {"config": resource_config}}
    job = defs.resolve_job_def("audit_job")
    return job.execute_in_process(partition_key=date, instance=dg.DagsterInstance.get(),
                                  run_config=run_config, raise_on_error=False)  # fmt: skip


def _print_summary(date: str, data_dir: Path) -> None:
    """The audit's summary from the warehouse; a busy or stale warehouse is reported, not fatal."""
    import duckdb

    try:
        _summary_lines(date, data_dir)
    except duckdb.Error as exc:
        print(f"  (summary unavailable: the warehouse could not be read: {exc})")


def _summary_lines(date: str, data_dir: Path) -> None:
    from cl_pipeline.storage import Warehouse

    wh = Warehouse(data_dir)
    if "audit_summary" not in wh.views():
        return
    summary = wh.query("SELECT * FROM audit_summary WHERE partition = ?", [date])
    if summary.empty:
        return
    s = summary.iloc[0]
    print(f"\naudit {date}: {s['n']} examples, {s['k']} classes, data version {s['data_version']}")
    print(f"  estimated noise rate {s['estimated_noise_rate']:.4f}, {s['num_issues']} label issues, "
          f"health score {s['health_score']:.4f}")  # fmt: skip
    if pd.notna(s.get("precision")):
        print(f"  against the injected flips: precision {s['precision']:.3f}, recall {s['recall']:.3f}")
    top = wh.query("SELECT rank, id, given_label, suggested_label, label_quality FROM label_issues "
                   "WHERE partition = ? AND is_label_issue ORDER BY rank LIMIT 10", [date])  # fmt: skip
    print("  top issues:\n" + top.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    if "retrained_model" in wh.views():
        model = wh.query("SELECT * FROM retrained_model WHERE partition = ?", [date])
        if not model.empty and model.iloc[0]["status"] == "trained":
            m = model.iloc[0]
            print(f"  hold-out accuracy: baseline {m['baseline_accuracy']:.4f}, "
                  f"retrained {m['retrained_accuracy']:.4f} (given labels)")  # fmt: skip


def _check_outcome(result: Any) -> tuple[int, list[str]]:
    """Exit code and one line per check from the run's check evaluations."""
    code, lines = EXIT_OK, []
    for evaluation in result.get_asset_check_evaluations():
        severity = evaluation.severity.value
        status = "passed" if evaluation.passed else f"FAILED ({severity})"
        lines.append(f"  {evaluation.check_name}: {status} - {evaluation.description}")
        if not evaluation.passed and severity == "ERROR":
            blocked = EXIT_BAD_INPUT if evaluation.check_name == "input_valid" else EXIT_NOISY
            code = max(code, blocked)
    return code, lines


def cmd_audit(args: argparse.Namespace) -> int:
    """``cl-pipeline audit``: materialize one partition of the whole pipeline in-process."""
    from cl_pipeline.config import data_dir

    if args.data_dir:
        os.environ["CL_PIPELINE_DATA_DIR"] = args.data_dir
    try:
        _, date, resource_config = _prevalidate(args)
    except ConfigError as exc:
        return _fail(str(exc))
    ensure_dagster_home()
    print(f"auditing partition {date} (data in {data_dir()}, DAGSTER_HOME={os.environ['DAGSTER_HOME']})",
          file=sys.stderr)  # fmt: skip
    started = time.perf_counter()
    result = _run_audit(date, resource_config)
    code, lines = _check_outcome(result)
    _print_summary(date, data_dir())
    print("checks:\n" + "\n".join(lines))
    print(f"run {result.run_id} finished in {time.perf_counter() - started:.1f} s")
    for failed in result.get_asset_check_evaluations():
        if not failed.passed and failed.severity.value == "ERROR":
            print(f"BLOCKED by check {failed.check_name}: {failed.description}; "
                  "pruned_dataset and retrained_model were not materialized", file=sys.stderr)  # fmt: skip
    if code == EXIT_OK and not result.success:
        failures = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
        for event in failures:
            error = event.event_specific_data.error
            while error.cause is not None:
                error = error.cause
            print(f"step {event.step_key} failed: {error.message.strip()}", file=sys.stderr)
        return EXIT_FAILED
    return code


# ---------------------------------------------------------------- history / diff / ui


def cmd_history(args: argparse.Namespace) -> int:
    """``cl-pipeline history``: one line per audit in the warehouse."""
    from cl_pipeline.config import data_dir
    from cl_pipeline.storage import Warehouse

    wh = Warehouse(Path(args.data_dir) if args.data_dir else data_dir())
    if "audit_summary" not in wh.views():
        return _fail(f"no audits in {wh.path}: run `cl-pipeline audit` first")
    failed = ("(SELECT partition, string_agg(check_name, ',' ORDER BY check_name) AS failed_checks "
              "FROM check_results WHERE NOT passed GROUP BY partition)") if "check_results" in wh.views() else (
              "(SELECT NULL::VARCHAR AS partition, NULL::VARCHAR AS failed_checks)")  # fmt: skip
    table = wh.query(
        "SELECT s.partition AS date, s.n, s.k, round(s.estimated_noise_rate, 4) AS noise_rate, "
        "s.num_issues AS issues, round(s.health_score, 4) AS health, s.data_version, "
        f"coalesce(f.failed_checks, '') AS failed_checks FROM audit_summary s LEFT JOIN {failed} f "
        "USING (partition) ORDER BY s.partition"
    )
    print(table.to_string(index=False))
    return EXIT_OK


_DIFF_SQL = """
WITH a AS (SELECT id, given_label, is_label_issue FROM label_issues WHERE partition = ?),
     b AS (SELECT id, given_label, suggested_label, is_label_issue FROM label_issues WHERE partition = ?)
SELECT coalesce(a.id, b.id) AS id, a.given_label AS label_before, b.given_label AS label_after,
       coalesce(a.is_label_issue, false) AS flagged_before, coalesce(b.is_label_issue, false) AS flagged_after,
       a.id IS NOT NULL AS in_before, b.id IS NOT NULL AS in_after, b.suggested_label
FROM a FULL OUTER JOIN b ON a.id = b.id ORDER BY 1
"""


def diff_tables(data_dir: Path, date1: str, date2: str) -> dict[str, pd.DataFrame]:
    """Examples newly flagged, no longer flagged and relabeled between two audited dates."""
    from cl_pipeline.storage import Warehouse

    wh = Warehouse(data_dir)
    audited = set(wh.query("SELECT DISTINCT partition FROM label_issues")["partition"])
    missing = [d for d in (date1, date2) if d not in audited]
    if missing:
        raise ConfigError(f"no audit for {', '.join(missing)} (audited: {', '.join(sorted(audited)) or 'none'})")
    both = wh.query(_DIFF_SQL, [date1, date2])
    present = both["in_before"] & both["in_after"]
    return {
        "newly flagged": both[both["flagged_after"] & ~both["flagged_before"] & both["in_after"]],
        "no longer flagged": both[both["flagged_before"] & ~both["flagged_after"] & both["in_before"]],
        "relabeled": both[present & (both["label_before"] != both["label_after"])],
    }


def cmd_diff(args: argparse.Namespace) -> int:
    """``cl-pipeline diff DATE1 DATE2``."""
    from cl_pipeline.config import data_dir

    try:
        parts = diff_tables(Path(args.data_dir) if args.data_dir else data_dir(), args.date1, args.date2)
    except (ConfigError, FileNotFoundError) as exc:
        return _fail(str(exc))
    columns = ["id", "label_before", "label_after", "suggested_label"]
    for name, frame in parts.items():
        print(f"{name}: {len(frame)}")
        if len(frame):
            print(frame[columns].head(args.limit).to_string(index=False))
    return EXIT_OK


UI_HOST = "127.0.0.1"  # loopback only: the UI can launch runs and has no authentication


def ui_command(port: int) -> list[str]:
    """The ``dagster dev`` command run by ``cl-pipeline ui``.

    Parameters
    ----------
    port : int
        Port of the web server, which always binds to ``UI_HOST`` (127.0.0.1).

    Returns
    -------
    list of str
        The argv; it loads ``./workspace.yaml`` (absolute path) if the working directory has one
        (the repository root does), else the module ``cl_pipeline.definitions``.
    """
    workspace = Path("workspace.yaml")
    target = ["-w", str(workspace.resolve())] if workspace.is_file() else ["-m", "cl_pipeline.definitions"]
    return [sys.executable, "-m", "dagster", "dev", "-h", UI_HOST, "-p", str(port), *target]


def cmd_ui(args: argparse.Namespace) -> int:
    """``cl-pipeline ui``: the Dagster UI (and the schedule daemon) on 127.0.0.1."""
    import subprocess

    ensure_dagster_home()
    print(f"Dagster UI on http://{UI_HOST}:{args.port} (DAGSTER_HOME={os.environ['DAGSTER_HOME']})")
    return subprocess.call(ui_command(args.port))


# ---------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``cl-pipeline``."""
    parser = argparse.ArgumentParser(prog="cl-pipeline", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    find = sub.add_parser("find", help="flag label issues given out-of-sample probabilities and labels")
    find.add_argument("pred_probs", help=".npy, .csv or .parquet: (n, K) probabilities in class order")
    find.add_argument("labels", help=".npy, .csv or .parquet: n integer labels 0..K-1")
    find.add_argument("--filter-by", default="prune_by_noise_rate", choices=FILTER_METHODS)
    find.add_argument("--rank-by", choices=RANK_METHODS,
                      help="label_quality score (default: confidence_then_margin with --filter-by "
                      "recommended, else self_confidence)")  # fmt: skip
    find.add_argument("--out", help="write every example to this .csv or .parquet file")
    find.add_argument("--max-noise-rate", type=float, help="exit 3 if the estimated noise rate is above")
    find.add_argument("--top", type=int, default=10, help="issues printed without --out (default 10)")
    find.add_argument("--csv-header", choices=CSV_HEADER_MODES, default="auto", help=_CSV_HEADER_HELP)
    find.set_defaults(func=cmd_find)

    audit = sub.add_parser("audit", help="run the whole pipeline for one daily snapshot")
    audit.add_argument("--config", help="TOML/YAML/JSON dataset config "
                       "(default: env CL_PIPELINE_CONFIG, else the embedded digits)")  # fmt: skip
    audit.add_argument("--date", help="partition date YYYY-MM-DD (default: latest snapshot or today)")
    audit.add_argument("--max-noise-rate", type=float, help="override checks.max_noise_rate")
    audit.add_argument("--data-dir", help="override CL_PIPELINE_DATA_DIR (default data/)")
    audit.set_defaults(func=cmd_audit)

    history = sub.add_parser("history", help="one line per audit in the warehouse")
    history.add_argument("--data-dir")
    history.set_defaults(func=cmd_history)

    diff = sub.add_parser("diff", help="issues newly flagged, no longer flagged, relabeled between two dates")
    diff.add_argument("date1")
    diff.add_argument("date2")
    diff.add_argument("--limit", type=int, default=20, help="rows shown per category")
    diff.add_argument("--data-dir")
    diff.set_defaults(func=cmd_diff)

    ui = sub.add_parser("ui", help="start the Dagster UI on 127.0.0.1")
    ui.add_argument("--port", type=int, default=3000)
    ui.set_defaults(func=cmd_ui)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``cl-pipeline`` console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
