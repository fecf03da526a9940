"""Pictures for the Dagster UI written as SVG text: no plotting library, a few milliseconds each.

The heatmap of Q, the grid of the top issues and the rate history are small drawings
(rectangles, lines, text). Written directly as SVG they cost milliseconds instead of the
second a plotting library needs to lay out and rasterise them, which every audit paid.
The browser draws them (crisp at any zoom) from a ``data:image/svg+xml`` URI in the
asset's Markdown; the same text is kept as the ``.svg`` artifact.

Rules, so the output is a function of the input alone (the same data gives the same bytes):
numbers are written with fixed formats, raster panels (a picture inside the gallery) are
PNGs encoded here by :func:`png_bytes` with a fixed zlib level, and nothing depends on
fonts installed on the machine (the viewer's browser lays out the text).

Text is escaped (:func:`text`): class names and file names come from the user's data.
"""

import base64
import struct
import zlib
from collections.abc import Sequence
from xml.sax.saxutils import escape, quoteattr

import numpy as np

__all__ = [
    "Colormap",
    "colour_bar",
    "document",
    "image",
    "png_bytes",
    "rect",
    "svg_markdown",
    "text",
]

#: Font of every text element (generic families only: no font is required on any machine).
FONT = "font-family:DejaVu Sans,Arial,Helvetica,sans-serif"


class Colormap:
    """A sequential colour scale: linear interpolation between anchor colours, light to dark.

    Parameters
    ----------
    anchors : sequence of str
        ``#rrggbb`` colours for the scale positions 0, 1/(m-1), ..., 1; lightness must fall
        along them, so that a darker colour always means a larger value.
    """

    def __init__(self, anchors: Sequence[str]) -> None:
        self.anchors = np.array([[int(a[i : i + 2], 16) for i in (1, 3, 5)] for a in anchors], dtype=np.float64)

    def rgb(self, position: np.ndarray) -> np.ndarray:
        """RGB in 0..255 (float) at ``position`` in [0, 1] (clipped); shape ``position.shape + (3,)``."""
        t = np.clip(np.asarray(position, dtype=np.float64), 0.0, 1.0) * (len(self.anchors) - 1)
        low = np.minimum(np.floor(t).astype(np.int64), len(self.anchors) - 2)
        frac = (t - low)[..., None]
        return self.anchors[low] * (1.0 - frac) + self.anchors[low + 1] * frac

    def hex(self, position: float) -> str:
        """``#rrggbb`` at ``position``."""
        red, green, blue = np.rint(self.rgb(np.asarray(position))).astype(int)
        return f"#{red:02x}{green:02x}{blue:02x}"

    def ink(self, position: float) -> str:
        """Black or white, whichever reads better on the colour at ``position``."""
        red, green, blue = self.rgb(np.asarray(position)) / 255.0
        return "black" if 0.299 * red + 0.587 * green + 0.114 * blue > 0.5 else "white"


def _number(value: float) -> str:
    """A coordinate with at most 2 decimals and no trailing zeros."""
    return f"{value:.2f}".rstrip("0").rstrip(".")


def rect(x: float, y: float, width: float, height: float, fill: str, extra: str = "") -> str:
    """One ``<rect>``."""
    return (
        f'<rect x="{_number(x)}" y="{_number(y)}" width="{_number(width)}" height="{_number(height)}" '
        f'fill="{fill}"{extra}/>'
    )


def text(x: float, y: float, content: object, size: float = 11, anchor: str = "middle", extra: str = "") -> str:
    """One ``<text>`` (content escaped), ``anchor`` = start, middle or end; ``y`` is the baseline."""
    return (
        f'<text x="{_number(x)}" y="{_number(y)}" font-size="{_number(size)}" text-anchor="{anchor}"{extra}>'
        f"{escape(str(content))}</text>"
    )


def image(x: float, y: float, width: float, height: float, png: bytes) -> str:
    """A raster panel: ``png`` drawn into the box, pixels kept sharp (no smoothing when enlarged)."""
    href = quoteattr("data:image/png;base64," + base64.b64encode(png).decode())
    return (
        f'<image x="{_number(x)}" y="{_number(y)}" width="{_number(width)}" height="{_number(height)}" '
        f'preserveAspectRatio="xMidYMid meet" style="image-rendering:pixelated" href={href}/>'
    )


def colour_bar(ident: str, colormap: Colormap, x: float, y: float, height: float, low: float, high: float) -> str:
    """A vertical colour bar from ``low`` (bottom) to ``high`` (top), 12 px wide, with its two end values."""
    stops = "".join(
        f'<stop offset="{_number(100 * t)}%" stop-color="{colormap.hex(1.0 - t)}"/>' for t in np.linspace(0, 1, 9)
    )
    return (
        f'<defs><linearGradient id="{ident}" x1="0" y1="0" x2="0" y2="1">{stops}</linearGradient></defs>'
        + rect(x, y, 12, height, f"url(#{ident})", ' stroke="#888" stroke-width="0.5"')
        + text(x + 16, y + 9, f"{high:.2g}", 9, "start")
        + text(x + 16, y + height, f"{low:.2g}", 9, "start")
    )


def document(width: float, height: float, body: Sequence[str], title: str) -> str:
    """A standalone SVG of ``width`` x ``height`` px holding ``body``; ``title`` is its accessible name."""
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_number(width)}" height="{_number(height)}" '
        f'viewBox="0 0 {_number(width)} {_number(height)}" style="{FONT}">'
        f"<title>{escape(title)}</title>" + rect(0, 0, width, height, "white") + "".join(body) + "</svg>"
    )


def svg_markdown(svg: str, alt: str) -> str:
    """Markdown embedding ``svg`` as a data URI (drawn by the browser in the Dagster UI)."""
    return f"![{alt}](data:image/svg+xml;base64,{base64.b64encode(svg.encode()).decode()})"


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_bytes(pixels: np.ndarray) -> bytes:
    """A PNG of 8-bit ``pixels``: shape (H, W) grey, (H, W, 3) RGB or (H, W, 4) RGBA, dtype uint8.

    The same pixels always give the same bytes (no time, no software tag, zlib level 6).
    """
    pixels = np.ascontiguousarray(pixels, dtype=np.uint8)
    height, width = pixels.shape[:2]
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    colour_type = {1: 0, 3: 2, 4: 6}[channels]
    rows = pixels.reshape(height, width * channels)
    raw = np.hstack([np.zeros((height, 1), dtype=np.uint8), rows]).tobytes()  # filter 0 on every row
    header = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(raw, 6)) + _chunk(b"IEND", b"")
    )
