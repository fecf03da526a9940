"""Readers of multi-annotator and multi-label labels (storage/annotations.py)."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cl_pipeline.config import ConfigError
from cl_pipeline.storage.annotations import (
    annotation_matrix,
    is_long_table,
    looks_like_long_table,
    parse_label_set,
    pivot_annotations,
    read_annotator_labels,
    read_multilabels,
)


@st.composite
def sparse_matrices(draw) -> np.ndarray:
    n, m = draw(st.integers(1, 8)), draw(st.integers(1, 5))
    cells = draw(st.lists(st.one_of(st.none(), st.integers(0, 6)), min_size=n * m, max_size=n * m))
    return np.array([np.nan if c is None else c for c in cells], dtype=float).reshape(n, m)


@settings(max_examples=60, deadline=None)
@given(matrix=sparse_matrices(), seed=st.integers(0, 2**16))
def test_pivot_of_a_long_table_is_the_wide_matrix(matrix: np.ndarray, seed: int) -> None:
    rows, cols = np.nonzero(~np.isnan(matrix))
    if rows.size == 0:
        return
    ids = pd.Index([f"e{i}" for i in range(matrix.shape[0])])
    long = pd.DataFrame({"ID": ids[rows], "Annotator": [f"r{j}" for j in cols], "Label": matrix[rows, cols]})
    wide = pivot_annotations(long.sample(frac=1.0, random_state=seed), ids)
    used = sorted({f"r{j}" for j in cols})
    assert list(wide.columns) == used and list(wide.index) == list(ids)
    expected = matrix[:, [int(name[1:]) for name in used]]
    np.testing.assert_array_equal(annotation_matrix(wide.reset_index(drop=True)), expected)


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (pd.DataFrame({"id": [0], "annotator": ["a"]}), "expected the columns"),
        (pd.DataFrame({"id": [], "annotator": [], "label": []}), "no rows"),
        (pd.DataFrame({"id": [0, 5], "annotator": ["a", "a"], "label": [1, 1]}), "id 5 (row 1)"),
        (pd.DataFrame({"id": [0, 0], "annotator": ["a", "a"], "label": [1, 2]}), "labels id 0 twice"),
        (pd.DataFrame({"id": [0, 1], "annotator": ["a", None], "label": [1, 2]}), "'annotator' is empty in row 1"),
    ],
    ids=["missing-column", "empty", "unknown-id", "twice", "empty-annotator"],
)
def test_pivot_refuses_bad_tables(frame: pd.DataFrame, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        pivot_annotations(frame, pd.RangeIndex(3))
    assert message in str(info.value)


def test_ids_of_another_type_match_as_text() -> None:
    long = pd.DataFrame({"id": ["1", "0"], "annotator": ["a", "b"], "label": [2, 3]})
    wide = pivot_annotations(long, pd.Index([0, 1]))
    assert wide.loc[1, "a"] == 2 and wide.loc[0, "b"] == 3


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1,4", [1, 4]), ("", []), (" 3 ", [3]), ("[0, 2]", [0, 2]), (2, [2]), (2.0, [2]), (np.nan, []), ([1, 3], [1, 3])],
    ids=["text", "empty", "spaces", "brackets", "int", "integral-float", "nan", "list"],
)
def test_parse_label_set(value: object, expected: list[int]) -> None:
    assert parse_label_set(value, ",", 0) == expected


@pytest.mark.parametrize("value", ["1,x", "1.5", "1;2"], ids=["text-token", "fraction", "other-delimiter"])
def test_parse_label_set_names_the_row(value: str) -> None:
    with pytest.raises(ConfigError, match="row 7"):
        parse_label_set(value, ",", 7)


@settings(max_examples=40, deadline=None)
@given(sets=st.lists(st.lists(st.integers(0, 9), unique=True, max_size=4), min_size=1, max_size=12))
def test_multilabel_csv_round_trip(tmp_path_factory: pytest.TempPathFactory, sets: list[list[int]]) -> None:
    path = tmp_path_factory.mktemp("ml") / "y.csv"
    pd.DataFrame({"labels": [";".join(map(str, s)) for s in sets]}).to_csv(path, index=False)
    assert read_multilabels(str(path), len(sets), ";") == sets


def test_long_table_detection_reads_only_the_header(tmp_path: Path) -> None:
    pd.DataFrame({"Id": [0], "ANNOTATOR": ["a"], "label": [1]}).to_parquet(tmp_path / "a.parquet")
    pd.DataFrame({"id": [0], "label": [1]}).to_csv(tmp_path / "b.csv", index=False)
    assert looks_like_long_table(str(tmp_path / "a.parquet")) and not looks_like_long_table(str(tmp_path / "b.csv"))
    assert not looks_like_long_table(str(tmp_path / "missing.csv"))
    assert is_long_table(["id", "annotator", "label", "note"])


def test_wide_npy_needs_two_dimensions(tmp_path: Path) -> None:
    np.save(tmp_path / "y.npy", np.arange(4.0))
    with pytest.raises(ConfigError, match="2-D"):
        read_annotator_labels(str(tmp_path / "y.npy"), 4)
