"""``cl-pipeline export-dataset``: parse, call :func:`cl_pipeline.audit.dataset_export.export_dataset`, print.

Registered by :func:`add_dataset_parser` from ``cl_pipeline.cli``. Exit codes as ``cli``:
0 ok, 2 bad input (the message names the argument and the value; nothing written).
"""

import argparse
import sys
from pathlib import Path
from typing import Any

__all__ = ["add_dataset_parser", "cmd_export_dataset", "note_curated"]

EXIT_OK, EXIT_BAD_INPUT = 0, 2


def cmd_export_dataset(args: argparse.Namespace) -> int:
    """``cl-pipeline export-dataset``: one dataset version (raw or curated) to a CSV or Parquet file."""
    from cl_pipeline.audit.dataset_export import export_dataset
    from cl_pipeline.config import ConfigError, config_file, data_dir, load_config
    from cl_pipeline.storage.store import PartitionStore

    store = PartitionStore(Path(args.data_dir) if args.data_dir else data_dir())
    try:
        config = load_config(config_file(args.config))
        result = export_dataset(store, config, Path(args.out), args.date, args.version, args.kind)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    print(
        f"wrote {result.rows} rows of the {result.kind} version {result.version} of {result.date} "
        f"(from {result.source}) to {result.path}"
    )
    return EXIT_OK


def note_curated(config: Any, checked: Any) -> None:
    """``cl-pipeline audit --from curated``: print what the review decisions do to the snapshot.

    Raises ``ConfigError`` (exit 2, nothing written) when they leave labels that cannot be audited.
    """
    from cl_pipeline.audit.curation import check_curated
    from cl_pipeline.config import data_dir

    print(f"note: start_from = curated: {check_curated(data_dir(), config, checked)}", file=sys.stderr)


def add_dataset_parser(sub: Any) -> None:
    """Add ``export-dataset`` to the ``cl-pipeline`` subparsers ``sub``."""
    from cl_pipeline.audit.dataset_export import KINDS

    export = sub.add_parser("export-dataset", help="write a dataset version (raw or curated) as CSV or Parquet")
    which = export.add_mutually_exclusive_group(required=True)
    which.add_argument("--date", help="the version of this date YYYY-MM-DD (see --kind)")
    which.add_argument("--version", help="a version hash (cl-pipeline warehouse view dataset_versions)")
    export.add_argument("--kind", choices=KINDS, default="curated", help="with --date: which version (default curated)")
    export.add_argument("--out", required=True, help=".csv or .parquet")
    export.add_argument("--config", help="dataset config, to re-read a raw snapshot no table holds (default: env)")
    export.add_argument("--data-dir", help="override CL_PIPELINE_DATA_DIR (default data/)")
    export.set_defaults(func=cmd_export_dataset)
