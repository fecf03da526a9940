"""The top issues as a reviewer sees them: a picture grid of the most suspicious examples, or their text.

What the ``label_issues`` asset shows besides its table (the asset only attaches it, see
:func:`with_issue_views`):

- pictures, where ``columns.image`` says where they are: pixel columns of the snapshot
  (the embedded digits: ``pixel_0`` ... ``pixel_63``, shape 8 x 8) or a column of local
  image file paths. A grid of the top 20 issues in rank order (left to right, top to
  bottom), each captioned ``#rank given -> suggested`` with class names, embedded in the
  metadata as an SVG (and kept as the artifact ``issue_gallery/<date>.svg``). URLs are
  never fetched; a URL, a missing or an unreadable file gets a placeholder panel that says so.
- text: the ``columns.display`` columns holding strings (without display columns, the
  ``columns.text`` features) are added to the ``top_20_issues`` table, each cell shortened
  by :func:`cl_pipeline.audit.render.short_text` (80 characters, ``…``, ``|`` and line
  breaks escaped).

Only the rows shown are read: the top 20 of ``label_issues`` by rank (a DuckDB top-k over
the file), then those rows of ``raw_labels`` by position (only the row groups holding them,
batch by batch, the needed columns only). The picture depends on the data only: the same rows give the same SVG.
"""

import dataclasses
import fnmatch
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa

from cl_pipeline.audit import render, svg
from cl_pipeline.config import AuditConfig, ConfigError
from cl_pipeline.storage import PartitionStore
from cl_pipeline.storage.queries import top_rows

if TYPE_CHECKING:
    from cl_pipeline.audit.stages import StageResult  # not at run time: preflight may import this module

__all__ = [
    "GALLERY_SIZE",
    "ImageSource",
    "captions",
    "gallery_svg",
    "image_source",
    "issue_views",
    "panel_images",
    "raw_rows",
    "text_columns",
    "top_issues",
    "with_issue_views",
]

#: How many of the top issues are shown.
GALLERY_SIZE = 20
#: Panels per row of the grid, each panel's size (px: width, height) and its picture's largest side.
_PER_ROW, _PANEL_SIZE, _PANEL_PIXELS = 5, (144, 160), 128
#: The columns of the top issues read from ``label_issues``.
_TOP_COLUMNS = ["rank", "id", "given_label", "suggested_label", "label_quality"]
#: A value with a scheme (``https://``, ``s3://``, ``file://``): not fetched.
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


@dataclass(frozen=True)
class ImageSource:
    """Where the pictures are, checked against the stored snapshot.

    Attributes
    ----------
    kind : {"pixels", "path"}
    columns : tuple of str
        The pixel columns in row-major order, or the one path column.
    shape : tuple of (int, int) or None
        ``(height, width)`` of a pixel image.
    root : Path or None
        Folder of relative image paths.
    """

    kind: Literal["pixels", "path"]
    columns: tuple[str, ...]
    shape: tuple[int, int] | None = None
    root: Path | None = None


def _is_number(kind: pa.DataType) -> bool:
    return pa.types.is_integer(kind) or pa.types.is_floating(kind)


def _source_folder(config: AuditConfig) -> Path:
    """Default folder of relative image paths: the source's folder (the current one for embedded)."""
    source = config.source
    if source.kind == "embedded" or not source.path:
        return Path.cwd()
    return Path(source.path) if source.kind == "folder" else Path(source.path).parent


def image_source(config: AuditConfig, schema: pa.Schema, date: str) -> ImageSource | None:
    """``columns.image`` checked against the schema of the date's ``raw_labels``; None without it.

    Parameters
    ----------
    config : AuditConfig
    schema : pyarrow.Schema
        Of the stored snapshot (``store.schema("raw_labels", date)``).
    date : str
        Named in the messages.

    Raises
    ------
    ConfigError
        A pixel pattern matching no column, pixel columns that are not numeric or whose
        number is not ``height * width``, a path column that is missing or not text.
    """
    image = config.columns.image if config.columns is not None else None
    if image is None:
        return None
    names = [n for n in schema.names if n != "partition"]
    if image.path is not None:
        if image.path not in names:
            raise ConfigError(f"columns.image.path {image.path!r} is not a column of raw_labels {date} ({names})")
        kind = schema.field(image.path).type
        if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
            raise ConfigError(f"columns.image.path {image.path!r} holds {kind}, not file paths (text)")
        return ImageSource("path", (image.path,), None, Path(image.root) if image.root else _source_folder(config))
    pixels: list[str] = []
    for pattern in image.pixels:
        hits = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
        if not hits:
            raise ConfigError(f"columns.image.pixels {pattern!r} matches no column of raw_labels {date}")
        pixels += [h for h in hits if h not in pixels]
    height, width = image.shape  # validated: two sides with pixels
    if len(pixels) != height * width:
        raise ConfigError(
            f"columns.image.shape {image.shape} needs {height * width} pixel columns, "
            f"columns.image.pixels {image.pixels} match {len(pixels)} in raw_labels {date}"
        )
    bad = [n for n in pixels if not _is_number(schema.field(n).type)]
    if bad:
        raise ConfigError(f"columns.image.pixels: column {bad[0]!r} holds {schema.field(bad[0]).type}, not numbers")
    return ImageSource("pixels", tuple(pixels), (height, width))


