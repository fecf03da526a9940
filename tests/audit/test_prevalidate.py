"""``prevalidate``: one validation per audit, shared by the CLI and ``raw_labels``."""

from pathlib import Path

import pytest
from pipeline_helpers import make_small_frame, write_small

from cl_pipeline.audit import preflight
from cl_pipeline.audit.preflight import audit_date, prevalidate
from cl_pipeline.config import ConfigError, load_config

DATE = "2025-03-01"


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record every call of ``validate_snapshot`` made by ``prevalidate``."""
    calls: list[str] = []
    real = preflight.validate_snapshot

    def spy(frame, config, date):
        calls.append(date)
        return real(frame, config, date)

    monkeypatch.setattr(preflight, "validate_snapshot", spy)
    monkeypatch.setattr(preflight._LastValidated, "key", None)
    return calls


def test_second_call_reuses_the_validated_snapshot(tmp_path: Path, counted: list[str]) -> None:
    config = load_config(write_small(tmp_path))
    first = prevalidate(config, DATE)
    assert prevalidate(config, DATE) is first
    assert counted == [DATE]


@pytest.mark.parametrize("change", ["other date", "other config", "source file rewritten"])
def test_any_change_validates_again(tmp_path: Path, counted: list[str], change: str) -> None:
    path = write_small(tmp_path)
    config = load_config(path)
    prevalidate(config, DATE)
    date = DATE
    if change == "other date":
        date = "2025-03-02"
    elif change == "other config":
        config = load_config(path, overrides={"checks": {"max_noise_rate": 0.2}})
    else:
        make_small_frame(seed=1).to_csv(tmp_path / "labels.csv", index=False)
    prevalidate(config, date)
    assert len(counted) == 2


def test_an_audit_validates_each_snapshot_once(env: Path, run_cli, counted: list[str]) -> None:
    config = write_small(env.parent / "in")
    code, _, err = run_cli("audit", "--config", str(config), "--date", DATE)
    assert code == 0, err
    assert counted == [DATE]


@pytest.mark.parametrize("text", ["2025-13-01", "not a date", "1999-01-01"])
def test_bad_or_out_of_range_dates(text: str) -> None:
    with pytest.raises(ConfigError, match="--date"):
        audit_date(text, load_config(None))
