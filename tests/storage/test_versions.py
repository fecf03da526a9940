"""The ``dataset_versions`` and ``review_metrics`` views over hand-made files, checked against hand computation."""

import datetime
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from cl_pipeline.storage import TABLES, PartitionStore, Warehouse
from cl_pipeline.storage.decisions import DECISION_SCHEMA, append_decisions, decision_id
from cl_pipeline.storage.versions import (
    RANK_BUCKETS,
    dataset_versions_sql,
    latest_decisions,
    read_dataset_versions,
    review_counts,
    review_metrics_sql,
)

DATE, OTHER = "2024-04-01", "2024-04-02"
AUDITED = datetime.datetime(2024, 4, 2, 8, 0, tzinfo=datetime.UTC)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20240401)


def _decisions(rows: list[dict]) -> None:
    """Rows need id, date, decision, hours (after AUDITED), data_dir; the rest is filled in."""
    for date in sorted({r["date"] for r in rows}):
        records = []
        for r in (r for r in rows if r["date"] == date):
            when = AUDITED + datetime.timedelta(hours=r["hours"])
            new = "b" if r["decision"] == "relabel" else None
            key = decision_id(r["id"], date, r["decision"], new, "a", "ann", None, when.isoformat())
            records.append(
                {
                    "decision_id": key,
                    "id": r["id"],
                    "date": date,
                    "decision": r["decision"],
                    "new_label": new,
                    "given_label": "a",
                    "reviewer": "ann",
                    "note": None,
                    "decided_at": when,
                    "imported_at": when,
                    "source_file": "f.csv",
                    "source_sha256": "0" * 64,
                    "source_format": "csv",
                }
            )
        append_decisions(rows[0]["data_dir"], pa.Table.from_pylist(records, DECISION_SCHEMA))


def _audited(store: PartitionStore, date: str, flagged: int, n: int) -> None:
    ids = [f"ex-{i:03d}" for i in range(n)]
    rank = pd.array([i + 1 if i < flagged else None for i in range(n)], dtype="Int64")
    store.write("label_issues", date, pd.DataFrame({"id": ids, "is_label_issue": ~rank.isna(), "rank": rank}))
    store.write("audit_summary", date, pd.DataFrame([{"num_issues": flagged, "created_at": pd.Timestamp(AUDITED)}]))


def _metrics(data: Path) -> pd.DataFrame:
    with duckdb.connect() as con:
        return con.sql(review_metrics_sql(data)).df().set_index("date")


def test_review_metrics_match_a_hand_computation(tmp_path: Path, rng: np.random.Generator) -> None:
    store = PartitionStore(tmp_path)
    _audited(store, DATE, flagged=150, n=200)
    _audited(store, OTHER, flagged=5, n=20)
    picked = rng.choice(200, 120, replace=False)
    rows = [
        {"id": f"ex-{i:03d}", "date": DATE, "decision": rng.choice(["keep", "relabel", "drop"]), "hours": float(h)}
        for i, h in zip(picked, rng.uniform(0, 100, picked.size), strict=True)
    ]
    changed = dict(rows[0], decision="keep" if rows[0]["decision"] != "keep" else "drop", hours=500.0)
    rows.append(changed)  # the same example decided again, later: the latest counts
    rows.append({"id": "ex-001", "date": OTHER, "decision": "drop", "hours": 1.0})  # another date's decision
    _decisions([dict(r, data_dir=tmp_path) for r in rows])
    expected = pd.DataFrame([r for r in rows if r["date"] == DATE]).drop_duplicates("id", keep="last")
    expected["rank"] = expected["id"].str[3:].astype(int) + 1
    expected.loc[expected["rank"] > 150, "rank"] = np.nan
    confirmed = expected["decision"].isin(["relabel", "drop"])
    got = _metrics(tmp_path).loc[DATE]
    assert got["reviewed"] == len(expected) == 120 and got["flagged"] == 150
    assert got["confirmed"] == confirmed.sum() and got["kept"] == (expected["decision"] == "keep").sum()
    flagged = expected["rank"].notna()
    assert got["reviewed_flagged"] == flagged.sum()
    assert got["precision"] == pytest.approx(confirmed[flagged].mean())
    for n in RANK_BUCKETS:
        top = expected["rank"] <= n
        assert got[f"reviewed_top_{n}"] == top.sum()
        assert got[f"precision_top_{n}"] == pytest.approx(confirmed[top].mean())
    assert got["median_hours_to_decision"] == pytest.approx(expected["hours"].median())
    other = _metrics(tmp_path).loc[OTHER]
    assert (other["reviewed"], other["confirmed"], other["precision_top_10"]) == (1, 1, 1.0)
    assert review_counts(tmp_path, DATE) == {
        "reviewed": 120,
        "confirmed": int(confirmed.sum()),
        "kept": int((expected["decision"] == "keep").sum()),
    }


