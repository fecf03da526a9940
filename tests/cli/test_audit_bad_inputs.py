"""`cl-pipeline audit` with bad input: exit 2 with a message naming the key or argument and the
value, no traceback, nothing written (issue 10, item 9)."""

from pathlib import Path

import pytest
from pipeline_helpers import SMALL_CONFIG, data_files, make_small_frame

from cl_pipeline.audit.preflight import audit_date
from cl_pipeline.config import MAX_EMBEDDED_NOISE_RATE, ConfigError, SourceConfig, load_config

DATE = "2025-01-01"


def _audit(run_cli, *argv: str) -> tuple[int, str]:
    """Run ``audit``; return (exit code, stderr), an argparse refusal included (it exits 2 via SystemExit)."""
    try:
        code, _, err = run_cli("audit", *argv)
    except SystemExit as exc:
        code, err = int(exc.code), ""
    return code, err


def _assert_nothing_written(env: Path) -> None:
    assert data_files(env) == []
    assert not (env.parent / "dagster_home").exists()


def _folder_config(folder: Path, pattern: str) -> str:
    """A folder source holding one snapshot (``labels_2025-01-01.csv``), with ``pattern``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "snaps").mkdir(exist_ok=True)
    make_small_frame().to_csv(folder / "snaps" / f"labels_{DATE}.csv", index=False)
    text = SMALL_CONFIG.format(path="snaps").replace('kind = "file"', 'kind = "folder"')
    return text.replace('path = "snaps"\n', f'path = "snaps"\npattern = {pattern!r}\n')


def _empty_npy(folder: Path) -> str:
    """Supplied probabilities in an empty ``.npy`` (found by the fuzz test: EOFError)."""
    folder.mkdir(parents=True, exist_ok=True)
    make_small_frame().to_csv(folder / "labels.csv", index=False)
    (folder / "probs.npy").write_bytes(b"")
    return '[source]\nkind = "file"\npath = "labels.csv"\n[columns]\nprobabilities_npy = "probs.npy"\n'


def _duckdb_junk(folder: Path, content: bytes) -> str:
    (folder / "w.duckdb").write_bytes(content)
    return '[source]\nkind = "duckdb"\npath = "w.duckdb"\ntable = "labels"\n[columns]\nnumeric = ["f*"]\n'


CONFIG_CASES = {
    "duckdb-not-a-database": (
        "audit.toml",
        lambda folder: _duckdb_junk(folder, b"this is not a database\n" * 100),
        "source.path {folder}/w.duckdb is not a DuckDB database",
    ),
    "duckdb-empty-file": (
        "audit.toml",
        lambda folder: _duckdb_junk(folder, b""),
        "source.path {folder}/w.duckdb is not a DuckDB database",
    ),
    "probabilities-npy-empty": (
        "audit.toml",
        _empty_npy,
        "columns.probabilities_npy: cannot read {folder}/probs.npy: No data left in file",
    ),
    "yaml-python-object-tag": (
        "audit.yaml",
        lambda folder: "source: !!python/object:os.system {}\n",
        "cannot parse config file {folder}/audit.yaml: YAML: could not determine a constructor for the tag "
        "'tag:yaml.org,2002:python/object:os.system'",
    ),
    "yaml-python-name-tag": (
        "audit.yaml",
        lambda folder: "model:\n  estimator: !!python/name:os.system\n",
        "'tag:yaml.org,2002:python/name:os.system' (line 2, column 14)",
    ),
    "yaml-unknown-local-tag": (
        "audit.yaml",
        lambda folder: "checks: !thresholds {max_noise_rate: 0.1}\n",
        "could not determine a constructor for the tag '!thresholds' (line 1, column 9)",
    ),
    "yaml-unclosed-bracket": (
        "audit.yaml",
        lambda folder: "source: {kind: file,\n  path: [labels.csv\n",
        "cannot parse config file {folder}/audit.yaml: YAML: ",
    ),
    "yaml-tab-indent": (
        "audit.yaml",
        lambda folder: "source:\n\tkind: file\n",
        "found character '\\t' that cannot start any token (line 2, column 1)",
    ),
    "pattern-absolute": (
        "audit.toml",
        lambda folder: _folder_config(folder, "/etc/*"),
        "source.pattern '/etc/*' must be a glob relative to source.path",
    ),
    "pattern-parent": (
        "audit.toml",
        lambda folder: _folder_config(folder, "../*"),
        "source.pattern '../*' must be a glob relative to source.path",
    ),
    "pattern-parent-inside": (
        "audit.toml",
        lambda folder: _folder_config(folder, "a/../../snaps/*.csv"),
        "source.pattern 'a/../../snaps/*.csv' must be a glob relative to source.path",
    ),
    "pattern-empty": (
        "audit.toml",
        lambda folder: _folder_config(folder, ""),
        "source.pattern '' must be a glob relative to source.path",
    ),
    "pattern-partial-double-star": (
        "audit.toml",
        lambda folder: _folder_config(folder, "labels_**.csv"),
        "source.pattern 'labels_**.csv': '**' can only be a whole path component",
    ),
    "seed-negative": (
        "audit.toml",
        lambda folder: "[source]\nseed = -1\n",
        "source.seed: Input should be greater than or equal to 0, got -1",
    ),
    "noise-rate-above-feasible": (
        "audit.toml",
        lambda folder: "[source]\nnoise_rate = 0.89\n",
        "source.noise_rate: Input should be less than or equal to 0.8, got 0.89",
    ),
    "noise-rate-just-above-bound": (
        "audit.toml",
        lambda folder: "[source]\nnoise_rate = 0.81\n",
        "source.noise_rate: Input should be less than or equal to 0.8, got 0.81",
    ),
    "noise-rate-nan": (
        "audit.toml",
        lambda folder: "[source]\nnoise_rate = nan\n",
        "source.noise_rate: Input should be less than or equal to 0.8, got nan",
    ),
}


@pytest.mark.parametrize("case", sorted(CONFIG_CASES))
def test_bad_config_exits_2_naming_the_key(env: Path, run_cli, case: str) -> None:
    name, text, message = CONFIG_CASES[case]
    folder = env.parent / "in"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text(folder))
    code, err = _audit(run_cli, "--config", str(folder / name), "--date", DATE)
    assert code == 2, err
    assert message.format(folder=folder) in err
    _assert_nothing_written(env)


@pytest.mark.parametrize("pattern", ["labels_*.csv", "*", "**/*.csv", "./labels_*"])
def test_patterns_inside_the_folder_still_work(tmp_path: Path, pattern: str) -> None:
    from cl_pipeline.storage.sources import snapshot_dates

    (tmp_path / "audit.toml").write_text(_folder_config(tmp_path, pattern))
    assert snapshot_dates(load_config(tmp_path / "audit.toml").source) == [DATE]


DATE_CASES = ["2026", "now", "Nov 20 2026", "20261120", "2025-02-30", "2025-1-05", " 2025-01-05", "2025-01-05T00:00"]


@pytest.mark.parametrize("text", DATE_CASES)
def test_date_must_be_yyyy_mm_dd(env: Path, run_cli, text: str) -> None:
    folder = env.parent / "in"
    folder.mkdir(parents=True)
    (folder / "audit.toml").write_text(_folder_config(folder, "labels_*.csv"))
    code, err = _audit(run_cli, "--config", str(folder / "audit.toml"), "--date", text)
    assert code == 2, err
    assert f"--date {text!r} is not a date YYYY-MM-DD" in err
    _assert_nothing_written(env)
    with pytest.raises(ConfigError, match="is not a date YYYY-MM-DD"):
        audit_date(text, load_config(None))


def test_a_real_date_in_range_is_accepted() -> None:
    assert audit_date("2025-01-05", load_config(None)) == "2025-01-05"


@pytest.mark.parametrize("value", ["nan", "-1", "5", "inf"])
def test_audit_max_noise_rate_must_be_a_fraction(env: Path, capsys, value: str) -> None:
    from cl_pipeline import cli

    with pytest.raises(SystemExit) as exc:
        cli.main(["audit", "--date", DATE, f"--max-noise-rate={value}"])
    assert exc.value.code == 2
    assert f"argument --max-noise-rate: must be a finite number in [0, 1], got {value!r}" in capsys.readouterr().err
    _assert_nothing_written(env)


@pytest.mark.parametrize("value", ["0", "-3"])
def test_diff_limit_must_be_positive(env: Path, capsys, value: str) -> None:
    from cl_pipeline import cli

    with pytest.raises(SystemExit) as exc:
        cli.main(["diff", DATE, "2025-01-02", f"--limit={value}"])
    assert exc.value.code == 2
    assert f"argument --limit: must be an integer >= 1, got {value!r}" in capsys.readouterr().err


def test_schema_states_the_feasible_noise_rate_bound() -> None:
    schema = SourceConfig.model_json_schema()["properties"]["noise_rate"]
    assert schema["maximum"] == MAX_EMBEDDED_NOISE_RATE == 0.8
    assert "learnable" in schema["description"]
    assert SourceConfig.model_json_schema()["properties"]["seed"]["minimum"] == 0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_embedded_noise_at_the_bound_is_feasible(seed: int) -> None:
    """At the bound, each seed finds a learnable noise matrix for the digits (in about 175 draws)."""
    from cl_pipeline.datasets import load_embedded

    frame = load_embedded(noise_rate=MAX_EMBEDDED_NOISE_RATE, seed=seed)
    assert (frame["label"] != frame["true_label"]).mean() > 0.5
