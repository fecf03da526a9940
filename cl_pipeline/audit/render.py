"""Renderers: Markdown tables and the heatmap of Q (SVG) for the Dagster UI, the audit report text for the CLI."""

import base64
from collections.abc import Sequence

import numpy as np
import pandas as pd

from cl_pipeline.audit import svg
from cl_pipeline.audit.svg import svg_markdown
from cl_pipeline.storage.queries import AuditReport

__all__ = [
    "heatmap_positions",
    "heatmap_svg",
    "holdout_lines",
    "markdown_matrix",
    "markdown_table",
    "matrix_frame",
    "png_markdown",
    "report_text",
    "short_text",
    "significant",
    "svg_markdown",
]


def significant(value: float, digits: int = 4) -> float:
    """``value`` rounded to ``digits`` significant digits (``0.09404563`` -> ``0.09405``; ``1.9e-05`` stays)."""
    return float(f"{value:.{digits}g}")


def _cell(value: object, digits: int) -> str:
    if isinstance(value, (float, np.floating)):
        return f"{value:.{digits}g}"
    return str(value).replace("|", "\\|")


def short_text(value: object, limit: int = 80) -> str | None:
    """``value`` as one line of at most ``limit`` characters, for a table cell of the top issues.

    The first ``limit`` characters of the text, then ``…`` if it was longer; then line
    breaks are shown as ``\\n`` (``\\r``, ``\\t`` likewise) and ``|`` as ``\\|``, so the cell stays
    one cell of one row in Markdown. None and NaN stay None (an empty cell).

    Raises
    ------
    ValueError
        If ``limit`` is not an integer >= 1.
    """
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"limit must be an integer >= 1, got {limit!r}")
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    text = str(value)
    cut = text[:limit] + ("…" if len(text) > limit else "")
    for char, shown in (("|", "\\|"), ("\r\n", "\\n"), ("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t")):
        cut = cut.replace(char, shown)
    return cut


def markdown_table(frame: pd.DataFrame, digits: int = 4) -> str:
    """A GitHub-flavoured Markdown table of ``frame`` (floats to ``digits`` significant digits,
    ``|`` escaped in the header and the cells)."""
    header = "| " + " | ".join(_cell(str(c), digits) for c in frame.columns) + " |"
    rule = "|" + "---|" * len(frame.columns)
    rows = ["| " + " | ".join(_cell(v, digits) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *rows])


def matrix_frame(matrix: np.ndarray, classes: Sequence[str], corner: str) -> pd.DataFrame:
    """A square matrix as a table: one row per class (first column ``corner``), one column per class."""
    frame = pd.DataFrame(np.asarray(matrix), columns=[str(c) for c in classes])
    frame.insert(0, corner, [str(c) for c in classes])
    return frame


def markdown_matrix(matrix: np.ndarray, classes: Sequence[str], corner: str, digits: int = 4) -> str:
    """A square matrix as a Markdown table, rows and columns labelled by class."""
    return markdown_table(matrix_frame(matrix, classes, corner), digits)


#: Colour scales of the heatmap: the whole joint, and the off-diagonal pairs on their own.
WHOLE_SCALE = svg.Colormap(["#ffffd9", "#c7e9b4", "#41b6c4", "#225ea8", "#081d58"])
PAIRS_SCALE = svg.Colormap(["#fff5eb", "#fdae6b", "#f16913", "#a63603", "#4a1500"])
#: Fill of the diagonal in the pairs panel (left out of its scale).
DIAGONAL_FILL = "#d9d9d9"