def test_review_metrics_before_any_decision(tmp_path: Path) -> None:
    store = PartitionStore(tmp_path)
    _audited(store, DATE, flagged=4, n=10)
    got = _metrics(tmp_path).loc[DATE]
    assert (got["reviewed"], got["flagged"]) == (0, 4)
    assert pd.isna(got["precision_top_10"]) and pd.isna(got["median_hours_to_decision"])
    assert review_counts(tmp_path, DATE) == {"reviewed": 0, "confirmed": 0, "kept": 0}


def test_latest_decisions_only_up_to_the_date(tmp_path: Path) -> None:
    rows = [
        {"id": "x", "date": DATE, "decision": "relabel", "hours": 1},
        {"id": "x", "date": OTHER, "decision": "drop", "hours": 2},
        {"id": "y", "date": OTHER, "decision": "keep", "hours": 3},
    ]
    _decisions([dict(r, data_dir=tmp_path) for r in rows])
    assert latest_decisions(tmp_path, DATE).select(["id", "decision"]).to_pylist() == [
        {"id": "x", "decision": "relabel"}
    ]
    assert latest_decisions(tmp_path, OTHER).column("decision").to_pylist() == ["drop", "keep"]


def _raw(store: PartitionStore, date: str, version: str, curation: dict | None = None) -> None:
    meta = {"data_version": version} | ({"curation": curation} if curation else {})
    store.write("raw_labels", date, pd.DataFrame({"id": ["a", "b"], "label": [0, 1]}), meta)


def test_dataset_versions_list_every_version_with_its_lineage(tmp_path: Path) -> None:
    store = PartitionStore(tmp_path)
    assert read_dataset_versions(tmp_path).num_rows == 0
    with pytest.raises(ValueError, match="no dataset version yet"):
        dataset_versions_sql(tmp_path)
    _raw(store, DATE, "raw1")
    lineage = {"parent_version": "raw1", "parent_rows": 3, "decisions_applied": 2, "relabeled": 1, "dropped": 1}
    lineage |= {"kept": 0, "decisions_hash": "h1", "created_at": "2024-04-03T10:00:00+00:00"}
    store.write(
        "curated_dataset",
        DATE,
        pd.DataFrame({"id": ["a", "b"], "label": [1, 1]}),
        {"data_version": "cur1"} | {"curation": lineage},
    )
    _raw(store, OTHER, "cur2", dict(lineage, parent_version="raw2", decisions_hash="h2"))  # an audit from curated
    got = read_dataset_versions(tmp_path).to_pandas().set_index(["date", "kind", "version"])
    assert set(got.index) == {
        (DATE, "raw", "raw1"),
        (DATE, "curated", "cur1"),
        (OTHER, "curated", "cur2"),
        (OTHER, "raw", "raw2"),
    }
    cur = got.loc[(DATE, "curated", "cur1")]
    assert (cur["parent_version"], cur["decisions_applied"], cur["decisions_hash"], cur["stored_in"]) == (
        "raw1",
        2,
        "h1",
        "curated_dataset",
    )
    assert cur["rows"] == 2 and cur["created_at"] == pd.Timestamp("2024-04-03T10:00:00Z")
    raw1 = got.loc[(DATE, "raw", "raw1")]
    assert pd.isna(raw1["parent_version"]) and raw1["stored_in"] == "raw_labels" and raw1["decisions_applied"] == 0
    assert not pd.isna(raw1["created_at"])  # the file's modification time
    parent = got.loc[(OTHER, "raw", "raw2")]
    assert pd.isna(parent["stored_in"]) and parent["rows"] == 3  # held by no table: the source has it
    assert got.loc[(OTHER, "curated", "cur2"), "stored_in"] == "raw_labels"


def test_the_pipeline_warehouse_registers_the_review_views(tmp_path: Path) -> None:
    store = PartitionStore(tmp_path)
    _audited(store, DATE, flagged=3, n=6)
    _raw(store, DATE, "raw1")
    assert "dataset_versions" in Warehouse(tmp_path, managed=TABLES).views()
    assert "review_decisions" not in Warehouse(tmp_path).views()  # no decision file yet
    _decisions([{"id": "ex-000", "date": DATE, "decision": "drop", "hours": 2.0, "data_dir": tmp_path}])
    store.warehouse.ensure_views(["review_decisions"])
    warehouse = Warehouse(tmp_path)
    assert {"review_decisions", "dataset_versions", "review_metrics"} <= set(warehouse.views())
    metrics = warehouse.query("SELECT reviewed, confirmed, precision_top_10 FROM review_metrics WHERE date = ?", [DATE])
    assert metrics.iloc[0].tolist() == [1, 1, 1.0]
    latest = warehouse.query("SELECT id, is_latest FROM review_decisions")
    assert latest.iloc[0].tolist() == ["ex-000", True]
    versions = warehouse.query("SELECT version, kind FROM dataset_versions")
    assert versions.iloc[0].tolist() == ["raw1", "raw"]
    with store.warehouse.reader() as con:  # history/diff's in-memory reader has them too
        assert con.execute("SELECT count(*) FROM review_metrics").fetchone() == (1,)
