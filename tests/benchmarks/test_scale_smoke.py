"""benchmarks/scale.py runs end to end on a small size: audit and find agree, the report has its rows."""

from pathlib import Path

import pytest

from benchmarks import scale


@pytest.mark.slow
def test_small_run_and_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scale, "ROW_GROUP", 1500)
    row = scale.run_size(4000, tmp_path, cleanlab=False)
    assert row["flags_identical"] and row["num_issues"] > 0
    assert set(row["audit"]["stages"]) >= {"oof_pred_probs", "confident_joint", "label_issues", "pruned_dataset"}
    text = scale.report([row])
    assert "| 4,000 |" in text and "True" in text
