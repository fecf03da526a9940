"""Monitoring against a reference, without Dagster: the z-test by hand, the flag rule against
cleanlab, the streaming pass against the in-memory one, and the history picture's data."""

import math
import xml.etree.ElementTree as ET

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.stats import norm

from cl_pipeline import core
from cl_pipeline.audit import monitor
from cl_pipeline.audit.history_plot import history_svg, rate_history
from cl_pipeline.storage import PartitionStore


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20240102)


def _noisy(rng: np.random.Generator, n: int, k: int, flip: float, dtype: type = np.float64):
    truth = rng.integers(0, k, n)
    probs = rng.dirichlet(np.ones(k), n) * 0.5 + np.eye(k)[truth] * 0.5
    probs = (probs / probs.sum(axis=1, keepdims=True)).astype(dtype)
    given_labels = truth.copy()
    flips = rng.random(n) < flip
    given_labels[flips] = (truth[flips] + rng.integers(1, k, flips.sum())) % k
    return given_labels, probs


# --- the two-proportion z-test ------------------------------------------------------------------

# (x_new, n_new, x_ref, n_ref, z by hand). 30/100 vs 10/100: pooled 0.2, se = sqrt(0.2 * 0.8 * (1/100 + 1/100))
# = sqrt(0.0032) = 0.056569, z = 0.2 / 0.056569 = 3.5355. 225/797 vs 19/200: pooled 244/997 = 0.244734,
# se = sqrt(0.244734 * 0.755266 * (1/797 + 1/200)) = sqrt(0.184840 * 0.0062547) = 0.034002,
# z = (0.282309 - 0.095) / 0.034002 = 5.5088. 12/400 vs 12/400: z = 0.
HAND = [
    pytest.param(30, 100, 10, 100, 3.535534, id="30/100 vs 10/100"),
    pytest.param(225, 797, 19, 200, 5.5088, id="225/797 vs 19/200 (the pipeline's noisy date)"),
    pytest.param(12, 400, 12, 400, 0.0, id="equal rates"),
    pytest.param(10, 100, 30, 100, -3.535534, id="cleaner than the reference"),
]


@pytest.mark.parametrize(("x1", "n1", "x2", "n2", "z"), HAND)
def test_z_matches_the_hand_computation(x1: int, n1: int, x2: int, n2: int, z: float) -> None:
    greater = monitor.two_proportion_ztest(x1, n1, x2, n2, "greater")
    both = monitor.two_proportion_ztest(x1, n1, x2, n2, "two-sided")
    assert greater.z == pytest.approx(z, abs=1e-4) and both.z == greater.z
    assert greater.pooled == pytest.approx((x1 + x2) / (n1 + n2))
    assert greater.p_value == pytest.approx(norm.sf(greater.z), rel=1e-9)  # scipy as the oracle of the tail
    assert both.p_value == pytest.approx(2 * norm.sf(abs(greater.z)), rel=1e-9)


def test_p_values_at_the_textbook_quantiles() -> None:
    """z = 1.6449 and 1.96 give the one- and two-sided 5% levels (normal table)."""
    # 0.55 vs 0.45 with n = 100 each: pooled 0.5, se = sqrt(0.25 * 0.02) = 0.070711, z = 1.41421
    test = monitor.two_proportion_ztest(55, 100, 45, 100)
    assert test.z == pytest.approx(math.sqrt(2), rel=1e-12)
    assert test.p_value == pytest.approx(0.078650, abs=1e-6)  # 1 - Phi(1.4142) from the normal table
    assert 0.5 * math.erfc(1.959964 / math.sqrt(2)) == pytest.approx(0.025, abs=1e-7)


@pytest.mark.parametrize(("x1", "x2"), [(0, 0), (50, 50)], ids=["both zero", "both one"])
def test_no_spread_means_no_evidence(x1: int, x2: int) -> None:
    test = monitor.two_proportion_ztest(x1, 50, x2, 50, "two-sided")
    assert (test.z, test.p_value) == (0.0, 1.0)


@given(
    n1=st.integers(1, 10_000),
    n2=st.integers(1, 10_000),
    f1=st.floats(0, 1),
    f2=st.floats(0, 1),
)
def test_properties_of_the_test(n1: int, n2: int, f1: float, f2: float) -> None:
    x1, x2 = round(f1 * n1), round(f2 * n2)
    one = monitor.two_proportion_ztest(x1, n1, x2, n2, "greater")
    both = monitor.two_proportion_ztest(x1, n1, x2, n2, "two-sided")
    swapped = monitor.two_proportion_ztest(x2, n2, x1, n1, "two-sided")
    assert 0.0 <= one.p_value <= 1.0 and 0.0 <= both.p_value <= 1.0
    assert np.sign(one.z) == np.sign(x1 / n1 - x2 / n2) or one.z == 0.0
    assert both.p_value == pytest.approx(min(1.0, 2 * min(one.p_value, 1 - one.p_value)), abs=1e-12)
    assert swapped.z == pytest.approx(-both.z) and swapped.p_value == pytest.approx(both.p_value)


