"""Issue 11 F: the top issues as pictures (embedded digits, an image path column) or as shortened text.

The embedded digits are audited once per module (GaussianNB, fast): raw_labels, oof_pred_probs
and confident_joint as stages, then the ``label_issues`` asset through Dagster, so the
metadata the UI shows is what is checked.
"""

import base64
import io
import json
import string
import xml.etree.ElementTree as ET
from pathlib import Path
from types import SimpleNamespace

import dagster as dg
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st
from matplotlib import image as mpimg

from cl_pipeline.audit import issue_gallery, stages
from cl_pipeline.audit.issue_gallery import ImageSource
from cl_pipeline.audit.render import short_text
from cl_pipeline.config import ConfigError, load_config
from cl_pipeline.datasets import load_embedded
from cl_pipeline.storage import PartitionStore, read_table
from tests.pipeline_helpers import data_files, make_small_frame

DATE = "2024-01-02"
FAST_MODEL = {"estimator": "sklearn.naive_bayes.GaussianNB", "n_jobs": 1}
SMALL_COLUMNS = {"id": "id", "label": "label", "true_label": "true_label", "numeric": ["f*"]}
SMALL_MODEL = {"params": {"C": 1.0, "max_iter": 200}, "n_folds": 3, "n_jobs": 1}
SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(11)


def _audit_until_joint(store: PartitionStore, config) -> None:
    stages.raw_labels(store, config, DATE)
    stages.oof_pred_probs(store, config, DATE)
    stages.confident_joint(store, DATE)


def _label_issues_asset(data: Path, settings: dict) -> dict:
    """Materialize ``label_issues`` alone (its inputs are stored) and return its metadata."""
    from cl_pipeline.definitions import defs

    result = dg.materialize(
        [defs.get_assets_def("label_issues")],
        partition_key=DATE,
        resources=defs.resources,
        run_config={"resources": {"audit_config": {"config": {"settings": settings}}}},
    )
    return dict(result.asset_materializations_for_node("label_issues")[0].metadata)


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("gallery_digits")
    settings = {"model": FAST_MODEL}
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.setenv("CL_PIPELINE_DATA_DIR", str(root / "data"))
        mp.delenv("CL_PIPELINE_CONFIG", raising=False)
        config = load_config(None, overrides=settings)
        store = PartitionStore(root / "data")
        _audit_until_joint(store, config)
        metadata = _label_issues_asset(root / "data", settings)
        yield SimpleNamespace(store=store, config=config, metadata=metadata, data=root / "data")


def _top20(data: Path) -> pd.DataFrame:
    issues = read_table(data, "label_issues", DATE)
    return issues[issues["is_label_issue"]].sort_values("rank").head(20).reset_index(drop=True)


def _svg_size(svg: str) -> tuple[int, int]:
    root = ET.fromstring(svg)
    return int(root.get("height")), int(root.get("width"))


def _embedded_pngs(svg: str) -> list[np.ndarray]:
    """The raster panels of a gallery, decoded."""
    hrefs = [e.get("href") for e in ET.fromstring(svg).iter(f"{SVG}image")]
    return [mpimg.imread(io.BytesIO(base64.b64decode(h.split(",", 1)[1])), format="png") for h in hrefs]


def test_the_embedded_audit_shows_a_grid_of_the_top_20(digits) -> None:
    markdown = digits.metadata["top_20_gallery"].value
    assert "data:image/svg+xml;base64," in markdown
    stored = digits.store.artifact_path("issue_gallery", DATE, ".svg").read_text()
    assert base64.b64encode(stored.encode()).decode() in markdown
    assert _svg_size(stored) == (640, 720)  # 4 rows x 5 columns of 144 x 160 px panels
    assert len(_embedded_pngs(stored)) == 20


def test_captions_are_the_top_20_by_rank_given_to_suggested(digits) -> None:
    expected = _top20(digits.data)
    top = issue_gallery.top_issues(digits.store, DATE)
    assert len(top) == 20 and top["rank"].tolist() == list(range(1, 21))
    captions = issue_gallery.captions(top)
    assert captions == [
        f"#{int(r)} {g} -> {s}"
        for r, g, s in expected[["rank", "given_label", "suggested_label"]].itertuples(index=False)
    ]
    assert all(g != s for g, s in zip(top["given_label"], top["suggested_label"], strict=True))


