"""Storage: atomic partition replacement, validated names, warehouse views, fold cache."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cl_pipeline import learning
from cl_pipeline.config import ModelConfig
from cl_pipeline.defs import stages
from cl_pipeline.defs.snapshot import Snapshot
from cl_pipeline.storage import (
    Warehouse,
    atomic_write_bytes,
    list_partitions,
    read_metadata,
    validate_name,
    write_table,
)
from cl_pipeline.storage import warehouse as warehouse_module
from cl_pipeline.storage.parquet import current_umask


def test_partition_rewrite_replaces_rows(tmp_path: Path) -> None:
    wh = Warehouse(tmp_path)
    write_table(tmp_path, "scores", "2025-01-01", pd.DataFrame({"x": [1, 2]}), {"note": "first"})
    write_table(tmp_path, "scores", "2025-01-02", pd.DataFrame({"x": [3]}))
    wh.refresh_views(["scores"])
    write_table(tmp_path, "scores", "2025-01-01", pd.DataFrame({"x": [7, 8, 9]}), {"note": "second"})
    rows = wh.query("SELECT partition, x FROM scores ORDER BY x")
    assert rows.values.tolist() == [["2025-01-02", 3], ["2025-01-01", 7], ["2025-01-01", 8], ["2025-01-01", 9]]
    assert read_metadata(tmp_path, "scores", "2025-01-01") == {"note": "second"}
    assert list_partitions(tmp_path, "scores") == ["2025-01-01", "2025-01-02"]
    assert wh.query("SELECT count(*) FROM scores WHERE partition = ?", ["2025-01-01"]).iloc[0, 0] == 3


@pytest.mark.parametrize(("umask", "expected"), [(0o022, 0o644), (0o027, 0o640)])
def test_written_files_get_the_umask_mode(umask: int, expected: int, tmp_path: Path) -> None:
    previous = os.umask(umask)
    try:
        assert current_umask() == umask
        table = write_table(tmp_path, "scores", "2025-01-01", pd.DataFrame({"x": [1]}))
        picture = tmp_path / "artifacts" / "p.png"
        atomic_write_bytes(picture, lambda handle: handle.write(b"png"))
        atomic_write_bytes(picture, lambda handle: handle.write(b"png2"))  # replacing keeps the mode
    finally:
        os.umask(previous)
    assert stat.S_IMODE(table.stat().st_mode) == expected
    assert stat.S_IMODE(picture.stat().st_mode) == expected
    assert picture.read_bytes() == b"png2"
    assert not list(tmp_path.rglob("*.tmp"))


def test_fresh_warehouse_gets_its_views(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(warehouse_module, "_KNOWN_VIEWS", set())
    wh = Warehouse(tmp_path)
    assert wh.ensure_views(["scores"]) == "current"  # no partition yet: nothing to create
    assert not wh.path.exists()
    write_table(tmp_path, "scores", "2025-01-01", pd.DataFrame({"x": [1, 2]}))
    assert wh.ensure_views(["scores"]) == "created"
    assert wh.views() == ["scores", "stage_timings"]
    assert wh.query("SELECT sum(x) FROM scores").iloc[0, 0] == 3
    monkeypatch.setattr(warehouse_module, "_KNOWN_VIEWS", set())  # as in a new process
    assert wh.ensure_views(["scores"]) == "current"


def test_changed_view_definition_is_recreated(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(warehouse_module, "_KNOWN_VIEWS", set())
    write_table(tmp_path, "scores", "2025-01-01", pd.DataFrame({"x": [5]}))
    wh = Warehouse(tmp_path)
    with wh.connect() as con:
        con.execute('CREATE VIEW "scores" AS SELECT 1 AS x')
    assert wh.ensure_views(["scores"]) == "created"
    assert wh.query("SELECT x FROM scores").iloc[0, 0] == 5


@pytest.mark.parametrize("name", ["a b", "x;DROP TABLE t", "1abc", "", "é", "a" * 80, '"q"'])
def test_unsafe_names_rejected(name: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="invalid"):
        validate_name(name)
    with pytest.raises(ValueError):
        write_table(tmp_path, name, "2025-01-01", pd.DataFrame({"x": [1]}))
    with pytest.raises(ValueError, match="invalid partition"):
        write_table(tmp_path, "ok", "../escape", pd.DataFrame({"x": [1]}))


def test_fold_cache_retry_does_not_retrain_finished_folds(tmp_path: Path, monkeypatch) -> None:
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 40)
    X = rng.normal(size=(120, 4)) + labels[:, None]
    snapshot = Snapshot(pd.DataFrame({"id": range(120)}), ["a", "b", "c"], labels, "id",
                        {"numeric": ["f"], "categorical": [], "text": []}, data_version="v1")  # fmt: skip
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
        stages.out_of_fold_probs(snapshot, X, model, tmp_path)
    assert len(calls) == 3
    retry_probs, folds = stages.out_of_fold_probs(snapshot, X, model, tmp_path)
    assert len(calls) == 3 + 3  # folds 2, 3, 4 only
    monkeypatch.setattr(learning, "fit_predict_fold", real)
    fresh, fresh_folds = stages.out_of_fold_probs(snapshot, X, model, tmp_path / "other")
    np.testing.assert_array_equal(retry_probs, fresh)
    np.testing.assert_array_equal(folds, fresh_folds)
    changed = ModelConfig(n_folds=5, n_jobs=1, params={"max_iter": 201})
    assert stages.fold_cache_key("v1", model, ["a"], {}) != stages.fold_cache_key("v1", changed, ["a"], {})
    assert stages.fold_cache_key("v1", model, ["a"], {}) != stages.fold_cache_key("v2", model, ["a"], {})


def test_fold_cache_key_follows_what_the_folds_depend_on(tmp_path: Path, monkeypatch) -> None:
    package = tmp_path / "local_models"
    package.mkdir()
    source = package / "__init__.py"
    source.write_text("VERSION = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    model = ModelConfig(estimator="local_models.Model", params={})
    key = lambda m: stages.fold_cache_key("v1", m, ["a", "b"], {"numeric": ["x"]})  # noqa: E731
    before = key(model)
    assert key(model.model_copy(update={"n_jobs": 7, "holdout_fraction": 0.3})) == before  # no effect on folds
    assert key(model.model_copy(update={"n_folds": 3})) != before
    source.write_text("VERSION = 2\n")  # local estimator code changed: its cached folds are stale
    assert key(model) != before
