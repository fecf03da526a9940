"""The fold cache: a retry reloads finished folds; the key follows what the folds depend on."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cl_pipeline import learning
from cl_pipeline.audit import folds
from cl_pipeline.audit.snapshot import Snapshot
from cl_pipeline.config import ModelConfig


def test_fold_cache_retry_does_not_retrain_finished_folds(tmp_path: Path, monkeypatch) -> None:
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 40)
    X = rng.normal(size=(120, 4)) + labels[:, None]
    snapshot = Snapshot(
        pd.DataFrame({"id": range(120)}),
        ["a", "b", "c"],
        labels,
        "id",
        {"numeric": ["f"], "categorical": [], "text": []},
        data_version="v1",
    )
    model = ModelConfig(n_folds=5, n_jobs=1, params={"max_iter": 200})
    real = learning.fit_predict_fold
    calls: list[int] = []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("fold 2 crashed")
        return real(*args, **kwargs)

    monkeypatch.setattr(learning, "fit_predict_fold", flaky)
    with pytest.raises(RuntimeError, match="fold 2 crashed"):
        folds.out_of_fold_probs(snapshot, X, model, tmp_path)
    assert len(calls) == 3
    retry_probs, held_out = folds.out_of_fold_probs(snapshot, X, model, tmp_path)
    assert len(calls) == 3 + 3  # folds 2, 3, 4 only
    monkeypatch.setattr(learning, "fit_predict_fold", real)
    fresh, fresh_folds = folds.out_of_fold_probs(snapshot, X, model, tmp_path / "other")
    np.testing.assert_array_equal(retry_probs, fresh)
    np.testing.assert_array_equal(held_out, fresh_folds)
    changed = ModelConfig(n_folds=5, n_jobs=1, params={"max_iter": 201})
    assert folds.fold_cache_key("v1", model, ["a"], {}) != folds.fold_cache_key("v1", changed, ["a"], {})
    assert folds.fold_cache_key("v1", model, ["a"], {}) != folds.fold_cache_key("v2", model, ["a"], {})


def test_fold_cache_key_follows_what_the_folds_depend_on(tmp_path: Path, monkeypatch) -> None:
    package = tmp_path / "local_models"
    package.mkdir()
    source = package / "__init__.py"
    source.write_text("VERSION = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    model = ModelConfig(estimator="local_models.Model", params={})
    key = lambda m: folds.fold_cache_key("v1", m, ["a", "b"], {"numeric": ["x"]})  # noqa: E731
    before = key(model)
    assert key(model.model_copy(update={"n_jobs": 7, "holdout_fraction": 0.3})) == before  # no effect on folds
    assert key(model.model_copy(update={"n_folds": 3})) != before
    source.write_text("VERSION = 2\n")  # local estimator code changed: its cached folds are stale
    assert key(model) != before