def test_the_panels_are_the_digits_of_the_top_ids_and_titled_by_caption(digits) -> None:
    source = issue_gallery.image_source(digits.config, digits.store.schema("raw_labels", DATE), DATE)
    assert source is not None and source.shape == (8, 8) and len(source.columns) == 64
    top = issue_gallery.top_issues(digits.store, DATE)
    panels = issue_gallery.panel_images(issue_gallery.raw_rows(digits.store, DATE, top, source.columns), source)
    embedded = load_embedded().set_index("id")
    for panel, example in zip(panels, top["id"], strict=True):
        assert np.array_equal(panel, embedded.loc[example, [f"pixel_{i}" for i in range(64)]].to_numpy().reshape(8, 8))
    svg = issue_gallery.gallery_svg(panels, issue_gallery.captions(top))
    assert [t.text for t in ET.fromstring(svg).iter(f"{SVG}text")] == issue_gallery.captions(top)
    for drawn, panel in zip(_embedded_pngs(svg), panels, strict=True):  # grey, stretched min..max
        stretched = (panel - panel.min()) / np.ptp(panel)
        assert drawn.shape == (8, 8) and np.allclose(drawn, np.rint(stretched * 255) / 255)


def test_rows_are_read_by_position_and_checked_by_id(digits) -> None:
    source = load_embedded()
    pixels = [f"pixel_{i}" for i in range(64)]
    ids = source["id"]
    top = pd.DataFrame({"row": [500, 3, 7, 10**7], "id": [ids[500], ids[4], ids[7], "x"]})  # 3 is not ids[4]
    rows = issue_gallery.raw_rows(digits.store, DATE, top, pixels)
    assert rows.shape == (4, 64)
    for at, position in ((0, 500), (2, 7)):
        assert rows.iloc[at].astype(float).tolist() == source.loc[position, pixels].tolist()
    assert rows.iloc[1].isna().all() and rows.iloc[3].isna().all()  # wrong id, past the end
    with pytest.raises(ValueError, match="not columns of raw_labels"):
        issue_gallery.raw_rows(digits.store, DATE, top, ["pixel_99"])


@pytest.mark.parametrize("group_rows", [1, 7, 1000], ids=["row-groups-of-1", "of-7", "one-group"])
def test_rows_at_reads_the_positions_across_row_groups(tmp_path: Path, rng, group_rows: int) -> None:
    import pyarrow.parquet as pq

    values = rng.random(50)
    pq.write_table(pa.table({"v": values, "i": np.arange(50)}), tmp_path / "t.parquet", row_group_size=group_rows)
    rows = np.sort(rng.choice(50, 12, replace=False))
    found = issue_gallery._rows_at(tmp_path / "t.parquet", rows, ["v", "i"])
    assert found.index.tolist() == rows.tolist() and found["i"].tolist() == rows.tolist()
    assert np.array_equal(found["v"].to_numpy(), values[rows])


def test_the_same_rows_give_the_same_svg(digits) -> None:
    top = issue_gallery.top_issues(digits.store, DATE)
    source = issue_gallery.image_source(digits.config, digits.store.schema("raw_labels", DATE), DATE)
    panels = issue_gallery.panel_images(issue_gallery.raw_rows(digits.store, DATE, top, source.columns), source)
    first = issue_gallery.gallery_svg(panels, issue_gallery.captions(top))
    assert first == issue_gallery.gallery_svg(panels, issue_gallery.captions(top))
    assert first == digits.store.artifact_path("issue_gallery", DATE, ".svg").read_text()


def test_the_digits_have_no_text_column_so_the_table_is_the_plain_top_20(digits) -> None:
    table = digits.metadata["top_20_issues"]
    assert [c.name for c in table.schema.columns] == ["rank", "id", "given_label", "suggested_label", "label_quality"]
    assert [r.data["id"] for r in table.records] == _top20(digits.data)["id"].tolist()


# --- an image path column -------------------------------------------------------------------------------


def _with_images(folder: Path, rng: np.random.Generator, missing_every: int = 0) -> pd.DataFrame:
    """The small dataset with one 6 x 6 colour PNG per example (``images/<id>.png``, a relative path)."""
    frame = make_small_frame(n=150)
    (folder / "images").mkdir(parents=True)
    for i, example in enumerate(frame["id"]):
        if not missing_every or i % missing_every:
            mpimg.imsave(folder / "images" / f"{example}.png", rng.random((6, 6, 3)))
    frame["picture"] = [f"images/{example}.png" for example in frame["id"]]
    frame.to_csv(folder / "labels.csv", index=False)
    return frame