def text_columns(config: AuditConfig, schema: pa.Schema, meta: dict[str, Any]) -> list[str]:
    """The text shown in the top issues table: ``columns.display`` columns holding strings, or,
    without display columns, the ``columns.text`` features (as stored, ``meta["features"]``).

    Columns missing from ``schema`` or named like a column of the table itself are left out.
    """
    display = list(config.columns.display) if config.columns is not None else []
    wanted = display or list(meta.get("features", {}).get("text", []))
    out = []
    for name in wanted:
        if name in schema.names and name not in _TOP_COLUMNS:
            kind = schema.field(name).type
            if pa.types.is_string(kind) or pa.types.is_large_string(kind):
                out.append(name)
    return out


def top_issues(store: PartitionStore, date: str, limit: int = GALLERY_SIZE) -> pd.DataFrame:
    """The ``limit`` flagged rows of ``label_issues`` with the lowest ranks, in rank order.

    Columns ``rank, id, given_label, suggested_label, label_quality, row`` (``row``: the
    example's position in ``raw_labels``); a DuckDB top-k over the file (memory holds ``limit`` rows).
    """
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"limit must be an integer >= 1, got {limit!r}")
    return top_rows(store.path("label_issues", date), [*_TOP_COLUMNS, "row"], "is_label_issue", "rank", limit)


