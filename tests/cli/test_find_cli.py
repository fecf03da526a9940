"""`cl-pipeline find`: inputs in three formats (CSV header rule, Parquet layouts), the output, exit codes."""

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cl_pipeline import core
from cl_pipeline.audit import find_table
from cl_pipeline.config import IssuesConfig


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
    assert list(table.columns) == ["index", "given_label", "suggested_label", "label_quality", "is_label_issue", "rank"]
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
        code, _, _ = run_cli(
            "find",
            str(tmp_path / p),
            str(tmp_path / y),
            "--out",
            str(out),
            "--filter-by",
            "both",
            "--rank-by",
            "normalized_margin",
        )
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
    [([], "confidence_then_margin"), (["--rank-by", "normalized_margin"], "normalized_margin")],
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


# ---------------------------------------------------------------- CSV headers, Parquet layouts, no issues

Writer = Callable[[Path, np.ndarray], None]


def _csv_pandas(path: Path, data: np.ndarray) -> None:
    """pandas' defaults: header ``0,1,...,K-1`` (probabilities) or ``0`` (labels), no index."""
    (pd.DataFrame(data) if data.ndim == 2 else pd.Series(data)).to_csv(path, index=False)


def _csv_bare(path: Path, data: np.ndarray) -> None:
    """No header row."""
    pd.DataFrame(data).to_csv(path, index=False, header=False)


def _csv_named(path: Path, data: np.ndarray) -> None:
    """A text header: ``p0,...`` for probabilities, ``label`` for labels."""
    columns = [f"p{i}" for i in range(data.shape[1])] if data.ndim == 2 else ["label"]
    pd.DataFrame(data.reshape(len(data), -1), columns=columns).to_csv(path, index=False)


def _csv_numbered(path: Path, data: np.ndarray) -> None:
    """A numeric header that is not pandas' ``0..K-1`` (classes named 10, 20, ...)."""
    columns = [str(10 * (i + 1)) for i in range(data.shape[1])] if data.ndim == 2 else ["label"]
    pd.DataFrame(data.reshape(len(data), -1), columns=columns).to_csv(path, index=False)


def _npy(path: Path, data: np.ndarray) -> None:
    np.save(path.with_suffix(".npy"), data)


def _find_to_parquet(run_cli, tmp_path: Path, p: Path, y: Path, *extra: str) -> tuple[int, pd.DataFrame | None, str]:
    """Run ``find P Y --out`` and return (exit code, the table or None, stderr)."""
    out = tmp_path / "out.parquet"
    code, _, err = run_cli("find", str(p), str(y), "--out", str(out), *extra)
    return code, (pd.read_parquet(out) if code == 0 else None), err


def _expected(labels: np.ndarray, probs: np.ndarray) -> pd.DataFrame:
    return find_table(labels, probs, IssuesConfig())


@pytest.mark.parametrize(
    "write_probs, write_labels, extra",
    [
        (_csv_pandas, _csv_pandas, []),
        (_csv_pandas, _npy, []),
        (_npy, _csv_pandas, []),
        (_csv_bare, _csv_bare, []),
        (_csv_named, _csv_named, []),
        (_csv_pandas, _csv_bare, []),
        (_csv_bare, _csv_named, []),
        (_csv_numbered, _csv_named, ["--csv-header", "yes"]),
        (_csv_bare, _csv_bare, ["--csv-header", "no"]),
    ],
    ids=[
        "pandas-default-headers",
        "pandas-probs-npy-labels",
        "npy-probs-pandas-labels",
        "no-headers",
        "text-headers",
        "pandas-probs-bare-labels",
        "bare-probs-label-header",
        "numeric-header-forced-yes",
        "no-headers-forced-no",
    ],
)
def test_find_csv_header_rule(
    tmp_path: Path, run_cli, noisy, write_probs: Writer, write_labels: Writer, extra: list[str]
) -> None:
    labels, probs = noisy
    p, y = tmp_path / "p.csv", tmp_path / "y.csv"
    write_probs(p, probs)
    write_labels(y, labels)
    p, y = (f if f.exists() else f.with_suffix(".npy") for f in (p, y))
    code, table, err = _find_to_parquet(run_cli, tmp_path, p, y, *extra)
    assert code == 0, err
    pd.testing.assert_frame_equal(table, _expected(labels, probs))
    # a labels file's leading "0" dropped as a header is said so (it could have been a label)
    assert ("read as a header" in err) == (write_labels is _csv_pandas)


def test_find_csv_headerless_first_row_with_repeated_values(tmp_path: Path, run_cli, noisy) -> None:
    """A first data row like ``0.25,0.25,...`` is data (pandas would rename repeated names ``0.25.1``)."""
    labels, probs = noisy
    probs = probs.copy()
    probs[0] = 1 / probs.shape[1]
    _csv_bare(tmp_path / "p.csv", probs)
    np.save(tmp_path / "y.npy", labels)
    code, table, err = _find_to_parquet(run_cli, tmp_path, tmp_path / "p.csv", tmp_path / "y.npy")
    assert code == 0, err
    pd.testing.assert_frame_equal(table, _expected(labels, probs))