def _small_config(folder: Path, image: dict | None, display: list[str] | None = None):
    columns = SMALL_COLUMNS | ({"image": image} if image else {}) | ({"display": display} if display else {})
    path = folder / "audit.json"
    path.write_text(
        json.dumps({"source": {"kind": "file", "path": "labels.csv"}, "columns": columns, "model": SMALL_MODEL})
    )
    return load_config(path)


def test_an_image_path_column_gives_a_grid_of_the_files(tmp_path: Path, rng) -> None:
    _with_images(tmp_path, rng)
    config = _small_config(tmp_path, {"path": "picture"})
    store = PartitionStore(tmp_path / "data")
    _audit_until_joint(store, config)
    result = issue_gallery.with_issue_views(store, config, DATE, lambda: stages.label_issues(store, config, DATE))
    top = issue_gallery.top_issues(store, DATE)
    assert 0 < len(top) <= 20 and "top_20_gallery" in result.markdown
    source = issue_gallery.image_source(config, store.schema("raw_labels", DATE), DATE)
    assert source.root == tmp_path  # relative paths: the source file's folder
    panels = issue_gallery.panel_images(issue_gallery.raw_rows(store, DATE, top, source.columns), source)
    for panel, example in zip(panels, top["id"], strict=True):
        assert np.array_equal(panel, mpimg.imread(tmp_path / "images" / f"{example}.png"))
    picture = store.artifact_path("issue_gallery", DATE, ".svg").read_text()
    rows = -(-len(top) // 5)
    assert _svg_size(picture) == (rows * 160, min(5, len(top)) * 144)
    for drawn, panel in zip(_embedded_pngs(picture), panels, strict=True):  # colour files as they are
        assert np.allclose(drawn, np.rint(panel[..., : drawn.shape[2]] * 255) / 255)


def test_missing_files_get_a_placeholder_panel_not_a_crash(tmp_path: Path, rng) -> None:
    frame = _with_images(tmp_path, rng, missing_every=2)  # every other example has no file
    config = _small_config(tmp_path, {"path": "picture"})
    store = PartitionStore(tmp_path / "data")
    _audit_until_joint(store, config)
    result = issue_gallery.with_issue_views(store, config, DATE, lambda: stages.label_issues(store, config, DATE))
    assert "top_20_gallery" in result.markdown
    top = issue_gallery.top_issues(store, DATE)
    source = issue_gallery.image_source(config, store.schema("raw_labels", DATE), DATE)
    panels = issue_gallery.panel_images(issue_gallery.raw_rows(store, DATE, top, source.columns), source)
    position = {example: i for i, example in enumerate(frame["id"])}
    expect_missing = [position[example] % 2 == 0 for example in top["id"]]
    assert [isinstance(p, str) and p == "missing file" for p in panels] == expect_missing
    assert any(expect_missing) and not all(expect_missing)


@pytest.mark.parametrize(
    ("value", "placeholder"),
    [
        pytest.param("https://example.org/cat.png", "URL (not fetched)", id="https-url"),
        pytest.param("s3://bucket/cat.png", "URL (not fetched)", id="s3-url"),
        pytest.param(None, "no path", id="null"),
        pytest.param("   ", "no path", id="blank"),
        pytest.param("nowhere/cat.png", "missing file", id="missing"),
        pytest.param("images", "missing file", id="a-folder"),
        pytest.param("broken.png", "unreadable file", id="not-a-png"),
    ],
)
def test_a_path_without_a_picture_is_a_placeholder(tmp_path: Path, value: object, placeholder: str) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "broken.png").write_bytes(b"not a png at all")
    source = ImageSource("path", ("picture",), None, tmp_path)
    panels = issue_gallery.panel_images(pd.DataFrame({"picture": [value]}), source)
    assert panels == [placeholder]
    svg = issue_gallery.gallery_svg(panels, ["#1 cat -> dog"])
    assert _svg_size(svg) == (160, 144) and _embedded_pngs(svg) == []
    assert [t.text for t in ET.fromstring(svg).iter(f"{SVG}text")] == ["#1 cat -> dog", placeholder]