def raw_rows(store: PartitionStore, date: str, top: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """The rows of the date's ``raw_labels`` at the positions ``top["row"]``, ``columns`` only, in that order.

    Only the row groups holding one of the rows are read, batch by batch (memory holds one
    batch of ``columns``, not the table). A row whose id is not ``top["id"]`` (a ``raw_labels``
    rewritten since) or past the end gives a row of nulls.

    Parameters
    ----------
    top : pandas.DataFrame
        With ``row`` (positions) and ``id`` (:func:`top_issues`).
    columns : sequence of str
        Columns of ``raw_labels``.

    Returns
    -------
    pandas.DataFrame of shape (len(top), len(columns))
    """
    id_column = store.metadata("raw_labels", date)["id_column"]
    names = store.schema("raw_labels", date).names
    unknown = [c for c in columns if c not in names]
    if unknown:
        raise ValueError(f"columns {unknown} are not columns of raw_labels {date}")
    wanted = top["row"].to_numpy(dtype=np.int64)
    found = _rows_at(store.path("raw_labels", date), np.unique(wanted), list(dict.fromkeys([id_column, *columns])))
    frame = found.reindex(wanted).reset_index(drop=True)
    same = frame[id_column].astype(str).to_numpy() == top["id"].astype(str).to_numpy()
    out = frame.loc[:, list(columns)].astype(object)
    out.loc[~same, :] = None
    return out


def _rows_at(path: Path, rows: np.ndarray, columns: list[str]) -> pd.DataFrame:
    """The rows at sorted positions ``rows`` of one Parquet file (index: the position)."""
    import pyarrow.parquet as pq

    with pq.ParquetFile(path, pre_buffer=False, buffer_size=1 << 20) as parquet:  # column chunks streamed
        meta = parquet.metadata
        starts = np.cumsum([0] + [meta.row_group(g).num_rows for g in range(meta.num_row_groups)])
        parts, positions = [], []
        for group in np.unique(np.searchsorted(starts, rows, side="right") - 1):
            if group >= meta.num_row_groups:
                continue  # past the end
            offset = int(starts[group])
            for batch in parquet.iter_batches(batch_size=65536, row_groups=[int(group)], columns=columns):
                local = rows[(rows >= offset) & (rows < offset + batch.num_rows)] - offset
                if local.size:
                    parts.append(batch.take(pa.array(local)))
                    positions.append(local + offset)
                offset += batch.num_rows
    if not parts:
        return pd.DataFrame(columns=columns)
    frame = pa.Table.from_batches(parts).to_pandas()
    frame.index = np.concatenate(positions)
    return frame


def captions(top: pd.DataFrame) -> list[str]:
    """One caption per top issue, in rank order: ``#rank given -> suggested`` (class names)."""
    return [
        f"#{int(rank)} {given} -> {suggested}"
        for rank, given, suggested in zip(top["rank"], top["given_label"], top["suggested_label"], strict=True)
    ]


def _read_file(value: object, root: Path | None) -> np.ndarray | str:
    """One image file as an array, or why there is none (the panel's placeholder text)."""
    from matplotlib import image as mpimg

    if value is None or (isinstance(value, float) and math.isnan(value)) or not str(value).strip():
        return "no path"
    text = str(value).strip()
    if _URL.match(text):
        return "URL (not fetched)"
    path = Path(text)
    path = path if path.is_absolute() or root is None else root / path
    if not path.is_file():
        return "missing file"
    try:
        return np.asarray(mpimg.imread(path))
    except Exception:  # noqa: BLE001 - any file that does not decode is one placeholder panel, never a failed audit
        return "unreadable file"


def panel_images(rows: pd.DataFrame, source: ImageSource) -> list[np.ndarray | str]:
    """The picture of each row (an array), or a placeholder text where there is none.

    Parameters
    ----------
    rows : pandas.DataFrame
        The rows of ``raw_labels`` (:func:`raw_rows`) with ``source.columns``.
    source : ImageSource

    Returns
    -------
    list
        Per row: an array of shape ``source.shape`` (pixels), or what the file holds
        (H x W grey, H x W x 3/4 colour); or a str saying why there is no picture.
    """
    if source.kind == "path":
        return [_read_file(v, source.root) for v in rows[source.columns[0]]]
    values = rows[list(source.columns)].to_numpy(dtype=np.float64, na_value=np.nan)
    return [
        "row not found" if np.isnan(v).all() else v.reshape(source.shape)  # type: ignore[arg-type]
        for v in values
    ]


def _pixels(picture: np.ndarray) -> np.ndarray:
    """8-bit pixels of one panel, at most ``_PANEL_PIXELS`` per side (every n-th pixel kept).

    Grey images (2-D) are stretched from their own minimum to maximum (NaN drawn black);
    colour images (H x W x 3/4) are taken as they are: floats in [0, 1], or 8-bit values.
    """
    step = max(1, math.ceil(max(picture.shape[:2]) / _PANEL_PIXELS))
    picture = np.asarray(picture)[::step, ::step]
    if picture.ndim == 3 and picture.shape[2] not in (3, 4):  # grey with alpha, or one channel: its grey
        picture = picture[..., 0]
    if picture.ndim == 2:
        values = np.nan_to_num(picture.astype(np.float64), nan=np.nanmin(picture) if np.isfinite(picture).any() else 0)
        low, span = float(values.min()), float(np.ptp(values))
        scaled = (values - low) / span if span > 0 else np.zeros_like(values)
        return np.rint(scaled * 255).astype(np.uint8)
    if picture.dtype == np.uint8:
        return picture
    return np.rint(np.clip(np.nan_to_num(picture.astype(np.float64)), 0.0, 1.0) * 255).astype(np.uint8)


def _caption_lines(caption: str) -> list[str]:
    """A long caption on two lines: ``#rank given ->`` and ``suggested``."""
    if len(caption) <= 24:
        return [caption]
    first, _, rest = caption.partition(" -> ")
    return [f"{first} ->", rest] if rest else [caption]


def _gallery_panel(picture: np.ndarray | str, caption: str, x: float, y: float) -> list[str]:
    """One panel: the caption above, the picture (or a grey placeholder with its text) below."""
    width, height = _PANEL_SIZE
    lines = _caption_lines(caption)
    size = 10 if len(lines) == 1 else 9
    parts = [svg.text(x + width / 2, y + 14 + 11 * i, line, size) for i, line in enumerate(lines)]
    box = (x + 8, y + 14 + 11 * len(lines) - 4, width - 16, height - 14 - 11 * len(lines))
    if isinstance(picture, str):
        parts.append(svg.rect(*box, "#e6e6e6"))
        parts.append(svg.text(box[0] + box[2] / 2, box[1] + box[3] / 2, picture, 10, extra=' fill="#4d4d4d"'))
    else:
        parts.append(svg.image(*box, svg.png_bytes(_pixels(picture))))
    return parts


def gallery_svg(images: Sequence[np.ndarray | str], labels: Sequence[str]) -> str:
    """A grid of pictures, ``_PER_ROW`` per row, each captioned, as an SVG document.

    Grey images (2-D) are drawn on a grey scale from their own minimum to maximum; colour
    images as they are; a str is drawn as a placeholder panel with that text. Each panel is
    ``_PANEL_SIZE`` px (width, height); pictures are embedded as PNGs, enlarged without smoothing.

    Parameters
    ----------
    images : sequence of n arrays or str
    labels : sequence of n str

    Returns
    -------
    str
        The same pictures and captions give the same text.
    """
    if len(images) != len(labels) or not images:
        raise ValueError(f"need as many captions as images, at least one: got {len(images)} and {len(labels)}")
    columns = min(_PER_ROW, len(images))
    rows = math.ceil(len(images) / columns)
    width, height = _PANEL_SIZE
    body: list[str] = []
    for i, (picture, caption) in enumerate(zip(images, labels, strict=True)):
        body += _gallery_panel(picture, caption, (i % columns) * width, (i // columns) * height)
    return svg.document(columns * width, rows * height, body, "top label issues, given -> suggested")


@dataclass(frozen=True)
class _Plan:
    """What the views of a date need, checked before the stage runs."""

    image: ImageSource | None
    text: list[str]


def _plan(store: PartitionStore, config: AuditConfig, date: str) -> _Plan:
    schema = store.schema("raw_labels", date)
    return _Plan(image_source(config, schema, date), text_columns(config, schema, store.metadata("raw_labels", date)))


def issue_views(
    store: PartitionStore, config: AuditConfig, date: str, plan: "_Plan | None" = None
) -> tuple[dict[str, str], dict[str, pd.DataFrame]]:
    """The gallery (Markdown) and the top issues table with shortened text, of an audited date.

    Returns
    -------
    markdown : dict
        ``{"top_20_gallery": ...}`` when ``columns.image`` is set and there are issues; the
        SVG is also written as the artifact ``issue_gallery/<date>.svg`` (removed otherwise).
    tables : dict
        ``{"top_20_issues": ...}`` with the text columns added, when there are any.

    Raises
    ------
    ConfigError
        ``columns.image`` does not fit the stored snapshot (see :func:`image_source`).
    """
    plan = plan if plan is not None else _plan(store, config, date)
    top = top_issues(store, date)
    wanted = [*(plan.image.columns if plan.image else ()), *plan.text]
    rows = raw_rows(store, date, top, list(dict.fromkeys(wanted))) if wanted else None
    markdown: dict[str, str] = {}
    tables: dict[str, pd.DataFrame] = {}
    if plan.image is not None and len(top) and rows is not None:
        picture = gallery_svg(panel_images(rows, plan.image), captions(top))
        store.write_artifact("issue_gallery", date, ".svg", lambda handle: handle.write(picture.encode()))
        intro = f"The top {len(top)} label issues, most suspicious first (left to right): #rank given -> suggested\n\n"
        markdown["top_20_gallery"] = intro + render.svg_markdown(picture, "top label issues, given -> suggested")
    else:
        store.remove_artifact("issue_gallery", date, ".svg")
    store.remove_artifact("issue_gallery", date, ".png")  # the PNG of earlier versions
    if plan.text and rows is not None:
        shown = top[_TOP_COLUMNS].copy()
        for name in plan.text:
            shown[name] = [render.short_text(v) for v in rows[name]]
        tables["top_20_issues"] = shown
    return markdown, tables


def with_issue_views(
    store: PartitionStore, config: AuditConfig, date: str, run: Callable[[], "StageResult"]
) -> "StageResult":
    """``run()`` (the ``label_issues`` stage) with :func:`issue_views` added to its result.

    ``columns.image`` is checked against the stored snapshot before ``run`` starts, so a bad
    setting stops the stage before it writes anything.
    """
    plan = _plan(store, config, date)
    result = run()
    markdown, tables = issue_views(store, config, date, plan)
    return dataclasses.replace(result, markdown={**result.markdown, **markdown}, tables={**result.tables, **tables})
