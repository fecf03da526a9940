"""The noise-rate and issue-rate history of every audited date, as a picture for the Dagster UI.

Per date of ``audit_summary``: the estimated noise rate ``1 - trace(Q)`` and the issue rate
(flagged examples / n); per date of ``monitor_scores``: the new rows' flagged fraction
scored against the reference (a filled marker where the check's test was significant),
and the reference date as a vertical line. Read from the tables' one-row files and
footers only (no example row is read).
"""

import dataclasses
import io
import logging
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from cl_pipeline.audit.render import png_markdown
from cl_pipeline.audit.stages import StageResult
from cl_pipeline.storage import PartitionStore, list_partitions

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["history_markdown", "history_png", "rate_history", "with_history"]

log = logging.getLogger("cl_pipeline.progress")

#: Name of the picture in the assets' metadata.
HISTORY_KEY = "rate_history"
_COLUMNS = ["date", "n", "noise_rate", "issue_rate", "monitored_rate", "reference_rate", "significant", "reference"]


def rate_history(store: PartitionStore) -> pd.DataFrame:
    """One row per audited or monitored date, in date order.

    Returns
    -------
    DataFrame
        ``date``, ``n``, ``noise_rate`` (1 - trace Q), ``issue_rate`` (num_issues / n), and
        from ``monitor_scores``: ``monitored_rate`` (flagged fraction of the new rows),
        ``reference_rate``, ``significant`` and ``reference`` (the reference date); NaN/None
        where a date has no such record.
    """
    rows: dict[str, dict] = {}
    for date in list_partitions(store.root, "audit_summary"):
        table = pq.read_table(store.path("audit_summary", date), columns=["n", "estimated_noise_rate", "num_issues"])
        n, noise, issues = (table.column(c)[0].as_py() for c in ("n", "estimated_noise_rate", "num_issues"))
        rows[date] = {"n": n, "noise_rate": noise, "issue_rate": issues / n if n else np.nan}
    for date in list_partitions(store.root, "monitor_scores"):
        info = store.metadata("monitor_scores", date)
        rows.setdefault(date, {}).update(
            monitored_rate=info.get("new_noise_rate"),
            reference_rate=info.get("reference_noise_rate"),
            significant=info.get("significant"),
            reference=info.get("reference_date"),
        )
    frame = pd.DataFrame([{"date": d, **rows[d]} for d in sorted(rows)], columns=_COLUMNS)
    for column in ("noise_rate", "issue_rate", "monitored_rate", "reference_rate"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    return frame


def history_png(history: pd.DataFrame) -> bytes:
    """PNG of :func:`rate_history`: the rates against the date.

    Parameters
    ----------
    history : DataFrame
        The columns of :func:`rate_history` (at least one row).
    """
    from matplotlib.figure import Figure

    if history.empty:
        raise ValueError("history has no rows: nothing to plot")
    dates = pd.to_datetime(history["date"])
    fig = Figure(figsize=(8.0, 3.6), dpi=90)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(dates, history["noise_rate"], "o-", label="estimated noise rate (1 - trace Q)")
    ax.plot(dates, history["issue_rate"], "s--", label="issue rate (flagged / n)")
    monitored = history["monitored_rate"].notna().to_numpy()
    if monitored.any():
        fired = monitored & history["significant"].fillna(False).astype(bool).to_numpy()
        ax.plot(
            dates[monitored],
            history["monitored_rate"][monitored],
            "^",
            color="tab:red",
            mfc="white",
            label="new rows flagged vs reference",
        )
        if fired.any():
            ax.plot(dates[fired], history["monitored_rate"][fired], "^", color="tab:red", label="check fired")
        for reference in sorted(set(history["reference"][monitored])):
            rate = history["reference_rate"][monitored & (history["reference"] == reference).to_numpy()].iloc[-1]
            ax.axvline(pd.Timestamp(reference), color="0.5", linestyle=":", label=f"reference {reference}")
            ax.plot([pd.Timestamp(reference)], [rate], "x", color="tab:red", label="reference flagged (same rule)")
    _date_axis(ax, dates)
    ax.set_ylim(bottom=0.0)
    ax.set_ylabel("fraction of examples")
    ax.set_title(
        f"noise-rate and issue-rate history ({len(history)} date{'' if len(history) == 1 else 's'})", fontsize=10
    )
    ax.legend(fontsize=7, loc="upper left")
    fig.autofmt_xdate()
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def _date_axis(ax: "Axes", dates: pd.Series) -> None:
    """One tick per date when there are few, else matplotlib's choice; labels ``YYYY-MM-DD``."""
    from matplotlib.dates import AutoDateLocator, DateFormatter

    if len(dates) <= 12:
        ax.set_xticks(list(dates), [d.strftime("%Y-%m-%d") for d in dates])
    else:
        ax.xaxis.set_major_locator(AutoDateLocator(maxticks=12))
        ax.xaxis.set_major_formatter(DateFormatter("%Y-%m-%d"))
    if len(dates) == 1:
        ax.set_xlim(dates.iloc[0] - pd.Timedelta(days=1), dates.iloc[0] + pd.Timedelta(days=1))


def history_markdown(store: PartitionStore) -> dict[str, str]:
    """``{"rate_history": inline picture}`` of the store's history; empty when there is nothing to plot
    or a stored record cannot be read (said in the log: the picture never fails a stage)."""
    try:
        history = rate_history(store)
    except (OSError, KeyError, ValueError, pa.ArrowException) as exc:
        log.warning("rate history not drawn: %s", exc)
        return {}
    if history.empty:
        return {}
    return {HISTORY_KEY: png_markdown(history_png(history), "noise-rate and issue-rate history")}


def with_history(store: PartitionStore, result: StageResult) -> StageResult:
    """``result`` with the history picture added to its Markdown metadata (``audit_summary``)."""
    return dataclasses.replace(result, markdown={**result.markdown, **history_markdown(store)})