# --- text --------------------------------------------------------------------------------------------


def test_a_text_display_column_is_shortened_in_the_top_issues_table(tmp_path: Path, rng) -> None:
    frame = make_small_frame(n=150)
    words = np.asarray(["lorem", "ipsum|dolor", "sit\namet", "consectetur", "a|b"])
    frame["comment"] = [" ".join(rng.choice(words, size=rng.integers(3, 40))) for _ in range(len(frame))]
    frame.to_csv(tmp_path / "labels.csv", index=False)
    config = _small_config(tmp_path, None, display=["comment"])
    store = PartitionStore(tmp_path / "data")
    _audit_until_joint(store, config)
    result = issue_gallery.with_issue_views(store, config, DATE, lambda: stages.label_issues(store, config, DATE))
    assert "top_20_gallery" not in result.markdown
    table = result.tables["top_20_issues"]
    full = frame.set_index("id").loc[table["id"], "comment"].tolist()
    assert table["comment"].tolist() == [short_text(text) for text in full]
    assert any(len(text) > 80 for text in full) and any("|" in text[:80] for text in full)
    for shown, text in zip(table["comment"], full, strict=True):
        assert "\n" not in shown and shown.count("\\|") == text[:80].count("|")
        assert shown.endswith("…") == (len(text) > 80)


def test_without_display_the_text_features_are_shown(tmp_path: Path) -> None:
    schema = pa.schema([("id", pa.string()), ("comment", pa.string()), ("n", pa.int64())])
    config = load_config(
        {"source": {"kind": "file", "path": "x.csv"}, "columns": {"label": "label", "text": ["comment"]}}
    )
    assert issue_gallery.text_columns(config, schema, {"features": {"text": ["comment"]}}) == ["comment"]
    shown = load_config({"source": {"kind": "file", "path": "x.csv"}, "columns": {"display": ["n", "comment"]}})
    assert issue_gallery.text_columns(shown, schema, {"features": {"text": []}}) == ["comment"]  # n is no text


@given(st.text(alphabet=string.ascii_letters + " |\n\r\t", max_size=200), st.integers(1, 120))
def test_short_text_is_one_escaped_line_of_the_first_characters(text: str, limit: int) -> None:
    shown = short_text(text, limit)
    assert "\n" not in shown and "\r" not in shown and "\t" not in shown
    plain = shown.removesuffix("…").replace("\\|", "|").replace("\\n", "\n").replace("\\r", "\r").replace("\\t", "\t")
    assert shown.endswith("…") == (len(text) > limit)
    assert text.replace("\r\n", "\n").startswith(plain) or text.startswith(plain)
    assert len(plain) <= limit


@pytest.mark.parametrize("limit", [0, -1, 2.5, True], ids=["zero", "negative", "float", "bool"])
def test_short_text_refuses_a_bad_limit(limit: object) -> None:
    with pytest.raises(ValueError, match="limit must be an integer >= 1"):
        short_text("text", limit)  # type: ignore[arg-type]


