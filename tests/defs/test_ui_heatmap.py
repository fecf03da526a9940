"""The heatmap of Q (issue 10, item 15): the diagonal must not drown the confused pairs."""

import numpy as np
import pytest

from cl_pipeline.audit.render import heatmap_figure, heatmap_png


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


def _colour_span(image, values: np.ndarray) -> float:
    """Share of the colour scale that ``values`` cover in ``image`` (0: one colour, 1: the whole map)."""
    scaled = np.asarray(image.norm(values), dtype=float)
    return float(scaled.max() - scaled.min())


def _images(figure) -> dict[str, object]:
    return {ax.get_title(): ax.images[0] for ax in figure.axes if ax.images}


@pytest.mark.parametrize("k", [3, 10], ids=["K=3", "K=10"])
def test_confused_pairs_span_their_own_colour_scale(rng: np.random.Generator, k: int) -> None:
    q = _joint(rng, k)
    off_diagonal = q[~np.eye(k, dtype=bool)]
    images = _images(heatmap_figure(q, [f"c{i}" for i in range(k)], "Q"))
    assert len(images) == 2, list(images)
    whole, pairs = images["Q"], next(im for title, im in images.items() if "off-diagonal" in title)
    # On the one scale of the whole joint (what the UI showed before), the pairs are one colour ...
    assert _colour_span(whole, off_diagonal) < 0.2
    # ... on their own scale they cover most of it, and the most confused pair is its top.
    assert _colour_span(pairs, off_diagonal) > 0.75
    assert float(pairs.norm(q[1, 0])) == pytest.approx(1.0)
    assert np.ma.getmaskarray(pairs.get_array()).diagonal().all()  # the diagonal is left out


def test_every_cell_is_annotated_with_its_value(rng: np.random.Generator) -> None:
    k = 4
    q = _joint(rng, k)
    figure = heatmap_figure(q, ["a", "b", "c", "d"], "Q")
    pairs_axes = next(ax for ax in figure.axes if "off-diagonal" in ax.get_title())
    texts = {(round(t.get_position()[1]), round(t.get_position()[0])): t.get_text() for t in pairs_axes.texts}
    assert set(texts) == {(i, j) for i in range(k) for j in range(k) if i != j}
    for (i, j), text in texts.items():
        assert float(text) == pytest.approx(q[i, j], rel=0.05), (i, j)


def test_png_and_bad_shapes(rng: np.random.Generator) -> None:
    assert heatmap_png(_joint(rng, 3), ["a", "b", "c"], "Q").startswith(b"\x89PNG")
    with pytest.raises(ValueError, match="not K x K for the 2 classes"):
        heatmap_figure(np.ones((3, 3)) / 9, ["a", "b"], "Q")
