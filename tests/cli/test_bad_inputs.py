"""Bad dataset configs and inputs: a clear error naming the problem, exit 2, nothing written."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pipeline_helpers import SMALL_CONFIG, data_files, make_small_frame, write_small

from cl_pipeline.audit.snapshot import validate_snapshot
from cl_pipeline.config import ConfigError, load_config


def _null_label(f: pd.DataFrame) -> pd.DataFrame:
    f.loc[7, "label"] = None
    return f


def _duplicate_id(f: pd.DataFrame) -> pd.DataFrame:
    f.loc[3, "id"] = f.loc[2, "id"]
    return f


def _tiny_class(f: pd.DataFrame) -> pd.DataFrame:
    f.loc[:1, "label"] = "yak"  # 2 examples, 3 folds
    return f


def _text_in_numeric(f: pd.DataFrame) -> pd.DataFrame:
    f["f2"] = f["f2"].astype(object)
    f.loc[5, "f2"] = "twelve"
    return f


DATA_CASES = {
    "missing column": (
        lambda f: f.drop(columns=["colour"]),
        "",
        "missing column(s) in snapshot: 'colour' (columns.categorical)",
    ),
    "pattern matches nothing": (
        lambda f: f.drop(columns=[f"f{i}" for i in range(5)]),
        "",
        "'f*' (columns.numeric: pattern matches no column)",
    ),
    "missing label column": (lambda f: f.rename(columns={"label": "lbl"}), "", "'label' (columns.label)"),
    "null label": (_null_label, "", "label column 'label' has 1 null value(s), e.g. id 'ex-0007'"),
    "duplicate id": (_duplicate_id, "", "id column 'id' has 1 duplicated id(s), e.g. 'ex-0002'"),
    "unknown label": (lambda f: f, 'classes = ["cat", "dog"]\n', "not in columns.classes ['cat', 'dog']: 'emu'"),
    "class too small": (_tiny_class, "", "'yak' has 2; each needs at least 3"),
    "non-numeric feature": (
        _text_in_numeric,
        "",
        "numeric feature column 'f2' holds a non-numeric value 'twelve' (id 'ex-0005')",
    ),
    "empty snapshot": (lambda f: f.iloc[:0], "", "has no rows"),
    "fractional label": (
        lambda f: f.assign(label=np.linspace(0, 2, len(f))),
        "",
        "label column 'label' holds a non-integer number",
    ),
    "reserved column": (lambda f: f.assign(partition="x"), "", "use reserved name(s)"),
    "text without shared words": (
        lambda f: f.assign(note=[f"word{i}" for i in range(len(f))]),
        'text = ["note"]\n',
        "column 'note' has no word that appears in two or more rows",
    ),
}


@pytest.mark.parametrize("case", sorted(DATA_CASES))
def test_bad_data_fails_before_anything_is_written(case: str, env: Path, run_cli) -> None:
    mutate, columns_extra, message = DATA_CASES[case]
    frame = mutate(make_small_frame())
    config = write_small(env.parent / "in", frame)
    if columns_extra:
        config.write_text(config.read_text().replace('label = "label"\n', f'label = "label"\n{columns_extra}'))
    code, _, err = run_cli("audit", "--config", str(config), "--date", "2025-01-01")
    assert code == 2
    assert message in err
    assert data_files(env) == []
    assert not (env.parent / "dagster_home").exists()


CONFIG_CASES = {
    "unknown filter": ('[issues]\nfilter_by = "magic"\n', "issues.filter_by: Value error, issues.filter_by 'magic'"),
    "unknown section key": ("[checks]\nmax_noise = 0.1\n", "checks.max_noise: Extra inputs are not permitted"),
    "bad estimator": (
        '[model]\nestimator = "sklearn.nope.Model"\n',
        "model.estimator 'sklearn.nope.Model' cannot be imported",
    ),
    "bad params": (
        "[model]\nparams = { not_a_param = 1 }\n",
        "model.params ['not_a_param'] not accepted by sklearn.linear_model.LogisticRegression",
    ),
    "bad param value": ("[model]\nparams = { C = -1.0 }\n", "The 'C' parameter of LogisticRegression must be"),
    "not an estimator": (
        '[model]\nestimator = "subprocess.Popen"\nparams = { args = ["touch", "pwned"] }\n',
        "package 'subprocess' is not allowed",
    ),
    "not a classifier": (
        '[model]\nestimator = "sklearn.linear_model.LinearRegression"\n',
        "'sklearn.linear_model.LinearRegression' has no fit/predict/predict_proba",
    ),
    "clusterer with predict_proba": (
        '[model]\nestimator = "sklearn.mixture.GaussianMixture"\n',
        "'sklearn.mixture.GaussianMixture' is not a classifier",
    ),
    "no predict_proba with these params": (
        '[model]\nestimator = "sklearn.svm.SVC"\n',
        "has no predict_proba (e.g. SVC needs probability = true)",
    ),
    "test module": ('[model]\nestimator = "sklearn.tests.test_docstrings.X"\n', "'tests' is not a public module"),
    "threshold out of range": ("[checks]\nmax_noise_rate = 1.5\n", "checks.max_noise_rate"),
}


@pytest.mark.parametrize("case", sorted(CONFIG_CASES))
def test_bad_config_fails_before_anything_is_written(case: str, env: Path, run_cli) -> None:
    body, message = CONFIG_CASES[case]
    folder = env.parent / "in"
    folder.mkdir(parents=True)
    make_small_frame().to_csv(folder / "labels.csv", index=False)
    text = SMALL_CONFIG.format(path="labels.csv")
    if body.startswith("[model]"):
        text = text.replace("[model]\nparams = { C = 1.0, max_iter = 200 }\n", body)
    else:
        text += body
    (folder / "audit.toml").write_text(text)
    code, _, err = run_cli("audit", "--config", str(folder / "audit.toml"), "--date", "2025-01-01")
    assert code == 2
    assert message in err
    assert data_files(env) == []
    assert not (env.parent / "pwned").exists()


def test_missing_source_and_config_files(env: Path, run_cli) -> None:
    code, _, err = run_cli("audit", "--config", "nowhere.toml")
    assert code == 2 and "config file not found: nowhere.toml" in err
    config = write_small(env.parent / "in")
    (env.parent / "in" / "labels.csv").unlink()
    code, _, err = run_cli("audit", "--config", str(config), "--date", "2025-01-01")
    assert code == 2 and "source file not found" in err
    code, _, err = run_cli("audit", "--config", str(config), "--date", "1999-01-01")
    assert code == 2 and "outside the daily partitions" in err
    assert data_files(env) == []


def test_byo_probabilities_validated(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {"id": [1, 2, 3, 4], "label": [0, 1, 0, 1], "p0": [0.9, 0.2, 0.5, 0.3], "p1": [0.1, 0.8, 0.4, 0.7]}
    )
    config = load_config({"source": {"kind": "file", "path": "x.csv"}, "columns": {"probabilities": ["p0", "p1"]}})
    with pytest.raises(ConfigError, match=r"row 2 \(id 3\) is not a probability vector"):
        validate_snapshot(frame, config, "2025-01-01")
    three = load_config(
        {"source": {"kind": "file", "path": "x.csv"}, "columns": {"probabilities": ["p0", "p1"], "classes": [0, 1, 2]}}
    )
    with pytest.raises(ConfigError, match="2 probability columns but 3 classes"):
        validate_snapshot(frame.assign(p0=[0.9, 0.2, 0.6, 0.3]), three, "2025-01-01")


def test_duckdb_identifiers_validated() -> None:
    with pytest.raises(ConfigError, match="not a plain SQL identifier"):
        load_config(
            {
                "source": {"kind": "duckdb", "path": "w.duckdb", "table": "t; DROP TABLE x"},
                "columns": {"numeric": ["a"]},
            }
        )


def test_config_from_environment_is_validated_too(env: Path, run_cli, monkeypatch) -> None:
    config = write_small(env.parent / "in", make_small_frame().drop(columns=["colour"]))
    monkeypatch.setenv("CL_PIPELINE_CONFIG", str(config))
    code, _, err = run_cli("audit", "--date", "2025-01-01")
    assert code == 2 and "'colour' (columns.categorical)" in err
    assert data_files(env) == []


_CUSTOM = """
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression


class Wrapped(ClassifierMixin, BaseEstimator):  # no _parameter_constraints, like most third-party models
    def __init__(self, C=1.0):
        self.C = C

    def fit(self, X, y, sample_weight=None):
        self.model_ = LogisticRegression(C=self.C).fit(X, y, sample_weight=sample_weight)
        self.classes_ = self.model_.classes_
        return self

    def predict_proba(self, X):
        return self.model_.predict_proba(X)

    def predict(self, X):
        return self.model_.predict(X)
"""


def test_allowed_custom_estimator_runs(env: Path, run_cli, monkeypatch) -> None:
    package = env.parent / "pkgs" / "my_models"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(_CUSTOM)
    monkeypatch.syspath_prepend(str(package.parent))
    config = write_small(env.parent / "in")
    config.write_text(
        config.read_text().replace(
            "[model]\nparams = { C = 1.0, max_iter = 200 }",
            '[model]\nestimator = "my_models.Wrapped"\nparams = { C = 0.5 }',
        )
    )
    code, _, err = run_cli("audit", "--config", str(config), "--date", "2025-01-01")
    assert code == 2 and "package 'my_models' is not allowed" in err  # not without opting in
    monkeypatch.setenv("CL_PIPELINE_ESTIMATOR_PACKAGES", "my_models")
    code, _, err = run_cli("audit", "--config", str(config), "--date", "2025-01-01")
    assert code == 0, err
