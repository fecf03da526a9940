"""`cl-pipeline find` with bad input: exit 2 with a message naming the argument and the value, no
traceback, and no ``--out`` file written (issue 10, item 8)."""

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

PROBS = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7], [0.8, 0.2]])
LABELS = np.array([0, 1, 0, 1, 1])


def _write_inputs(folder: Path) -> tuple[Path, Path]:
    np.save(folder / "p.npy", PROBS)
    np.save(folder / "y.npy", LABELS)
    return folder / "p.npy", folder / "y.npy"


def _find(run_cli, *argv: str) -> tuple[int, str]:
    """Run ``find``; return (exit code, stderr), an argparse refusal included (it exits 2 via SystemExit)."""
    try:
        code, _, err = run_cli("find", *argv)
    except SystemExit as exc:
        code, err = int(exc.code), ""
    return code, err


def _zero_bytes(folder: Path) -> tuple[Path, Path]:
    p, y = _write_inputs(folder)
    p.write_bytes(b"")
    return p, y


def _zero_byte_labels(folder: Path) -> tuple[Path, Path]:
    p, y = _write_inputs(folder)
    y.write_bytes(b"")
    return p, y


def _no_rows_npy(folder: Path) -> tuple[Path, Path]:
    np.save(folder / "p.npy", np.zeros((0, 2)))
    np.save(folder / "y.npy", np.zeros(0, dtype=int))
    return folder / "p.npy", folder / "y.npy"


def _header_only_csv(folder: Path) -> tuple[Path, Path]:
    (folder / "p.csv").write_text("p0,p1\n")
    return folder / "p.csv", _write_inputs(folder)[1]


def _header_only_labels_csv(folder: Path) -> tuple[Path, Path]:
    (folder / "y.csv").write_text("label\n")
    return _write_inputs(folder)[0], folder / "y.csv"


def _empty_parquet(folder: Path) -> tuple[Path, Path]:
    pd.DataFrame(PROBS, columns=["p0", "p1"]).iloc[:0].to_parquet(folder / "p.parquet")
    return folder / "p.parquet", _write_inputs(folder)[1]


def _ragged_list_parquet(folder: Path) -> tuple[Path, Path]:
    lists = [list(row) for row in PROBS]
    lists[3] = [0.2, 0.3, 0.5]
    pd.DataFrame({"pred_probs": lists}).to_parquet(folder / "p.parquet")
    return folder / "p.parquet", _write_inputs(folder)[1]


def _empty_list_parquet(folder: Path) -> tuple[Path, Path]:
    lists = [list(row) for row in PROBS]
    lists[2] = []
    pd.DataFrame({"pred_probs": lists}).to_parquet(folder / "p.parquet")
    return folder / "p.parquet", _write_inputs(folder)[1]


def _null_in_list_parquet(folder: Path) -> tuple[Path, Path]:
    lists: list[list[float] | None] = [list(row) for row in PROBS]
    lists[1] = None
    pd.DataFrame({"pred_probs": lists}).to_parquet(folder / "p.parquet")
    return folder / "p.parquet", _write_inputs(folder)[1]


def _list_column_csv(folder: Path) -> tuple[Path, Path]:
    cells = [f'"[{a}, {b}]"' for a, b in PROBS]
    cells[3] = '"[0.2, 0.3, 0.5]"'
    (folder / "p.csv").write_text("pred_probs\n" + "\n".join(cells) + "\n")
    return folder / "p.csv", _write_inputs(folder)[1]


INPUT_CASES: dict[str, tuple[Callable[[Path], tuple[Path, Path]], str]] = {
    "npy-zero-bytes": (_zero_bytes, "pred_probs: cannot read"),
    "labels-npy-zero-bytes": (_zero_byte_labels, "labels: cannot read"),
    "npy-no-rows": (_no_rows_npy, "pred_probs must have at least one row, got shape (0, 2)"),
    "csv-header-only": (_header_only_csv, "pred_probs: {p} has no rows"),
    "labels-csv-header-only": (_header_only_labels_csv, "labels: {y} has no rows"),
    "parquet-no-rows": (_empty_parquet, "pred_probs: {p} has no rows"),
    "parquet-ragged-list-column": (
        _ragged_list_parquet,
        "pred_probs: list column 'pred_probs' is ragged: row 3 has 3 values, row 0 has 2",
    ),
    "parquet-empty-list": (_empty_list_parquet, "pred_probs: list column 'pred_probs' is ragged: row 2 has 0 values"),
    "parquet-null-list": (_null_in_list_parquet, "pred_probs: list column 'pred_probs' has no list in row 1: None"),
    "csv-list-column": (
        _list_column_csv,
        "pred_probs: column 'pred_probs' is not numeric, e.g. row 0: '[0.9, 0.1]' "
        "(a list column can be read from Parquet only)",
    ),
}


@pytest.mark.parametrize("case", sorted(INPUT_CASES))
def test_bad_input_file_exits_2_naming_it(tmp_path: Path, run_cli, case: str) -> None:
    make, message = INPUT_CASES[case]
    p, y = make(tmp_path)
    out = tmp_path / "out.csv"
    code, err = _find(run_cli, str(p), str(y), "--out", str(out))
    assert code == 2, err
    assert message.format(p=p, y=y) in err
    assert not out.exists()


