"""The noise-rate and issue-rate history of every audited date, as a picture for the Dagster UI.

Per date of ``audit_summary``: the estimated noise rate ``1 - trace(Q)`` and the issue rate
(flagged examples / n); per date of ``monitor_scores``: the new rows' flagged fraction
scored against the reference (a filled marker where the check's test was significant),
and the reference date as a vertical line. Read from the tables' one-row files and
footers only (no example row is read).
"""

import dataclasses
import logging
from collections.abc import Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from cl_pipeline.audit import svg
from cl_pipeline.audit.stages import StageResult
from cl_pipeline.storage import PartitionStore, list_partitions

__all__ = ["history_markdown", "history_svg", "rate_history", "with_history"]

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


#: Plot area of the history picture (px) and its margins: left, top, right, bottom.
_WIDTH, _HEIGHT, _MARGINS = 720.0, 330.0, (56.0, 30.0, 16.0, 70.0)
_NOISE, _ISSUE, _MONITOR, _GRID = "#1f77b4", "#ff7f0e", "#d62728", "#e0e0e0"


def _y_ticks(top: float) -> np.ndarray:
    """Round ticks from 0 covering ``top``, at most 6."""
    for step in (0.01, 0.02, 0.05, 0.1, 0.2, 0.25, 0.5, 1.0):
        if top / step <= 5:
            return np.arange(0.0, top + step * 0.999, step)
    return np.linspace(0.0, top, 6)


def _marker(kind: str, x: float, y: float, colour: str, filled: bool = True) -> str:
    fill = colour if filled else "white"
    if kind == "circle":
        return f'<circle cx="{x:.2f}" cy="{y:.2f}" r="3.5" fill="{fill}" stroke="{colour}"/>'
    if kind == "square":
        return svg.rect(x - 3.2, y - 3.2, 6.4, 6.4, fill, f' stroke="{colour}"')
    if kind == "cross":
        return f'<path d="M{x - 4:.2f},{y - 4:.2f}L{x + 4:.2f},{y + 4:.2f}M{x - 4:.2f},{y + 4:.2f}L{x + 4:.2f},{y - 4:.2f}" stroke="{colour}" stroke-width="1.5"/>'
    return f'<path d="M{x:.2f},{y - 4.5:.2f}L{x + 4.5:.2f},{y + 3.5:.2f}L{x - 4.5:.2f},{y + 3.5:.2f}Z" fill="{fill}" stroke="{colour}"/>'


