"""The warehouse while another process holds the DuckDB file (e.g. ``duckdb -readonly``)."""

import contextlib
import logging
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pytest

from cl_pipeline.storage import PartitionStore, Warehouse, write_table
from cl_pipeline.storage import warehouse as warehouse_module

#: Opens the database, prints "ready", then answers each SQL line of stdin with its first value.
_HOLDER = """
import sys, duckdb
con = duckdb.connect(sys.argv[1], read_only=sys.argv[2] == "ro")
print("ready", flush=True)
for line in sys.stdin:
    print(con.execute(line).fetchall()[0][0], flush=True)
con.close()
"""


@contextlib.contextmanager
def holder(path: Path, mode: str) -> Iterator[Callable[[str], str]]:
    """Keep ``path`` open in another process (``mode`` "ro" or "rw"); yield a query function."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(path), mode], text=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        assert proc.stdout.readline().strip() == "ready"

        def ask(sql: str) -> str:
            proc.stdin.write(sql.replace("\n", " ") + "\n")
            proc.stdin.flush()
            return proc.stdout.readline().strip()

        yield ask
        proc.stdin.close()
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.fixture
def new_process(monkeypatch) -> None:
    """Forget the views verified by this process, as a fresh pipeline step would."""
    monkeypatch.setattr(warehouse_module, "_KNOWN_VIEWS", set())


def test_write_succeeds_while_a_reader_is_open(tmp_path: Path, new_process, caplog) -> None:
    storage = PartitionStore(tmp_path)
    storage.write("scores", "2025-01-01", pd.DataFrame({"x": [1, 2]}))
    warehouse_module._KNOWN_VIEWS.clear()
    with holder(storage.warehouse.path, "ro") as ask, caplog.at_level(logging.WARNING):
        assert ask("SELECT count(*) FROM scores") == "2"
        path = storage.write("scores", "2025-01-02", pd.DataFrame({"x": [3, 4, 5]}))
        assert path.is_file()
        assert ask("SELECT count(*) FROM scores") == "5"
        assert ask("SELECT count(*) FROM scores WHERE partition = '2025-01-02'") == "3"
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert storage.warehouse.query("SELECT sum(x) FROM scores").iloc[0, 0] == 15


def test_missing_view_is_deferred_while_a_reader_is_open(tmp_path: Path, new_process, caplog) -> None:
    storage = PartitionStore(tmp_path)
    storage.write("scores", "2025-01-01", pd.DataFrame({"x": [1]}))
    with holder(storage.warehouse.path, "ro"), caplog.at_level(logging.WARNING, logger=warehouse_module.__name__):
        storage.write("other", "2025-01-01", pd.DataFrame({"y": [1]}))  # needs a new view: deferred
        assert Warehouse(tmp_path).ensure_views(["other"]) == "deferred"
    assert "updated by a later write" in caplog.text
    assert storage.warehouse.views() == ["scores", "stage_timings"]
    storage.write("other", "2025-01-02", pd.DataFrame({"y": [2]}))
    assert storage.warehouse.views() == ["other", "scores", "stage_timings"]
    assert storage.warehouse.query("SELECT sum(y) FROM other").iloc[0, 0] == 3


def test_check_is_deferred_while_a_writer_is_open(tmp_path: Path, new_process, monkeypatch) -> None:
    monkeypatch.setattr(warehouse_module, "_CHECK_ATTEMPTS", 2)
    write_table(tmp_path, "scores", "2025-01-01", pd.DataFrame({"x": [1]}))
    wh = Warehouse(tmp_path)
    assert wh.ensure_views(["scores"]) == "created"
    warehouse_module._KNOWN_VIEWS.clear()
    with holder(wh.path, "rw"):
        assert wh.ensure_views(["scores"]) == "deferred"
    assert wh.ensure_views(["scores"]) == "current"


def test_reader_in_the_same_process_does_not_fail_the_write(tmp_path: Path, new_process) -> None:
    write_table(tmp_path, "scores", "2025-01-01", pd.DataFrame({"x": [1]}))
    wh = Warehouse(tmp_path)
    wh.ensure_views(["scores"])
    write_table(tmp_path, "other", "2025-01-01", pd.DataFrame({"y": [1]}))
    with wh.connect(read_only=True):
        assert wh.ensure_views(["other"]) == "deferred"
    assert wh.ensure_views(["other"]) == "created"


def test_view_emptied_while_a_reader_is_open_is_dropped_by_the_next_write(tmp_path: Path, caplog) -> None:
    storage = PartitionStore(tmp_path)
    storage.write("pruned", "2025-01-01", pd.DataFrame({"x": [1]}))
    with holder(storage.warehouse.path, "ro"), caplog.at_level(logging.WARNING, logger=warehouse_module.__name__):
        assert storage.remove("pruned", "2025-01-01")  # its last file: the view must go, but cannot yet
    assert "updated by a later write" in caplog.text
    assert "pruned" in storage.warehouse.views()
    storage.write("other", "2025-01-01", pd.DataFrame({"y": [2]}))  # any later write repairs it
    assert "pruned" not in storage.warehouse.views()
    assert storage.warehouse.query("SELECT sum(y) FROM other").iloc[0, 0] == 2


def test_reconcile_leaves_views_it_did_not_make(tmp_path: Path) -> None:
    storage = PartitionStore(tmp_path)
    storage.write("scores", "2025-01-01", pd.DataFrame({"x": [1]}))
    with storage.warehouse.connect() as con:
        con.execute("CREATE VIEW mine AS SELECT 42 AS answer")
    storage.remove("scores", "2025-01-01")
    views = storage.warehouse.views()
    assert "mine" in views and "scores" not in views


def test_unmanaged_folders_and_broken_files_never_fail_a_write(tmp_path: Path, caplog) -> None:
    storage = PartitionStore(tmp_path)
    (tmp_path / "exports").mkdir()
    (tmp_path / "exports" / "x.parquet").write_bytes(b"not parquet")  # a stray folder: not ours
    with storage.warehouse.connect() as con:
        con.execute("CREATE VIEW exports AS SELECT 7 AS mine")  # a user's view of the same name
    storage.write("label_issues", "2025-01-01", pd.DataFrame({"x": [1]}))
    assert storage.warehouse.query("SELECT mine FROM exports").iloc[0, 0] == 7  # left alone
    # a broken file in a managed table: the write of another table still succeeds, with a warning
    (tmp_path / "audit_summary").mkdir()
    (tmp_path / "audit_summary" / "2025-01-01.parquet").write_bytes(b"not parquet")
    warehouse_module._RECONCILED.clear()  # as in a new process
    with caplog.at_level(logging.WARNING, logger=warehouse_module.__name__):
        storage.write("label_issues", "2025-01-02", pd.DataFrame({"x": [2]}))
    assert "views will be updated by a later write" in caplog.text
    assert storage.warehouse.query("SELECT sum(x) FROM label_issues").iloc[0, 0] == 3


def test_after_a_deferral_writes_of_known_tables_do_not_retry_at_once(tmp_path: Path, monkeypatch) -> None:
    storage = PartitionStore(tmp_path)
    storage.write("scores", "2025-01-01", pd.DataFrame({"x": [1]}))
    storage.write("pruned", "2025-01-01", pd.DataFrame({"x": [1]}))
    with holder(storage.warehouse.path, "ro"):
        storage.remove("pruned", "2025-01-01")  # the drop is deferred: the reader holds the file

        def no_connection(*args, **kwargs):
            raise AssertionError("the warehouse was opened within the retry interval")

        monkeypatch.setattr(Warehouse, "connect", no_connection)
        for day in ("2025-01-02", "2025-01-03"):  # each would wait for the lock if it retried
            storage.write("scores", day, pd.DataFrame({"x": [2]}))
        monkeypatch.undo()
    monkeypatch.setattr(warehouse_module, "_RETRY_AT", {})  # the interval has passed
    storage.write("scores", "2025-01-04", pd.DataFrame({"x": [3]}))
    assert "pruned" not in storage.warehouse.views()
