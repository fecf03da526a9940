"""Monitoring new rows against a reference, through the real pipeline (issue 11 E must-show).

A folder source of the embedded digits (true labels known): the reference date holds 1000
rows with 10% of their labels flipped; two later dates hold the other 797 rows, once with the
same 10% and once with 30%. ``cl-pipeline audit`` of the three dates (``[monitor]
reference_date`` = the first): the check ``noise_rate_vs_reference`` passes with the same
noise and fires with more, and the stored scores are the reference model's flags computed
here in memory.
"""

import base64
import contextlib
import io
import re
import shutil
from pathlib import Path
from types import SimpleNamespace

import dagster as dg
import joblib
import numpy as np
import pandas as pd
import pytest
from pipeline_helpers import data_files, make_small_frame

from cl_pipeline import cli
from cl_pipeline.audit.monitor import flag_rows
from cl_pipeline.audit.tables import stored_confident_joint
from cl_pipeline.datasets import load_embedded
from cl_pipeline.storage import PartitionStore

REFERENCE, SAME, NOISIER = "2024-01-02", "2024-01-03", "2024-01-04"
PIXELS = [f"pixel_{i}" for i in range(64)]
CONFIG = """
[source]
kind = "folder"
path = "snaps"
pattern = "labels_*.csv"

[columns]
id = "id"
label = "label"
true_label = "true_label"
numeric = ["pixel_*"]
classes = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]

[model]
n_jobs = 1

[checks]
max_noise_rate = 0.9
max_class_noise_rate = 0.99

[monitor]
reference_date = "{reference}"
"""


def _flipped(frame: pd.DataFrame, rate: float, seed: int) -> pd.DataFrame:
    """``frame`` with a fraction ``rate`` of its labels flipped to another digit (seeded)."""
    rng = np.random.default_rng(seed)
    truth = frame["true_label"].to_numpy()
    flips = rng.random(truth.size) < rate
    labels = truth.copy()
    labels[flips] = (truth[flips] + rng.integers(1, 10, flips.sum())) % 10
    return frame.assign(label=labels)


def _write_snapshots(root: Path, reference: str = REFERENCE) -> Path:
    digits = load_embedded(noise_rate=0.0)
    order = np.random.default_rng(0).permutation(len(digits))
    old, new = digits.iloc[order[:1000]], digits.iloc[order[1000:]]
    (root / "snaps").mkdir(parents=True, exist_ok=True)
    for date, frame, rate, seed in [(REFERENCE, old, 0.1, 1), (SAME, new, 0.1, 2), (NOISIER, new, 0.3, 3)]:
        _flipped(frame, rate, seed).to_csv(root / "snaps" / f"labels_{date}.csv", index=False)
    (root / "audit.toml").write_text(CONFIG.format(reference=reference))
    return root / "audit.toml"


def _cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(list(argv))
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def monitored(tmp_path_factory: pytest.TempPathFactory):
    """The three audits, in one data dir and DAGSTER_HOME."""
    root = tmp_path_factory.mktemp("monitor")
    config = _write_snapshots(root)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.setenv("CL_PIPELINE_DATA_DIR", str(root / "data"))
        mp.setenv("DAGSTER_HOME", str(root / "home"))
        runs = {date: _cli("audit", "--config", str(config), "--date", date) for date in (REFERENCE, SAME, NOISIER)}
        yield SimpleNamespace(
            root=root, config=config, store=PartitionStore(root / "data"), runs=runs, home=root / "home"
        )


def _check(store: PartitionStore, date: str) -> pd.Series:
    return store.read("check_results", f"{date}.noise_rate_vs_reference").iloc[0]


def test_the_check_passes_with_the_same_noise_and_fires_with_more(monitored) -> None:
    assert {date: run[0] for date, run in monitored.runs.items()} == {REFERENCE: 0, SAME: 0, NOISIER: 0}
    same, noisier = _check(monitored.store, SAME), _check(monitored.store, NOISIER)
    assert same["passed"] and same["severity"] == "WARN" and not same["blocking"]
    assert not noisier["passed"] and noisier["severity"] == "WARN"
    assert "noisier than the reference" in noisier["message"] and noisier["value"] < 0.01 <= same["value"]
    assert "noise_rate_vs_reference: FAILED (WARN)" in monitored.runs[NOISIER][1]
    assert "noise_rate_vs_reference: passed - new rows" in monitored.runs[SAME][1]
    assert monitored.store.has("pruned_dataset", NOISIER)  # a WARN blocks nothing


def test_the_reference_date_is_not_scored(monitored) -> None:
    assert not monitored.store.has("monitor_scores", REFERENCE)
    verdict = _check(monitored.store, REFERENCE)
    assert verdict["passed"] and "not after the reference date" in verdict["message"]