@pytest.mark.parametrize(
    ("args", "error", "named"),
    [
        pytest.param((5, 4, 1, 10), ValueError, "x_new = 5 is larger than n_new = 4", id="x above n"),
        pytest.param((0, 0, 1, 10), ValueError, "n_new must be >= 1", id="no new rows"),
        pytest.param((1, 10, -1, 10), ValueError, "x_ref must be >= 0", id="negative count"),
        pytest.param((1.5, 10, 1, 10), TypeError, "x_new must be an integer", id="fractional count"),
        pytest.param((True, 10, 1, 10), TypeError, "x_new must be an integer", id="bool count"),
    ],
)
def test_bad_counts_are_named(args: tuple, error: type, named: str) -> None:
    with pytest.raises(error, match=named):
        monitor.two_proportion_ztest(*args)


def test_bad_alternative_and_alpha_are_named() -> None:
    with pytest.raises(ValueError, match="alternative must be one of"):
        monitor.two_proportion_ztest(1, 10, 1, 10, "less")
    for alpha in (0.0, 1.0, float("nan"), "0.05"):
        with pytest.raises(ValueError, match="alpha must be a number in"):
            monitor.compare(1, 10, 1, 10, alpha)


def test_compare_fires_only_below_alpha() -> None:
    result = monitor.compare(225, 797, 19, 200, alpha=0.01)
    assert result.significant and result.new_rate == 225 / 797 and result.reference_rate == 19 / 200
    assert not monitor.compare(70, 797, 19, 200, alpha=0.01).significant


# --- the flag rule --------------------------------------------------------------------------------


