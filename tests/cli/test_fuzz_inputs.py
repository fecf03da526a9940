"""Fuzz ``cl-pipeline find`` and ``cl-pipeline audit`` with generated inputs (issue 10, item 10).

Each test is parametrized by a *kind* of bad input (``FIND_KINDS``, ``AUDIT_KINDS``: one
defect, applied to otherwise valid inputs); hypothesis varies everything else (table size
and values, file formats, config format, source kind, flags) and the bad value where a kind
has several. Every case must end in exit 2 with a message, no exception escaping
``cli.main`` (the traceback a user would see), no traceback in stderr, and nothing written:
no ``--out`` file, no data dir, no ``DAGSTER_HOME``, no other new file. ``test_*_valid``
generate valid inputs: exit 0 or 3 (2 when a generated CSV header option misreads a
file), and no traceback. Bounded examples under the derandomized ``ci`` profile, so the
cases are the same on every run.
"""

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pipeline_helpers import make_small_frame

from cl_pipeline import cli, core
from cl_pipeline.storage.inputs import CSV_HEADER_MODES

DATE = "2025-01-01"
_FUZZ = settings(max_examples=5, suppress_health_check=[HealthCheck.function_scoped_fixture])


@contextlib.contextmanager
def _isolated(folder: Path, dagster_home: Path) -> Iterator[None]:
    """Run in ``folder`` with its own env (the CLI sets env vars); restore both afterwards."""
    saved, cwd = dict(os.environ), os.getcwd()
    os.environ["DAGSTER_HOME"] = str(dagster_home)
    os.environ["CL_PIPELINE_DATA_DIR"] = str(folder / "data")
    os.environ.pop("CL_PIPELINE_CONFIG", None)
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(saved)


def _run(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, str]:
    """``cli.main(argv)``: (exit code, stderr). Any exception but argparse's SystemExit fails the test."""
    capsys.readouterr()
    try:
        code = cli.main(argv)
    except SystemExit as exc:  # argparse refuses a flag: exit 2 with its message
        code = exc.code if isinstance(exc.code, int) else 2
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    return int(code), err


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


# ---------------------------------------------------------------- find


@dataclass
class FindCase:
    """The inputs of one ``find`` call; a kind mutates them before they are written."""

    probs: Any  # ndarray, DataFrame, bytes (raw file content) or None (no file)
    labels: Any
    probs_format: str  # npy | csv | csv-bare | parquet | parquet-list
    labels_format: str  # npy | csv | csv-bare | parquet
    flags: list[str] = field(default_factory=list)
    out: str | None = None  # relative to the case folder unless absolute
    out_blocker: str | None = None  # "file" or "folder": this path of the case folder exists as one
    probs_name: str | None = None  # overrides the file name (suffix) of pred_probs
    probs_is_folder: bool = False


def _write_array(path: Path, data: Any, fmt: str) -> None:
    """Write ``data`` (array, frame or raw bytes) to ``path`` as ``fmt``."""
    if isinstance(data, bytes):
        path.write_bytes(data)
        return
    if fmt == "npy":
        np.save(path, data, allow_pickle=isinstance(data, np.ndarray) and data.dtype == object)
        return
    frame = data if isinstance(data, pd.DataFrame) else pd.DataFrame(np.asarray(data).reshape(len(data), -1))
    if fmt == "parquet-list":
        frame = pd.DataFrame({"pred_probs": list(np.asarray(data, dtype=float))})
    if fmt.startswith("parquet"):
        frame.rename(columns=str).to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False, header=fmt == "csv")


def _suffix(fmt: str) -> str:
    return "." + fmt.split("-")[0]


def _write_find_case(case: FindCase, folder: Path) -> tuple[str, str]:
    p = folder / (case.probs_name or f"p{_suffix(case.probs_format)}")
    y = folder / f"y{_suffix(case.labels_format)}"
    if case.probs_is_folder:
        p.mkdir()
    elif case.probs is not None:
        _write_array(p, case.probs, case.probs_format)
    if case.labels is not None:
        _write_array(y, case.labels, case.labels_format)
    return str(p), str(y)


