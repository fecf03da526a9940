"""The warehouse repairs itself (issue 10, items 2, 4 and 5).

- item 5: a data directory whose path holds glob characters is read literally, never as a
  glob (a decoy folder the unescaped glob would match is not read); a moved or copied data
  directory reads its own files after any command that opens it;
- item 4: a damaged ``warehouse.duckdb`` (random bytes) is moved aside, kept, rebuilt, and
  said so; ``history``/``diff`` exit 0 with no traceback;
- item 2: a reader holding the warehouse costs a write one short wait, not one per table,
  and commands still answer from the files.
"""

import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from cl_pipeline.storage import TABLES, PartitionStore, Warehouse
from cl_pipeline.storage import warehouse as warehouse_module
from cl_pipeline.storage.queries import diff_tables, history_table

from .test_warehouse_lock import holder

D1, D2 = "2025-01-01", "2025-01-02"


@pytest.fixture(autouse=True)
def new_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts with what a fresh process knows about warehouses: nothing."""
    monkeypatch.setattr(warehouse_module, "_KNOWN_VIEWS", set())
    monkeypatch.setattr(warehouse_module, "_RECONCILED", set())
    monkeypatch.setattr(warehouse_module, "_RETRY_AT", {})


def _audited(root: Path, noise: float = 0.1) -> PartitionStore:
    """A data dir with the tables ``history`` and ``diff`` read, for two dates (no audit run)."""
    store = PartitionStore(root)
    for date, flagged in ((D1, [True, False]), (D2, [False, True])):
        summary = {"n": 2, "k": 2, "estimated_noise_rate": noise, "num_issues": 1, "health_score": 0.9}
        summary["created_at"] = pd.Timestamp(f"{date} 12:00", tz="UTC")  # what derived views read
        store.write("audit_summary", date, pd.DataFrame([summary | {"data_version": f"v-{date}"}]))
        issues = {"id": ["a", "b"], "given_label": ["x", "y"], "suggested_label": ["y", "y"]}
        store.write("label_issues", date, pd.DataFrame(issues | {"is_label_issue": flagged, "rank": [1, 1]}))
    return store


def _count(path: Path, table: str) -> int:
    """Rows of ``table`` read by another process through ``warehouse.duckdb`` (as ``duckdb -readonly``)."""
    code = (
        "import sys, duckdb; print(duckdb.connect(sys.argv[1], read_only=True).execute(sys.argv[2]).fetchall()[0][0])"
    )
    sql = f"SELECT count(*) FROM {table}"
    out = subprocess.run([sys.executable, "-c", code, str(path), sql], capture_output=True, text=True, check=True)
    return int(out.stdout)


# item 5 -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, decoy",
    [("runs[1]", "runs1"), ("a*b", "aXb"), ("{x,y}", None), ("x[[]y", "x[y")],
    ids=["bracket", "star", "braces", "escaped-bracket"],
)
def test_glob_characters_in_the_data_dir_are_literal(tmp_path: Path, name: str, decoy: str | None) -> None:
    if decoy:
        _audited(tmp_path / decoy / "data", noise=0.9)  # what an unescaped glob would also read
    store = _audited(tmp_path / name / "data")
    wh = Warehouse(store.root)
    assert {"audit_summary", "label_issues", "stage_timings"} <= set(wh.views())
    assert _count(wh.path, "label_issues") == 4 and _count(wh.path, "audit_summary") == 2
    assert list(history_table(store.root)["noise_rate"]) == [0.1, 0.1]


def test_a_question_mark_in_the_data_dir_still_answers(tmp_path: Path, caplog) -> None:
    """DuckDB 2.0 cannot commit to a database under a path with '?': the commands read the files."""
    with caplog.at_level(logging.WARNING, logger=warehouse_module.__name__):
        store = _audited(tmp_path / "what?" / "data")
    assert "cannot commit to a database whose path contains '?'" in caplog.text
    assert list(history_table(store.root)["date"]) == [D1, D2]
    assert len(diff_tables(store.root, D1, D2)["newly flagged"]) == 1


@pytest.mark.parametrize("how", ["moved", "copied"])
def test_a_moved_or_copied_data_dir_reads_its_own_files(tmp_path: Path, how: str) -> None:
    old = _audited(tmp_path / "old" / "data").root
    new = tmp_path / "new" / "data"
    (new.parent).mkdir()
    shutil.move(old, new) if how == "moved" else shutil.copytree(old, new)
    if how == "copied":  # the original goes on: the copy must not show its new rows
        PartitionStore(old).write("label_issues", "2025-01-03", pd.DataFrame({"id": ["c"], "is_label_issue": [True]}))
    assert list(history_table(new)["date"]) == [D1, D2]  # history repairs the views first
    assert _count(new / "warehouse.duckdb", "label_issues") == 4
    assert _count(new / "warehouse.duckdb", "stage_timings") == 0  # no seconds recorded: empty, not failing
    comments = Warehouse(new).query("SELECT comment FROM duckdb_views() WHERE NOT internal")["comment"]
    assert all(str(new) in c and "/old/" not in c for c in comments)


# item 4 -------------------------------------------------------------------------------------------


def test_a_damaged_warehouse_is_moved_aside_and_rebuilt(tmp_path: Path, caplog) -> None:
    store = _audited(tmp_path / "data")
    damage = os.urandom(64 * 1024)
    store.warehouse.path.write_bytes(damage)
    with caplog.at_level(logging.WARNING, logger=warehouse_module.__name__):
        assert list(history_table(store.root)["date"]) == [D1, D2]
    (aside,) = store.root.glob("warehouse.duckdb.damaged-*")
    assert aside.read_bytes() == damage  # kept for inspection
    assert "was damaged" in caplog.text and str(aside) in caplog.text
    assert set(Warehouse(store.root).views()) >= {"audit_summary", "label_issues"}
    assert _count(store.warehouse.path, "label_issues") == 4


def test_a_write_rebuilds_a_damaged_warehouse(tmp_path: Path) -> None:
    store = _audited(tmp_path / "data")
    store.warehouse.path.write_bytes(b"\x00garbage" * 1000)
    store.write("class_quality", D1, pd.DataFrame({"x": [1]}))
    assert len(list(store.root.glob("warehouse.duckdb.damaged-*"))) == 1
    assert {"audit_summary", "class_quality", "label_issues"} <= set(Warehouse(store.root).views())


_LOCKER = """
import fcntl, sys, time
with open(sys.argv[1], "r+b") as handle:
    fcntl.lockf(handle, fcntl.LOCK_SH)  # what DuckDB holds on a database file it has open
    print("locked", flush=True)
    sys.stdin.readline()
