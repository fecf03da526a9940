"""What review decisions change in an audit: ``label_issues`` of a curated audit, ``audit_summary``'s progress.

- :func:`review_label_issues` (audits started from the curated version): an example
  whose latest decision is ``keep``, made on its current given label, is not flagged
  again: ``is_label_issue`` false, ``rank`` null, and ``review_status`` says
  ``kept by reviewer <name> on <YYYY-MM-DD>``; an example relabeled by a decision says
  ``relabeled <old> -> <new> by reviewer <name> on <date>``. Confident learning's own
  flag and rank stay in ``cl_is_label_issue`` and ``cl_rank``, so nothing is hidden;
  the other flags are ranked 1, 2, ... again in the same order.
- :func:`review_summary`: the fields ``audit_summary`` records about reviews.
"""

import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa

from cl_pipeline.audit.curation import KEEP, RELABEL, DecisionLookup, decision_lookup
from cl_pipeline.config import AuditConfig
from cl_pipeline.storage import PartitionStore
from cl_pipeline.storage.versions import review_counts

__all__ = ["REVIEW_COLUMNS", "review_label_issues", "review_summary"]

#: Columns :func:`review_label_issues` adds to ``label_issues``.
REVIEW_COLUMNS = (
    pa.field("cl_is_label_issue", pa.bool_()),
    pa.field("cl_rank", pa.int64()),
    pa.field("review_status", pa.string()),
)
_READ = ["id", "given_index", "is_label_issue", "rank"]