def _draw_valid_find(data: st.DataObject) -> FindCase:
    n = data.draw(st.integers(3, 12), label="n")
    k = data.draw(st.integers(2, 4), label="K")
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16), label="seed"))
    probs = rng.dirichlet(np.full(k, 0.5), n)
    labels = np.where(rng.random(n) < 0.8, probs.argmax(axis=1), rng.integers(0, k, n))
    flags = ["--filter-by", data.draw(st.sampled_from(core.FILTER_METHODS), label="filter_by")]
    rank_by = data.draw(st.sampled_from([None, *core.SCORE_METHODS]), label="rank_by")
    flags += ["--rank-by", rank_by] if rank_by else []
    rate = data.draw(st.one_of(st.none(), st.floats(0, 1)), label="max_noise_rate")
    flags += [f"--max-noise-rate={rate!r}"] if rate is not None else []
    top = data.draw(st.one_of(st.none(), st.integers(1, 20)), label="top")
    flags += ["--top", str(top)] if top else []
    flags += ["--csv-header", data.draw(st.sampled_from(CSV_HEADER_MODES), label="csv_header")]
    return FindCase(
        probs=probs,
        labels=labels,
        probs_format=data.draw(st.sampled_from(["npy", "csv", "csv-bare", "parquet", "parquet-list"]), label="pf"),
        labels_format=data.draw(st.sampled_from(["npy", "csv", "csv-bare", "parquet"]), label="lf"),
        flags=flags,
        out=data.draw(st.sampled_from([None, "out.csv", "out.parquet", "new/deeper/out.csv"]), label="out"),
    )


def _cell(case: FindCase, data: st.DataObject, value: float) -> None:
    probs = np.array(case.probs, dtype=float)
    probs[data.draw(st.integers(0, len(probs) - 1)), data.draw(st.integers(0, probs.shape[1] - 1))] = value
    case.probs = probs


def _bad_text_cell(case: FindCase, data: st.DataObject) -> None:
    frame = pd.DataFrame(case.probs, columns=[f"p{i}" for i in range(np.shape(case.probs)[1])])
    frame["p0"] = frame["p0"].astype(str)  # a text column (Parquet stores it as strings)
    frame.iloc[data.draw(st.integers(0, len(frame) - 1)), 0] = data.draw(st.sampled_from(["abc", "", "1,5", "0x1"]))
    case.probs, case.probs_format = frame, data.draw(st.sampled_from(["csv", "parquet"]))


def _ragged(case: FindCase, data: st.DataObject, value: Any) -> None:
    rows: list[Any] = [list(r) for r in case.probs]
    rows[data.draw(st.integers(0, len(rows) - 1))] = value
    case.probs, case.probs_format = pd.DataFrame({"pred_probs": rows}), "parquet"


def _truncated(case: FindCase, data: st.DataObject) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        np.save(Path(tmp) / "p.npy", np.asarray(case.probs))
        raw = (Path(tmp) / "p.npy").read_bytes()
    case.probs, case.probs_format = raw[: data.draw(st.integers(0, len(raw) - 1))], "npy"


def _as(case: Any, **changes: Any) -> None:
    """Set fields of a case (in the kinds' one-line lambdas)."""
    for name, value in changes.items():
        setattr(case, name, value)


def _labels(case: FindCase, data: st.DataObject, change: Callable[[np.ndarray], Any]) -> None:
    case.labels = change(np.asarray(case.labels))


def _out_blocked(case: FindCase, blocker: str) -> None:
    """``--out`` under a file (``blocker = "file"``) or naming an existing folder."""
    case.out, case.out_blocker = ("plain.txt/out.csv", "file") if blocker == "file" else ("taken.csv", "folder")