def test_find_csv_header_no_keeps_a_two_class_integer_first_row(tmp_path: Path, run_cli) -> None:
    """With K=2, a first data row written ``0,1`` looks like pandas' header; ``--csv-header no`` keeps it."""
    probs = np.array([[0.0, 1.0], [0.9, 0.1], [0.2, 0.8], [0.7, 0.3], [0.6, 0.4], [0.1, 0.9]])
    labels = probs.argmax(axis=1)
    (tmp_path / "p.csv").write_text("0,1\n" + "\n".join(f"{a},{b}" for a, b in probs[1:]) + "\n")
    _csv_bare(tmp_path / "y.csv", labels)
    code, _, err = _find_to_parquet(run_cli, tmp_path, tmp_path / "p.csv", tmp_path / "y.csv")
    assert code == 2 and "labels: 6 labels but pred_probs has 5 rows" in err and "--csv-header" in err
    code, table, err = _find_to_parquet(run_cli, tmp_path, tmp_path / "p.csv", tmp_path / "y.csv", "--csv-header", "no")
    assert code == 0, err
    pd.testing.assert_frame_equal(table, _expected(labels, probs))


@pytest.mark.parametrize(
    "files, extra, message",
    [
        ({"p.csv": "0.5,0.5\n0.5,0.5\n", "y.csv": "0\n1\n0\n1\n"}, [], "labels: 4 labels but pred_probs has 2 rows"),
        ({"p.csv": "0.5,0.5\n0.5,0.5\n", "y.csv": "1\n0\n1\n"}, [], "labels: 3 labels but pred_probs has 2 rows"),
        ({"p.csv": "0,1,2\n0.2,0.3,0.5\n", "y.csv": "0\n1\n"}, ["--csv-header", "no"], "pred_probs rows must sum to 1"),
        (
            {"p.csv": "0.5,0.5\n0.5,0.5\n", "y.csv": "label\n1\n"},
            ["--csv-header", "no"],
            "labels must contain integer class ids",
        ),
        ({"p.csv": "", "y.csv": "0\n"}, [], "pred_probs: cannot read"),
        ({"p.csv": "0.5,0.5\n", "y.csv": ""}, [], "labels: cannot read"),
        ({"p.csv": "0.5,0.5\n"}, [], "labels: file not found"),
    ],
    ids=[
        "labels-two-rows-too-many",
        "labels-extra-row-not-pandas-header",
        "forced-no-pandas-header",
        "forced-no-text-header",
        "empty-probs",
        "empty-labels",
        "missing-labels-csv",
    ],
)
def test_find_csv_input_errors_exit_2(
    tmp_path: Path, run_cli, files: dict[str, str], extra: list[str], message: str
) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    code, _, err = run_cli("find", str(tmp_path / "p.csv"), str(tmp_path / "y.csv"), *extra)
    assert code == 2 and message in err, err


@pytest.mark.parametrize(
    "layout",
    ["list-column", "k-float-columns", "k-float32-columns", "k-columns-pandas-names"],
)
def test_find_reads_parquet_probabilities(tmp_path: Path, run_cli, noisy, layout: str) -> None:
    labels, probs = noisy
    k = probs.shape[1]
    frame = {
        "list-column": lambda: pd.DataFrame({"pred_probs": list(probs)}),
        "k-float-columns": lambda: pd.DataFrame(probs, columns=[f"p{i}" for i in range(k)]),
        "k-float32-columns": lambda: pd.DataFrame(probs.astype(np.float32), columns=[f"p{i}" for i in range(k)]),
        "k-columns-pandas-names": lambda: pd.DataFrame(probs).rename(columns=str),
    }[layout]()
    frame.to_parquet(tmp_path / "p.parquet")
    pd.DataFrame({"label": labels}).to_parquet(tmp_path / "y.parquet")
    code, table, err = _find_to_parquet(run_cli, tmp_path, tmp_path / "p.parquet", tmp_path / "y.parquet")
    assert code == 0, err
    expected = _expected(labels, np.stack(frame.iloc[:, 0]) if layout == "list-column" else frame.to_numpy())
    pd.testing.assert_frame_equal(table, expected)
    assert (table["suggested_label"] == probs[table["index"]].argmax(axis=1)).all()  # columns in class order


def test_find_parquet_text_column_exits_2(tmp_path: Path, run_cli, noisy) -> None:
    labels, probs = noisy
    frame = pd.DataFrame(probs, columns=[f"p{i}" for i in range(probs.shape[1])]).assign(name="x")
    frame.to_parquet(tmp_path / "p.parquet")
    np.save(tmp_path / "y.npy", labels)
    code, _, err = run_cli("find", str(tmp_path / "p.parquet"), str(tmp_path / "y.npy"))
    assert code == 2 and "pred_probs: column 'name' is not numeric" in err


@pytest.mark.parametrize("clean", [True, False], ids=["clean-labels", "noisy-labels"])
def test_find_prints_issues_or_a_no_issues_line(tmp_path: Path, run_cli, noisy, clean: bool) -> None:
    labels, probs = noisy
    np.save(tmp_path / "p.npy", probs)
    np.save(tmp_path / "y.npy", probs.argmax(axis=1) if clean else labels)
    code, stdout, _ = run_cli("find", str(tmp_path / "p.npy"), str(tmp_path / "y.npy"))
    assert code == 0 and "Empty DataFrame" not in stdout
    assert ("no label issues found among 600 examples" in stdout) == clean
    assert ("suggested_label" in stdout) != clean  # the table of the top issues