def _statuses(lookup: DecisionLookup, batch: pa.RecordBatch, classes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(kept mask, review_status per row or None) of one ``label_issues`` batch."""
    given = batch.column("given_index").to_numpy(zero_copy_only=False)
    pos, applies = lookup.match(batch.column("id"), given)
    safe = np.maximum(pos, 0)
    kept = applies & (lookup.action[safe] == KEEP)
    relabeled = (pos >= 0) & (lookup.action[safe] == RELABEL) & (lookup.new_code[safe] == given)
    status = np.full(batch.num_rows, None, dtype=object)
    if kept.any() or relabeled.any():
        table = lookup.table
        who, when = table.column("reviewer").to_pylist(), table.column("decided_at").to_pylist()
        old = table.column("given_label").to_pylist()
        for i in np.flatnonzero(kept | relabeled):
            p = int(pos[i])
            said = "kept" if kept[i] else f"relabeled {old[p]} -> {classes[given[i]]}"
            status[i] = f"{said} by reviewer {who[p]} on {when[p].date().isoformat()}"
    return kept, status


def _kept_ranks(store: PartitionStore, date: str, lookup: DecisionLookup, classes: list[str]) -> tuple[np.ndarray, int]:
    """Pass 1: the ranks of the flagged rows a reviewer kept (sorted), and how many rows get a status."""
    ranks, statused = [], 0
    for batch in store.iter_batches("label_issues", date, _READ):
        kept, status = _statuses(lookup, batch, classes)
        flags = batch.column("is_label_issue").to_numpy(zero_copy_only=False)
        rank = batch.column("rank").to_numpy(zero_copy_only=False)
        ranks.append(rank[kept & flags])
        statused += int(np.count_nonzero(status != None))  # noqa: E711 (elementwise)
    kept_ranks = np.sort(np.concatenate(ranks).astype(np.int64)) if ranks else np.zeros(0, dtype=np.int64)
    return kept_ranks, statused


def _rewritten(
    store: PartitionStore, date: str, lookup: DecisionLookup, classes: list[str], kept_ranks: np.ndarray, tally: dict
) -> Iterator[pa.RecordBatch]:
    """Pass 2: every ``label_issues`` batch with the kept flags removed, ranks renumbered, statuses added."""
    schema = _schema(store, date)
    names = [f.name for f in schema if f.name not in {c.name for c in REVIEW_COLUMNS}]
    for batch in store.iter_batches("label_issues", date, names):
        kept, status = _statuses(lookup, batch, classes)
        flags = batch.column("is_label_issue").to_numpy(zero_copy_only=False)
        rank = batch.column("rank")
        unflag = kept & flags
        if "true_label" in batch.schema.names:
            truth = batch.column("true_label").to_numpy(zero_copy_only=False)
            given = batch.column("given_label").to_numpy(zero_copy_only=False)
            tally["kept_true_errors"] += int(np.count_nonzero(unflag & (truth != given) & (truth != None)))  # noqa: E711
        old = rank.to_numpy(zero_copy_only=False)
        shifted = np.where(flags, old, 0).astype(np.int64)
        shifted = shifted - np.searchsorted(kept_ranks, shifted, side="left")
        new_rank = pa.array(shifted, pa.int64(), mask=~(flags & ~unflag))
        columns = {n: batch.column(n) for n in names}
        columns["is_label_issue"] = pa.array(flags & ~unflag)
        columns["rank"] = new_rank
        extra = [pa.array(flags), rank, pa.array(status, pa.string())]
        yield pa.RecordBatch.from_arrays([*columns.values(), *extra], schema=schema)


def _schema(store: PartitionStore, date: str) -> pa.Schema:
    stored = store.schema("label_issues", date).remove_metadata()
    base = [f for f in stored if f.name != "partition" and f.name not in {c.name for c in REVIEW_COLUMNS}]
    return pa.schema([*base, *REVIEW_COLUMNS])


def review_label_issues(store: PartitionStore, date: str, info: dict[str, Any]) -> int:
    """Apply the reviewers' ``keep`` decisions to the date's stored ``label_issues`` (see the module docstring).

    Two passes over the table (ids, codes, flags and ranks; then every column) when a
    decision concerns one of its rows; nothing is read or written otherwise. ``info`` (the
    table's metadata) gets ``num_issues``, ``precision`` and ``recall`` recomputed and
    ``kept_by_reviewer`` (flags removed).

    Returns
    -------
    int
        The number of flags a reviewer's keep removed.
    """
    start = time.perf_counter()
    classes = list(store.metadata("raw_labels", date)["classes"])
    lookup = decision_lookup(store.root, date, classes)
    if lookup.empty:
        return 0
    kept_ranks, statused = _kept_ranks(store, date, lookup, classes)
    if not statused:
        return 0
    tally = {"kept_true_errors": 0}
    info = info if info is not None else {}
    info["kept_by_reviewer"] = int(kept_ranks.size)
    info["num_issues"] = int(info["num_issues"]) - int(kept_ranks.size)
    batches = _rewritten(store, date, lookup, classes, kept_ranks, tally)
    store.write_batches("label_issues", date, _schema(store, date), _finish(batches, info, tally, start), info)
    return int(kept_ranks.size)


def _finish(batches: Iterator[pa.RecordBatch], info: dict, tally: dict, start: float) -> Iterator[pa.RecordBatch]:
    """Pass the batches on; at the end, the precision and recall of the remaining flags and the time."""
    yield from batches
    if "true_positives" in info:
        hits = int(info["true_positives"]) - tally["kept_true_errors"]
        info.update(
            true_positives=hits,
            precision=hits / max(int(info["num_issues"]), 1),
            recall=hits / max(int(info["true_errors"]), 1),
        )
    info["seconds"] = float(info.get("seconds") or 0.0) + time.perf_counter() - start


def review_summary(store: PartitionStore, config: AuditConfig, date: str, flagged: int) -> tuple[dict[str, Any], str]:
    """The review fields of ``audit_summary`` and a one-line progress for the UI.

    Returns
    -------
    fields : dict
        ``start_from``, ``parent_version`` (the raw version of a curated audit, else None),
        ``decisions_applied``, and ``reviewed``, ``confirmed``, ``kept``: the decisions made so
        far on this date's examples (latest per id).
    progress : str
    """
    curation = store.metadata("raw_labels", date).get("curation") or {}
    counts = review_counts(store.root, date)
    fields = {
        "start_from": config.audit.start_from,
        "parent_version": curation.get("parent_version"),
        "decisions_applied": int(curation.get("decisions_applied", 0)),
        **counts,
    }
    progress = (
        f"{counts['reviewed']} reviewed ({counts['confirmed']} confirmed, {counts['kept']} kept) of {flagged} flagged"
    )
    return fields, progress