def heatmap_positions(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where each cell of a joint falls on the two colour scales of :func:`heatmap_svg`.

    Parameters
    ----------
    matrix : ndarray of shape (K, K), non-negative

    Returns
    -------
    whole : ndarray of shape (K, K)
        ``matrix / matrix.max()``: one scale from 0 to the largest cell (the diagonal dominates it).
    pairs : ndarray of shape (K, K)
        Off-diagonal cells over the largest off-diagonal cell (the confused pairs on their
        own scale, the most confused pair at 1); NaN on the diagonal, which is left out.
    """
    k = matrix.shape[0]
    top = float(matrix.max())
    whole = matrix / top if top > 0 else np.zeros_like(matrix)
    off = np.where(np.eye(k, dtype=bool), np.nan, matrix)
    off_max = float(np.nanmax(off)) if k > 1 else 0.0
    pairs = off / off_max if off_max > 0 else np.where(np.isnan(off), np.nan, 0.0)
    return whole, pairs


def _heatmap_panel(
    matrix: np.ndarray,
    position: np.ndarray,
    labels: Sequence[str],
    scale: "svg.Colormap",
    box: tuple[float, float, float],
    name: str,
) -> list[str]:
    """One annotated grid: cells, their values (K <= 15), class names, axis names, colour bar."""
    left, top, cell = box
    k = matrix.shape[0]
    grid = k * cell
    parts = [f'<g class="{name}">']
    for (i, j), value in np.ndenumerate(matrix):
        at = position[i, j]
        fill = DIAGONAL_FILL if np.isnan(at) else scale.hex(at)
        parts.append(svg.rect(left + j * cell, top + i * cell, cell, cell, fill, f' data-i="{i}" data-j="{j}"'))
        if k <= 15 and not np.isnan(at):
            ink = scale.ink(at)
            extra = f' fill="{ink}" dominant-baseline="central" data-i="{i}" data-j="{j}"'
            parts.append(
                svg.text(
                    left + (j + 0.5) * cell, top + (i + 0.5) * cell, f"{value:.2g}", min(8.0, cell / 5), extra=extra
                )
            )
    size = min(11.0, 0.8 * cell)
    for i, label in enumerate(labels):
        middle = (i + 0.5) * cell
        parts.append(svg.text(left - 4, top + middle, label, size, "end", ' dominant-baseline="central"'))
        x, y = left + middle, top + grid + 6
        parts.append(svg.text(x, y, label, size, "end", f' transform="rotate(-45 {x:.2f} {y:.2f})"'))
    parts.append("</g>")
    return parts


def heatmap_svg(matrix: np.ndarray, classes: Sequence[str], title: str) -> str:
    """Two annotated heatmaps of a joint such as Q (rows = given label, columns = true label), as SVG.

    Left, every cell on one colour scale: the diagonal (correct labels) dominates it. Right,
    the off-diagonal cells only (the confused pairs), on their own colour scale from 0 to the
    largest off-diagonal value, the diagonal greyed out, so the pairs that matter can be told
    apart (:func:`heatmap_positions`). Cells are annotated with their values when K <= 15.

    Parameters
    ----------
    matrix : array_like of shape (K, K)
    classes : sequence of K names
    title : str
        Title of the left panel.

    Returns
    -------
    str
        A standalone SVG document; the same input gives the same text.
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] != len(classes):
        raise ValueError(f"matrix of shape {matrix.shape} is not K x K for the {len(classes)} classes")
    k = matrix.shape[0]
    whole, pairs = heatmap_positions(matrix)
    labels = [name if len(name) <= 12 else name[:11] + "…" for name in map(str, classes)]
    cell = float(min(40.0, max(8.0, 400.0 / k)))
    grid, label_room = k * cell, 12 + 6.5 * max(len(label) for label in labels)
    left, top = 22 + label_room, 30.0
    panel_width = left + grid + 60
    off_max = float(np.nanmax(np.where(np.eye(k, dtype=bool), np.nan, matrix))) if k > 1 else 0.0
    body: list[str] = []
    panels = (
        (title, whole, WHOLE_SCALE, "whole", float(matrix.max())),
        ("off-diagonal only (confused pairs), own scale", pairs, PAIRS_SCALE, "pairs", off_max),
    )
    for index, (name, position, scale, css, high) in enumerate(panels):
        x0 = index * panel_width
        body += _heatmap_panel(matrix, position, labels, scale, (x0 + left, top, cell), css)
        body.append(svg.text(x0 + left + grid / 2, 18, name, 12))
        body.append(svg.text(x0 + left + grid / 2, top + grid + label_room + 14, "true label", 11))
        y_mid = top + grid / 2
        body.append(svg.text(x0 + 12, y_mid, "given label", 11, extra=f' transform="rotate(-90 {x0 + 12} {y_mid})"'))
        body.append(svg.colour_bar(f"bar-{css}", scale, x0 + left + grid + 8, top, grid, 0.0, high))
    return svg.document(2 * panel_width, top + grid + label_room + 24, body, title)


def png_markdown(png: bytes, alt: str) -> str:
    """Markdown embedding ``png`` as a data URI (shown inline by the Dagster UI)."""
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})"


def report_text(date: str, report: AuditReport) -> str:
    """The summary of one audited date as printed by ``cl-pipeline audit`` (numbers to 4 digits)."""
    s = report.summary
    lines = [
        f"\naudit {date}: {s['n']} examples, {s['k']} classes, data version {s['data_version']}",
        f"  estimated noise rate {s['estimated_noise_rate']:.4f}, {s['num_issues']} label issues, "
        f"health score {s['health_score']:.4f}",
    ]
    if pd.notna(s.get("precision")):
        lines.append(f"  against the injected flips: precision {s['precision']:.3f}, recall {s['recall']:.3f}")
    lines.append("  top issues:\n" + report.top_issues.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    if report.model is not None and report.model["status"] == "trained":
        lines += holdout_lines(report.model)
    return "\n".join(lines)


def holdout_lines(model: "pd.Series | dict") -> list[str]:
    """The hold-out scores of a ``retrained_model`` row, each line naming the labels it is measured against.

    Against the given labels (noisy: a retrained model that corrects some of them can score
    lower there) and, when known, against the true labels. The line that the
    ``retrained_not_worse_than_baseline`` check compares (the true labels when known) is marked.
    """
    truth = "retrained_true_accuracy" in model and pd.notna(model["retrained_true_accuracy"])
    checked = "  <- checked by retrained_not_worse_than_baseline"
    holdout = f" ({int(model['n_holdout'])} rows)" if pd.notna(model.get("n_holdout")) else ""
    how = "pruned" if model.get("label_kind") == "multilabel" else "pruned + reweighted"  # one-vs-rest: no weights
    lines = [
        f"  hold-out split{holdout}, baseline (trained on the given labels) vs retrained ({how}):",
        f"    accuracy vs the given labels: baseline {model['baseline_accuracy']:.4f}, "
        f"retrained {model['retrained_accuracy']:.4f}" + ("" if truth else checked),
    ]
    if truth:
        lines.append(
            f"    accuracy vs the true labels:  baseline {model['baseline_true_accuracy']:.4f}, "
            f"retrained {model['retrained_true_accuracy']:.4f}" + checked
        )
    return lines
