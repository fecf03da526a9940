"""The review loop without Dagster: export the queue of an audited date, import decisions.

The audited dates are written with the store as the pipeline writes them (``raw_labels``
with its metadata, ``label_issues`` with the pipeline's columns), from a seeded rng.
"""

import datetime
import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from cl_pipeline.audit.review import (
    ReviewInputError,
    export_queue,
    import_decisions,
    labeling_config,
    resolve_date,
)
from cl_pipeline.audit.review_files import DROP_CHOICE
from cl_pipeline.config import ConfigError, load_config
from cl_pipeline.storage.decisions import decision_files, read_decisions
from cl_pipeline.storage.store import PartitionStore

CLASSES = ["cat", "dog", "emu"]
DATE, LATER = "2024-03-01", "2024-03-02"
T0 = datetime.datetime(2024, 3, 5, 12, 0, tzinfo=datetime.UTC)
CONFIG = load_config(
    {"source": {"kind": "file", "path": "x.csv"}, "columns": {"numeric": ["f"], "display": ["text", "image_url"]}}
)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20240301)


def write_audited(
    store: PartitionStore, date: str, rng: np.random.Generator, n: int = 40, given=None, flag: tuple[str, ...] = ()
) -> pd.DataFrame:
    """An audited date: ``raw_labels`` and ``label_issues`` as the pipeline stores them; returns label_issues.

    About 40% of the examples are flagged, and those in ``flag``.
    """
    ids = [f"ex-{i:03d}" for i in range(n)]
    given = rng.integers(0, 3, n) if given is None else np.asarray(given)
    forced = np.isin(ids, list(flag))
    suggested = np.where((rng.random(n) < 0.4) | forced, (given + rng.integers(1, 3, n)) % 3, given)
    flagged = suggested != given
    quality = rng.random(n)
    rank = np.full(n, -1)
    order = np.lexsort((np.arange(n), quality))
    order = order[flagged[order]]
    rank[order] = np.arange(1, order.size + 1)
    names = np.asarray(CLASSES, dtype=object)
    raw = pd.DataFrame({"id": ids, "label": names[given], "text": [f"text of {i}" for i in ids], "f": quality})
    raw["image_url"] = [f"https://example.org/{i}.png" for i in ids]
    raw["label_index"] = given
    store.write("raw_labels", date, raw, {"classes": CLASSES, "id_column": "id", "label_column": "label"})
    issues = pd.DataFrame(
        {
            "row": np.arange(n),
            "id": ids,
            "given_label": names[given],
            "suggested_label": names[suggested],
            "label_quality": quality,
            "is_label_issue": flagged,
            "rank": pd.array([int(r) if f else None for r, f in zip(rank, flagged, strict=True)], dtype="Int64"),
            "given_index": given,
            "suggested_index": suggested,
        }
    )
    store.write("label_issues", date, issues)
    return issues


