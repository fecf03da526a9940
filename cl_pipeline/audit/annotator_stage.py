"""The ``annotator_quality`` stage and check of an audit with several annotators per example.

``raw_labels`` writes the table ``consensus_labels`` and computes the annotator rows (see
:func:`cl_pipeline.audit.annotators.consensus_snapshot`); this stage writes them as the table
``annotator_quality`` and reports them (an
inline table and a picture of each annotator's agreement with the consensus) and the
verdict flags annotators whose CROWDLAB quality is below ``checks.min_annotator_quality``.
"""

import io
import time

import numpy as np
import pandas as pd

from cl_pipeline.audit.render import png_markdown
from cl_pipeline.audit.stages import StageResult
from cl_pipeline.audit.verdicts import Verdict
from cl_pipeline.config import AuditConfig
from cl_pipeline.storage.store import PartitionStore

__all__ = ["CHECK_NAME", "agreement_png", "annotator_quality_stage", "annotator_quality_verdict"]

#: Name of the WARN check on ``annotator_quality``.
CHECK_NAME = "annotators_above_min_quality"


def _configured(config: AuditConfig) -> bool:
    return config.columns is not None and config.columns.annotations is not None


def agreement_png(table: pd.DataFrame, min_quality: float) -> bytes:
    """PNG of each annotator's quality and agreement with the consensus (horizontal bars, worst at the top).

    Parameters
    ----------
    table : DataFrame
        ``annotator, annotator_quality, agreement_with_consensus`` (one row per annotator).
    min_quality : float
        Drawn as a vertical line when above 0 (``checks.min_annotator_quality``).
    """
    from matplotlib.figure import Figure

    rows = table.sort_values(["annotator_quality", "annotator"], ascending=[False, True], kind="stable")
    m = len(rows)
    fig = Figure(figsize=(7.0, 1.2 + 0.3 * m), dpi=90)
    ax = fig.add_subplot(1, 1, 1)
    y = np.arange(m)
    ax.barh(y - 0.2, rows["annotator_quality"], height=0.4, label="quality (CROWDLAB)")
    ax.barh(y + 0.2, rows["agreement_with_consensus"], height=0.4, label="agreement with consensus")
    ax.set_yticks(y, [str(a) for a in rows["annotator"]])
    ax.set_xlim(0.0, 1.0)
    if min_quality > 0:
        ax.axvline(min_quality, color="red", linestyle="--", label=f"min quality {min_quality:g}")
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title("annotators")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def _empty_table() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "annotator": pd.Series([], dtype=object),
            "annotator_quality": pd.Series([], dtype=np.float64),
            "agreement_with_consensus": pd.Series([], dtype=np.float64),
            "worst_class": pd.Series([], dtype=object),
            "num_examples_labeled": pd.Series([], dtype=np.int64),
        }
    )


def annotator_quality_stage(store: PartitionStore, config: AuditConfig, date: str) -> StageResult:
    """Write the ``annotator_quality`` table of ``date`` (computed by ``raw_labels``) and report it.

    Without ``columns.annotations`` the table is written empty (0 annotators).
    """
    start = time.perf_counter()
    if not _configured(config):
        summary = "no annotators configured (columns.annotations)"
        store.write("annotator_quality", date, _empty_table(), {"seconds": time.perf_counter() - start})
        return StageResult(summary, time.perf_counter() - start, 0)
    table = pd.DataFrame(store.metadata("consensus_labels", date)["annotators"], columns=list(_empty_table().columns))
    consensus = store.read("consensus_labels", date)
    changed = int((consensus["consensus_label"] != consensus["majority_vote_label"]).sum())
    shown = table.sort_values(["annotator_quality", "annotator"], kind="stable").reset_index(drop=True)
    png = agreement_png(table, config.checks.min_annotator_quality)
    summary = f"{len(table)} annotators, consensus differs from the majority vote on {changed} examples"
    seconds = time.perf_counter() - start
    store.write("annotator_quality", date, table, {"seconds": seconds})
    return StageResult(
        summary,
        seconds,
        len(table),
        metadata={
            "annotators": len(table),
            "lowest_annotator_quality": float(table["annotator_quality"].min()),
            "consensus_differs_from_majority_vote": changed,
            "mean_consensus_quality": float(consensus["consensus_quality_score"].mean()),
        },
        markdown={"agreement": png_markdown(png, "annotator quality and agreement with the consensus")},
        tables={"annotator_quality": shown},
    )


def annotator_quality_verdict(store: PartitionStore, config: AuditConfig, date: str) -> Verdict:
    """Passed unless some annotator's quality is below ``checks.min_annotator_quality`` (WARN)."""
    limit = config.checks.min_annotator_quality
    if not _configured(config):
        return Verdict(CHECK_NAME, True, None, None, "no annotators configured (columns.annotations)")
    table = store.read("annotator_quality", date)
    if table.empty:
        return Verdict(CHECK_NAME, True, None, None, "no annotator_quality rows for this date")
    low = table[table["annotator_quality"] < limit].sort_values(["annotator_quality", "annotator"], kind="stable")
    worst = float(table["annotator_quality"].min())
    if low.empty:
        message = f"every annotator's quality >= {limit:g} (lowest {worst:.4g})"
        return Verdict(CHECK_NAME, True, worst, limit, message)
    named = ", ".join(f"{a} ({q:.4g})" for a, q in zip(low["annotator"], low["annotator_quality"], strict=True))
    message = f"{len(low)} annotator(s) below quality {limit:g}: {named}"
    return Verdict(CHECK_NAME, False, worst, limit, message)