# --- bad configuration --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("image", "message"),
    [
        pytest.param({"pixels": ["pixel_*"]}, r"shape None must be \[height, width\]", id="pixels-without-shape"),
        pytest.param({"pixels": "p*", "shape": [8, 8, 3]}, "two integers", id="three-sides"),
        pytest.param({"pixels": "p*", "shape": [0, 8]}, "two integers", id="zero-side"),
        pytest.param({"path": "picture", "shape": [8, 8]}, "shape goes with pixels", id="shape-with-path"),
        pytest.param({"path": "a b"}, "not a plain column name", id="path-not-a-name"),
        pytest.param({"pixels": "p*", "shape": [2, 2], "path": "x"}, "either pixels", id="both"),
        pytest.param({}, "either pixels", id="neither"),
        pytest.param({"pixels": "p*", "shape": [2, 2], "root": "pics"}, "root goes with path", id="root-no-path"),
        pytest.param({"path": "x", "colour": True}, "Extra inputs", id="unknown-key"),
    ],
)
def test_bad_image_settings_are_refused_when_the_config_loads(image: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config({"source": {"kind": "file", "path": "x.csv"}, "columns": {"image": image}})


SCHEMA = pa.schema(
    [("partition", pa.string()), ("id", pa.string()), ("path", pa.int64()), ("name", pa.string())]
    + [(f"px{i}", pa.float64()) for i in range(6)]
)


@pytest.mark.parametrize(
    ("image", "message"),
    [
        pytest.param({"pixels": "px*", "shape": [2, 2]}, r"needs 4 pixel columns, .* match 6", id="shape-mismatch"),
        pytest.param({"pixels": ["zz*"], "shape": [2, 3]}, "'zz\\*' matches no column", id="no-pixel-column"),
        pytest.param({"pixels": ["px*", "name"], "shape": [1, 7]}, "'name' holds string, not numbers", id="text-pixel"),
        pytest.param({"path": "picture"}, "'picture' is not a column of raw_labels", id="missing-path-column"),
        pytest.param({"path": "path"}, "holds int64, not file paths", id="path-not-text"),
    ],
)
def test_image_settings_that_do_not_fit_the_snapshot_are_a_clear_error(image: dict, message: str) -> None:
    config = load_config({"source": {"kind": "file", "path": "x.csv"}, "columns": {"image": image}})
    with pytest.raises(ConfigError, match=message):
        issue_gallery.image_source(config, SCHEMA, DATE)


def test_a_bad_image_setting_stops_label_issues_before_it_writes(tmp_path: Path, rng) -> None:
    _with_images(tmp_path, rng)
    store = PartitionStore(tmp_path / "data")
    _audit_until_joint(store, _small_config(tmp_path, None))
    bad = _small_config(tmp_path, {"pixels": ["f*"], "shape": [2, 2]})  # 5 columns f0..f4
    with pytest.raises(ConfigError, match=r"columns.image.shape \[2, 2\] needs 4 pixel columns"):
        issue_gallery.with_issue_views(store, bad, DATE, lambda: stages.label_issues(store, bad, DATE))
    assert not store.has("label_issues", DATE)


@pytest.mark.parametrize(
    ("image", "message"),
    [
        pytest.param({"pixels": ["f*"], "shape": [2, 2]}, r"needs 4 pixel columns", id="shape-mismatch"),
        pytest.param({"path": "photo"}, "'photo' is not a column", id="missing-path-column"),
    ],
)
def test_the_cli_refuses_an_image_setting_that_does_not_fit_before_writing(
    fast_env: Path, run_cli, tmp_path: Path, rng, image: dict, message: str
) -> None:
    _with_images(tmp_path, rng)
    config = _small_config(tmp_path, image)
    code, _, err = run_cli("audit", "--config", str(tmp_path / "audit.json"), "--date", DATE)
    assert config.columns.image is not None
    assert code == 2 and message in err, err
    assert data_files(fast_env) == []


def test_pixels_match_in_the_snapshot_column_order() -> None:
    names = [f"pixel_{i}" for i in (0, 1, 10, 2)]  # not sorted: the file's order is the image's
    schema = pa.schema([(n, pa.float64()) for n in names])
    config = load_config(
        {"source": {"kind": "file", "path": "x.csv"}, "columns": {"image": {"pixels": "pixel_*", "shape": [2, 2]}}}
    )
    assert issue_gallery.image_source(config, schema, DATE).columns == tuple(names)


@pytest.mark.parametrize(
    "picture",
    [
        pytest.param(np.arange(12.0).reshape(3, 4), id="grey-float"),
        pytest.param(np.full((5, 5), 7.0), id="constant"),
        pytest.param(np.where(np.eye(4), np.nan, 1.0), id="grey-with-nan"),
        pytest.param(np.zeros((300, 200, 3), dtype=np.uint8), id="large-uint8-rgb"),
        pytest.param(np.random.default_rng(1).random((6, 6, 4)), id="rgba-float"),
        pytest.param(np.random.default_rng(2).random((6, 6, 2)), id="grey-alpha"),
        pytest.param(np.random.default_rng(3).random((6, 6, 1)), id="one-channel"),
    ],
)
def test_every_kind_of_picture_becomes_a_small_png(picture: np.ndarray) -> None:
    svg = issue_gallery.gallery_svg([picture], ["#1 a -> b"])
    (drawn,) = _embedded_pngs(svg)
    assert max(drawn.shape[:2]) <= 128 and drawn.min() >= 0 and drawn.max() <= 1
    assert drawn.shape[:2] == tuple(-(-s // max(1, -(-max(picture.shape[:2]) // 128))) for s in picture.shape[:2])