FindKind = Callable[[FindCase, st.DataObject], None]

FIND_KINDS: dict[str, FindKind] = {
    # pred_probs values
    "probs-nan": lambda c, d: _cell(c, d, np.nan),
    "probs-inf": lambda c, d: _cell(c, d, d.draw(st.sampled_from([np.inf, -np.inf]))),
    "probs-negative": lambda c, d: _cell(c, d, -0.25),
    "probs-above-one": lambda c, d: _cell(c, d, 1.5),
    "probs-rows-not-summing-to-1": lambda c, d: _as(c, probs=np.asarray(c.probs) * 1.5),
    "probs-one-class": lambda c, d: _as(c, probs=np.ones((len(c.probs), 1))),
    "probs-1d": lambda c, d: _as(c, probs=np.asarray(c.probs)[:, 0], probs_format="npy"),
    "probs-3d": lambda c, d: _as(c, probs=np.asarray(c.probs)[:, :, None], probs_format="npy"),
    "probs-text-cell": _bad_text_cell,
    "probs-text-npy": lambda c, d: _as(c, probs=np.asarray(c.probs).astype(str), probs_format="npy"),
    "probs-object-npy": lambda c, d: _as(c, probs=np.asarray(c.probs).astype(object), probs_format="npy"),
    "probs-too-many-classes": lambda c, d: _as(  # the size rule; 3,000 Parquet columns would be slow to write
        c,
        probs=np.full((len(c.probs), 3000), 1 / 3000),
        probs_format=d.draw(st.sampled_from(["npy", "csv-bare", "parquet-list"])),
    ),
    # pred_probs files
    "probs-zero-bytes": lambda c, d: _as(c, probs=b""),
    "probs-junk-bytes": lambda c, d: _as(c, probs=d.draw(st.binary(min_size=1, max_size=64))),
    "probs-truncated-npy": _truncated,
    "probs-header-only": lambda c, d: _as(
        c,
        probs=pd.DataFrame(columns=["p0", "p1"], dtype=float),
        probs_format=d.draw(st.sampled_from(["csv", "parquet"])),
    ),
    "probs-no-rows-npy": lambda c, d: _as(c, probs=np.zeros((0, 3)), probs_format="npy"),
    "probs-ragged-list": lambda c, d: _ragged(c, d, d.draw(st.sampled_from([[0.5], [0.2, 0.2, 0.2, 0.2, 0.2], []]))),
    "probs-null-list": lambda c, d: _ragged(c, d, None),
    "probs-unsupported-suffix": lambda c, d: _as(c, probs_name=d.draw(st.sampled_from(["p.txt", "p", "p.npz"]))),
    "probs-missing-file": lambda c, d: _as(c, probs=None),
    "probs-is-a-folder": lambda c, d: _as(c, probs_is_folder=True),
    # labels
    "labels-out-of-range": lambda c, d: _labels(c, d, lambda y: np.where(y == y[0], np.shape(c.probs)[1], y)),
    "labels-negative": lambda c, d: _labels(c, d, lambda y: np.where(y == y[0], -1, y)),
    "labels-fractional": lambda c, d: _labels(c, d, lambda y: y + 0.5),
    "labels-nan": lambda c, d: _labels(c, d, lambda y: np.where(y == y[0], np.nan, y)),
    "labels-text": lambda c, d: _labels(c, d, lambda y: np.array(["cat", "dog", "emu", "yak"])[y]),
    # one label short: not in a CSV with pandas' header "0", which then reads as a label
    # (the documented CSV header rule cannot tell that file from a headerless one)
    "labels-too-few": lambda c, d: _as(
        c, labels=c.labels[:-1], labels_format=d.draw(st.sampled_from(["npy", "csv-bare", "parquet"]))
    ),
    "labels-too-many": lambda c, d: _labels(c, d, lambda y: np.concatenate([y, y[:2]])),
    "labels-2d": lambda c, d: _as(c, labels=np.stack([c.labels, c.labels], axis=1), labels_format="npy"),
    "labels-zero-bytes": lambda c, d: _as(c, labels=b""),
    "labels-header-only": lambda c, d: _as(
        c,
        labels=pd.DataFrame({"label": pd.Series([], dtype=int)}),
        labels_format=d.draw(st.sampled_from(["csv", "parquet"])),
    ),
    "labels-two-unnamed-columns": lambda c, d: _as(
        c,
        labels=pd.DataFrame({"a": c.labels, "b": c.labels}),
        labels_format=d.draw(st.sampled_from(["csv", "parquet"])),
    ),
    # flags
    "max-noise-rate-invalid": lambda c, d: c.flags.append(
        "--max-noise-rate=" + d.draw(st.sampled_from(["nan", "-1", "5", "inf", "-inf", "x", "", "1.0001"]))
    ),
    "top-invalid": lambda c, d: c.flags.append("--top=" + d.draw(st.sampled_from(["0", "-1", "x", "1.5", ""]))),
    "filter-by-unknown": lambda c, d: c.flags.extend(["--filter-by", "magic"]),
    "rank-by-unknown": lambda c, d: c.flags.extend(["--rank-by", "magic"]),
    "csv-header-unknown": lambda c, d: c.flags.extend(["--csv-header", "maybe"]),
    "out-bad-suffix": lambda c, d: _as(c, out=d.draw(st.sampled_from(["out.txt", "out", "out.csv.gz"]))),
    "out-under-a-file": lambda c, d: _out_blocked(c, "file"),
    "out-is-a-folder": lambda c, d: _out_blocked(c, "folder"),
    "out-unwritable-system-path": lambda c, d: _as(c, out="/proc/cl_pipeline_fuzz.csv"),
}


