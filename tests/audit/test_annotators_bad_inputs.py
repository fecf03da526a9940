"""Bad annotations in an audit (columns.annotations): `cl-pipeline audit` exits 2 naming the id, annotator or value."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

DATE = "2025-03-02"
N = 60


def _frame() -> pd.DataFrame:
    rng = np.random.default_rng(4)
    frame = pd.DataFrame(rng.normal(size=(N, 3)), columns=["f0", "f1", "f2"])
    frame.insert(0, "id", [f"x{i:03d}" for i in range(N)])
    truth = np.arange(N) % 3
    for j in range(3):
        frame[f"ann_{j}"] = np.asarray(["cat", "dog", "emu"], dtype=object)[(truth + (rng.random(N) < 0.2)) % 3]
    return frame


def _long(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.melt(id_vars="id", value_vars=["ann_0", "ann_1", "ann_2"], var_name="annotator", value_name="label")


def _config(
    folder: Path, frame: pd.DataFrame, annotations: str, extra: str = "", features: str = 'numeric = ["f*"]'
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    frame.to_csv(folder / "snap.csv", index=False)
    text = f"""
[source]
kind = "file"
path = "snap.csv"

[columns]
id = "id"
{features}
annotations = {annotations}
{extra}
[model]
n_folds = 2
n_jobs = 1
"""
    (folder / "audit.toml").write_text(text)
    return folder / "audit.toml"


def _unknown_id(folder: Path) -> Path:
    folder.mkdir(parents=True)
    long = _long(_frame())
    long.loc[4, "id"] = "nobody"
    long.to_csv(folder / "long.csv", index=False)
    return _config(folder, _frame().drop(columns=["ann_0", "ann_1", "ann_2"]), '"long.csv"')


def _silent_annotator(folder: Path) -> Path:
    return _config(folder, _frame().assign(ann_2=None), '["ann_*"]')


def _outside_classes(folder: Path) -> Path:
    frame = _frame()
    frame.loc[7, "ann_1"] = "yak"
    return _config(folder, frame, '["ann_*"]', 'classes = ["cat", "dog", "emu"]\n')


def _no_annotation(folder: Path) -> Path:
    frame = _frame()
    frame.loc[11, ["ann_0", "ann_1", "ann_2"]] = None
    return _config(folder, frame, '["ann_*"]')


def _twice(folder: Path) -> Path:
    folder.mkdir(parents=True)
    long = _long(_frame())
    pd.concat([long, long.iloc[[3]]]).to_csv(folder / "long.csv", index=False)
    return _config(folder, _frame().drop(columns=["ann_0", "ann_1", "ann_2"]), '"long.csv"')


CASES = {
    "long-file-unknown-id": (_unknown_id, "id 'nobody'"),
    "annotator-column-with-no-label": (_silent_annotator, "annotator(s) ['ann_2'] gave no label at all"),
    "label-outside-classes": (_outside_classes, "'yak', not one of the classes"),
    "example-with-no-annotation": (_no_annotation, "id(s) ['x011']"),
    "annotator-labels-an-id-twice": (_twice, "twice"),
    "label-column-also-given": (lambda f: _config(f, _frame().assign(label="cat"), '["ann_*"]'), "label column"),
    "no-column-matches": (lambda f: _config(f, _frame(), '["rater_*"]'), "'rater_*'"),
    "missing-file": (lambda f: _config(f, _frame(), '"nope.csv"'), "file not found"),
    "not-a-table-file": (lambda f: _config(f, _frame(), '"ann.txt"'), "must be a .csv or .parquet"),
    "empty-list": (lambda f: _config(f, _frame(), "[]"), "empty list"),
    "with-probability-columns": (
        lambda f: _config(f, _frame().assign(p0=0.5, p1=0.5), '["ann_*"]', features='probabilities = ["p*"]'),
        "cannot be combined with columns.probabilities",
    ),
    "from-curated": (
        lambda f: _config(f, _frame(), '["ann_*"]', '\n[audit]\nstart_from = "curated"\n'),
        "start_from = 'curated'",
    ),
    "one-annotator": (lambda f: _config(f, _frame(), '["ann_0"]'), "at least 2 needed"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_annotations_exit_2_before_anything_is_written(fast_env: Path, run_cli, tmp_path: Path, case: str) -> None:
    make, message = CASES[case]
    config = make(tmp_path / "in")
    code, out, err = run_cli("audit", "--config", str(config), "--date", DATE)
    assert code == 2, out + err
    assert message in err, err
    assert not (fast_env / "tables").exists() or not any((fast_env / "tables").rglob("*.parquet"))


def test_multilabel_label_kind_is_refused_with_a_pointer(fast_env: Path, run_cli, tmp_path: Path) -> None:
    config = _config(tmp_path / "in", _frame(), '["ann_*"]', 'label_kind = "multilabel"\n')
    code, _, err = run_cli("audit", "--config", str(config), "--date", DATE)
    assert code == 2 and "find --multilabel" in err
