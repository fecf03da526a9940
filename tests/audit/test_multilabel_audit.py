"""The audit of multi-label data (columns.label_kind = "multilabel"), end to end through `cl-pipeline audit`.

Embedded data: scikit-learn's digits with four tags per digit (``big`` >= 5, ``even``, ``loop``
= 0/6/8/9, ``prime``; the digit 1 has none), 8% of the examples with one tag flipped (seeded).
The same snapshot is audited as a Parquet list column and as a CSV of ``|``-delimited strings.
Oracles: ``cl_pipeline.core.multilabel`` on the stored probabilities, and cleanlab 2.9.0's
multi-label confident joint and health score.
"""

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cl_pipeline.config import ChecksConfig
from cl_pipeline.core import multilabel
from cl_pipeline.storage import PartitionStore, Warehouse

TAGS = {"big": {5, 6, 7, 8, 9}, "even": {0, 2, 4, 6, 8}, "loop": {0, 6, 8, 9}, "prime": {2, 3, 5, 7}}
DATES = ("2025-04-01", "2025-04-02")


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12)


def _tagged_digits(seed: int = 3, flip_rate: float = 0.08) -> tuple[pd.DataFrame, np.ndarray]:
    """(snapshot: id, 64 pixels, ``tags`` and ``true_tags`` as lists; which rows had a tag flipped)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(seed)
    names = list(TAGS)
    truth = [[t for t in names if digit in TAGS[t]] for digit in digits.target]
    flipped = rng.random(len(truth)) < flip_rate
    given_sets = [list(t) for t in truth]
    for i in np.flatnonzero(flipped):
        given_sets[i] = sorted(set(given_sets[i]) ^ {names[rng.integers(len(names))]})
    frame = pd.DataFrame(digits.data, columns=[f"pixel_{i}" for i in range(64)])
    frame.insert(0, "id", [f"d{i:04d}" for i in range(len(truth))])
    frame["tags"], frame["true_tags"] = given_sets, truth
    return frame, flipped


CONFIG = """
[source]
kind = "folder"
path = "."
pattern = "snap_*"

[columns]
id = "id"
label = "tags"
true_label = "true_tags"
numeric = ["pixel_*"]
label_kind = "multilabel"
label_delimiter = "|"

[model]
estimator = "sklearn.neighbors.KNeighborsClassifier"
params = {{ n_neighbors = 10 }}
n_folds = 3
n_jobs = 1

