"""Renderers: Markdown tables and a heatmap picture for the Dagster UI, the audit report text for the CLI."""

import base64
import io
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from cl_pipeline.storage.queries import AuditReport

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from matplotlib.image import AxesImage

__all__ = [
    "heatmap_figure",
    "heatmap_png",
    "holdout_lines",
    "markdown_matrix",
    "markdown_table",
    "matrix_frame",
    "png_markdown",
    "report_text",
    "short_text",
    "significant",
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


def _annotate(ax: "Axes", matrix: np.ndarray, image: "AxesImage", skip_diagonal: bool) -> None:
    """Write each cell's value (2 significant digits) in a colour readable on the cell's colour."""
    for (i, j), value in np.ndenumerate(matrix):
        if skip_diagonal and i == j:
            continue
        red, green, blue, _ = image.cmap(image.norm(value))
        ink = "black" if 0.299 * red + 0.587 * green + 0.114 * blue > 0.5 else "white"
        ax.text(j, i, f"{value:.2g}", ha="center", va="center", fontsize=6, color=ink)


def _panel(
    fig: "Figure", ax: "Axes", data: np.ndarray, classes: Sequence[str], title: str, **style: object
) -> "AxesImage":
    image = ax.imshow(data, **style)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks(range(len(classes)), [str(c) for c in classes], fontsize=7)
    ax.set_yticks(range(len(classes)), [str(c) for c in classes], fontsize=7)
    ax.set_xlabel("true label")
    ax.set_ylabel("given label")
    ax.set_title(title, fontsize=9)
    return image


def heatmap_figure(matrix: np.ndarray, classes: Sequence[str], title: str) -> "Figure":
    """Two annotated heatmaps of a joint such as Q (rows = given label, columns = true label).

    Left, every cell on one colour scale: the diagonal (correct labels) dominates it. Right,
    the off-diagonal cells only (the confused pairs), on their own colour scale from 0 to the
    largest off-diagonal value, the diagonal greyed out, so the pairs that matter can be told
    apart. Cells are annotated with their values when K <= 15.

    Parameters
    ----------
    matrix : array_like of shape (K, K)
    classes : sequence of K names
    title : str
        Title of the left panel.

    Returns
    -------
    matplotlib.figure.Figure
        Not attached to pyplot (no global state, safe in threads).
    """
    from matplotlib.figure import Figure

    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] != len(classes):
        raise ValueError(f"matrix of shape {matrix.shape} is not K x K for the {len(classes)} classes")
    k = matrix.shape[0]
    off = np.ma.masked_array(matrix, mask=np.eye(k, dtype=bool))
    off_max = float(off.max()) if k > 1 and float(off.max()) > 0 else 1.0
    size = 2.5 + 0.4 * k
    fig = Figure(figsize=(2 * size + 2.0, size), dpi=90)
    fig.subplots_adjust(left=0.08, right=0.96, bottom=0.16, top=0.9, wspace=0.35)
    left, right = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    full = _panel(fig, left, matrix, classes, title, cmap="viridis", vmin=0.0)
    right.set_facecolor("0.85")  # the masked diagonal
    pairs = _panel(
        fig,
        right,
        off,
        classes,
        "off-diagonal only (confused pairs), own scale",
        cmap="magma_r",
        vmin=0.0,
        vmax=off_max,
    )
    if k <= 15:
        _annotate(left, matrix, full, skip_diagonal=False)
        _annotate(right, matrix, pairs, skip_diagonal=True)
    return fig


def heatmap_png(matrix: np.ndarray, classes: Sequence[str], title: str) -> bytes:
    """PNG bytes of :func:`heatmap_figure` (the whole joint, and its off-diagonal on its own scale)."""
    buffer = io.BytesIO()
    heatmap_figure(matrix, classes, title).savefig(buffer, format="png")
    return buffer.getvalue()


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