@pytest.mark.parametrize("filter_by", monitor.MONITOR_FILTERS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("k", [2, 3, 10], ids=lambda k: f"K={k}")
def test_with_own_thresholds_the_rule_is_cleanlabs_filter(rng, filter_by: str, dtype: type, k: int) -> None:
    """With the data's own thresholds, the reference rule is cleanlab's ``confident_learning`` /
    ``predicted_neq_given`` filter exactly (cleanlab as the oracle)."""
    from cleanlab.filter import find_label_issues

    labels, probs = _noisy(rng, 600, k, 0.2, dtype)
    thresholds = core.get_confident_thresholds(labels, probs)
    ours = monitor.flag_rows(labels, probs, thresholds, filter_by)
    np.testing.assert_array_equal(ours, find_label_issues(labels, probs, filter_by=filter_by))
    assert 0 < ours.sum() < ours.size


def test_a_row_flag_uses_the_reference_thresholds_not_the_batch(rng) -> None:
    """A row's flag depends on the thresholds and the row only: each row alone gives the same flag."""
    labels, probs = _noisy(rng, 200, 4, 0.3)
    thresholds = np.array([0.3, 0.5, 0.7, 0.9])
    together = monitor.flag_rows(labels, probs, thresholds)
    alone = np.concatenate([monitor.flag_rows(labels[i : i + 1], probs[i : i + 1], thresholds) for i in range(200)])
    np.testing.assert_array_equal(together, alone)
    assert not np.array_equal(together, monitor.flag_rows(labels, probs, core.get_confident_thresholds(labels, probs)))


def test_bad_rows_and_filters_are_refused(rng) -> None:
    labels, probs = _noisy(rng, 10, 3, 0.0)
    with pytest.raises(ValueError, match="filter_by must be one of"):
        monitor.flag_rows(labels, probs, np.full(3, 0.5), "prune_by_noise_rate")
    with pytest.raises(ValueError, match="thresholds"):
        monitor.flag_rows(labels, probs, np.full(4, 0.5))
    with pytest.raises(ValueError):
        monitor.flag_rows(labels, probs * 2, np.full(3, 0.5))  # rows do not sum to 1


# --- the streaming pass ------------------------------------------------------------------------------

CLASSES = ["ant", "bee", "cat", "dog"]


def _batches(labels: np.ndarray, probs: np.ndarray, size: int) -> list[pa.RecordBatch]:
    ids = pa.array([f"new-{i:05d}" for i in range(labels.size)])
    flat = pa.FixedSizeListArray.from_arrays(pa.array(probs.reshape(-1)), probs.shape[1])
    table = pa.table({"id": ids, "label_index": pa.array(labels), "p": flat})
    return table.to_batches(max_chunksize=size)


@pytest.mark.parametrize("size", [1, 7, 64, 400, 5000], ids=lambda s: f"batches of {s}")
@pytest.mark.parametrize("filter_by", monitor.MONITOR_FILTERS)
def test_the_streaming_pass_equals_the_in_memory_computation(rng, size: int, filter_by: str) -> None:
    labels, probs = _noisy(rng, 400, 4, 0.25)
    thresholds = core.get_confident_thresholds(*_noisy(rng, 500, 4, 0.1))  # a reference's thresholds
    tally = monitor.FlagTally()
    out = pa.Table.from_batches(
        list(
            monitor.score_batches(
                _batches(labels, probs, size),
                lambda b: b.column("label_index").to_numpy(),
                lambda b: b.column("p").flatten().to_numpy().reshape(-1, 4),
                thresholds,
                CLASSES,
                monitor.monitor_schema(pa.string()),
                tally,
                filter_by,
            )
        )
    )
    expected = monitor.flag_rows(labels, probs, thresholds, filter_by)
    np.testing.assert_array_equal(out.column("is_flagged").to_numpy(), expected)
    assert (tally.rows, tally.flagged) == (400, int(expected.sum())) and 0 < expected.sum() < 400
    assert out.column("row").to_pylist() == list(range(400))
    assert out.column("given_label").to_pylist() == [CLASSES[i] for i in labels]
    assert out.column("suggested_label").to_pylist() == [CLASSES[i] for i in probs.argmax(axis=1)]
    np.testing.assert_array_equal(out.column("self_confidence").to_numpy(), probs[np.arange(400), labels])


# --- the history picture ------------------------------------------------------------------------------


def test_the_history_reads_every_date_and_draws_it(tmp_path) -> None:
    store = PartitionStore(tmp_path)
    for date, n, noise, issues in [("2024-01-02", 100, 0.1, 9), ("2024-01-03", 80, 0.3, 20)]:
        row = {"n": n, "estimated_noise_rate": noise, "num_issues": issues}
        store.write("audit_summary", date, pd.DataFrame([row]))
    info = {"new_noise_rate": 0.25, "reference_noise_rate": 0.09, "significant": True, "reference_date": "2024-01-02"}
    store.write_batches("monitor_scores", "2024-01-03", monitor.monitor_schema(pa.string()), [], info)
    history = rate_history(store)
    assert history["date"].tolist() == ["2024-01-02", "2024-01-03"]
    assert history["issue_rate"].tolist() == [0.09, 0.25] and history["noise_rate"].tolist() == [0.1, 0.3]
    assert history["monitored_rate"].isna().tolist() == [True, False] and history["monitored_rate"].iloc[1] == 0.25
    root = ET.fromstring(history_svg(history))
    ns = "{http://www.w3.org/2000/svg}"
    assert len(list(root.iter(f"{ns}circle"))) == 2 + 1  # one noise-rate point per date, one in the legend
    assert len(list(root.iter(f"{ns}polyline"))) == 2  # the noise-rate and issue-rate lines
    texts = {t.text for t in root.iter(f"{ns}text")}
    assert {"2024-01-02", "2024-01-03", "check fired", "reference 2024-01-02 flagged (same rule)"} <= texts
    assert history_svg(history) == history_svg(history.copy())
    with pytest.raises(ValueError, match="nothing to plot"):
        history_svg(history.iloc[:0])


# --- which dates are monitored --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reference", "date"),
    [(None, "2024-01-03"), ("2024-01-03", "2024-01-03"), ("2024-01-03", "2024-01-02")],
    ids=["monitoring off", "the reference date", "before the reference"],
)
def test_dates_not_after_the_reference_are_not_scored(tmp_path, reference: str | None, date: str) -> None:
    from cl_pipeline.audit.monitor_stage import check_reference, monitor_verdict
    from cl_pipeline.config import load_config

    config = load_config(overrides={"monitor": {"reference_date": reference}})
    store = PartitionStore(tmp_path)  # empty: nothing is read
    assert check_reference(store, config, date) is None
    verdict, details = monitor_verdict(store, config, date)
    assert (
        verdict.passed and details == {} and ("monitoring off" if reference is None else "not after") in verdict.message
    )


def test_a_multilabel_audit_is_refused(tmp_path) -> None:
    from cl_pipeline.audit.monitor_stage import check_reference
    from cl_pipeline.config import ConfigError, load_config

    config = load_config(
        overrides={
            "source": {"kind": "file", "path": str(tmp_path / "tags.csv")},
            "columns": {"label_kind": "multilabel"},
            "monitor": {"reference_date": "2024-01-02"},
        }
    )
    with pytest.raises(ConfigError, match="multi-label audit"):
        check_reference(PartitionStore(tmp_path), config, "2024-01-03")


def test_the_documented_monitor_section_loads() -> None:
    """The ``[monitor]`` example of docs/pipeline.md is a valid configuration with the documented defaults."""
    import tomllib
    from pathlib import Path

    from cl_pipeline.config import load_config

    text = (Path(__file__).resolve().parents[2] / "docs" / "pipeline.md").read_text(encoding="utf-8")
    section = text.split("## Monitoring against a reference", 1)[1]
    block = section.split("```toml\n", 1)[1].split("```", 1)[0]
    monitor_section = load_config(tomllib.loads(block)).monitor
    assert monitor_section.reference_date == "2024-01-02"
    defaults = load_config(overrides={"monitor": {"reference_date": "2024-01-02"}}).monitor
    assert monitor_section == defaults