def _prepare_find(case: FindCase, folder: Path) -> tuple[list[str], Path | None]:
    """Write the case's files; return the ``find`` argv and the ``--out`` path."""
    p, y = _write_find_case(case, folder)
    if case.out_blocker == "file":
        (folder / "plain.txt").write_text("x")
    elif case.out_blocker == "folder":
        (folder / "taken.csv").mkdir()
    out = None if case.out is None else Path(case.out) if case.out.startswith("/") else folder / case.out
    return ["find", p, y, *case.flags, *([f"--out={out}"] if out is not None else [])], out


@pytest.mark.parametrize("kind", sorted(FIND_KINDS))
@_FUZZ
@given(data=st.data())
def test_find_bad_input_exits_2_and_writes_nothing(kind: str, data: st.DataObject, capsys) -> None:
    case = _draw_valid_find(data)
    FIND_KINDS[kind](case, data)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        argv, out = _prepare_find(case, folder)
        before = _files(folder)
        code, err = _run(capsys, argv)
        assert code == 2, f"{kind}: exit {code}\n{err}"
        assert "error: " in err
        assert _files(folder) == before
        assert out is None or not out.is_file()


def _misread_csv(case: FindCase) -> bool:
    """Whether a forced ``--csv-header`` misreads a generated CSV (a header as data or data as a header)."""
    mode = case.flags[case.flags.index("--csv-header") + 1]
    formats = (case.probs_format, case.labels_format)
    return (mode == "yes" and "csv-bare" in formats) or (mode == "no" and "csv" in formats)


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_find_valid_input_never_crashes(data: st.DataObject, capsys) -> None:
    case = _draw_valid_find(data)
    with tempfile.TemporaryDirectory() as tmp:
        argv, out = _prepare_find(case, Path(tmp))
        code, err = _run(capsys, argv)
        assert code in (0, 2, 3), err
        if code == 2:
            assert _misread_csv(case), err
            assert out is None or not out.exists()
        elif out is not None:
            assert len(pd.read_parquet(out) if out.suffix == ".parquet" else pd.read_csv(out)) == len(case.labels)


