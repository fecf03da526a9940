"""`cl-pipeline find --annotators` / `--multilabel`: outputs equal to the core, layouts, bad input (exit 2)."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cl_pipeline.core import multiannotator, multilabel


@pytest.fixture(scope="module")
def crowd() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(truth, (n, m) annotations with NaN, pred_probs): 5 annotators of accuracy 0.9 .. 0.5, 3 per example."""
    rng = np.random.default_rng(12)
    n, m, k = 300, 5, 3
    truth = rng.integers(0, k, n)
    probs = rng.dirichlet(np.full(k, 0.5), n) * 0.4
    probs[np.arange(n), truth] += 0.6
    matrix = np.full((n, m), np.nan)
    for i in range(n):
        for j in rng.choice(m, 3, replace=False):
            right = rng.random() < (0.9 - 0.1 * j)
            matrix[i, j] = truth[i] if right else (truth[i] + rng.integers(1, k)) % k
    return truth, matrix, probs


def _long(matrix: np.ndarray) -> pd.DataFrame:
    rows, cols = np.nonzero(~np.isnan(matrix))
    return pd.DataFrame({"id": rows, "annotator": [f"a{j}" for j in cols], "label": matrix[rows, cols].astype(int)})


def test_annotators_npy_equals_core(tmp_path: Path, run_cli, crowd) -> None:
    _, matrix, probs = crowd
    np.save(tmp_path / "p.npy", probs)
    np.save(tmp_path / "y.npy", matrix)
    out = tmp_path / "out.csv"
    code, stdout, _ = run_cli(
        "find", str(tmp_path / "p.npy"), str(tmp_path / "y.npy"), "--annotators", "--out", str(out)
    )
    assert code == 0, stdout
    assert "5 annotators" in stdout
    table = pd.read_csv(out).sort_values("index")
    expected = multiannotator.get_label_quality_multiannotator(matrix, probs)
    np.testing.assert_array_equal(table["consensus_label"], expected.consensus_label)
    np.testing.assert_allclose(table["consensus_quality_score"], expected.consensus_quality_score, rtol=1e-12)
    np.testing.assert_array_equal(table["num_annotations"], np.full(len(matrix), 3))
    scores, _ = multiannotator.get_active_learning_scores(matrix, probs)
    np.testing.assert_allclose(table["active_learning_score"], scores, rtol=1e-12)
    annotators = pd.read_csv(tmp_path / "out.annotators.csv")
    np.testing.assert_allclose(annotators["annotator_quality"], expected.annotator_quality, rtol=1e-12)
    assert annotators["annotator_quality"].idxmin() == 4  # accuracy 0.5: the worst


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_long_table_is_detected_and_equals_wide(tmp_path: Path, run_cli, crowd, fmt: str) -> None:
    _, matrix, probs = crowd
    np.save(tmp_path / "p.npy", probs)
    long = _long(matrix).sample(frac=1.0, random_state=0)  # row order must not matter
    path = tmp_path / f"y.{fmt}"
    long.to_csv(path, index=False) if fmt == "csv" else long.to_parquet(path)
    out = tmp_path / "out.parquet"
    code, _, stderr = run_cli("find", str(tmp_path / "p.npy"), str(path), "--out", str(out))
    assert code == 0, stderr
    assert "long table" in stderr
    table = pd.read_parquet(out).sort_values("index")
    expected = multiannotator.get_label_quality_multiannotator(matrix, probs)
    np.testing.assert_array_equal(table["consensus_label"], expected.consensus_label)
    assert pd.read_parquet(tmp_path / "out.annotators.parquet")["annotator"].tolist() == [f"a{j}" for j in range(5)]


def test_wide_csv_with_empty_cells(tmp_path: Path, run_cli, crowd) -> None:
    _, matrix, probs = crowd
    np.save(tmp_path / "p.npy", probs)
    pd.DataFrame(matrix, columns=[f"ann{j}" for j in range(5)]).astype("Int64").to_csv(tmp_path / "y.csv", index=False)
    assert "<NA>" not in (tmp_path / "y.csv").read_text()
    code, stdout, _ = run_cli("find", str(tmp_path / "p.npy"), str(tmp_path / "y.csv"), "--annotators")
    assert code == 0 and "ann4" in stdout


def _multilabel_data() -> tuple[list[list[int]], np.ndarray]:
    rng = np.random.default_rng(5)
    n, k = 400, 4
    y = (rng.random((n, k)) < 0.35).astype(int)
    probs = np.clip(np.where(y == 1, 0.75, 0.2) + rng.normal(0, 0.15, (n, k)), 0.01, 0.99)
    noisy = y.copy()
    flip = rng.random((n, k)) < 0.05
    noisy[flip] = 1 - noisy[flip]
    return [list(np.flatnonzero(r)) for r in noisy], probs