@pytest.mark.parametrize(
    "shape, size",
    [((4, 40_000), "11.9 GiB"), ((4, 3000), "68.7 MiB"), ((2000, 2897), "64.0 MiB")],
    ids=["issue-k40000-n4", "k3000-n4", "k2897-n2000"],
)
def test_more_classes_than_examples_is_refused_before_allocating(tmp_path: Path, run_cli, shape, size) -> None:
    """K > n and K*K*8 > 64 MiB: find's K x K matrices would outgrow pred_probs and the allowance."""
    n, k = shape
    np.save(tmp_path / "p.npy", np.full(shape, 1.0 / k))
    np.save(tmp_path / "y.npy", np.arange(n) % k)
    out = tmp_path / "out.parquet"
    code, err = _find(run_cli, str(tmp_path / "p.npy"), str(tmp_path / "y.npy"), "--out", str(out))
    assert code == 2, err
    assert f"pred_probs has {k} classes but {n} examples (shape ({n}, {k}))" in err
    assert f"K x K count matrix would take {size} (K*K*8 bytes)" in err
    assert not out.exists()


@pytest.mark.parametrize(
    "shape", [(4, 2896), (2897, 2897), (1, 2)], ids=["k2896-n4-within-allowance", "k-equals-n", "tiny-k-above-n"]
)
def test_class_count_within_the_size_rule_is_read(tmp_path: Path, shape) -> None:
    from cl_pipeline.storage.inputs import read_find_inputs

    np.save(tmp_path / "p.npy", np.full(shape, 1.0 / shape[1], dtype=np.float32))
    np.save(tmp_path / "y.npy", np.zeros(shape[0], dtype=int))
    assert read_find_inputs(str(tmp_path / "p.npy"), str(tmp_path / "y.npy")).pred_probs.shape == shape


def _a_file(tmp: Path) -> str:
    (tmp / "plain.txt").write_text("x")
    return str(tmp / "plain.txt" / "out.csv")


def _a_folder(tmp: Path) -> str:
    (tmp / "taken.csv").mkdir()
    return str(tmp / "taken.csv")


OUT_CASES: dict[str, tuple[Callable[[Path], str], str]] = {
    "under-a-file": (_a_file, "plain.txt is not a folder"),
    "proc": (lambda tmp: "/proc/cl_pipeline_out.csv", "cannot write in /proc"),
    "is-a-folder": (_a_folder, "taken.csv is a folder"),
    "bad-suffix": (lambda tmp: str(tmp / "out.txt"), "use a .csv or .parquet file name"),
}


@pytest.mark.parametrize("case", sorted(OUT_CASES))
@pytest.mark.parametrize("inputs", ["valid", "missing"])
def test_unwritable_out_is_refused_before_reading_inputs(tmp_path: Path, run_cli, case: str, inputs: str) -> None:
    """Checked first: with missing inputs too, the error is about --out (no work is done before it)."""
    where, message = OUT_CASES[case]
    if case == "proc" and not Path("/proc").is_dir():
        pytest.skip("no /proc here")
    out = where(tmp_path)
    p, y = _write_inputs(tmp_path) if inputs == "valid" else (tmp_path / "none.npy", tmp_path / "none.npy")
    before = sorted(tmp_path.rglob("*"))
    code, err = _find(run_cli, str(p), str(y), "--out", out)
    assert code == 2, err
    assert f"--out {out}" in err and message in err
    assert sorted(tmp_path.rglob("*")) == before


def test_out_in_a_new_folder_is_still_created(tmp_path: Path, run_cli) -> None:
    p, y = _write_inputs(tmp_path)
    out = tmp_path / "new" / "deeper" / "out.csv"
    code, err = _find(run_cli, str(p), str(y), "--out", str(out))
    assert code == 0, err
    assert len(pd.read_csv(out)) == len(LABELS)


FLAG_CASES = [
    ("--max-noise-rate", "nan", "must be a finite number in [0, 1], got 'nan'"),
    ("--max-noise-rate", "-1", "must be a finite number in [0, 1], got '-1'"),
    ("--max-noise-rate", "5", "must be a finite number in [0, 1], got '5'"),
    ("--max-noise-rate", "inf", "must be a finite number in [0, 1], got 'inf'"),
    ("--max-noise-rate", "-inf", "must be a finite number in [0, 1], got '-inf'"),
    ("--max-noise-rate", "half", "must be a finite number in [0, 1], got 'half'"),
    ("--top", "0", "must be an integer >= 1, got '0'"),
    ("--top", "-1", "must be an integer >= 1, got '-1'"),
    ("--top", "2.5", "must be an integer >= 1, got '2.5'"),
]


@pytest.mark.parametrize(
    "flag, value, message", FLAG_CASES, ids=[f"{flag[2:]}={value}" for flag, value, _ in FLAG_CASES]
)
def test_bad_flag_values_exit_2(tmp_path: Path, capsys, flag: str, value: str, message: str) -> None:
    from cl_pipeline import cli

    p, y = _write_inputs(tmp_path)
    out = tmp_path / "out.csv"
    with pytest.raises(SystemExit) as exc:
        cli.main(["find", str(p), str(y), "--out", str(out), f"{flag}={value}"])
    assert exc.value.code == 2
    assert f"argument {flag}: {message}" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize(
    "value, code", [("0", 3), ("0.2", 3), ("0.25", 0), ("1", 0)], ids=["zero", "below", "equal", "one"]
)
def test_max_noise_rate_bounds_are_inclusive(tmp_path: Path, run_cli, value: str, code: int) -> None:
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.85, 0.15], [0.95, 0.05], [0.1, 0.9], [0.2, 0.8], [0.15, 0.85]])
    np.save(tmp_path / "p.npy", np.vstack([probs, [[0.05, 0.95]]]))
    np.save(tmp_path / "y.npy", np.array([0, 0, 0, 1, 1, 1, 1, 0]))  # two flipped labels: noise rate 0.25
    got, err = _find(run_cli, str(tmp_path / "p.npy"), str(tmp_path / "y.npy"), "--max-noise-rate", value)
    assert got == code, err
