"""benchmarks/multiannotator.py end to end on small sizes: outputs identical to cleanlab, the report has its rows."""

import argparse

import pytest

from benchmarks import multiannotator as bench


@pytest.mark.slow
def test_small_run_and_report(tmp_path) -> None:
    args = argparse.Namespace(n=1500, m=6, k=4, labels=4, reps=1, seeds=1, no_cleanlab=False)
    rows, digits = bench.run(args)
    for row in rows:
        assert "error" not in row["ours"] and "error" not in row["cleanlab"], row
        assert row["identical"], row["comparison"]
        assert row["speedup"] > 0
    (ma, ml), (d,) = rows, digits
    assert ma["size"]["annotations"] > 1500 and ml["size"] == {"n": 1500, "k": 4}
    assert d["same_as_cleanlab"] and d["acc_crowdlab_ours"] == d["acc_crowdlab_cleanlab"]
    assert d["acc_crowdlab_ours"] > d["acc_majority_vote"] > 0.5  # the simulation's point: weighing annotators helps
    assert d["rank_quality_ours"] > 0.5
    text = bench.report(rows, digits)
    assert "| `get_label_quality_multiannotator` | 1,500 x 6 annotators, K = 4" in text
    assert "| multilabel `find_label_issues` | 1,500 x 4 labels |" in text
    assert "all fields bit-identical" in text and "| 0 | 1,797 |" in text


def test_simulation_is_seeded_and_has_known_accuracies() -> None:
    x, truth, labels, accuracy, per_example = bench.simulate_digits(seed=3)
    again = bench.simulate_digits(seed=3)[2]
    assert labels.shape[0] == truth.shape[0] == 1797 and (labels == again).sum() == (~(labels != labels)).sum()
    assert set(per_example.tolist()) <= {1, 2, 3, 4, 5}
    assert ((~(labels != labels)).sum(axis=1) == per_example).all()  # NaN != NaN: counts the labels
    observed = [(labels[:, j] == truth)[labels[:, j] == labels[:, j]].mean() for j in range(labels.shape[1])]
    assert abs(float(sum(observed) / len(observed)) - float(accuracy.mean())) < 0.08