@pytest.fixture(scope="module")
def audited(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One audited date, written once per module (copied for each test)."""
    root = tmp_path_factory.mktemp("audited") / "data"
    write_audited(PartitionStore(root), DATE, np.random.default_rng(7))
    return root


@pytest.fixture
def store(tmp_path: Path, audited: Path) -> PartitionStore:
    shutil.copytree(audited, tmp_path / "data", ignore=shutil.ignore_patterns("warehouse.duckdb*"))
    return PartitionStore(tmp_path / "data")


def flagged(store: PartitionStore, date: str = DATE) -> pd.DataFrame:
    issues = store.read("label_issues", date)
    return issues[issues["is_label_issue"]].sort_values("rank").reset_index(drop=True)


def write_csv(path: Path, rows: list[dict]) -> Path:
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def data_files(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in sorted(root.rglob("*")) if p.is_file()}


# ---------------------------------------------------------------- export


def test_export_csv_lists_flags_most_suspicious_first_with_display_columns(store: PartitionStore, tmp_path: Path):
    result = export_queue(store, CONFIG, tmp_path / "queue.csv")
    table = pacsv.read_csv(result.path).to_pandas()
    expected = flagged(store)
    assert result.rows == len(expected) == len(table) > 5
    assert list(table["id"]) == list(expected["id"])
    assert list(table["rank"]) == list(range(1, len(expected) + 1))
    assert list(table["suggested_label"]) == list(expected["suggested_label"])
    assert np.allclose(table["label_quality"], expected["label_quality"])
    assert list(table["text"]) == [f"text of {i}" for i in expected["id"]]
    assert (table["date"].astype(str) == DATE).all()
    assert list(table.columns[-3:]) == ["decision", "new_label", "note"]


def test_export_top_and_parquet_agree_with_csv(store: PartitionStore, tmp_path: Path):
    csv = export_queue(store, CONFIG, tmp_path / "q.csv", top=4)
    parquet = export_queue(store, CONFIG, tmp_path / "q.parquet", date=DATE, top=4)
    a, b = pacsv.read_csv(csv.path).to_pandas(), pq.read_table(parquet.path).to_pandas()
    assert csv.rows == parquet.rows == 4
    assert list(a["id"]) == list(b["id"]) == list(flagged(store)["id"][:4])


def test_export_leaves_out_decided_examples_until_their_label_changes(
    store: PartitionStore, tmp_path: Path, rng: np.random.Generator
):
    first = flagged(store)["id"][:3].tolist()
    rows = [{"id": first[0], "decision": "keep"}, {"id": first[1], "decision": "drop"}]
    import_decisions(store, write_csv(tmp_path / "d.csv", rows), reviewer="ann", date=DATE, now=T0)
    queue = pacsv.read_csv(export_queue(store, CONFIG, tmp_path / "q.csv").path).to_pandas()
    assert first[0] not in set(queue["id"]) and first[1] not in set(queue["id"])
    assert queue["id"].iloc[0] == first[2]
    # a later snapshot where first[0]'s given label changed: its keep no longer hides it
    issues = store.read("label_issues", DATE)
    given = issues["given_index"].to_numpy().copy()
    position = int(np.flatnonzero(issues["id"] == first[0])[0])
    given[position] = (given[position] + 1) % 3
    later = write_audited(store, LATER, rng, given=given, flag=(first[0], first[1]))
    later_flagged = set(later.loc[later["is_label_issue"], "id"])
    queue = pacsv.read_csv(export_queue(store, CONFIG, tmp_path / "q2.csv").path).to_pandas()
    assert (queue["date"].astype(str) == LATER).all()
    assert set(queue["id"]) == later_flagged - {first[1]}
    assert first[0] in set(queue["id"])


def test_label_studio_export_has_predictions_and_a_matching_labeling_config(store: PartitionStore, tmp_path: Path):
    result = export_queue(store, CONFIG, tmp_path / "tasks.json", top=5)
    tasks = json.loads(result.path.read_text())
    expected = flagged(store).head(5)
    assert [t["data"]["id"] for t in tasks] == list(expected["id"])
    config = ET.fromstring(result.labeling_config.read_text())
    objects = {e.get("name"): e.tag for e in config if e.tag in ("Text", "Image")}
    choices = config.find("Choices")
    assert [c.get("value") for c in choices] == [*CLASSES, DROP_CHOICE]
    assert objects["show_image_url"] == "Image" and objects["show_text"] == "Text"
    for task, (_, row) in zip(tasks, expected.iterrows(), strict=True):
        (prediction,) = task["predictions"]
        (item,) = prediction["result"]
        assert item["value"] == {"choices": [row["suggested_label"]]}
        assert item["from_name"] == choices.get("name") and item["to_name"] == choices.get("toName")
        assert item["to_name"] in objects and item["type"] == "choices"
        assert prediction["score"] == pytest.approx(1 - row["label_quality"])
        assert task["data"]["given_label"] == row["given_label"] and task["data"]["text"] == f"text of {row['id']}"


def test_labeling_config_refuses_a_class_named_like_the_drop_choice():
    with pytest.raises(ValueError, match="drop this example"):
        labeling_config(["a", DROP_CHOICE], [])


@pytest.mark.parametrize(
    ("kwargs", "out", "message"),
    [
        pytest.param({"fmt": "label-studio"}, "q.csv", "needs a .json", id="format-suffix-mismatch"),
        pytest.param({}, "q.txt", "use a .csv, .parquet or .json", id="unknown-suffix"),
        pytest.param({"date": "2024-03-09"}, "q.csv", "has no audit", id="date-not-audited"),
        pytest.param({"date": "03/01/2024"}, "q.csv", "not a date", id="date-format"),
    ],
)
def test_export_refuses_bad_arguments_and_writes_nothing(store, tmp_path, kwargs, out, message):
    with pytest.raises(ConfigError, match=message):
        export_queue(store, CONFIG, tmp_path / out, **kwargs)
    assert not (tmp_path / out).exists()


@pytest.mark.parametrize(
    ("column", "message"),
    [
        ("caption", "'caption' is not a column of raw_labels"),
        ("label_index", None),
        ("id", "'id' is a column of the queue"),
    ],
    ids=["missing", "present", "clash"],
)
def test_display_columns_must_exist_and_not_clash(store: PartitionStore, tmp_path: Path, column: str, message):
    config = CONFIG.model_copy(update={"columns": CONFIG.columns.model_copy(update={"display": [column]})})
    if message is None:
        result = export_queue(store, config, tmp_path / "q.parquet")
        assert pq.read_table(result.path).column_names[6] == column
        return
    with pytest.raises(ConfigError, match=message):
        export_queue(store, config, tmp_path / "q.csv")
    assert not (tmp_path / "q.csv").exists()


def test_resolve_date_without_any_audit(tmp_path: Path):
    with pytest.raises(ConfigError, match="no audited date"):
        resolve_date(PartitionStore(tmp_path / "empty"), None)


# ---------------------------------------------------------------- import


def test_the_filled_in_export_imports_with_who_and_when(store: PartitionStore, tmp_path: Path):
    queue = pacsv.read_csv(export_queue(store, CONFIG, tmp_path / "q.csv").path).to_pandas()
    issues = flagged(store)
    other = {g: next(c for c in CLASSES if c != g) for g in CLASSES}
    queue.loc[0, ["decision", "new_label", "note"]] = ["relabel", other[queue.loc[0, "given_label"]], "clearly"]
    queue.loc[1, "decision"] = "keep"
    queue.loc[2, "decision"] = "drop"
    result = import_decisions(store, write_csv(tmp_path / "filled.csv", queue.to_dict("records")), "bob", now=T0)
    assert (result.date, result.decisions, result.undecided, result.stored.written) == (DATE, 3, len(queue) - 3, 3)
    stored = read_decisions(store.root).to_pandas().set_index("id")
    assert set(stored.index) == set(queue["id"][:3])
    row = stored.loc[queue.loc[0, "id"]]
    assert (row["decision"], row["new_label"], row["note"], row["reviewer"]) == (
        "relabel",
        other[queue.loc[0, "given_label"]],
        "clearly",
        "bob",
    )
    assert row["given_label"] == issues.set_index("id").loc[queue.loc[0, "id"], "given_label"]
    assert row["decided_at"] == row["imported_at"] == pd.Timestamp(T0)
    assert row["date"] == DATE and row["source_file"] == "filled.csv" and row["source_format"] == "csv"
    assert pd.isna(stored.loc[queue.loc[1, "id"], "new_label"])


def test_reimporting_a_file_changes_nothing(store: PartitionStore, tmp_path: Path):
    ids = flagged(store)["id"][:4].tolist()
    rows = [{"id": i, "decision": d} for i, d in zip(ids, ["keep", "drop", "keep", "drop"], strict=True)]
    path = write_csv(tmp_path / "d.csv", rows)
    first = import_decisions(store, path, "ann", now=T0)
    before, table = data_files(store.root / "review_decisions"), read_decisions(store.root)
    again = import_decisions(store, path, "ann", now=T0 + datetime.timedelta(days=1))
    assert first.stored.written == 4 and again.stored.path is None and again.stored.already_stored == 4
    assert data_files(store.root / "review_decisions") == before
    assert read_decisions(store.root).equals(table)


def test_the_latest_decision_per_id_wins(store: PartitionStore, tmp_path: Path):
    example = flagged(store).iloc[0]
    target = next(c for c in CLASSES if c != example["given_label"])
    keep = write_csv(tmp_path / "a.csv", [{"id": example["id"], "decision": "keep"}])
    relabel = write_csv(tmp_path / "b.csv", [{"id": example["id"], "decision": "relabel", "new_label": target}])
    import_decisions(store, keep, "ann", now=T0)
    import_decisions(store, relabel, "ann", now=T0 + datetime.timedelta(hours=1))
    latest = read_decisions(store.root, latest_only=True).to_pylist()
    assert [(r["decision"], r["new_label"]) for r in latest] == [("relabel", target)]
    # the same keep restated in a new file, later: a new decision, and it wins
    restated = write_csv(tmp_path / "c.csv", [{"id": example["id"], "decision": "keep", "note": "on reflection"}])
    import_decisions(store, restated, "ann", now=T0 + datetime.timedelta(hours=2))
    assert [r["decision"] for r in read_decisions(store.root, latest_only=True).to_pylist()] == ["keep"]
    assert len(read_decisions(store.root)) == 3


def test_parquet_decisions_with_their_own_times_and_reviewers(store: PartitionStore, tmp_path: Path):
    ids = flagged(store)["id"][:2].tolist()
    frame = pd.DataFrame(
        {
            "id": ids,
            "decision": ["keep", "drop"],
            "reviewer": ["carol", None],
            "decided_at": ["2024-03-04T10:00:00+01:00", "2024-03-04 08:30:00"],
            "date": [DATE, DATE],
        }
    )
    frame.to_parquet(tmp_path / "d.parquet", index=False)
    import_decisions(store, tmp_path / "d.parquet", "dan", now=T0)
    stored = read_decisions(store.root).to_pandas().set_index("id")
    assert list(stored.loc[ids, "reviewer"]) == ["carol", "dan"]
    assert list(stored.loc[ids, "decided_at"]) == [
        pd.Timestamp("2024-03-04T09:00:00Z"),
        pd.Timestamp("2024-03-04T08:30:00Z"),
    ]
    assert (stored["source_format"] == "parquet").all()


def test_identical_repeats_of_an_id_merge(store: PartitionStore, tmp_path: Path):
    first = flagged(store)["id"][0]
    rows = [{"id": first, "decision": "keep"}, {"id": first, "decision": "keep"}]
    assert import_decisions(store, write_csv(tmp_path / "d.csv", rows), "ann", now=T0).stored.written == 1


def _bad_files(store: PartitionStore, folder: Path) -> dict[str, tuple[Path, str]]:
    """Every kind of bad decision file: name -> (file, a fragment of the error)."""
    issues = flagged(store)
    a, b = issues["id"][:2]
    given = issues.set_index("id")["given_label"]
    other = next(c for c in CLASSES if c != given[a])
    folder.mkdir()

    def csv(name: str, rows: list[dict] | str) -> Path:
        path = folder / f"{name}.csv"
        if isinstance(rows, str):
            path.write_text(rows)
        else:
            write_csv(path, rows)
        return path

    def text(name: str, content: str) -> Path:
        (folder / name).write_text(content)
        return folder / name

    good = {"id": b, "decision": "keep"}
    return {
        "missing-file": (folder / "nope.csv", "not found"),
        "unknown-suffix": (text("d.txt", "id,decision\n"), "use a .csv, .parquet or .json"),
        "zero-bytes": (csv("zero", ""), "missing column(s) id, decision"),
        "header-only": (csv("header", "id,decision,new_label\n"), "has no rows"),
        "wrong-columns": (csv("cols", [{"example": a, "verdict": "keep"}]), "missing column(s) id, decision"),
        "no-decisions": (csv("undecided", [{"id": a, "decision": None}]), "no decisions"),
        "unknown-id": (csv("unknown", [good, {"id": "ex-999", "decision": "keep"}]), "row 2: unknown id 'ex-999'"),
        "label-outside-classes": (
            csv("label", [good, {"id": a, "decision": "relabel", "new_label": "yak"}]),
            "row 2: new_label 'yak' is not a class",
        ),
        "relabel-without-label": (csv("nolabel", [{"id": a, "decision": "relabel"}, good]), "row 1: relabel without"),
        "decision-outside-set": (
            csv("verb", [good, good, {"id": a, "decision": "delete"}]),
            "row 3: decision 'delete'",
        ),
        "label-with-keep": (csv("keeplabel", [{"id": a, "decision": "keep", "new_label": other}]), "only relabel"),
        "mixed-dates": (
            csv("dates", [good | {"date": DATE}, {"id": a, "decision": "drop", "date": LATER}]),
            "mixes dates: row 1 has 2024-03-01, row 2 has 2024-03-02",
        ),
        "some-rows-undated": (csv("undated", [good | {"date": DATE}, {"id": a, "decision": "drop"}]), "row 2: no date"),
        "date-not-audited": (csv("notaudited", [good | {"date": "2023-12-31"}]), "row 1: date 2023-12-31 has no audit"),
        "bad-date": (csv("baddate", [good | {"date": "1/3/2024"}]), "row 1: date '1/3/2024' is not a date"),
        "conflicting-duplicates": (
            csv("dups", [{"id": a, "decision": "keep"}, good, {"id": a, "decision": "drop"}]),
            "row 3: id '" + a + "' repeats row 1 with another decision",
        ),
        "stale-given-label": (csv("stale", [good | {"given_label": "yak"}]), "differs from the snapshot's"),
        "relabel-to-given": (
            csv("same", [{"id": a, "decision": "relabel", "new_label": given[a]}]),
            "relabel to the given label",
        ),
        "bad-time": (csv("time", [good | {"decided_at": "yesterday"}]), "decided_at 'yesterday'"),
        "blank-id": (csv("blankid", [good, {"id": None, "decision": "keep"}]), "row 2: no id"),
        "garbage-parquet": (text("d.parquet", "not parquet"), "not a readable Parquet file"),
        "invalid-json": (text("ls.json", "[{"), "not a Label Studio JSON export"),
        "json-not-a-list": (text("obj.json", '{"tasks": []}'), "is a list of tasks"),
        "json-no-tasks": (text("none.json", "[]"), "has no tasks"),
        "task-without-id": (text("noid.json", json.dumps([{"data": {"x": 1}}])), "task 1: no data.id"),
        "two-choices": (
            text(
                "two.json",
                json.dumps(
                    [
                        {
                            "data": {"id": a, "date": DATE},
                            "annotations": [
                                {
                                    "id": 7,
                                    "result": [
                                        {"from_name": "label", "type": "choices", "value": {"choices": ["cat", "dog"]}}
                                    ],
                                }
                            ],
                        }
                    ]
                ),
            ),
            "task 1 (id '" + a + "'): annotation 7 has 2 choices",
        ),
    }


BAD_KINDS = [
    "missing-file", "unknown-suffix", "zero-bytes", "header-only", "wrong-columns", "no-decisions", "unknown-id",
    "label-outside-classes", "relabel-without-label", "decision-outside-set", "label-with-keep", "mixed-dates",
    "some-rows-undated", "date-not-audited", "bad-date", "conflicting-duplicates", "stale-given-label",
    "relabel-to-given", "bad-time", "blank-id", "garbage-parquet", "invalid-json", "json-not-a-list",
    "json-no-tasks", "task-without-id", "two-choices",
]  # fmt: skip


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_bad_decision_files_are_refused_naming_the_problem_and_nothing_is_written(
    store: PartitionStore, tmp_path: Path, kind: str
):
    path, message = _bad_files(store, tmp_path / "bad")[kind]
    before = data_files(store.root)
    with pytest.raises(ReviewInputError) as raised:
        import_decisions(store, path, "ann", now=T0)
    assert message in str(raised.value)
    assert data_files(store.root) == before
    assert decision_files(store.root) == []


def test_every_bad_kind_is_tested(store: PartitionStore, tmp_path: Path):
    assert sorted(_bad_files(store, tmp_path / "all")) == sorted(BAD_KINDS)


def test_one_bad_row_among_good_ones_lists_every_problem(store: PartitionStore, tmp_path: Path):
    ids = flagged(store)["id"][:3].tolist()
    rows = [{"id": ids[0], "decision": "keep"}, {"id": ids[1], "decision": "nope"}, {"id": "ex-x", "decision": "drop"}]
    with pytest.raises(ReviewInputError, match="row 2: decision 'nope'") as raised:
        import_decisions(store, write_csv(tmp_path / "d.csv", rows), "ann", now=T0)
    assert "nothing imported" in str(raised.value)
    assert decision_files(store.root) == []


def test_now_must_be_timezone_aware(store: PartitionStore, tmp_path: Path):
    path = write_csv(tmp_path / "d.csv", [{"id": flagged(store)["id"][0], "decision": "keep"}])
    with pytest.raises(TypeError, match="timezone-aware"):
        import_decisions(store, path, "ann", now=datetime.datetime(2024, 3, 5))
    assert decision_files(store.root) == []


def test_the_decisions_view_marks_the_latest(store: PartitionStore, tmp_path: Path):
    import duckdb

    example = flagged(store)["id"][0]
    import_decisions(store, write_csv(tmp_path / "a.csv", [{"id": example, "decision": "keep"}]), "a", now=T0)
    later = T0 + datetime.timedelta(minutes=5)
    import_decisions(store, write_csv(tmp_path / "b.csv", [{"id": example, "decision": "drop"}]), "a", now=later)
    store.warehouse.reconcile(["review_decisions"])
    with duckdb.connect(str(store.root / "warehouse.duckdb"), read_only=True) as con:
        rows = con.sql("SELECT decision FROM review_decisions ORDER BY decided_at").fetchall()
    assert rows == [("keep",), ("drop",)]
    assert pa.Table.from_pylist(read_decisions(store.root, latest_only=True).to_pylist())["decision"].to_pylist() == [
        "drop"
    ]