# ---------------------------------------------------------------- audit


@dataclass
class AuditCase:
    """One ``audit`` call: a snapshot, where it is stored, its config and the CLI flags."""

    frame: pd.DataFrame
    source: str  # csv | parquet | folder | duckdb | embedded
    fmt: str  # toml | yaml | json
    mapping: dict[str, Any]
    argv: list[str] = field(default_factory=lambda: ["--date", DATE])
    raw_config: bytes | None = None  # written instead of the serialized mapping
    files: dict[str, bytes] = field(default_factory=dict)  # more files next to the config
    snapshot_bytes: bytes | None = None  # written instead of the snapshot


def _base_mapping(source: str) -> dict[str, Any]:
    sources = {
        "csv": {"kind": "file", "path": "labels.csv"},
        "parquet": {"kind": "file", "path": "labels.parquet"},
        "folder": {"kind": "folder", "path": "snaps", "pattern": "labels_*.csv"},
        "duckdb": {"kind": "duckdb", "path": "w.duckdb", "table": "labels"},
    }
    return {
        "source": sources[source],
        "columns": {"id": "id", "label": "label", "true_label": "true_label", "numeric": ["f*"]},
        "model": {"params": {"C": 1.0, "max_iter": 200}, "n_folds": 3, "n_jobs": 1},
    }


def _draw_audit(data: st.DataObject, sources: list[str] | None = None) -> AuditCase:
    n = data.draw(st.integers(45, 90), label="n")
    frame = make_small_frame(n=n, seed=data.draw(st.integers(0, 1000), label="seed")).drop(columns=["colour"])
    source = data.draw(st.sampled_from(sources or ["csv", "parquet", "folder", "duckdb"]), label="source")
    fmt = data.draw(st.sampled_from(["toml", "yaml", "json"]), label="format")
    return AuditCase(frame, source, fmt, _base_mapping(source))


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not np.isfinite(value):
        return "nan" if np.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in value.items()) + " }"
    return json.dumps(value) if isinstance(value, str) else repr(value)


