"""Renderers: Markdown tables and a heatmap picture for the Dagster UI, the audit report text for the CLI."""

import base64
import io
from collections.abc import Sequence

import numpy as np
import pandas as pd

from cl_pipeline.storage.queries import AuditReport

__all__ = [
    "heatmap_png",
    "markdown_matrix",
    "markdown_table",
    "matrix_frame",
    "png_markdown",
    "report_text",
    "significant",
]


def significant(value: float, digits: int = 4) -> float:
    """``value`` rounded to ``digits`` significant digits (``0.09404563`` -> ``0.09405``; ``1.9e-05`` stays)."""
    return float(f"{value:.{digits}g}")


def _cell(value: object, digits: int) -> str:
    if isinstance(value, (float, np.floating)):
        return f"{value:.{digits}g}"
    return str(value).replace("|", "\\|")


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


def heatmap_png(matrix: np.ndarray, classes: Sequence[str], title: str) -> bytes:
    """PNG bytes of an annotated heatmap (rows = given label, columns = true label)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    matrix = np.asarray(matrix, dtype=np.float64)
    k = matrix.shape[0]
    size = 2.5 + 0.4 * k
    fig = Figure(figsize=(size + 1.0, size), dpi=90)
    fig.subplots_adjust(left=0.14, right=0.95, bottom=0.14, top=0.92)
    ax = fig.add_subplot()
    image = ax.imshow(matrix, cmap="viridis")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks(range(k), [str(c) for c in classes], fontsize=7)
    ax.set_yticks(range(k), [str(c) for c in classes], fontsize=7)
    ax.set_xlabel("true label")
    ax.set_ylabel("given label")
    ax.set_title(title, fontsize=9)
    if k <= 15:
        bright = matrix.min() + 0.6 * (matrix.max() - matrix.min())
        for (i, j), value in np.ndenumerate(matrix):
            ax.text(
                j, i, f"{value:.3f}", ha="center", va="center", fontsize=6, color="black" if value > bright else "white"
            )
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
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
    m = report.model
    if m is not None and m["status"] == "trained":
        lines.append(
            f"  hold-out accuracy: baseline {m['baseline_accuracy']:.4f}, "
            f"retrained {m['retrained_accuracy']:.4f} (given labels)"
        )
    return "\n".join(lines)
