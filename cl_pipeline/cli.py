"""The ``cl-pipeline`` command line: parse, call, print.

Exit codes: 0 ok; 1 unexpected failure; 2 bad input (arguments, configuration, data);
3 estimated label noise above the threshold (a blocking check failed).
"""

import argparse
import contextlib
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_NOISY = 0, 1, 2, 3
#: The monitoring check (``[monitor]``): with severity ``error`` its failure exits 3 without blocking anything.
MONITOR_CHECK = "noise_rate_vs_reference"


def _fail(message: str, code: int = EXIT_BAD_INPUT) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code


def cmd_find(args: argparse.Namespace) -> int:
    """``cl-pipeline find``: flag label issues in given probabilities and labels."""
    import numpy as np

    from cl_pipeline import core
    from cl_pipeline.audit import find_table
    from cl_pipeline.config import ConfigError, IssuesConfig
    from cl_pipeline.storage.inputs import check_output_file, read_find_inputs
    from cl_pipeline.storage.parquet import write_frame

    try:
        check_output_file(args.out)  # first: nothing is read if --out cannot be written
        inputs = read_find_inputs(args.pred_probs, args.labels, args.csv_header)
        for note in inputs.notes:
            print(f"note: {note}", file=sys.stderr)
        pred_probs, labels = inputs.pred_probs, inputs.labels
        issues = IssuesConfig(filter_by=args.filter_by, rank_by=args.rank_by)
        table = find_table(labels, pred_probs, issues)
        noise = float(1.0 - np.trace(core.estimate_joint(labels, pred_probs)))
    except (ConfigError, ValueError, TypeError) as exc:
        return _fail(str(exc))
    flagged = table[table["is_label_issue"]]
    print(
        f"{len(table)} examples, {pred_probs.shape[1]} classes: {len(flagged)} label issues "
        f"({args.filter_by}), estimated noise rate {noise:.4f}"
    )
    if args.out:
        print(f"wrote {write_frame(Path(args.out), table)}")
    elif flagged.empty:
        print(f"no label issues found among {len(table)} examples")
    else:
        print(flagged.head(args.top).to_string(index=False, float_format="{:.4g}".format))
    if args.max_noise_rate is not None and noise > args.max_noise_rate:
        print(f"estimated noise rate {noise:.4f} is above --max-noise-rate {args.max_noise_rate}", file=sys.stderr)
        return EXIT_NOISY
    return EXIT_OK


