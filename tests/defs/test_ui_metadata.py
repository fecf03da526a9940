"""What the Dagster UI shows (issue 10, item 14): Q, the noise matrix, per-class noise and the top
issues as inline table metadata, numbers to 4 significant digits, Markdown pipes escaped."""

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from cl_pipeline.audit.render import markdown_table, significant

from .conftest import PASSED, AuditedHome


def _metadata(asset: str) -> dict:
    """The metadata of ``asset``'s materialization for the passing audit's date (``PASSED``)."""
    records = (
        dg.DagsterInstance.get()
        .fetch_materializations(dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[PASSED]), limit=1)
        .records
    )
    assert records, asset
    return dict(records[0].asset_materialization.metadata)


@pytest.fixture
def audited(audits: AuditedHome) -> None:
    """The session's audited home (``tests/defs/conftest.py``: a passing audit of the small dataset,
    read here, and a blocked one), shared with the other UI tests instead of a third audit of its own."""
    assert audits.codes[0] == 0


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
    value = _metadata(asset)[key]
    assert isinstance(value, dg.TableMetadataValue), type(value)
    assert len(value.records) == rows
    assert value.schema.columns[0].name == first_column
    for record in value.records:
        for cell in record.data.values():
            if isinstance(cell, float):
                assert cell == significant(cell), cell  # at most 4 significant digits


def test_plain_numbers_have_4_significant_digits(audited) -> None:
    rate = _metadata("calibrated_joint")["estimated_noise_rate"].value
    assert rate == significant(rate) and 0 < rate < 1


def test_tiny_quality_keeps_its_digits_and_pipes_are_escaped() -> None:
    frame = pd.DataFrame({"P(a | b)": [1.921e-05, 0.09404563160823598], "x|y": ["p|q", "r"]})
    text = markdown_table(frame)
    assert text.splitlines()[0] == "| P(a \\| b) | x\\|y |"
    assert "1.921e-05" in text and "0.09405" in text and "p\\|q" in text
    assert all(line.count("|") - line.count("\\|") == 3 for line in text.splitlines())  # 2 columns everywhere
    assert significant(np.float64(0.09404563160823598)) == 0.09405
