"""``cl-pipeline find --annotators`` and ``find --multilabel``: parse, call, print.

Registered by :func:`add_find_multi_options` from ``cl_pipeline.cli`` on the ``find``
parser. Multi-annotator labels are read when ``--annotators`` is given or when the labels
file is a long table (columns ``id, annotator, label``); a wide ``(n, m)`` file needs
``--annotators`` (an ``(n, 2)`` array of labels is otherwise refused, as before).
Exit codes as ``cli``: 0 ok, 2 bad input, 3 noise above ``--max-noise-rate``.
"""

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["add_find_multi_options", "cmd_find_annotators", "cmd_find_multilabel"]

EXIT_OK, EXIT_BAD_INPUT, EXIT_NOISY = 0, 2, 3


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def side_file(out: Path, part: str) -> Path:
    """``issues.csv`` -> ``issues.<part>.csv``: the second table written next to ``--out``."""
    return out.with_name(f"{out.stem}.{part}{out.suffix}")


def _read_probs(path: str, csv_header: str) -> Any:
    from cl_pipeline.storage.inputs import _as_probabilities, _check_class_count, _read_probs_csv, read_array

    if not Path(path).is_file():
        from cl_pipeline.config import ConfigError

        raise ConfigError(f"pred_probs: file not found: {path}")
    is_csv = Path(path).suffix.lower() == ".csv"
    probs = _as_probabilities(_read_probs_csv(path, csv_header) if is_csv else read_array(path, "pred_probs"), path)
    _check_class_count(probs)
    return probs


def cmd_find_annotators(args: argparse.Namespace) -> int:
    """Consensus (CROWDLAB), annotator quality and the label issues against the consensus."""
    import numpy as np

    from cl_pipeline import core
    from cl_pipeline.audit.annotators import find_multiannotator_tables
    from cl_pipeline.config import ConfigError, IssuesConfig
    from cl_pipeline.storage.annotations import annotation_matrix, read_annotator_labels
    from cl_pipeline.storage.inputs import check_output_file
    from cl_pipeline.storage.parquet import write_frame

    try:
        out = check_output_file(args.out)
        probs = _read_probs(args.pred_probs, args.csv_header)
        n = probs.shape[0] if probs.ndim else 0
        read = read_annotator_labels(args.labels, n, args.csv_header)
        for note in read.notes:
            print(f"note: {note}", file=sys.stderr)
        matrix = annotation_matrix(read.labels)
        issues = IssuesConfig(filter_by=args.filter_by, rank_by=args.rank_by)
        tables = find_multiannotator_tables(matrix, probs, list(read.labels.columns), issues)
        consensus = tables.consensus.sort_values("index")["consensus_label"].to_numpy()
        noise = float(1.0 - np.trace(core.estimate_joint(consensus, probs)))
    except (ConfigError, ValueError, TypeError) as exc:
        return _fail(str(exc))
    table, flagged = tables.consensus, tables.consensus[tables.consensus["is_label_issue"]]
    print(
        f"{len(table)} examples, {matrix.shape[1]} annotators, {probs.shape[1]} classes: {len(flagged)} label "
        f"issues against the consensus ({args.filter_by}), estimated noise rate {noise:.4f}"
    )
    fmt = "{:.4g}".format
    if out is not None:
        print(f"wrote {write_frame(out, table)}")
        print(f"wrote {write_frame(side_file(out, 'annotators'), tables.annotators)}")
    else:
        print(table.head(args.top).to_string(index=False, float_format=fmt))
    print("annotators (lowest quality first):")
    print(tables.annotators.sort_values("annotator_quality", kind="stable").to_string(index=False, float_format=fmt))
    if args.max_noise_rate is not None and noise > args.max_noise_rate:
        print(f"estimated noise rate {noise:.4f} is above --max-noise-rate {args.max_noise_rate}", file=sys.stderr)
        return EXIT_NOISY
    return EXIT_OK


def cmd_find_multilabel(args: argparse.Namespace) -> int:
    """Multi-label issues: per-example flags and quality, per-class (one-vs-rest) issues."""
    from cl_pipeline.audit.multilabel_tables import find_multilabel_tables
    from cl_pipeline.config import ConfigError
    from cl_pipeline.core import multilabel
    from cl_pipeline.storage.annotations import read_multilabels
    from cl_pipeline.storage.inputs import check_output_file
    from cl_pipeline.storage.parquet import write_frame

    rank_by = args.rank_by or "self_confidence"
    if rank_by not in multilabel.SCORE_METHODS:
        return _fail(f"--rank-by {rank_by} is not a multi-label score; use one of {list(multilabel.SCORE_METHODS)}")
    if args.max_noise_rate is not None:
        return _fail("--max-noise-rate is not defined for --multilabel (no single confident joint); drop it")
    try:
        out = check_output_file(args.out)
        probs = _read_probs(args.pred_probs, args.csv_header)
        n = probs.shape[0] if probs.ndim else 0
        labels = read_multilabels(args.labels, n, args.label_delimiter, args.csv_header)
        tables = find_multilabel_tables(labels, probs, filter_by=args.filter_by, rank_by=rank_by)
    except (ConfigError, ValueError, TypeError) as exc:
        return _fail(str(exc))
    table = tables.examples
    flagged = table[table["is_label_issue"]]
    print(
        f"{len(table)} examples, {probs.shape[1]} classes (multi-label): {len(flagged)} examples with a label "
        f"issue ({args.filter_by}), {int(tables.classes['num_issues'].sum())} (example, class) issues"
    )
    if out is not None:
        print(f"wrote {write_frame(out, table)}")
        print(f"wrote {write_frame(side_file(out, 'classes'), tables.classes)}")
    elif flagged.empty:
        print(f"no label issues found among {len(table)} examples")
    else:
        print(flagged.head(args.top).to_string(index=False, float_format="{:.4g}".format))
    print("issues per class:")
    print(tables.classes.to_string(index=False))
    return EXIT_OK


def add_find_multi_options(find: argparse.ArgumentParser, single: Callable[[argparse.Namespace], int]) -> None:
    """Add ``--annotators``, ``--multilabel`` and ``--label-delimiter`` to ``find``; ``single`` runs plain labels."""
    find.add_argument(
        "--annotators",
        action="store_true",
        help="labels are several annotators': an (n, m) .npy/.csv/.parquet with NaN/empty for no label, "
        "or a long table id,annotator,label (ids = rows of pred_probs; detected without the flag)",
    )
    find.add_argument(
        "--multilabel",
        action="store_true",
        help="labels are sets of classes: an (n, K) 0/1 .npy, or a CSV/Parquet column of lists or delimited "
        "strings; pred_probs are independent per-class probabilities",
    )
    find.add_argument("--label-delimiter", default=",", help="separator of class ids in a --multilabel text cell")

    def dispatch(args: argparse.Namespace) -> int:
        from cl_pipeline.storage.annotations import looks_like_long_table

        if args.annotators and args.multilabel:
            return _fail("--annotators and --multilabel cannot be combined; give one")
        if args.multilabel:
            return cmd_find_multilabel(args)
        if args.annotators or looks_like_long_table(args.labels):
            return cmd_find_annotators(args)
        return single(args)

    find.set_defaults(func=dispatch)
