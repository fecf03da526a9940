"""The heatmap of Q (issue 10, item 15): the diagonal must not drown the confused pairs.

Drawn as SVG text (cl_pipeline.audit.svg); the tests read the document back as XML.
"""

import xml.etree.ElementTree as ET

import numpy as np
import pytest

from cl_pipeline.audit.render import (
    DIAGONAL_FILL,
    PAIRS_SCALE,
    WHOLE_SCALE,
    heatmap_positions,
    heatmap_svg,
    svg_markdown,
)

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20260115)


def _joint(rng: np.random.Generator, k: int) -> np.ndarray:
    """A typical Q: 0.9 of the mass on the diagonal, the rest spread over the pairs, two pairs stand out."""
    off = rng.uniform(0.1, 1.0, (k, k)) * (1 - np.eye(k))
    off[1, 0] = 5.0  # the most confused pair
    off[k - 1, 1] = 2.5
    q = np.diag(rng.uniform(0.8, 1.2, k)) * 0.9 / k + off / off.sum() * 0.1
    return q / q.sum()


def _panel(svg: str, name: str, tag: str) -> dict[tuple[int, int], ET.Element]:
    """The ``tag`` elements (rect or text) of one panel's cells, by (row, column)."""
    group = next(g for g in ET.fromstring(svg).iter(f"{SVG}g") if g.get("class") == name)
    return {(int(e.get("data-i")), int(e.get("data-j"))): e for e in group.iter(f"{SVG}{tag}") if e.get("data-i")}


@pytest.mark.parametrize("k", [3, 10], ids=["K=3", "K=10"])
def test_confused_pairs_span_their_own_colour_scale(rng: np.random.Generator, k: int) -> None:
    q = _joint(rng, k)
    off = ~np.eye(k, dtype=bool)
    whole, pairs = heatmap_positions(q)
    # On the one scale of the whole joint, the pairs are one colour ...
    assert np.ptp(whole[off]) < 0.2
    # ... on their own scale they cover most of it, and the most confused pair is its top.
    assert np.ptp(pairs[off]) > 0.75
    assert pairs[1, 0] == pytest.approx(1.0)
    assert np.isnan(pairs.diagonal()).all()  # the diagonal is left out
    svg = heatmap_svg(q, [f"c{i}" for i in range(k)], "Q")
    cells = _panel(svg, "pairs", "rect")
    assert len(cells) == k * k
    assert all(cells[i, i].get("fill") == DIAGONAL_FILL for i in range(k))
    assert cells[1, 0].get("fill") == PAIRS_SCALE.hex(1.0)
    on_whole = _panel(svg, "whole", "rect")
    assert all(on_whole[i, j].get("fill") == WHOLE_SCALE.hex(whole[i, j]) for i in range(k) for j in range(k))


def test_a_darker_colour_means_a_larger_value() -> None:
    for scale in (WHOLE_SCALE, PAIRS_SCALE):
        rgb = scale.rgb(np.linspace(0, 1, 50))
        lightness = rgb @ np.array([0.299, 0.587, 0.114])
        assert np.all(np.diff(lightness) < 0)


def test_every_off_diagonal_cell_is_annotated_with_its_value(rng: np.random.Generator) -> None:
    k = 4
    q = _joint(rng, k)
    texts = _panel(heatmap_svg(q, ["a", "b", "c", "d"], "Q"), "pairs", "text")
    assert set(texts) == {(i, j) for i in range(k) for j in range(k) if i != j}
    for (i, j), element in texts.items():
        assert float(element.text) == pytest.approx(q[i, j], rel=0.05), (i, j)


def test_many_classes_are_not_annotated(rng: np.random.Generator) -> None:
    svg = heatmap_svg(_joint(rng, 20), [f"c{i}" for i in range(20)], "Q")
    assert _panel(svg, "whole", "text") == {} and len(_panel(svg, "whole", "rect")) == 400


def test_class_names_are_escaped_and_the_output_is_deterministic(rng: np.random.Generator) -> None:
    q = _joint(rng, 3)
    names = ["<b>", "a & b", '"quoted"']
    svg = heatmap_svg(q, names, "Q <noise>")
    root = ET.fromstring(svg)  # well-formed despite the names
    shown = {t.text for t in root.iter(f"{SVG}text")}
    assert set(names) <= shown and "Q <noise>" in shown
    assert svg == heatmap_svg(q.copy(), list(names), "Q <noise>")
    assert svg_markdown(svg, "heatmap").startswith("![heatmap](data:image/svg+xml;base64,")


def test_bad_shapes() -> None:
    with pytest.raises(ValueError, match="not K x K for the 2 classes"):
        heatmap_svg(np.ones((3, 3)) / 9, ["a", "b"], "Q")
