"""The annotator_quality asset, its WARN check and its picture (issue 12)."""

from pathlib import Path

import pandas as pd
import pytest

from cl_pipeline.audit.annotator_stage import (
    CHECK_NAME,
    agreement_png,
    annotator_quality_stage,
    annotator_quality_verdict,
)
from cl_pipeline.config import load_config
from cl_pipeline.storage import PartitionStore

DATE = "2025-04-01"


def test_definitions_hold_the_asset_and_its_warn_check() -> None:
    from cl_pipeline.definitions import defs

    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert "annotator_quality" in keys
    checks = {c.name for c in graph.asset_check_keys}
    assert CHECK_NAME in checks
    job = defs.resolve_job_def("audit_job")
    assert "annotator_quality" in {k.to_user_string() for k in job.asset_layer.selected_asset_keys}


def _table() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "annotator": ["b", "a", "c"],
            "annotator_quality": [0.9, 0.2, 0.6],
            "agreement_with_consensus": [0.95, 0.3, 0.7],
            "worst_class": ["1", "2", "0"],
            "num_examples_labeled": [10, 12, 9],
        }
    )


@pytest.mark.parametrize("limit", [0.0, 0.5])
def test_agreement_picture_is_a_png(limit: float) -> None:
    png = agreement_png(_table(), limit)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 1000


@pytest.mark.parametrize(
    ("limit", "passed", "named"), [(0.0, True, []), (0.5, False, ["a"]), (0.7, False, ["a", "c"])], ids=str
)
def test_verdict_names_the_annotators_below_the_threshold(
    tmp_path: Path, limit: float, passed: bool, named: list[str]
) -> None:
    store = PartitionStore(tmp_path / "data")
    store.write("annotator_quality", DATE, _table())
    config = load_config({"columns": {"annotations": ["ann_*"]}, "checks": {"min_annotator_quality": limit}})
    verdict = annotator_quality_verdict(store, config, DATE)
    assert verdict.passed is passed and verdict.value == pytest.approx(0.2)
    for name in ("a", "b", "c"):
        assert (f"{name} (" in verdict.message) is (name in named)


def test_without_annotations_the_stage_and_check_say_so(tmp_path: Path) -> None:
    store = PartitionStore(tmp_path / "data")
    config = load_config(None)
    result = annotator_quality_stage(store, config, DATE)
    assert result.row_count == 0 and "no annotators configured" in result.summary
    assert annotator_quality_verdict(store, config, DATE).passed