@pytest.mark.parametrize("date", [SAME, NOISIER])
def test_the_scores_are_the_reference_model_on_the_new_rows(monitored, date: str) -> None:
    """Recomputed in memory: the reference's model on the snapshot CSV, its thresholds, the rule."""
    store = monitored.store
    scores = store.read("monitor_scores", date)
    snapshot = pd.read_csv(monitored.root / "snaps" / f"labels_{date}.csv")
    model = joblib.load(store.artifact_path("retrained_model", REFERENCE, ".joblib"))["model"]
    probs = model.predict_proba(snapshot[PIXELS])
    thresholds, _ = stored_confident_joint(
        store.read("confident_joint", REFERENCE), store.metadata("confident_joint", REFERENCE)
    )
    labels = snapshot["label"].to_numpy()
    expected = flag_rows(labels, probs, thresholds)
    assert scores["id"].tolist() == snapshot["id"].tolist()
    np.testing.assert_array_equal(scores["is_flagged"].to_numpy(), expected)
    np.testing.assert_allclose(scores["self_confidence"], probs[np.arange(labels.size), labels], rtol=1e-12)
    assert scores["suggested_label"].tolist() == [str(c) for c in probs.argmax(axis=1)]
    info = store.metadata("monitor_scores", date)
    assert (info["n_new"], info["flagged_new"]) == (797, int(expected.sum()))
    truly_wrong = snapshot["label"].to_numpy() != snapshot["true_label"].to_numpy()
    assert truly_wrong[expected].mean() > 0.7  # the flags find real errors
    assert abs(info["new_noise_rate"] - truly_wrong.mean()) < 0.05  # and estimate the injected noise


def test_the_reference_rate_is_the_same_rule_on_its_hold_out_rows(monitored) -> None:
    """The reference's statistic: its model on the rows it held out (split recomputed here as retrain draws it)."""
    from sklearn.model_selection import train_test_split

    store = monitored.store
    raw = store.read("raw_labels", REFERENCE)
    _, hold = train_test_split(np.arange(len(raw)), test_size=0.2, stratify=raw["label_index"], random_state=0)
    model = joblib.load(store.artifact_path("retrained_model", REFERENCE, ".joblib"))["model"]
    thresholds, _ = stored_confident_joint(
        store.read("confident_joint", REFERENCE), store.metadata("confident_joint", REFERENCE)
    )
    rows = raw.iloc[hold]
    flagged = flag_rows(rows["label_index"].to_numpy(), model.predict_proba(rows[PIXELS]), thresholds)
    for date in (SAME, NOISIER):
        info = store.metadata("monitor_scores", date)
        assert (info["n_reference"], info["flagged_reference"]) == (200, int(flagged.sum()))
        assert info["reference_date"] == REFERENCE and "hold-out rows" in info["reference_basis"]
    assert store.read("retrained_model", REFERENCE)["n_holdout"].iloc[0] == 200


