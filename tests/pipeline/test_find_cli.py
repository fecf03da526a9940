"""`cl-pipeline find`: inputs in three formats, the output table, exit codes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cl_pipeline import core


@pytest.fixture(scope="module")
def noisy() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    n, k = 600, 4
    true = rng.integers(0, k, n)
    probs = rng.dirichlet(np.full(k, 0.3), n) * 0.3
    probs[np.arange(n), true] += 0.7
    labels = true.copy()
    flip = rng.random(n) < 0.15
    labels[flip] = (true[flip] + 1) % k
    return labels, probs


def test_find_writes_ranked_table_equal_to_core(tmp_path: Path, run_cli, noisy) -> None:
    labels, probs = noisy
    np.save(tmp_path / "p.npy", probs)
    np.save(tmp_path / "y.npy", labels)
    out = tmp_path / "issues.csv"
    code, stdout, _ = run_cli("find", str(tmp_path / "p.npy"), str(tmp_path / "y.npy"), "--out", str(out))
    assert code == 0 and "label issues" in stdout
    table = pd.read_csv(out)
    assert list(table.columns) == ["index", "given_label", "suggested_label", "label_quality",
                                   "is_label_issue", "rank"]  # fmt: skip
    assert table["rank"].tolist() == list(range(1, len(labels) + 1))
    mask = core.find_label_issues(labels, probs)
    assert table["is_label_issue"].sum() == mask.sum()
    np.testing.assert_array_equal(table["index"][: mask.sum()], core.order_label_issues(mask, labels, probs))
    np.testing.assert_array_equal(table.sort_values("index")["is_label_issue"], mask)


def test_find_reads_csv_and_parquet_list_column(tmp_path: Path, run_cli, noisy) -> None:
    labels, probs = noisy
    pd.DataFrame(probs).to_csv(tmp_path / "p.csv", index=False, header=False)
    pd.DataFrame({"label": labels}).to_csv(tmp_path / "y.csv", index=False)
    pd.DataFrame({"pred_probs": list(probs)}).to_parquet(tmp_path / "p.parquet")
    pd.DataFrame({"label": labels}).to_parquet(tmp_path / "y.parquet")
    outs = []
    for p, y in (("p.csv", "y.csv"), ("p.parquet", "y.parquet")):
        out = tmp_path / f"{p}.out.parquet"
        code, _, _ = run_cli("find", str(tmp_path / p), str(tmp_path / y), "--out", str(out),
                             "--filter-by", "both", "--rank-by", "normalized_margin")  # fmt: skip
        assert code == 0
        outs.append(pd.read_parquet(out))
    pd.testing.assert_frame_equal(outs[0], outs[1])
    mask = core.find_label_issues(labels, probs, filter_by="both")
    assert outs[0]["is_label_issue"].sum() == mask.sum()


def test_find_exit_codes(tmp_path: Path, run_cli, noisy) -> None:
    labels, probs = noisy
    np.save(tmp_path / "p.npy", probs)
    np.save(tmp_path / "y.npy", labels)
    code, stdout, err = run_cli("find", str(tmp_path / "p.npy"), str(tmp_path / "y.npy"), "--max-noise-rate", "0.01")
    assert code == 3 and "above --max-noise-rate 0.01" in err
    assert "rank" in stdout  # the top issues are still printed
    np.save(tmp_path / "bad.npy", np.where(labels == 0, 4, labels))  # label K
    code, _, err = run_cli("find", str(tmp_path / "p.npy"), str(tmp_path / "bad.npy"))
    assert code == 2 and "labels" in err
    code, _, err = run_cli("find", str(tmp_path / "missing.npy"), str(tmp_path / "y.npy"))
    assert code == 2 and "pred_probs: file not found" in err
    code, _, err = run_cli("find", str(tmp_path / "p.npy"), str(tmp_path / "y.npy"), "--out", "x.txt")
    assert code == 2 and "use a .csv or .parquet" in err
    with pytest.raises(SystemExit) as exc:
        run_cli("find", str(tmp_path / "p.npy"), str(tmp_path / "y.npy"), "--filter-by", "nope")
    assert exc.value.code == 2


@pytest.mark.parametrize(
    "extra, rank_by",
    [([], "confidence_margin"), (["--rank-by", "normalized_margin"], "normalized_margin")],
    ids=["recommended-default-ranking", "explicit-ranking"],
)
def test_find_recommended_flags_both_and_ranks_by_its_score(tmp_path: Path, run_cli, noisy, extra, rank_by) -> None:
    labels, probs = noisy
    np.save(tmp_path / "p.npy", probs)
    np.save(tmp_path / "y.npy", labels)
    out = tmp_path / "issues.parquet"
    args = ["find", str(tmp_path / "p.npy"), str(tmp_path / "y.npy"), "--filter-by", "recommended"]
    code, _, _ = run_cli(*args, *extra, "--out", str(out))
    assert code == 0
    table = pd.read_parquet(out).sort_values("index")
    np.testing.assert_array_equal(table["is_label_issue"], core.find_label_issues(labels, probs, filter_by="both"))
    np.testing.assert_allclose(table["label_quality"], core.get_label_quality_scores(labels, probs, method=rank_by))
