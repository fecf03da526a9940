"""``cl-pipeline review export|import``: parse, call :mod:`cl_pipeline.audit.review`, print.

Registered by :func:`add_review_parser` from ``cl_pipeline.cli``. Exit codes as ``cli``:
0 ok, 2 bad input (the message names the argument, file or row; nothing written).
"""

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["add_review_parser", "cmd_review_export", "cmd_review_import"]

EXIT_OK, EXIT_BAD_INPUT = 0, 2


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def _store(args: argparse.Namespace) -> Any:
    from cl_pipeline.config import data_dir
    from cl_pipeline.storage.store import PartitionStore

    return PartitionStore(Path(args.data_dir) if args.data_dir else data_dir())


def cmd_review_export(args: argparse.Namespace) -> int:
    """``cl-pipeline review export``: the review queue of an audited date."""
    from cl_pipeline.audit.review import export_queue
    from cl_pipeline.config import ConfigError, config_file, load_config

    try:
        config = load_config(config_file(args.config))
        result = export_queue(_store(args), config, Path(args.out), args.date, args.top, args.format)
    except ConfigError as exc:
        return _fail(str(exc))
    print(f"wrote {result.rows} flagged examples of {result.date} not yet decided to {result.path} ({result.format})")
    if result.labeling_config is not None:
        print(f"Label Studio labeling config: {result.labeling_config}")
        print(result.labeling_config.read_text(), end="")
    return EXIT_OK


def cmd_review_import(args: argparse.Namespace) -> int:
    """``cl-pipeline review import``: validate a decision file, then append its new decisions."""
    from cl_pipeline.audit.review import import_decisions
    from cl_pipeline.config import ConfigError

    try:
        result = import_decisions(_store(args), Path(args.file), args.reviewer, args.date)
    except ConfigError as exc:
        return _fail(str(exc))
    stored = result.stored
    skipped = f"; {result.undecided} rows without a decision skipped" if result.undecided else ""
    if stored.path is None:
        print(f"{result.decisions} decisions for {result.date}: all already imported, nothing written{skipped}")
    else:
        print(
            f"imported {stored.written} new decisions for {result.date} to {stored.path}"
            f" ({stored.already_stored} already imported){skipped}"
        )
    return EXIT_OK


def add_review_parser(sub: Any, arg_type: Callable[[Callable[[str], Any]], Any]) -> None:
    """Add ``review export`` and ``review import`` to the ``cl-pipeline`` subparsers ``sub``.

    ``arg_type`` turns a parser raising ValueError into an argparse ``type=`` (``cli._arg``).
    """
    from cl_pipeline.audit.review import EXPORT_FORMATS
    from cl_pipeline.config import parse_positive_int

    review = sub.add_parser("review", help="export flagged examples for review; import the reviewers' decisions")
    actions = review.add_subparsers(dest="review_command", required=True)
    export = actions.add_parser("export", help="the flagged examples of a date not yet decided, most suspicious first")
    export.add_argument("--date", help="audited date YYYY-MM-DD (default: the latest audited date)")
    export.add_argument("--top", type=arg_type(parse_positive_int), help="at most this many examples")
    export.add_argument("--format", choices=list(EXPORT_FORMATS), help="default: from the --out suffix")
    export.add_argument("--out", required=True, help=".csv, .parquet or .json (Label Studio tasks)")
    export.add_argument("--config", help="dataset config, for columns.display (default: env CL_PIPELINE_CONFIG)")
    export.add_argument("--data-dir", help="override CL_PIPELINE_DATA_DIR (default data/)")
    export.set_defaults(func=cmd_review_export)

    imp = actions.add_parser("import", help="append decisions (CSV/Parquet or a Label Studio JSON export)")
    imp.add_argument("file", help="id, decision (keep|relabel|drop), new_label, [date, reviewer, note, decided_at]")
    imp.add_argument("--reviewer", help="for rows naming none (default: the login name)")
    imp.add_argument("--date", help="audited date of a file without a date column (default: the latest)")
    imp.add_argument("--data-dir", help="override CL_PIPELINE_DATA_DIR (default data/)")
    imp.set_defaults(func=cmd_review_import)
