"""What the Dagster UI shows (issue 10, item 14): Q, the noise matrix, per-class noise and the top
issues as inline table metadata, numbers to 4 significant digits, Markdown pipes escaped."""

import dagster as dg
import numpy as np
import pandas as pd
import pytest
from pipeline_helpers import write_small

from cl_pipeline.audit.render import markdown_table, significant

DATE = "2025-05-01"


def _latest_metadata(asset: str) -> dict:
    instance = dg.DagsterInstance.get()
    event = instance.get_latest_materialization_event(dg.AssetKey(asset))
    assert event is not None, asset
    return dict(event.asset_materialization.metadata)


@pytest.fixture(scope="module")
def audited(tmp_path_factory: pytest.TempPathFactory) -> None:
    """One audit in its own data dir and DAGSTER_HOME (the materializations are read back)."""
    import os

    from cl_pipeline import cli

    root = tmp_path_factory.mktemp("ui")
    saved = {k: os.environ.get(k) for k in ("CL_PIPELINE_DATA_DIR", "DAGSTER_HOME")}
    os.environ["CL_PIPELINE_DATA_DIR"], os.environ["DAGSTER_HOME"] = str(root / "data"), str(root / "home")
    try:
        assert cli.main(["audit", "--config", str(write_small(root / "in")), "--date", DATE]) == 0
        yield
    finally:
        for key, value in saved.items():
            os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)


@pytest.mark.parametrize(
    "asset, key, rows, first_column",
    [
        ("calibrated_joint", "Q", 3, "given \\ true"),
        ("calibrated_joint", "noise_matrix", 3, "P(given=row | true=col)"),
        ("calibrated_joint", "class_noise_rates", 3, "class_label"),
        ("confident_joint", "calibrated_confident_joint", 3, "given \\ true"),
        ("label_issues", "top_20_issues", 20, "rank"),
    ],
    ids=["Q", "noise matrix", "per-class noise", "calibrated C", "top issues"],
)
def test_matrices_and_top_issues_are_inline_tables(audited, asset: str, key: str, rows: int, first_column: str) -> None:
    value = _latest_metadata(asset)[key]
    assert isinstance(value, dg.TableMetadataValue), type(value)
    assert len(value.records) == rows
    assert value.schema.columns[0].name == first_column
    for record in value.records:
        for cell in record.data.values():
            if isinstance(cell, float):
                assert cell == significant(cell), cell  # at most 4 significant digits


def test_plain_numbers_have_4_significant_digits(audited) -> None:
    rate = _latest_metadata("calibrated_joint")["estimated_noise_rate"].value
    assert rate == significant(rate) and 0 < rate < 1


def test_tiny_quality_keeps_its_digits_and_pipes_are_escaped() -> None:
    frame = pd.DataFrame({"P(a | b)": [1.921e-05, 0.09404563160823598], "x|y": ["p|q", "r"]})
    text = markdown_table(frame)
    assert text.splitlines()[0] == "| P(a \\| b) | x\\|y |"
    assert "1.921e-05" in text and "0.09405" in text and "p\\|q" in text
    assert all(line.count("|") - line.count("\\|") == 3 for line in text.splitlines())  # 2 columns everywhere
    assert significant(np.float64(0.09404563160823598)) == 0.09405