def _line(xs: np.ndarray, ys: np.ndarray, colour: str, dashed: bool) -> list[str]:
    """Polylines through the points with a value (a missing value breaks the line)."""
    dash = ' stroke-dasharray="6 4"' if dashed else ""
    parts, run = [], []
    for x, y in [*zip(xs, ys, strict=True), (np.nan, np.nan)]:
        if np.isnan(y):
            if len(run) > 1:
                points = " ".join(f"{a:.2f},{b:.2f}" for a, b in run)
                parts.append(f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="1.5"{dash}/>')
            run = []
        else:
            run.append((x, y))
    return parts


def _axes(
    days: np.ndarray, top: float
) -> tuple[Callable[[np.ndarray], np.ndarray], Callable[[np.ndarray], np.ndarray]]:
    """Maps from day numbers and rates to px."""
    left, upper, right, lower = _MARGINS
    low, high = float(days.min()), float(days.max())
    pad = max(1.0, 0.04 * (high - low))
    span_x, span_y = _WIDTH - left - right, _HEIGHT - upper - lower
    return (
        lambda d: left + (np.asarray(d, dtype=np.float64) - low + pad) / (high - low + 2 * pad) * span_x,
        lambda r: upper + span_y * (1.0 - np.asarray(r, dtype=np.float64) / top),
    )


def _frame(history: pd.DataFrame, days: np.ndarray, x, y, top: float) -> list[str]:
    """Grid lines, tick labels, axis name and title."""
    left, upper, right, lower = _MARGINS
    parts = []
    for tick in _y_ticks(top):
        at = float(y(tick))
        parts.append(f'<path d="M{left:.2f},{at:.2f}H{_WIDTH - right:.2f}" stroke="{_GRID}"/>')
        parts.append(svg.text(left - 6, at + 3.5, f"{tick:.2f}", 10, "end"))
    shown = np.arange(len(days))[:: max(1, -(-len(days) // 12))]
    for i in shown:
        at, base = float(x(days[i])), _HEIGHT - lower + 12
        parts.append(
            svg.text(at, base, history["date"].iloc[i], 10, "end", f' transform="rotate(-35 {at:.2f} {base:.2f})"')
        )
    parts.append(svg.rect(left, upper, _WIDTH - left - right, _HEIGHT - upper - lower, "none", ' stroke="#888"'))
    middle = upper + (_HEIGHT - upper - lower) / 2
    parts.append(svg.text(14, middle, "fraction of examples", 11, extra=f' transform="rotate(-90 14 {middle:.2f})"'))
    plural = "" if len(history) == 1 else "s"
    parts.append(svg.text(_WIDTH / 2, 18, f"noise-rate and issue-rate history ({len(history)} date{plural})", 12))
    return parts


def _monitoring(history: pd.DataFrame, days: np.ndarray, x, y) -> tuple[list[str], list[tuple[str, str, str, bool]]]:
    """The monitored rates (hollow, filled where the test fired) and each reference date; with legend rows."""
    monitored = history["monitored_rate"].notna().to_numpy()
    if not monitored.any():
        return [], []
    fired = monitored & history["significant"].fillna(False).astype(bool).to_numpy()
    parts = [
        _marker("triangle", float(x(d)), float(y(r)), _MONITOR, bool(f))
        for d, r, f in zip(days[monitored], history["monitored_rate"][monitored], fired[monitored], strict=True)
    ]
    legend = [("triangle", _MONITOR, "new rows flagged vs reference", False)]
    legend += [("triangle", _MONITOR, "check fired", True)] if fired.any() else []
    for reference in sorted(set(history["reference"][monitored])):
        rate = history["reference_rate"][monitored & (history["reference"] == reference).to_numpy()].iloc[-1]
        at = float(x(pd.Timestamp(reference).to_datetime64().astype("datetime64[D]").astype(np.int64)))
        left, upper, _, lower = _MARGINS
        if left <= at <= _WIDTH - _MARGINS[2]:
            parts.append(
                f'<path d="M{at:.2f},{upper:.2f}V{_HEIGHT - lower:.2f}" stroke="#808080" stroke-dasharray="2 3"/>'
            )
        parts.append(_marker("cross", at, float(y(rate)), _MONITOR))
        legend.append(("cross", _MONITOR, f"reference {reference} flagged (same rule)", True))
    return parts, legend


def _legend(rows: list[tuple[str, str, str, bool]]) -> list[str]:
    left, upper = _MARGINS[0] + 10, _MARGINS[1] + 8
    parts = [svg.rect(left, upper, 270, 16 * len(rows) + 6, "white", ' fill-opacity="0.85" stroke="#ccc"')]
    for i, (kind, colour, label, filled) in enumerate(rows):
        at = upper + 12 + 16 * i
        parts.append(_marker(kind, left + 14, at - 3.5, colour, filled))
        parts.append(svg.text(left + 28, at, label, 10, "start"))
    return parts


def history_svg(history: pd.DataFrame) -> str:
    """SVG of :func:`rate_history`: the rates against the date.

    Parameters
    ----------
    history : DataFrame
        The columns of :func:`rate_history` (at least one row).

    Returns
    -------
    str
        Noise rate (circles, solid line) and issue rate (squares, dashed) per date; with
        monitoring, the new rows' flagged fraction (triangles, filled where the check fired)
        and the reference date (dotted line, its rate a cross).
    """
    if history.empty:
        raise ValueError("history has no rows: nothing to plot")
    days = pd.to_datetime(history["date"]).to_numpy().astype("datetime64[D]").astype(np.int64)
    rates = history[["noise_rate", "issue_rate", "monitored_rate", "reference_rate"]].to_numpy(dtype=np.float64)
    top = max(0.05, float(np.nanmax(rates)) * 1.15 if np.isfinite(rates).any() else 0.05)
    x, y = _axes(days, top)
    body = _frame(history, days, x, y, top)
    for column, colour, kind, dashed in (
        ("noise_rate", _NOISE, "circle", False),
        ("issue_rate", _ISSUE, "square", True),
    ):
        values = history[column].to_numpy(dtype=np.float64)
        body += _line(x(days), y(values), colour, dashed)
        body += [
            _marker(kind, float(x(d)), float(y(v)), colour)
            for d, v in zip(days, values, strict=True)
            if not np.isnan(v)
        ]
    monitoring, extra = _monitoring(history, days, x, y)
    legend = [
        ("circle", _NOISE, "estimated noise rate (1 - trace Q)", True),
        ("square", _ISSUE, "issue rate (flagged / n)", True),
    ]
    body += monitoring + _legend(legend + extra)
    return svg.document(_WIDTH, _HEIGHT, body, "noise-rate and issue-rate history")


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
    return {HISTORY_KEY: svg.svg_markdown(history_svg(history), "noise-rate and issue-rate history")}


def with_history(store: PartitionStore, result: StageResult) -> StageResult:
    """``result`` with the history picture added to its Markdown metadata (``audit_summary``)."""
    return dataclasses.replace(result, markdown={**result.markdown, **history_markdown(store)})
