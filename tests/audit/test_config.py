"""The dataset configuration: file formats, relative paths, Dagster resource overrides, defaults."""

import json
from pathlib import Path

import pytest

from cl_pipeline.config import ConfigError, load_config
from cl_pipeline.defs.resources import AuditConfigResource, PipelineStorage


def test_default_is_the_embedded_dataset() -> None:
    config = load_config()
    assert config.source.kind == "embedded"
    assert config.columns is not None and config.columns.numeric == ["pixel_*"]
    assert config.columns.true_label == "true_label"
    assert config.model.n_folds == 5 and config.issues.filter_by == "prune_by_noise_rate"


@pytest.mark.parametrize("suffix", [".toml", ".yaml", ".json"])
def test_file_formats_and_relative_paths(tmp_path: Path, suffix: str) -> None:
    mapping = {
        "source": {"kind": "file", "path": "in/labels.csv"},
        "columns": {"numeric": ["a"]},
        "checks": {"max_noise_rate": 0.1},
    }
    path = tmp_path / f"audit{suffix}"
    if suffix == ".toml":
        path.write_text(
            '[source]\nkind = "file"\npath = "in/labels.csv"\n[columns]\nnumeric = ["a"]\n'
            "[checks]\nmax_noise_rate = 0.1\n"
        )
    elif suffix == ".yaml":
        path.write_text(
            "source: {kind: file, path: in/labels.csv}\ncolumns: {numeric: [a]}\nchecks: {max_noise_rate: 0.1}\n"
        )
    else:
        path.write_text(json.dumps(mapping))
    config = load_config(path)
    assert config.source.path == str(tmp_path / "in" / "labels.csv")
    assert config.checks.max_noise_rate == 0.1


def test_unparseable_and_wrong_suffix(tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text("[source\n")
    with pytest.raises(ConfigError, match="cannot parse config file"):
        load_config(tmp_path / "a.toml")
    (tmp_path / "a.ini").write_text("x")
    with pytest.raises(ConfigError, match="must end in .toml, .yaml, .yml or .json"):
        load_config(tmp_path / "a.ini")
    with pytest.raises(ConfigError, match=r"a \[columns\] section is required"):
        load_config({"source": {"kind": "file", "path": "x.csv"}})
    with pytest.raises(ConfigError, match="either feature columns or probabilities"):
        load_config(
            {"source": {"kind": "file", "path": "x.csv"}, "columns": {"numeric": ["a"], "probabilities": ["p0", "p1"]}}
        )


def test_resource_settings_override_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "audit.toml"
    path.write_text('[source]\nkind = "file"\npath = "x.csv"\n[columns]\nnumeric = ["a"]\n[model]\nn_folds = 4\n')
    resource = AuditConfigResource(config_file=str(path), settings={"checks": {"max_noise_rate": 0.05}})
    config = resource.load()
    assert config.model.n_folds == 4 and config.checks.max_noise_rate == 0.05
    assert config.source.path == str(tmp_path / "x.csv")
    monkeypatch.setenv("CL_PIPELINE_CONFIG", str(path))
    assert AuditConfigResource().load().model.n_folds == 4
    monkeypatch.delenv("CL_PIPELINE_CONFIG")
    inline = AuditConfigResource(settings={"source": {"noise_rate": 0.2}}).load()
    assert inline.source.kind == "embedded" and inline.source.noise_rate == 0.2


def test_storage_data_dir_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CL_PIPELINE_DATA_DIR", str(tmp_path / "d"))
    assert PipelineStorage().root == tmp_path / "d"
    assert PipelineStorage(data_dir="elsewhere").root == Path("elsewhere")
    monkeypatch.delenv("CL_PIPELINE_DATA_DIR")
    assert PipelineStorage().root == Path("data")
