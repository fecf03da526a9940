"""The append-only ``review_decisions`` table: content ids, atomic appends, the latest-wins rule."""

import datetime
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cl_pipeline.storage.decisions import (
    DECISION_SCHEMA,
    append_decisions,
    decision_files,
    decision_id,
    read_decisions,
    view_sql,
)

T0 = datetime.datetime(2024, 5, 1, tzinfo=datetime.UTC)
FIELDS = ("ex-1", "2024-05-01", "relabel", "dog", "cat", "ann", "a note", "sha")


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(501)


def table(rows: list[dict]) -> pa.Table:
    """Decision rows with defaults for the fields a test does not care about, ids from content."""
    records = []
    for r in rows:
        r = {
            "date": "2024-05-01",
            "decision": "keep",
            "new_label": None,
            "given_label": "cat",
            "reviewer": "ann",
            "note": None,
            "decided_at": T0,
            "imported_at": T0,
            "source_file": "d.csv",
            "source_sha256": "f" * 64,
            "source_format": "csv",
        } | r
        when = r["decided_at"].isoformat()
        fields = (r["id"], r["date"], r["decision"], r["new_label"], r["given_label"], r["reviewer"], r["note"], when)
        records.append({"decision_id": decision_id(*fields)} | r)
    return pa.Table.from_pylist(records, schema=DECISION_SCHEMA)


def test_decision_id_is_deterministic_32_hex_digits():
    assert decision_id(*FIELDS) == decision_id(*FIELDS)
    assert len(decision_id(*FIELDS)) == 32 and int(decision_id(*FIELDS), 16) >= 0


@pytest.mark.parametrize("position", range(len(FIELDS)), ids=lambda i: f"field{i}")
def test_decision_id_changes_with_every_field(position: int):
    changed = list(FIELDS)
    changed[position] = changed[position] + "x"
    assert decision_id(*changed) != decision_id(*FIELDS)


def test_decision_id_tells_none_from_empty_text_and_refuses_other_types():
    blank = list(FIELDS)
    blank[3] = None
    empty = list(FIELDS)
    empty[3] = ""
    assert decision_id(*blank) != decision_id(*empty)
    with pytest.raises(TypeError, match="str or None"):
        decision_id("ex-1", "2024-05-01", "keep", None, 3, "ann", None, "sha")  # type: ignore[arg-type]


def test_append_writes_one_file_and_skips_what_is_stored(tmp_path: Path):
    first = table([{"id": "a"}, {"id": "b"}])
    result = append_decisions(tmp_path, first)
    assert result.written == 2 and result.already_stored == 0 and result.path.parent.name == "review_decisions"
    assert pq.read_table(result.path).schema.equals(DECISION_SCHEMA)
    again = append_decisions(tmp_path, first)
    assert again.path is None and again.written == 0 and again.already_stored == 2
    overlap = table([{"id": "b"}, {"id": "c"}])
    third = append_decisions(tmp_path, overlap)
    assert (third.written, third.already_stored) == (1, 1)
    assert len(decision_files(tmp_path)) == 2
    assert sorted(read_decisions(tmp_path)["id"].to_pylist()) == ["a", "b", "c"]


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        pytest.param(lambda: table([{"id": "a"}]).drop_columns(["note"]), TypeError, "DECISION_SCHEMA", id="schema"),
        pytest.param(lambda: [{"id": "a"}], TypeError, "pyarrow.Table", id="not-a-table"),
        pytest.param(lambda: table([{"id": "a"}]).slice(0, 0), ValueError, "at least one row", id="empty"),
        pytest.param(
            lambda: table([{"id": "a"}, {"id": "b", "date": "2024-05-02"}]), ValueError, "one date", id="two-dates"
        ),
        pytest.param(
            lambda: pa.concat_tables([table([{"id": "a"}])] * 2), ValueError, "1 repeated ids", id="repeated-id"
        ),
    ],
)
def test_append_refuses_bad_tables_and_writes_nothing(tmp_path: Path, make, error, message):
    with pytest.raises(error, match=message):
        append_decisions(tmp_path, make())
    assert decision_files(tmp_path) == []


def test_reading_no_decisions_gives_an_empty_table_with_the_schema(tmp_path: Path):
    empty = read_decisions(tmp_path)
    assert empty.num_rows == 0
    assert empty.column_names == [*DECISION_SCHEMA.names, "is_latest"]


_moments = st.integers(0, 5).map(lambda m: T0 + datetime.timedelta(minutes=m))