"""


def test_a_damaged_warehouse_in_use_is_not_moved(tmp_path: Path) -> None:
    """A file another process holds locked (DuckDB's lock, e.g. while creating it) is not idle damage."""
    store = _audited(tmp_path / "data")
    store.warehouse.path.write_bytes(b"not yet a database")
    proc = subprocess.Popen(
        [sys.executable, "-c", _LOCKER, str(store.warehouse.path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        assert proc.stdout.readline().strip() == b"locked"
        assert not store.warehouse.rebuild_damaged(duckdb.IOException("not a valid DuckDB database file"))
        assert not list(store.root.glob("warehouse.duckdb.damaged-*"))
    finally:
        proc.stdin.close()
        proc.wait(timeout=60)
    assert store.warehouse.rebuild_damaged(duckdb.IOException("not a valid DuckDB database file"))
    assert len(list(store.root.glob("warehouse.duckdb.damaged-*"))) == 1


@pytest.mark.parametrize("command", [["history"], ["diff", D1, D2]], ids=["history", "diff"])
def test_cli_on_a_damaged_warehouse_says_so_and_exits_0(tmp_path: Path, command: list[str]) -> None:
    store = _audited(tmp_path / "data")
    store.warehouse.path.write_bytes(os.urandom(10_000))
    argv = [sys.executable, "-m", "cl_pipeline.cli", *command, "--data-dir", str(store.root)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and "was damaged" in done.stderr
    assert ("newly flagged: 1" if command[0] == "diff" else D2) in done.stdout


# item 2 (a reader holding the warehouse) ----------------------------------------------------------


def test_a_reader_costs_one_short_wait_not_one_per_table(tmp_path: Path) -> None:
    store = _audited(tmp_path / "data")
    warehouse_module._KNOWN_VIEWS.clear()
    warehouse_module._RECONCILED.clear()
    new_tables = [t for t in TABLES if t not in ("audit_summary", "label_issues", "check_results")]
    with holder(store.warehouse.path, "ro"):
        start = time.monotonic()
        for table in new_tables:  # each needs a new view, which the reader prevents
            store.write(table, D1, pd.DataFrame({"x": [1]}))
        elapsed = time.monotonic() - start
        assert set(history_table(store.root)["date"]) == {D1, D2}  # answers from the files meanwhile
    assert elapsed < 6.0, f"{len(new_tables)} writes took {elapsed:.1f} s with a reader open"
    assert not set(new_tables) & set(Warehouse(store.root).views())  # not created while held
    history_table(store.root)  # the next command repairs them
    assert set(new_tables) <= set(Warehouse(store.root).views())


def test_an_unreadable_table_does_not_hide_the_others_from_the_commands(tmp_path: Path, caplog) -> None:
    store = _audited(tmp_path / "data")
    (store.root / "class_quality").mkdir()
    (store.root / "class_quality" / f"{D1}.parquet").write_bytes(b"not parquet")
    with caplog.at_level(logging.WARNING, logger=warehouse_module.__name__):
        assert list(history_table(store.root)["date"]) == [D1, D2]
    assert "view class_quality" in caplog.text and "not available" in caplog.text
