"""One cell of the synthetic-noise grid end to end (wine, seconds), and its report."""

import argparse
import math

import pytest
from threadpoolctl import threadpool_limits


@pytest.fixture(scope="module")
def grid():
    from benchmarks import noise_grid

    return noise_grid


def test_one_cell_and_report(grid, tmp_path):
    X, y = grid.load_dataset("wine")
    with threadpool_limits(limits=1, user_api="blas"):
        split = grid.make_split(X, y, seed=0)
        split.clean_accuracy = grid.base_model().fit(split.X_train, split.y_train).score(split.X_test, split.y_test)
        row = grid.run_cell("wine", split, 0.2, 0.4, seed=0, n_jobs=1)
    assert not row.error
    assert row.same_flags  # same folds, same model, parity core -> same mask as cleanlab
    assert row.acc_ours == row.acc_cleanlab
    assert 0.1 < row.true_noise < 0.3
    for name in ("precision", "recall", "f1", "acc_noisy", "acc_ours", "acc_clean"):
        assert 0 <= getattr(row, name) <= 1, name
    assert row.joint_rmse < 0.1 and math.isfinite(row.noise_err)
    for name in (
        "prec_default",
        "rec_default",
        "prec_recommended",
        "rec_recommended",
        "ap_self_confidence",
        "ap_recommended",
    ):
        assert 0 < getattr(row, name) <= 1, name
    # the recommended filter is the intersection of two rules, the default one of them
    assert row.rec_recommended <= row.rec_default
    args = argparse.Namespace(n_jobs=1, seeds=(0,))
    text = grid.render_section([row], args, wall=1.0, load=(0.0, 0.0, 0.0))
    assert "| wine | 0.2 | 0.4 |" in text and "in every cell: **yes**" in text
    assert "### Recommended setting vs cleanlab's default on the grid" in text
    assert f"| wine | 0.2 | {row.prec_default:.3f} | {row.prec_recommended:.3f} |" in text
    grid.write_csv([row], str(tmp_path / "rows.csv"))
    assert grid.read_csv_rows(str(tmp_path / "rows.csv")) == [row]  # --from-csv re-renders the same