[checks]
max_noise_rate = 0.5
{extra}
"""


def _delimited(sets: pd.Series) -> list[str]:
    return ["|".join(s) if len(s) else "[]" for s in sets]


def _stored(data_dir: Path, date: str) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """(given indicator, stored oof probabilities, label_issues) of ``date``, in row order."""
    store = PartitionStore(data_dir)
    oof = pq.read_table(store.path("oof_pred_probs", date))
    k = len(store.metadata("raw_labels", date)["classes"])
    probs = np.asarray(oof.column("pred_probs").combine_chunks().flatten()).reshape(-1, k)
    y = np.zeros((oof.num_rows, k), dtype=np.int64)
    for i, codes in enumerate(oof.column("given_indices").to_pylist()):
        y[i, codes] = 1
    issues = store.read("label_issues", date).sort_values("row", ignore_index=True)
    return y, probs, issues


def _write_inputs(folder: Path, frame: pd.DataFrame) -> Path:
    """The snapshot as a Parquet list column (first date) and a CSV of delimited strings (second date)."""
    folder.mkdir(parents=True)
    frame.to_parquet(folder / f"snap_{DATES[0]}.parquet")
    frame.assign(tags=_delimited(frame["tags"]), true_tags=_delimited(frame["true_tags"])).to_csv(
        folder / f"snap_{DATES[1]}.csv", index=False
    )
    (folder / "audit.toml").write_text(CONFIG.format(extra=""))
    return folder / "audit.toml"


def test_list_column_and_delimited_strings_validate_alike(tmp_path: Path) -> None:
    from cl_pipeline.audit.multilabel_stage import prevalidate_multilabel
    from cl_pipeline.config import load_config

    frame, _ = _tagged_digits()
    config = load_config(_write_inputs(tmp_path / "in", frame))
    lists, strings = (prevalidate_multilabel(config, date) for date in DATES)
    assert lists.classes == strings.classes == list(TAGS)
    np.testing.assert_array_equal(lists.labels, strings.labels)
    np.testing.assert_array_equal(lists.true_labels, strings.true_labels)
    expected = np.array([[int(t in row) for t in TAGS] for row in frame["tags"]])
    np.testing.assert_array_equal(lists.labels, expected)
    assert (lists.labels.sum(axis=1) == 0).any()  # the digit 1 has no tag: empty sets are valid


@pytest.mark.slow
def test_multilabel_audit_end_to_end(fast_env: Path, run_cli, tmp_path: Path) -> None:
    import cleanlab.count
    from cleanlab.multilabel_classification import filter as cleanlab_filter

    frame, flipped = _tagged_digits()
    config = _write_inputs(tmp_path / "in", frame)
    code, out, err = run_cli("audit", "--config", str(config), "--date", DATES[0])
    assert code == 0, out + err
    assert "input_valid: passed" in out and "multi-label" in out
    y, probs, issues = _stored(fast_env, DATES[0])
    np.testing.assert_array_equal(y, np.array([[int(t in row) for t in TAGS] for row in frame["tags"]]))
    # the flags and scores are the core's on the stored out-of-fold probabilities
    np.testing.assert_array_equal(issues["is_label_issue"].to_numpy(), multilabel.find_label_issues(y, probs))
    np.testing.assert_array_equal(issues["label_quality"].to_numpy(), multilabel.get_label_quality_scores(y, probs))
    per_class = multilabel.find_multilabel_issues_per_class(y, probs)
    assert issues["issue_class_indices"].map(list).tolist() == [list(np.flatnonzero(r)) for r in per_class]
    flagged = issues["is_label_issue"].to_numpy()
    ranks = issues.loc[flagged, "rank"].to_numpy()
    assert sorted(ranks) == list(range(1, flagged.sum() + 1)) and issues.loc[~flagged, "rank"].isna().all()
    # injected flips found with decent precision and recall (KNN one-vs-rest on the pixels)
    precision, recall = (flagged & flipped).sum() / flagged.sum(), (flagged & flipped).sum() / flipped.sum()
    assert precision > 0.8 and recall > 0.7, (precision, recall)
    wh = Warehouse(fast_env)
    summary = wh.query("SELECT * FROM audit_summary WHERE partition = ?", [DATES[0]]).iloc[0]
    assert summary["label_kind"] == "multilabel" and summary["num_issues"] == flagged.sum()
    assert summary["precision"] == pytest.approx(precision) and summary["recall"] == pytest.approx(recall)
    assert summary["estimated_noise_rate"] == multilabel.find_label_issues(y, probs).mean()  # default filter
    # cleanlab 2.9.0: the same (K, 2, 2) calibrated confident joint and per-class issue counts
    # (the union over classes may differ at tied cuts: docs/differences-from-cleanlab.md)
    lists = [list(np.flatnonzero(row)) for row in y]
    joint = wh.query(
        "SELECT calibrated_count FROM confident_joint WHERE partition = ? "
        "ORDER BY class_index, given_present, true_present",
        [DATES[0]],
    )["calibrated_count"].to_numpy()
    np.testing.assert_array_equal(
        joint.reshape(-1, 2, 2), cleanlab.count.compute_confident_joint(lists, probs, multi_label=True)
    )
    # n_jobs=1: the same result without a fork Pool (forked after the in-process audit above, whose Dagster
    # run maps SIGTERM to KeyboardInterrupt, Pool.terminate() can wait forever: the suite hung here twice)
    reference = np.asarray(cleanlab_filter.find_multilabel_issues_per_class(lists, probs, n_jobs=1))
    np.testing.assert_array_equal(per_class.sum(axis=0), reference.sum(axis=0))
    # downstream: pruned, retrained one-vs-rest, per-class quality; no curated version
    pruned = wh.query("SELECT count(*) AS n FROM pruned_dataset WHERE partition = ?", [DATES[0]])["n"].iloc[0]
    assert pruned == len(frame) - flagged.sum()
    model = wh.query("SELECT status FROM retrained_model WHERE partition = ?", [DATES[0]])
    assert model["status"].tolist() == ["trained"]
    quality = wh.query("SELECT class_label FROM class_quality WHERE partition = ? ORDER BY class_index", [DATES[0]])
    assert quality["class_label"].tolist() == list(TAGS)
    assert not PartitionStore(fast_env).has("curated_dataset", DATES[0])


def _synthetic(rng: np.random.Generator, n: int = 400, k: int = 5) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """(snapshot with integer-id label lists and supplied probability columns, given indicator, probs)."""
    truth = (rng.random((n, k)) < 0.3).astype(np.int64)
    probs = np.clip(0.8 * truth + 0.1 + rng.normal(0, 0.1, (n, k)), 0.0, 1.0)
    noisy = truth.copy()
    rows = rng.choice(n, n // 10, replace=False)
    noisy[rows, rng.integers(0, k, rows.size)] ^= 1
    frame = pd.DataFrame(probs, columns=[f"p_{c}" for c in range(k)])
    frame.insert(0, "id", np.arange(n) + 1000)
    frame["label"] = [np.flatnonzero(r).tolist() for r in noisy]
    return frame, noisy, probs


def test_supplied_probabilities_audit_and_tampered_codes(fast_env: Path, run_cli, tmp_path: Path, rng) -> None:
    from cl_pipeline.audit import multilabel_stage

    frame, noisy, probs = _synthetic(rng)
    frame.to_parquet(tmp_path / "snap.parquet")
    config = tmp_path / "audit.toml"
    config.write_text(
        '[source]\nkind = "file"\npath = "snap.parquet"\n[columns]\nid = "id"\nprobabilities = ["p_*"]\n'
        'label_kind = "multilabel"\n[issues]\nfilter_by = "both"\nrank_by = "normalized_margin"\n'
        "[checks]\nmax_noise_rate = 0.6\nmax_class_noise_rate = 0.9\n"
    )
    code, out, err = run_cli("audit", "--config", str(config), "--date", DATES[0])
    assert code == 0, out + err
    y, stored_probs, issues = _stored(fast_env, DATES[0])
    np.testing.assert_array_equal(y, noisy)
    np.testing.assert_array_equal(stored_probs, probs)
    expected = multilabel.find_label_issues(noisy, probs, filter_by="both")
    np.testing.assert_array_equal(issues["is_label_issue"].to_numpy(), expected)
    quality = multilabel.get_label_quality_scores(noisy, probs, method="normalized_margin")
    np.testing.assert_array_equal(issues["label_quality"].to_numpy(), quality)
    per_class = multilabel.find_multilabel_issues_per_class(noisy, probs, filter_by="both")
    assert issues["issue_class_indices"].map(len).sum() == per_class.sum()
    store = PartitionStore(fast_env)
    assert store.read("retrained_model", DATES[0])["status"].iloc[0].startswith("skipped: probabilities were supplied")
    assert multilabel_stage.input_verdict(store, DATES[0]).passed
    for argv in (["export", "--date", DATES[0], "--out", str(tmp_path / "q.csv")], ["import", str(tmp_path / "q.csv")]):
        (tmp_path / "q.csv").write_text("id,decision\n0,keep\n")
        code, _, err = run_cli("review", *argv)  # reviews are single-label: a clear refusal, not a crash
        assert code == 2 and "is multi-label" in err, err
    assert not (fast_env / "review_decisions").exists()
    # label codes that no longer match the label column fail the input check (the hash excludes them)
    path = store.path("raw_labels", DATES[0])
    table = pq.read_table(path)
    codes = table.column("label_indices").to_pylist()
    codes[0] = [c for c in range(5) if c not in codes[0]]
    index = table.schema.get_field_index("label_indices")
    pq.write_table(table.set_column(index, "label_indices", pa.array(codes, pa.list_(pa.int64()))), path)
    verdict = multilabel_stage.input_verdict(store, DATES[0])
    assert not verdict.passed and "label_indices do not match" in verdict.message
    assert multilabel_stage.guard(store, DATES[0], ChecksConfig())  # refuses to prune


# --- bad input: `cl-pipeline audit` exits 2 naming the column, row or setting; nothing written -----------

N_BAD = 60


def _small(rng_seed: int = 5) -> pd.DataFrame:
    rng = np.random.default_rng(rng_seed)
    frame = pd.DataFrame(rng.normal(size=(N_BAD, 3)), columns=["f0", "f1", "f2"])
    frame.insert(0, "id", [f"x{i:03d}" for i in range(N_BAD)])
    names = np.array(["cat", "dog", "emu"], dtype=object)
    present = (np.arange(N_BAD)[:, None] + np.arange(3)) % 3 != 0  # every class in 2/3 of the rows
    frame["tags"] = [",".join(names[row]) for row in present]
    return frame


def _bad(folder: Path, frame: pd.DataFrame, columns: str = "", sections: str = "", parquet: bool = False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    name = "snap.parquet" if parquet else "snap.csv"
    frame.to_parquet(folder / name) if parquet else frame.to_csv(folder / name, index=False)
    text = (
        f'[source]\nkind = "file"\npath = "{name}"\n[columns]\nid = "id"\nlabel = "tags"\n'
        f'label_kind = "multilabel"\n{columns}\n[model]\nn_folds = 2\nn_jobs = 1\n{sections}'
    )
    if 'probabilities = ["' not in columns:
        text = text.replace('label = "tags"\n', 'label = "tags"\nnumeric = ["f*"]\n')
    (folder / "audit.toml").write_text(text)
    return folder / "audit.toml"


def _cell(row: int, value: object) -> "callable":
    def edit(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.copy()
        frame["tags"] = frame["tags"].astype(object)
        frame.at[row, "tags"] = value
        return frame

    return edit


CLASSES = 'classes = ["cat", "dog", "emu"]'
BAD_CASES = {
    "labels-not-list-like": (lambda f: _bad(f, _small().assign(tags=np.arange(N_BAD) % 3)), "not label sets"),
    "unknown-class-name": (
        lambda f: _bad(f, _cell(7, "cat,yak")(_small()), CLASSES),
        "row 7 (id 'x007'): class 'yak' is not one of the classes",
    ),
    "wrong-delimiter": (
        lambda f: _bad(f, _small().assign(tags=lambda d: d["tags"].str.replace(",", ";")), CLASSES),
        "is columns.label_delimiter (',') the delimiter of this column?",
    ),
    "empty-name-between-delimiters": (
        lambda f: _bad(f, _cell(4, "cat,,dog")(_small())),
        "row 4 (id 'x004') holds 'cat,,dog': an empty class name between delimiters",
    ),
    "null-label": (lambda f: _bad(f, _cell(9, None)(_small())), "row 9 (id 'x009') is null"),
    "nested-list": (
        lambda f: _bad(f, _small().assign(tags=[[["cat"]]] * N_BAD), parquet=True),
        "is not a class name",
    ),
    "fractional-class-id": (
        lambda f: _bad(f, _small().assign(tags=[[1.0, 2.5]] * N_BAD), parquet=True),
        "2.5 is not a class name",
    ),
    "class-in-every-example": (
        lambda f: _bad(f, _small().assign(tags=lambda d: d["tags"].map(lambda t: ",".join({"cat", *t.split(",")})))),
        "class 'cat' is in every example's label set",
    ),
    "class-too-rare": (
        lambda f: _bad(f, _cell(3, "cat,dog,emu,yak")(_small())),
        "'yak' in 1; each needs at least 2 for 2-fold cross-validation",
    ),
    "with-annotations": (
        lambda f: _bad(f, _small().assign(a0="cat", a1="dog"), 'annotations = ["a*"]'),
        "cannot be combined with columns.annotations",
    ),
    "from-curated": (
        lambda f: _bad(f, _small(), "", '[audit]\nstart_from = "curated"\n'),
        "start_from = 'curated' cannot be combined with columns.label_kind = 'multilabel'",
    ),
    "rank-by-single-label-score": (
        lambda f: _bad(f, _small(), "", '[issues]\nrank_by = "confidence_then_margin"\n'),
        "issues.rank_by 'confidence_then_margin' is not a multi-label score",
    ),
    "bracket-delimiter": (lambda f: _bad(f, _small(), 'label_delimiter = "["'), "must be 1 to 8 characters"),
    "empty-delimiter": (lambda f: _bad(f, _small(), 'label_delimiter = ""'), "must be 1 to 8 characters"),
    "delimiter-with-single-labels": (
        lambda f: (
            _bad(f, _small(), 'label_delimiter = ";"').write_text(
                (f / "audit.toml").read_text().replace('label_kind = "multilabel"', 'label_kind = "single"')
            )
            and f / "audit.toml"
        ),
        "applies to columns.label_kind = 'multilabel' only",
    ),
    "probabilities-outside-0-1": (
        lambda f: _bad(f, _small().assign(p0=0.5, p1=1.3, p2=0.2), 'probabilities = ["p*"]'),
        "row 0 (id 'x000') is not per-class probabilities",
    ),
    "reserved-column": (lambda f: _bad(f, _small().assign(label_indices=1)), "reserved name"),
}


@pytest.mark.parametrize("case", list(BAD_CASES))
def test_bad_multilabel_input_exits_2_before_anything_is_written(
    fast_env: Path, run_cli, tmp_path: Path, case: str
) -> None:
    make, message = BAD_CASES[case]
    config = make(tmp_path / "in")
    code, out, err = run_cli("audit", "--config", str(config), "--date", DATES[0])
    assert code == 2, out + err
    assert message in err, err
    assert not fast_env.exists() or not any(fast_env.rglob("*.parquet"))


def test_too_large_for_memory_exits_2(fast_env: Path, run_cli, tmp_path: Path, monkeypatch) -> None:
    from cl_pipeline.audit import multilabel_stage

    monkeypatch.setattr(multilabel_stage, "MAX_CELLS", 100)
    code, _, err = run_cli("audit", "--config", str(_bad(tmp_path / "in", _small())), "--date", DATES[0])
    assert code == 2 and f"{N_BAD} examples x 3 classes = {3 * N_BAD} cells" in err and "in memory" in err
    assert not fast_env.exists() or not any(fast_env.rglob("*.parquet"))


# --- the label-set readers --------------------------------------------------------------------------

NAMES = st.text(alphabet="abcdefgh0123456789_-", min_size=1, max_size=6)


@given(
    classes=st.lists(NAMES, min_size=2, max_size=6, unique=True),
    delimiter=st.sampled_from([",", ";", "|", " ", "::"]),
    data=st.data(),
)
def test_formatted_sets_parse_back(classes: list[str], delimiter: str, data: st.DataObject) -> None:
    from cl_pipeline.storage.multilabel_labels import encode_label_sets, format_label_sets, parse_label_sets

    rows = data.draw(st.lists(st.lists(st.booleans(), min_size=len(classes), max_size=len(classes)), min_size=1))
    indicator = np.array(rows, dtype=np.int8)
    text = pd.Series(format_label_sets(indicator, classes, delimiter))
    ids = pd.Series(np.arange(len(rows)))
    sets = parse_label_sets(text, "tags", delimiter, ids)
    back, order = encode_label_sets(sets, classes, "tags", ids, delimiter)
    np.testing.assert_array_equal(back, indicator)
    listed = parse_label_sets(pd.Series([np.array(s, dtype=object) for s in sets], dtype=object), "t", ",", ids)
    assert listed == sets and order == classes


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        pytest.param(" dog , cat ", ["cat", "dog"], id="padding-stripped-sorted"),
        pytest.param("[cat|dog]", ["cat", "dog"], id="brackets"),
        pytest.param("cat|cat", ["cat"], id="repeat-counts-once"),
        pytest.param("[]", [], id="empty-brackets"),
        pytest.param("", [], id="empty-string"),
        pytest.param([3, 1.0], ["1", "3"], id="integral-numbers"),
        pytest.param(np.array(["b", "a"]), ["a", "b"], id="array"),
    ],
)
def test_label_set_cells(cell: object, expected: list[str]) -> None:
    from cl_pipeline.storage.multilabel_labels import parse_label_sets

    delimiter = "|" if isinstance(cell, str) and "|" in cell else ","
    sets = parse_label_sets(pd.Series([cell], dtype=object), "tags", delimiter, pd.Series(["a"]))
    assert sets == [expected]