def _serialize(mapping: dict[str, Any], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(mapping)
    if fmt == "yaml":
        return yaml.safe_dump(mapping)
    scalars = [f"{json.dumps(k)} = {_toml_value(v)}" for k, v in mapping.items() if not isinstance(v, dict)]
    sections = [
        f"[{json.dumps(k)}]\n" + "\n".join(f"{json.dumps(kk)} = {_toml_value(vv)}" for kk, vv in v.items())
        for k, v in mapping.items()
        if isinstance(v, dict)
    ]
    return "\n".join(scalars + sections) + "\n"


def _write_snapshot(case: AuditCase, folder: Path) -> None:
    if case.source == "embedded":
        return
    path = {
        "csv": folder / "labels.csv",
        "parquet": folder / "labels.parquet",
        "folder": folder / "snaps" / f"labels_{DATE}.csv",
        "duckdb": folder / "w.duckdb",
    }[case.source]
    path.parent.mkdir(exist_ok=True)
    if case.snapshot_bytes is not None:
        path.write_bytes(case.snapshot_bytes)
    elif case.source == "parquet":
        case.frame.to_parquet(path, index=False)
    elif case.source == "duckdb":
        import duckdb

        with duckdb.connect(str(path)) as con:
            con.register("snapshot", case.frame)
            con.execute("CREATE TABLE labels AS SELECT * FROM snapshot")
    else:
        case.frame.to_csv(path, index=False)


def _write_audit_case(case: AuditCase, folder: Path) -> Path:
    _write_snapshot(case, folder)
    for name, content in case.files.items():
        (folder / name).write_bytes(content)
    config = folder / f"audit.{case.fmt}"
    if case.raw_config is not None:
        config.write_bytes(case.raw_config)
    else:
        config.write_text(_serialize(case.mapping, case.fmt))
    return config


def _set(case: AuditCase, section: str, key: str, value: Any) -> None:
    case.mapping.setdefault(section, {})[key] = value


def _frame(case: AuditCase, change: Callable[[pd.DataFrame], pd.DataFrame]) -> None:
    case.frame = change(case.frame.copy())


def _null_at(column: str) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def change(f: pd.DataFrame) -> pd.DataFrame:
        f[column] = f[column].astype(object)
        f.loc[3, column] = None
        return f

    return change


def _embedded(case: AuditCase, key: str, value: Any) -> None:
    case.source, case.mapping = "embedded", {"source": {key: value}}


def _byo(case: AuditCase, change: Callable[[np.ndarray], np.ndarray]) -> None:
    rng = np.random.default_rng(len(case.frame))
    probs = change(rng.dirichlet(np.ones(3), len(case.frame)))
    for i in range(3):
        case.frame[f"p{i}"] = probs[:, i]
    case.mapping["columns"] = {"id": "id", "label": "label", "probabilities": ["p0", "p1", "p2"]}


def _npy(case: AuditCase, content: bytes | np.ndarray) -> None:
    if isinstance(content, np.ndarray):
        with tempfile.TemporaryDirectory() as tmp:
            np.save(Path(tmp) / "x.npy", content)
            content = (Path(tmp) / "x.npy").read_bytes()
    case.files["probs.npy"] = content
    case.mapping["columns"] = {"id": "id", "label": "label", "probabilities_npy": "probs.npy"}


def _one_of(d: st.DataObject, *values: Any) -> Any:
    return d.draw(st.sampled_from(values))


def _source(case: AuditCase, source: str) -> None:
    """Store the snapshot in ``source`` (csv, parquet, folder, duckdb), with that config."""
    case.source, case.mapping = source, _base_mapping(source)


def _date(case: AuditCase, value: str) -> None:
    case.argv[case.argv.index("--date") + 1] = value


def _bad_probabilities(case: AuditCase, data: st.DataObject) -> None:
    """Supplied probability columns that are not probabilities, or one too few."""

    def nan(p: np.ndarray) -> np.ndarray:
        p[0, 0] = np.nan
        return p

    _byo(case, _one_of(data, lambda p: p * 2, nan, lambda p: -p, lambda p: np.c_[p[:, :2], p[:, 2] * 0]))


AuditKind = Callable[[AuditCase, st.DataObject], None]

AUDIT_KINDS: dict[str, AuditKind] = {
    # the config file
    "config-missing": lambda c, d: c.argv.extend(["--config", "nowhere.toml"]),
    "config-is-a-folder": lambda c, d: c.argv.extend(["--config", "snapdir.toml"]),
    "config-bad-suffix": lambda c, d: c.argv.extend(["--config", "settings.ini"]),
    "config-not-utf8": lambda c, d: _as(c, raw_config=b"\xff\xfe[source]\n\x81\n"),
    "config-syntax-error": lambda c, d: _as(
        c, raw_config={"toml": b"[source\n", "json": b'{"source": ', "yaml": b"source: {kind: [\n"}[c.fmt]
    ),
    "config-yaml-tag": lambda c, d: _as(
        c,
        fmt="yaml",
        raw_config=_one_of(d, b"source: !!python/object:os.system {}\n", b"a: !!python/name:os.system\n", b"a: !x 1\n"),
    ),
    "config-not-a-mapping": lambda c, d: _as(
        c, fmt=_one_of(d, "yaml", "json"), raw_config=_one_of(d, b"[1, 2]", b"42", b'"text"', b"true")
    ),
    "config-unknown-section": lambda c, d: c.mapping.update({"sourc": {"kind": "file"}}),
    "config-unknown-key": lambda c, d: _set(c, _one_of(d, "source", "columns", "model", "issues", "checks"), "x", 1),
    "config-section-not-a-table": lambda c, d: c.mapping.update({_one_of(d, "model", "checks", "issues"): [1, 2]}),
    # source
    "source-kind-unknown": lambda c, d: _set(c, "source", "kind", _one_of(d, "s3", "", "FILE")),
    "source-path-missing": lambda c, d: c.mapping["source"].pop("path"),
    "source-file-bad-suffix": lambda c, d: _set(c, "source", "path", _one_of(d, "labels.txt", "labels.xlsx")),
    "source-file-not-found": lambda c, d: _set(c, "source", "path", "absent.csv"),
    "source-file-junk-bytes": lambda c, d: (
        _source(c, _one_of(d, "csv", "parquet", "duckdb")),
        _as(c, snapshot_bytes=d.draw(st.binary(min_size=0, max_size=200))),
    ),
    "source-folder-pattern-outside": lambda c, d: (
        _source(c, "folder"),
        _set(c, "source", "pattern", _one_of(d, "/etc/*", "../*", "a/../../*", "", "labels_**.csv", "C:\\x\\*")),
    ),
    "source-folder-no-snapshot-for-date": lambda c, d: (
        _source(c, "folder"),
        _date(c, "2025-01-02"),
    ),
    "source-folder-is-a-file": lambda c, d: (
        _source(c, "folder"),
        _set(c, "source", "path", f"snaps/labels_{DATE}.csv"),
    ),
    "source-duckdb-bad-table": lambda c, d: (
        _source(c, "duckdb"),
        _set(c, "source", "table", _one_of(d, "absent", "t; DROP TABLE x", "1abc")),
    ),
    "source-duckdb-bad-date-column": lambda c, d: (
        _source(c, "duckdb"),
        _set(c, "source", "date_column", _one_of(d, "absent", "label", "bad name")),
    ),
    "embedded-seed": lambda c, d: _embedded(c, "seed", _one_of(d, -1, 1.5, "x", None)),
    "embedded-noise-rate": lambda c, d: _embedded(c, "noise_rate", _one_of(d, 0.89, 0.81, -0.1, float("nan"), "x")),
    # columns and snapshot contents
    "column-missing": lambda c, d: _set(c, "columns", _one_of(d, "id", "label", "true_label"), "absent"),
    "column-glob-matches-nothing": lambda c, d: _set(c, "columns", "numeric", ["zz*"]),
    "columns-features-and-probabilities": lambda c, d: _set(c, "columns", "probabilities", ["f0", "f1", "f2"]),
    "columns-classes-duplicate": lambda c, d: _set(c, "columns", "classes", ["cat", "cat", "dog"]),
    "columns-label-not-in-classes": lambda c, d: _set(c, "columns", "classes", ["cat", "dog"]),
    "snapshot-no-rows": lambda c, d: _frame(c, lambda f: f.iloc[:0]),
    "snapshot-null-id": lambda c, d: _frame(c, _null_at("id")),
    "snapshot-duplicate-id": lambda c, d: _frame(c, lambda f: f.assign(id=f["id"].where(f.index != 1, f["id"][0]))),
    "snapshot-null-label": lambda c, d: _frame(c, _null_at("label")),
    "snapshot-one-class": lambda c, d: _frame(c, lambda f: f.assign(label="cat")),
    "snapshot-class-smaller-than-folds": lambda c, d: _frame(
        c, lambda f: f.assign(label=f["label"].where(f.index > 1, "yak"))
    ),
    "snapshot-fractional-labels": lambda c, d: _frame(c, lambda f: f.assign(label=np.linspace(0, 2, len(f)))),
    "snapshot-text-in-numeric": lambda c, d: _frame(  # all text (a Parquet column has one type), one not a number
        c, lambda f: f.assign(f1=f["f1"].astype(str).where(f.index != 2, "x"))
    ),
    "snapshot-reserved-column": lambda c, d: _frame(
        c, lambda f: f.assign(**{_one_of(d, "partition", "label_index"): 1})
    ),
    "probabilities-invalid": _bad_probabilities,
    "probabilities-npy-invalid": lambda c, d: _npy(
        c, _one_of(d, b"", b"junk", np.zeros((3, 3)), np.full((2, 2), 0.5), np.array(["a", "b"]))
    ),
    # model, issues, checks
    "model-estimator-refused": lambda c, d: _set(
        c, "model", "estimator", _one_of(d, "os.system", "sklearn.nope.X", "sklearn.linear_model.LinearRegression", "x")
    ),
    "model-params-invalid": lambda c, d: _set(c, "model", "params", _one_of(d, {"C": -1}, {"nope": 1}, {"C": "x"})),
    "model-number-out-of-range": lambda c, d: _set(
        c,
        "model",
        *_one_of(
            d,
            ("n_folds", 1),
            ("n_folds", 500),
            ("n_jobs", 0),
            ("holdout_fraction", 0.95),
            ("holdout_fraction", float("nan")),
            ("random_state", -1),
        ),
    ),
    "issues-unknown-method": lambda c, d: _set(c, "issues", _one_of(d, "filter_by", "rank_by"), "magic"),
    "issues-min-examples-negative": lambda c, d: _set(c, "issues", "min_examples_per_class", -1),
    "checks-threshold-invalid": lambda c, d: _set(
        c,
        "checks",
        _one_of(d, "max_noise_rate", "max_class_noise_rate", "retrain_tolerance"),
        _one_of(d, float("nan"), 1.5, -0.1, "x"),
    ),
    # flags
    "date-not-yyyy-mm-dd": lambda c, d: _date(
        c, _one_of(d, "2026", "now", "Nov 20 2026", "20261120", "2025-02-30", "2025-1-05", "", "2025-01-01 ")
    ),
    "date-outside-partitions": lambda c, d: _date(c, _one_of(d, "1999-01-01", "2999-01-01")),
    "max-noise-rate-invalid": lambda c, d: c.argv.append(
        "--max-noise-rate=" + _one_of(d, "nan", "-1", "5", "inf", "x")
    ),
}


def _prepare_audit(case: AuditCase, folder: Path) -> list[str]:
    """Write the case's files; return the ``audit`` argv."""
    config = _write_audit_case(case, folder)
    (folder / "snapdir.toml").mkdir()
    (folder / "settings.ini").write_text("[source]\n")
    argv = ["audit", *case.argv, "--data-dir", str(folder / "data")]
    return argv if "--config" in argv else [*argv, "--config", str(config)]


@pytest.mark.parametrize("kind", sorted(AUDIT_KINDS))
@_FUZZ
@given(data=st.data())
def test_audit_bad_input_exits_2_and_writes_nothing(kind: str, data: st.DataObject, capsys) -> None:
    case = _draw_audit(data)
    AUDIT_KINDS[kind](case, data)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        argv = _prepare_audit(case, folder)
        before = _files(folder)
        with _isolated(folder, folder / "dagster_home"):
            code, err = _run(capsys, argv)
        assert code == 2, f"{kind}: exit {code}\n{err}"
        assert "error: " in err
        assert _files(folder) == before  # no data dir, no DAGSTER_HOME, nothing else


@settings(max_examples=2, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_audit_valid_input_exits_0_or_3(data: st.DataObject, capsys, shared_dagster_home: Path) -> None:
    """Full audits (seconds each): a valid generated config and snapshot, any threshold."""
    case = _draw_audit(data)
    if data.draw(st.booleans(), label="byo probabilities"):
        _byo(case, lambda p: p)
    rate = data.draw(st.floats(0, 1), label="max_noise_rate")
    case.argv.append(f"--max-noise-rate={rate!r}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        argv = _prepare_audit(case, folder)
        with _isolated(folder, shared_dagster_home):
            code, err = _run(capsys, argv)
        assert code in (0, 3), err
        assert (folder / "data" / "label_issues" / f"{DATE}.parquet").is_file()