def test_the_ui_shows_the_test_and_the_rate_history(monitored, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DAGSTER_HOME", str(monitored.home))
    with dg.DagsterInstance.get() as instance:
        for asset in ("audit_summary", "monitor_scores"):
            event = instance.get_latest_materialization_event(dg.AssetKey(asset))
            assert event.asset_materialization.partition == NOISIER
            text = event.asset_materialization.metadata["rate_history"].value
            assert "data:image/svg+xml;base64," in text
            picture = base64.b64decode(re.search(r"base64,([A-Za-z0-9+/=]+)\)", text).group(1)).decode()
            assert f"reference {REFERENCE} flagged (same rule)" in picture
            assert ("check fired" in picture) == (asset == "monitor_scores")  # audit_summary is drawn before
        record = instance.event_log_storage.get_latest_asset_check_execution_by_key(
            [dg.AssetCheckKey(dg.AssetKey("monitor_scores"), "noise_rate_vs_reference")]
        )
        evaluation = next(iter(record.values())).event.dagster_event.event_specific_data
    meta = {key: value.value for key, value in evaluation.metadata.items()}
    assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.WARN
    assert set(meta) >= {"reference_noise_rate", "new_noise_rate", "z", "p_value", "n_reference", "n_new", "alpha"}
    assert meta["n_new"] == 797 and meta["z"] > 3


@pytest.mark.parametrize(
    ("monitor", "said"),
    [
        pytest.param('reference_date = "2024-13-01"', "monitor.reference_date '2024-13-01'", id="no such day"),
        pytest.param('reference_date = "Jan 2"', "is not a date YYYY-MM-DD", id="not a date"),
        pytest.param('reference_date = "2024-01-02"\nalpha = 0', "monitor.alpha", id="alpha zero"),
        pytest.param('reference_date = "2024-01-02"\nseverity = "fatal"', "monitor.severity", id="unknown severity"),
        pytest.param('reference_date = "2024-01-02"\nfilter_by = "both"', "monitor.filter_by", id="global filter"),
        pytest.param('reference_date = "2024-01-01"', "2024-01-01 has not been audited", id="reference not audited"),
    ],
)
def test_bad_monitor_config_exits_2_with_nothing_written(monitored, tmp_path: Path, monitor: str, said: str) -> None:
    config = tmp_path / "audit.toml"
    config.write_text(monitored.config.read_text().split("[monitor]")[0] + "[monitor]\n" + monitor + "\n")
    shutil.copytree(monitored.root / "snaps", tmp_path / "snaps")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CL_PIPELINE_DATA_DIR", str(tmp_path / "data"))
        mp.setenv("DAGSTER_HOME", str(tmp_path / "home"))
        code, _, err = _cli("audit", "--config", str(config), "--date", SAME)
    assert code == 2 and said in err, err
    assert data_files(tmp_path / "data") == []


def test_a_reference_without_a_retrained_model_exits_2(monitored, tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(monitored.root / "data", data)
    PartitionStore(data).remove("retrained_model", REFERENCE)
    before = data_files(data)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CL_PIPELINE_DATA_DIR", str(data))
        mp.setenv("DAGSTER_HOME", str(tmp_path / "home"))
        code, _, err = _cli("audit", "--config", str(monitored.config), "--date", SAME)
    assert code == 2 and f"monitor.reference_date {REFERENCE} has no retrained model" in err, err
    assert data_files(data) == before


def _write_supplied(folder: Path, date: str, flip: float, seed: int) -> None:
    """A Parquet snapshot with supplied float32 probabilities (correct class weighted 0.6) and ``flip`` label noise."""
    frame = make_small_frame(n=600, seed=seed, flip=flip)
    rng = np.random.default_rng(seed)
    truth = pd.get_dummies(frame["true_label"]).to_numpy(float)
    probs = (rng.dirichlet(np.ones(3), len(frame)) * 0.4 + truth * 0.6).astype("float32")
    out = frame[["id", "label", "true_label"]].copy()
    for j, name in enumerate(["cat", "dog", "emu"]):
        out[f"p_{name}"] = probs[:, j] / probs.sum(axis=1)
    folder.mkdir(parents=True, exist_ok=True)
    out.to_parquet(folder / f"probs_{date}.parquet")


def test_supplied_probabilities_are_scored_against_the_reference_oof_rows(
    tmp_path: Path, shared_dagster_home: Path
) -> None:
    """Without a model: the new rows' own probabilities, the reference's rate over its every stored row.

    With ``severity = "error"``: the audit of the noisier date exits 3, the check is recorded as
    ERROR and nothing is blocked.
    """
    _write_supplied(tmp_path / "snaps", REFERENCE, 0.1, 1)
    _write_supplied(tmp_path / "snaps", NOISIER, 0.35, 2)
    config = tmp_path / "audit.toml"
    config.write_text(
        '[source]\nkind = "folder"\npath = "snaps"\npattern = "probs_*.parquet"\n'
        '[columns]\ntrue_label = "true_label"\nprobabilities = ["p_cat", "p_dog", "p_emu"]\n'
        'classes = ["cat", "dog", "emu"]\n[issues]\nfilter_by = "confident_learning"\n'
        "[checks]\nmax_noise_rate = 0.9\nmax_class_noise_rate = 0.99\n"
        f'[monitor]\nreference_date = "{REFERENCE}"\nseverity = "error"\n'
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CL_PIPELINE_DATA_DIR", str(tmp_path / "data"))
        mp.setenv("DAGSTER_HOME", str(shared_dagster_home))
        runs = [_cli("audit", "--config", str(config), "--date", date) for date in (REFERENCE, NOISIER)]
    assert [code for code, _, _ in runs] == [0, 3], runs[1][2]
    assert "check noise_rate_vs_reference FAILED (ERROR)" in runs[1][2] and "BLOCKED" not in runs[1][2]
    store = PartitionStore(tmp_path / "data")
    info = store.metadata("monitor_scores", NOISIER)
    reference_issues = store.metadata("confident_joint", REFERENCE)["num_label_issues"]
    assert (info["n_reference"], info["flagged_reference"]) == (600, reference_issues)
    assert info["flagged_reference"] == store.metadata("label_issues", REFERENCE)["num_issues"]
    assert info["probabilities"] == "supplied probabilities" and info["significant"]
    verdict = _check(store, NOISIER)
    assert not verdict["passed"] and verdict["severity"] == "ERROR" and not verdict["blocking"]
    assert store.has("pruned_dataset", NOISIER)