@settings(max_examples=15)
@given(
    batches=st.lists(
        st.lists(
            st.tuples(st.sampled_from("abcd"), st.sampled_from(["keep", "drop"]), _moments, st.text("xy", max_size=2)),
            min_size=1,
            max_size=5,
        ),
        min_size=1,
        max_size=4,
    )
)
def test_the_latest_decision_per_id_is_the_greatest_time_then_import_then_id(tmp_path_factory, batches):
    root = tmp_path_factory.mktemp("latest")
    expected: dict[str, tuple] = {}
    stored: set[str] = set()
    for number, batch in enumerate(batches):
        imported = T0 + datetime.timedelta(hours=number)
        rows = {}
        for example, decision, decided, note in batch:
            row = {"id": example, "decision": decision, "decided_at": decided, "imported_at": imported, "note": note}
            rows[(example, decision, decided, note)] = row
        written = table(list(rows.values()))
        append_decisions(root, written)
        for row in written.to_pylist():
            if row["decision_id"] in stored:
                continue
            stored.add(row["decision_id"])
            key = (row["decided_at"], row["imported_at"], row["decision_id"])
            if row["id"] not in expected or key > expected[row["id"]][0]:
                expected[row["id"]] = (key, row["decision"])
    latest = read_decisions(root, latest_only=True).to_pylist()
    assert {r["id"]: r["decision"] for r in latest} == {k: v[1] for k, v in expected.items()}
    assert all(r["is_latest"] for r in latest)


def test_the_view_query_marks_the_same_latest_rows(tmp_path: Path, rng: np.random.Generator):
    for hour in range(3):
        rows = [
            {"id": f"ex-{i}", "decision": ["keep", "drop"][int(rng.integers(2))], "imported_at": T0 + datetime.timedelta(hours=hour),
             "decided_at": T0 + datetime.timedelta(minutes=int(rng.integers(0, 90)))}
            for i in rng.choice(6, size=4, replace=False)
        ]  # fmt: skip
        append_decisions(tmp_path, table(rows))
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        view = con.sql(f"SELECT decision_id, is_latest FROM ({view_sql(tmp_path)}) ORDER BY decision_id").fetchall()
    ours = read_decisions(tmp_path).to_pylist()
    assert view == sorted((r["decision_id"], r["is_latest"]) for r in ours)
    assert sum(flag for _, flag in view) == len({r["id"] for r in ours})


_WRITER = textwrap.dedent(
    """
    import sys
    import pyarrow.parquet as pq
    from cl_pipeline.storage.decisions import append_decisions
    result = append_decisions(sys.argv[1], pq.read_table(sys.argv[2]))
    print(result.written, result.already_stored)
    """
)


def test_concurrent_appends_from_processes_store_each_decision_once(tmp_path: Path):
    """Four processes append overlapping decision sets at once: the union is stored, no id twice."""
    data = tmp_path / "data"
    everything = table([{"id": f"ex-{i:02d}", "decision": "drop"} for i in range(30)])
    files = []
    for k in range(4):
        part = everything.slice(4 * k, 10)  # each overlaps the next
        files.append(tmp_path / f"part{k}.parquet")
        pq.write_table(part, files[-1])
    procs = [
        subprocess.Popen([sys.executable, "-c", _WRITER, str(data), str(f)], stdout=subprocess.PIPE, text=True)
        for f in files
    ]
    outputs = [p.communicate(timeout=120)[0].split() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    stored = pa.concat_tables(pq.read_table(f) for f in decision_files(data))
    expected = set(everything.slice(0, 4 * 3 + 10)["decision_id"].to_pylist())
    assert sorted(stored["decision_id"].to_pylist()) == sorted(expected)
    assert sum(int(written) for written, _ in outputs) == len(expected)


def test_the_proposed_warehouse_hook_gives_a_stable_view_with_is_latest(tmp_path: Path, monkeypatch):
    """``Warehouse._sql_for`` returning :func:`view_sql` for ``review_decisions`` (the hook proposed to
    the warehouse's owner): the view is created, has ``is_latest``, and a second reconcile changes nothing."""
    from cl_pipeline.storage.warehouse import Warehouse

    plain = Warehouse._sql_for
    monkeypatch.setattr(
        Warehouse, "_sql_for", lambda self, t: view_sql(self.data_dir) if t == "review_decisions" else plain(self, t)
    )
    append_decisions(tmp_path, table([{"id": "a"}, {"id": "b", "decided_at": T0 - datetime.timedelta(days=1)}]))
    append_decisions(tmp_path, table([{"id": "b", "decision": "drop"}]))
    warehouse = Warehouse(tmp_path)
    assert warehouse.reconcile(["review_decisions"]) == "created"
    assert warehouse.reconcile(["review_decisions"]) == "current"
    rows = warehouse.query("SELECT id, decision FROM review_decisions WHERE is_latest ORDER BY id")
    assert rows.values.tolist() == [["a", "keep"], ["b", "drop"]]


def test_a_data_directory_with_glob_characters_is_read_literally(tmp_path: Path):
    data = tmp_path / "runs[1]*?"
    append_decisions(data, table([{"id": "a"}]))
    sibling = tmp_path / "runs1x"  # what the unescaped pattern would also match
    append_decisions(sibling, table([{"id": "b"}]))
    assert read_decisions(data)["id"].to_pylist() == ["a"]
    with duckdb.connect() as con:
        assert con.sql(f"SELECT id FROM ({view_sql(data)})").fetchall() == [("a",)]