@pytest.mark.parametrize("fmt", ["npy", "csv-delimited", "parquet-lists", "csv-semicolon"])
def test_multilabel_equals_core(tmp_path: Path, run_cli, fmt: str) -> None:
    labels, probs = _multilabel_data()
    np.save(tmp_path / "p.npy", probs)
    flags = []
    if fmt == "npy":
        y = np.zeros(probs.shape, dtype=int)
        for i, row in enumerate(labels):
            y[i, row] = 1
        path = tmp_path / "y.npy"
        np.save(path, y)
    elif fmt == "parquet-lists":
        path = tmp_path / "y.parquet"
        pd.DataFrame({"labels": [list(map(int, r)) for r in labels]}).to_parquet(path)
    else:
        sep = ";" if fmt == "csv-semicolon" else ","
        path = tmp_path / "y.csv"
        pd.DataFrame({"labels": [sep.join(map(str, r)) for r in labels]}).to_csv(path, index=False)
        flags = ["--label-delimiter", sep]
    out = tmp_path / "out.csv"
    code, stdout, stderr = run_cli(
        "find", str(tmp_path / "p.npy"), str(path), "--multilabel", "--out", str(out), *flags
    )
    assert code == 0, stderr
    table = pd.read_csv(out, keep_default_na=False).sort_values("index")
    np.testing.assert_array_equal(table["is_label_issue"], multilabel.find_label_issues(labels, probs))
    np.testing.assert_allclose(table["label_quality"], multilabel.get_label_quality_scores(labels, probs), rtol=1e-12)
    assert table["given_labels"].tolist() == [",".join(map(str, r)) for r in labels]
    classes = pd.read_csv(tmp_path / "out.classes.csv")
    per_class = multilabel.find_multilabel_issues_per_class(labels, probs)
    np.testing.assert_array_equal(classes["num_issues"], per_class.sum(axis=0))


def _write(path: Path, data) -> Path:
    if isinstance(data, pd.DataFrame):
        data.to_csv(path, index=False) if path.suffix == ".csv" else data.to_parquet(path)
    else:
        np.save(path, data)
    return path


def _bad_cases(matrix: np.ndarray) -> dict:
    long = _long(matrix)
    no_row = matrix.copy()
    no_row[7] = np.nan
    no_col = np.column_stack([matrix, np.full(len(matrix), np.nan)])
    out_of_range = matrix.copy()
    out_of_range[3, np.flatnonzero(~np.isnan(matrix[3]))[0]] = 7
    text = pd.DataFrame(matrix).astype(object)
    text.iat[4, int(np.flatnonzero(~np.isnan(matrix[4]))[0])] = "cat"
    return {
        "unknown-id": (long.assign(id=long["id"].where(long.index != 5, 9999)), "y.csv", [], "id 9999"),
        "annotator-twice": (pd.concat([long, long.iloc[[0]]]), "y.parquet", [], "twice"),
        "empty-annotator-cell": (
            long.assign(annotator=long["annotator"].where(long.index != 2, "")),
            "y.csv",
            [],
            "'annotator' is empty in row 2",
        ),
        "example-with-no-annotation": (no_row, "y.npy", ["--annotators"], "no label at all"),
        "annotator-with-no-label": (no_col, "y.npy", ["--annotators"], "annotator column(s) with no label"),
        "label-outside-classes": (out_of_range, "y.npy", ["--annotators"], "entry [3,"),
        "text-label": (
            text,
            "y.csv",
            ["--annotators"],
            "'cat'",
        ),
        "too-few-rows": (matrix[:-1], "y.npy", ["--annotators"], "rows of annotations"),
        "one-d": (matrix[:, 0], "y.npy", ["--annotators"], "2-D"),
        "both-flags": (matrix, "y.npy", ["--annotators", "--multilabel"], "cannot be combined"),
    }


@pytest.mark.parametrize(
    "case",
    [
        "unknown-id",
        "annotator-twice",
        "empty-annotator-cell",
        "example-with-no-annotation",
        "annotator-with-no-label",
        "label-outside-classes",
        "text-label",
        "too-few-rows",
        "one-d",
        "both-flags",
    ],
)
def test_annotators_bad_input_exits_2(tmp_path: Path, run_cli, crowd, case: str) -> None:
    _, matrix, probs = crowd
    np.save(tmp_path / "p.npy", probs)
    data, name, flags, message = _bad_cases(matrix)[case]
    path = _write(tmp_path / name, data)
    code, stdout, stderr = run_cli("find", str(tmp_path / "p.npy"), str(path), *flags, "--out", str(tmp_path / "o.csv"))
    assert code == 2, stdout + stderr
    assert message in stderr
    assert not (tmp_path / "o.csv").exists()


@pytest.mark.parametrize(
    "case",
    [
        "not-an-integer",
        "class-out-of-range",
        "npy-not-binary",
        "npy-1d",
        "row-count",
        "rank-by-single-label-score",
        "max-noise-rate",
    ],
)
def test_multilabel_bad_input_exits_2(tmp_path: Path, run_cli, case: str) -> None:
    labels, probs = _multilabel_data()
    np.save(tmp_path / "p.npy", probs)
    text = [",".join(map(str, r)) for r in labels]
    y = np.zeros(probs.shape, dtype=int)
    for i, row in enumerate(labels):
        y[i, row] = 1
    cases = {
        "not-an-integer": (pd.DataFrame({"labels": text[:3] + ["1,x"] + text[4:]}), "y.csv", [], "row 3"),
        "class-out-of-range": (pd.DataFrame({"labels": text[:2] + ["9"] + text[3:]}), "y.csv", [], "9"),
        "npy-not-binary": (np.where(np.arange(y.size).reshape(y.shape) == 5, 2, y), "y.npy", [], "labels"),
        "npy-1d": (y[:, 0], "y.npy", [], "(n, K)"),
        "row-count": (pd.DataFrame({"labels": text[:-2]}), "y.csv", [], "rows of labels"),
        "rank-by-single-label-score": (y, "y.npy", ["--rank-by", "confidence_then_margin"], "--rank-by"),
        "max-noise-rate": (y, "y.npy", ["--max-noise-rate", "0.5"], "--max-noise-rate"),
    }
    data, name, flags, message = cases[case]
    path = _write(tmp_path / name, data)
    code, stdout, stderr = run_cli("find", str(tmp_path / "p.npy"), str(path), "--multilabel", *flags)
    assert code == 2, stdout + stderr
    assert message in stderr
