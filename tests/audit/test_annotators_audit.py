"""The audit with several annotators per example (columns.annotations): consensus, annotator quality, WARN check.

Embedded data: scikit-learn's digits with 5 simulated annotators of known accuracy (seeded),
3 annotations per example; the snapshot has no label column.
"""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cl_pipeline.storage import Warehouse

DATE = "2025-03-01"
ACCURACY = (0.85, 0.75, 0.65, 0.55, 0.3)  # annotator ann_4 is the worst
N = 900


def _annotated_digits(seed: int = 7) -> tuple[pd.DataFrame, np.ndarray]:
    """(snapshot with pixel features and annotator columns ann_0..ann_4, true labels)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(seed)
    rows = rng.choice(len(digits.target), N, replace=False)
    truth = digits.target[rows].astype(np.int64)
    frame = pd.DataFrame(digits.data[rows], columns=[f"pixel_{i}" for i in range(64)])
    frame.insert(0, "id", [f"d{i:04d}" for i in range(N)])
    annotations = np.full((N, len(ACCURACY)), np.nan)
    for i in range(N):
        for j in rng.choice(len(ACCURACY), 3, replace=False):
            right = rng.random() < ACCURACY[j]
            annotations[i, j] = truth[i] if right else (truth[i] + rng.integers(1, 10)) % 10
    for j in range(len(ACCURACY)):
        frame[f"ann_{j}"] = pd.array(annotations[:, j], dtype="Int64")
    return frame, truth


CONFIG = """
[source]
kind = "file"
path = "{path}"

[columns]
id = "id"
numeric = ["pixel_*"]
annotations = {annotations}

[model]
n_folds = 3
n_jobs = 1

[checks]
min_annotator_quality = 0.35
max_noise_rate = 0.5
"""


def _write(folder: Path, frame: pd.DataFrame, annotations: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(folder / "snapshot.parquet")
    config = folder / "audit.toml"
    config.write_text(CONFIG.format(path="snapshot.parquet", annotations=annotations))
    return config


def _long(frame: pd.DataFrame) -> pd.DataFrame:
    cols = [c for c in frame.columns if c.startswith("ann_")]
    long = frame.melt(id_vars="id", value_vars=cols, var_name="annotator", value_name="label").dropna()
    return long.assign(label=long["label"].astype(int)).sample(frac=1.0, random_state=1)


@pytest.mark.slow
def test_audit_with_annotators_beats_majority_vote_and_flags_the_worst(fast_env: Path, run_cli, tmp_path: Path) -> None:
    frame, truth = _annotated_digits()
    config = _write(tmp_path / "in", frame, '["ann_*"]')
    code, out, err = run_cli("audit", "--config", str(config), "--date", DATE)
    assert code == 0, out + err
    assert "annotators_above_min_quality: FAILED (WARN)" in out
    wh = Warehouse(fast_env)
    consensus = wh.query("SELECT * FROM consensus_labels WHERE partition = ? ORDER BY id", [DATE])
    assert len(consensus) == N and consensus["num_annotations"].eq(3).all()
    by_consensus = (consensus["consensus_label"].astype(int).to_numpy() == truth).mean()
    by_vote = (consensus["majority_vote_label"].astype(int).to_numpy() == truth).mean()
    assert by_consensus > by_vote + 0.02, (by_consensus, by_vote)
    annotators = wh.query("SELECT * FROM annotator_quality WHERE partition = ? ORDER BY annotator", [DATE])
    assert annotators["annotator"].tolist() == [f"ann_{j}" for j in range(5)]
    assert annotators["annotator_quality"].idxmin() == 4
    checks = wh.query("SELECT check_name, passed, message FROM check_results WHERE partition = ?", [DATE])
    warn = checks.set_index("check_name").loc["annotators_above_min_quality"]
    assert not warn["passed"] and "ann_4" in warn["message"] and "ann_3" not in warn["message"]
    # the consensus is the given label of the confident-learning stages
    raw = wh.query("SELECT id, label FROM raw_labels WHERE partition = ? ORDER BY id", [DATE])
    assert (raw["label"].astype(str).to_numpy() == consensus["consensus_label"].astype(str).to_numpy()).all()
    issues = wh.query("SELECT id, given_label FROM label_issues WHERE partition = ? ORDER BY id", [DATE])
    assert (issues["given_label"].astype(str).to_numpy() == consensus["consensus_label"].astype(str).to_numpy()).all()


def test_long_file_reads_like_annotator_columns(tmp_path: Path) -> None:
    from cl_pipeline.audit import prevalidate
    from cl_pipeline.audit.annotators import annotation_frame, encode_annotations
    from cl_pipeline.config import load_config

    frame, _ = _annotated_digits()
    wide_config = load_config(_write(tmp_path / "wide", frame, '["ann_*"]'))
    _long(frame).to_csv(tmp_path / "long.csv", index=False)
    bare = frame.drop(columns=[f"ann_{j}" for j in range(5)])
    long_config = load_config(_write(tmp_path / "long", bare, '"../long.csv"'))
    matrices = [
        encode_annotations(annotation_frame(f, c, DATE), f["id"], None)
        for f, c in ((frame, wide_config), (bare, long_config))
    ]
    np.testing.assert_array_equal(matrices[0][0], matrices[1][0])
    assert matrices[0][1] == [str(k) for k in range(10)]
    votes = [prevalidate(c, DATE).snapshot.labels for c in (wide_config, long_config)]
    np.testing.assert_array_equal(votes[0], votes[1])