class _Progress(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        print(f"  {record.getMessage()}", file=sys.stderr, flush=True)


def _show_progress() -> None:
    progress = logging.getLogger("cl_pipeline.progress")
    progress.setLevel(logging.INFO)
    if not any(isinstance(h, _Progress) for h in progress.handlers):
        progress.addHandler(_Progress())
    progress.propagate = False


def _print_report(date: str, data_dir: Path) -> None:
    """The audit's summary from the warehouse; a busy or damaged warehouse is reported, not fatal."""
    import duckdb

    from cl_pipeline.audit.render import report_text
    from cl_pipeline.storage.queries import audit_report

    try:
        report = audit_report(data_dir, date)
    except duckdb.Error as exc:
        print(f"  (summary unavailable: the warehouse could not be read: {exc})")
        return
    if report is not None:
        print(report_text(date, report))


def cmd_audit(args: argparse.Namespace) -> int:
    """``cl-pipeline audit``: validate, then materialize one partition of the whole pipeline in-process."""
    from cl_pipeline.audit import audit_date
    from cl_pipeline.audit.multilabel_stage import prevalidate_any
    from cl_pipeline.config import (
        DATA_DIR_ENV,
        ConfigError,
        config_file,
        dask_scheduler,
        data_dir,
        load_config,
    )

    if args.data_dir:
        os.environ[DATA_DIR_ENV] = args.data_dir
    overrides = {} if args.max_noise_rate is None else {"checks": {"max_noise_rate": args.max_noise_rate}}
    if args.start_from is not None:
        overrides["audit"] = {"start_from": args.start_from}
    path = config_file(args.config)
    try:
        config = load_config(path, overrides=overrides)
        checked = prevalidate_any(config, audit_date(args.date, config))  # single labels or label sets
        date = checked.date
        if config.audit.start_from == "curated":  # the decisions must leave auditable labels (exit 2 if not)
            from cl_pipeline.dataset_cli import note_curated

            note_curated(config, checked)
        if config.monitor.reference_date is not None:  # the reference must be audited (exit 2 if not)
            from cl_pipeline.audit.monitor_stage import check_reference
            from cl_pipeline.storage import PartitionStore

            check_reference(PartitionStore(data_dir()), config, date)
        scheduler = dask_scheduler(config, args.dask_scheduler)
    except (ConfigError, ValueError) as exc:
        return _fail(str(exc))
    with contextlib.ExitStack() as cleanup:
        return _run_and_report(args, date, path, overrides, scheduler, cleanup)


def _restore_env(name: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


def _run_and_report(
    args: argparse.Namespace,
    date: str,
    path: str | None,
    overrides: dict[str, Any],
    scheduler: str | None,
    cleanup: contextlib.ExitStack,
) -> int:
    """The run of ``cl-pipeline audit`` once its input is valid: the scheduler's env is restored by ``cleanup``."""
    from cl_pipeline.config import DASK_SCHEDULER_ENV, data_dir
    from cl_pipeline.defs.runs import ensure_dagster_home, run_audit
    from cl_pipeline.storage.locks import LockTimeout

    previous = os.environ.get(DASK_SCHEDULER_ENV)
    if scheduler is not None:
        from cl_pipeline.audit.compute import scheduler_reachable

        if (problem := scheduler_reachable(scheduler)) is not None:
            return _fail(problem)
        os.environ[DASK_SCHEDULER_ENV] = scheduler  # the run's compute resource reads it (the flag wins)
        cleanup.callback(_restore_env, DASK_SCHEDULER_ENV, previous)  # never leaks into the calling process
    resource_config: dict[str, Any] = {"config_file": str(Path(path).resolve())} if path else {}
    if overrides:
        resource_config["settings"] = overrides
    home = ensure_dagster_home()
    print(f"auditing partition {date} (data in {data_dir()}, DAGSTER_HOME={home})", file=sys.stderr)
    _show_progress()
    started = time.perf_counter()
    try:
        outcome = run_audit(date, resource_config)
    except LockTimeout as exc:
        return _fail(str(exc))
    _print_report(date, data_dir())
    print("checks:")
    for c in outcome.checks:
        print(f"  {c.name}: {'passed' if c.passed else f'FAILED ({c.severity})'} - {c.description}")
    print(f"run {outcome.run_id} finished in {time.perf_counter() - started:.1f} s")
    monitored = [c for c in outcome.checks if not c.passed and c.severity == "ERROR" and c.name == MONITOR_CHECK]
    for c in monitored:  # [monitor] severity = "error": exit 3, nothing was blocked
        print(f"check {c.name} FAILED (ERROR): {c.description}", file=sys.stderr)
    blocked = [c for c in outcome.checks if not c.passed and c.severity == "ERROR" and c.name != MONITOR_CHECK]
    for c in blocked:
        print(
            f"BLOCKED by check {c.name}: {c.description}; pruned_dataset and retrained_model were not materialized",
            file=sys.stderr,
        )
    crashed = [(step, message) for step, message in outcome.step_failures if "blocked by check" not in message]
    for step, message in crashed:  # a stage that failed is said even when a check also blocked the date
        print(f"step {step} failed: {message}", file=sys.stderr)
    if crashed:
        return EXIT_FAILED
    if blocked:
        return EXIT_BAD_INPUT if any(c.name == "input_valid" for c in blocked) else EXIT_NOISY
    if not outcome.success:
        for step, message in outcome.step_failures:
            print(f"step {step} failed: {message}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_NOISY if monitored else EXIT_OK


def _data_dir(args: argparse.Namespace) -> Path:
    from cl_pipeline.config import data_dir

    return Path(args.data_dir) if args.data_dir else data_dir()


def cmd_history(args: argparse.Namespace) -> int:
    """``cl-pipeline history``: one line per audit in the warehouse."""
    from cl_pipeline.config import ConfigError
    from cl_pipeline.storage.queries import history_table

    try:
        table = history_table(_data_dir(args))
    except ConfigError as exc:
        return _fail(str(exc))
    print(table.to_string(index=False))
    return EXIT_OK


def cmd_diff(args: argparse.Namespace) -> int:
    """``cl-pipeline diff DATE1 DATE2``: newly flagged, no longer flagged, relabeled."""
    from cl_pipeline.config import ConfigError
    from cl_pipeline.storage.queries import diff_tables

    try:
        parts = diff_tables(_data_dir(args), args.date1, args.date2)
    except (ConfigError, FileNotFoundError) as exc:
        return _fail(str(exc))
    for name, frame in parts.items():
        print(f"{name}: {len(frame)}")
        if len(frame):
            print(
                frame[["id", "label_before", "label_after", "suggested_label"]].head(args.limit).to_string(index=False)
            )
    return EXIT_OK


def cmd_ui(args: argparse.Namespace) -> int:
    """``cl-pipeline ui``: the Dagster UI (and the schedule daemon) on 127.0.0.1."""
    import subprocess

    from cl_pipeline.defs.runs import UI_HOST, ensure_dagster_home, ui_command

    home = ensure_dagster_home()
    print(f"Dagster UI on http://{UI_HOST}:{args.port} (DAGSTER_HOME={home})")
    return subprocess.call(ui_command(args.port))


def _arg(parse: Any) -> Any:
    """An argparse ``type=`` from a parser raising ConfigError: argparse names the flag and the value."""

    def convert(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return convert


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``cl-pipeline``."""
    from cl_pipeline.config import FILTER_METHODS, RANK_METHODS, parse_fraction, parse_positive_int
    from cl_pipeline.names import check_scheduler_address
    from cl_pipeline.storage.inputs import CSV_HEADER_HELP, CSV_HEADER_MODES

    parser = argparse.ArgumentParser(prog="cl-pipeline", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    find = sub.add_parser("find", help="flag label issues given out-of-sample probabilities and labels")
    find.add_argument("pred_probs", help=".npy, .csv or .parquet: (n, K) probabilities in class order")
    find.add_argument("labels", help=".npy, .csv or .parquet: n integer labels 0..K-1")
    find.add_argument("--filter-by", default="prune_by_noise_rate", choices=FILTER_METHODS)
    find.add_argument(
        "--rank-by",
        choices=RANK_METHODS,
        help="label_quality score (default: confidence_then_margin with --filter-by recommended, else self_confidence)",
    )
    find.add_argument("--out", help="write every example to this .csv or .parquet file")
    find.add_argument("--max-noise-rate", type=_arg(parse_fraction), help="exit 3 if the noise rate is above (0..1)")
    find.add_argument("--top", type=_arg(parse_positive_int), default=10, help="top issues printed (default 10)")
    find.add_argument("--csv-header", choices=CSV_HEADER_MODES, default="auto", help=CSV_HEADER_HELP)
    find.set_defaults(func=cmd_find)
    from cl_pipeline.find_multi_cli import add_find_multi_options

    add_find_multi_options(find, cmd_find)

    audit = sub.add_parser("audit", help="run the whole pipeline for one daily snapshot")
    audit.add_argument(
        "--config", help="TOML/YAML/JSON dataset config (default: env CL_PIPELINE_CONFIG, else the embedded digits)"
    )
    audit.add_argument("--date", help="partition date YYYY-MM-DD (default: latest snapshot or today)")
    audit.add_argument("--max-noise-rate", type=_arg(parse_fraction), help="override checks.max_noise_rate (0..1)")
    audit.add_argument("--data-dir", help="override CL_PIPELINE_DATA_DIR (default data/)")
    audit.add_argument(
        "--dask-scheduler",
        type=_arg(check_scheduler_address),
        metavar="tcp://HOST:PORT",
        help="run the heavy work on this Dask scheduler (overrides CL_PIPELINE_DASK_SCHEDULER and [compute])",
    )
    audit.add_argument(
        "--from",
        dest="start_from",
        choices=("raw", "curated"),
        help="audit the raw snapshot or its curated version (review decisions applied); overrides [audit] start_from",
    )
    audit.set_defaults(func=cmd_audit)

    history = sub.add_parser("history", help="one line per audit in the warehouse")
    history.add_argument("--data-dir")
    history.set_defaults(func=cmd_history)

    diff = sub.add_parser("diff", help="issues newly flagged, no longer flagged, relabeled between two dates")
    diff.add_argument("date1")
    diff.add_argument("date2")
    diff.add_argument("--limit", type=_arg(parse_positive_int), default=20, help="rows shown per category")
    diff.add_argument("--data-dir")
    diff.set_defaults(func=cmd_diff)

    ui = sub.add_parser("ui", help="start the Dagster UI on 127.0.0.1")
    ui.add_argument("--port", type=int, default=3000)
    ui.set_defaults(func=cmd_ui)

    from cl_pipeline.review_cli import add_review_parser

    add_review_parser(sub, _arg)
    from cl_pipeline.dataset_cli import add_dataset_parser

    add_dataset_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``cl-pipeline`` console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
